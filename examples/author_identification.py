"""Fine-tune ReformerForSequenceClassification to name the author of a passage of a novel.

The classes are three authors, one book file each: Jane Austen's six novels, Dostoevsky's *Crime
and Punishment* in Constance Garnett's translation, and Melville's *Moby Dick*. Each book is cut by
position: the first part trains, the next slice validates and the last slice tests, so no test text
is seen in training. Each part is cut into passages of ``--chunk-length`` bytes, encoded with
``ReformerByteTokenizer``. The model is trained from scratch with ``transformers.Trainer``.

The script prints one JSON line with the test accuracy, the majority-class baseline, their margin
and the wall time, and writes the same object to ``OUTPUT_DIR/results.json``. The baseline is the
share of the most frequent author among the test passages, the best accuracy a constant guess gets.

    python examples/author_identification.py --data-dir DIR --output-dir runs/authors
"""

import argparse
import inspect
import json
import os
import re
import sys
import time

import numpy as np
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments, set_seed
from transformers.utils import logging

from reformer_hf import ReformerByteTokenizer, ReformerConfig, ReformerForSequenceClassification
from reformer_hf.data import load_documents
from reformer_hf.task_data import DataCollatorForSequenceClassification, split_documents
from reformer_hf.training import axial_shape_for, use_bf16

logger = logging.get_logger("author_identification")

# Author name and file name of each class, in label order.
BOOKS = (
    ("Austen", "austen_six_novels.txt"),
    ("Dostoevsky", "crime_and_punishment.txt"),
    ("Melville", "mobydick.txt"),
)
SPLITS = ("train", "validation", "test")

GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (?:THIS|THE) PROJECT GUTENBERG E(?:BOOK|TEXT)[^\n]*$", re.MULTILINE)
GUTENBERG_END = re.compile(
    r"^(?:\*\*\* ?END OF (?:THIS|THE) PROJECT GUTENBERG E(?:BOOK|TEXT)|End of (?:the )?Project Gutenberg)[^\n]*$",
    re.MULTILINE | re.IGNORECASE,
)
# Typography that differs between the editions rather than between the authors: one edition uses
# curly quotes and the others straight ones, and they mark italics with underscores at very
# different rates. Left in, a single quote mark would give the author away.
TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "_": None, "\ufeff": None})
WHITESPACE = re.compile(r"\s+")


def strip_gutenberg_boilerplate(text: str) -> str:
    """Return the text between Project Gutenberg's START and END markers, or all of it without markers.

    The END marker is the first line that starts with ``*** END OF THE PROJECT GUTENBERG EBOOK`` or
    ``End of Project Gutenberg``, so the licence block after it goes too.
    """
    start = GUTENBERG_START.search(text)
    if start is not None:
        text = text[start.end() :]
    end = GUTENBERG_END.search(text)
    if end is not None:
        text = text[: end.start()]
    return text


def normalize_text(text: str) -> str:
    """Make quotes straight, drop underscores and the byte-order mark, and collapse whitespace.

    Line breaks, line endings (CRLF in two of the files) and indentation are layout of the
    edition, so every run of whitespace becomes one space.
    """
    return WHITESPACE.sub(" ", text.translate(TYPOGRAPHY)).strip()


def split_by_position(text: str, validation_fraction: float, test_fraction: float) -> dict[str, str]:
    """Cut a text into a training head, a validation slice and a test tail, at spaces."""
    length = len(text)

    def cut_at_space(fraction: float) -> int:
        index = text.find(" ", int(length * fraction))
        return length if index < 0 else index

    validation_start = cut_at_space(1 - validation_fraction - test_fraction)
    test_start = cut_at_space(1 - test_fraction)
    return {
        "train": text[:validation_start].strip(),
        "validation": text[validation_start:test_start].strip(),
        "test": text[test_start:].strip(),
    }


def load_books(data_dir: str, max_bytes_per_book: int) -> list[str]:
    """Read, strip and normalize the book of each author, in label order."""
    paths = [os.path.join(data_dir, file_name) for _, file_name in BOOKS]
    documents = load_documents(data_files=paths)
    if documents.num_rows != len(BOOKS):
        raise ValueError(
            f"Expected {len(BOOKS)} books with text in {data_dir!r}, got {documents.num_rows}. Check that none of "
            f"the files is empty."
        )
    texts = [normalize_text(strip_gutenberg_boilerplate(text)) for text in documents["text"]]
    if max_bytes_per_book:
        # The cap counts characters, which equal bytes in these nearly all-ASCII texts.
        texts = [text[:max_bytes_per_book] for text in texts]
    return texts


def build_splits(texts: list[str], tokenizer, args: argparse.Namespace) -> dict[str, Dataset]:
    """Cut each book by position and each part into passages of exactly ``chunk_length`` tokens.

    The training passages are balanced by ``args.balance``. The validation passages are an equal
    number per author, ``max_eval_chunks`` in all, so that checkpoint selection weighs the authors
    equally. The test passages keep the books' proportions.
    """
    parts = [split_by_position(text, args.validation_fraction, args.test_fraction) for text in texts]
    splits = {}
    for split in SPLITS:
        documents = Dataset.from_dict({"text": [part[split] for part in parts], "label": list(range(len(texts)))})
        splits[split] = split_documents(
            documents, tokenizer, max_length=args.chunk_length, min_length=args.chunk_length, label_column="label"
        )
        counts = np.bincount(splits[split]["label"], minlength=len(texts))
        if counts.min() == 0:
            raise ValueError(
                f"A book gives no {split} passage of {args.chunk_length} bytes (passages per author: "
                f"{counts.tolist()}). Use a shorter --chunk-length or a larger --max-bytes-per-book."
            )

    generator = np.random.default_rng(args.seed)
    if args.balance != "none":
        splits["train"] = balance_classes(splits["train"], args.balance, generator)
    if args.max_eval_chunks:
        per_author = max(1, args.max_eval_chunks // len(texts))
        splits["validation"] = balance_classes(splits["validation"], "downsample", generator, per_author)
    return splits


def balance_classes(
    dataset: Dataset, mode: str, generator: np.random.Generator, per_class: int | None = None
) -> Dataset:
    """Give every label the same number of rows, in the order of the dataset.

    ``"downsample"`` draws ``per_class`` rows of each label without replacement, by default as
    many as the smallest label has. ``"oversample"`` keeps every row and repeats rows of the
    smaller labels, each as evenly as possible, up to the largest label's count. Austen's six novels
    give about three times as many passages as each other book.
    """
    labels = np.asarray(dataset["label"])
    rows_by_label = [np.flatnonzero(labels == label) for label in range(labels.max() + 1)]
    counts = [len(rows) for rows in rows_by_label]
    selected = []
    for rows in rows_by_label:
        if mode == "downsample":
            take = min(counts) if per_class is None else min(per_class, min(counts))
            selected.append(generator.choice(rows, take, replace=False))
        else:
            num_copies, remainder = divmod(max(counts), len(rows))
            extra_rows = generator.choice(rows, remainder, replace=False)
            selected.append(np.concatenate([np.tile(rows, num_copies), extra_rows]))
    return dataset.select(np.sort(np.concatenate(selected)).tolist())


def build_model(args: argparse.Namespace, num_labels: int) -> ReformerForSequenceClassification:
    """Build a bidirectional classifier whose axial positions cover ``chunk_length`` tokens."""
    extra = {}
    # Versions of ReformerConfig without classifier_pooling always pool the first real token.
    if "classifier_pooling" in inspect.signature(ReformerConfig.__init__).parameters:
        extra["classifier_pooling"] = args.pooling
    config = ReformerConfig(
        hidden_size=args.hidden_size,
        num_attention_heads=args.num_attention_heads,
        attention_head_size=args.hidden_size // args.num_attention_heads,
        feed_forward_size=2 * args.hidden_size,
        attention_layers=args.attention_layers,
        lsh_chunk_length=args.attention_chunk_length,
        local_chunk_length=args.attention_chunk_length,
        lsh_num_chunks_after=1,
        local_num_chunks_after=1,
        num_buckets=None,
        axial_pos_shape=axial_shape_for(args.chunk_length),
        axial_pos_embds_dim=(args.hidden_size // 4, args.hidden_size - args.hidden_size // 4),
        hidden_dropout_prob=args.dropout,
        attention_probs_dropout_prob=0.0,
        # Trained from scratch with the default 0.02, the loss stayed at chance for about 200 steps
        # (1,024-byte passages, learning rate 5e-4). With 0.1 it began to fall after about 100.
        initializer_range=args.initializer_range,
        is_decoder=False,
        num_labels=num_labels,
        id2label={label: author for label, (author, _) in enumerate(BOOKS[:num_labels])},
        label2id={author: label for label, (author, _) in enumerate(BOOKS[:num_labels])},
        **extra,
    )
    return ReformerForSequenceClassification(config)


def classification_metrics(predictions: np.ndarray, labels: np.ndarray, num_labels: int) -> dict:
    """Compute accuracy, balanced accuracy (mean recall over the labels) and the confusion matrix."""
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float((predictions == labels).mean()),
        "balanced_accuracy": float(recall.mean()),
        "confusion_matrix": confusion.tolist(),
    }


def majority_baseline(labels: np.ndarray) -> float:
    """Return the share of the most frequent label: the accuracy of the best constant prediction."""
    return float(np.bincount(labels).max() / len(labels))


def compute_eval_metrics(eval_prediction) -> dict:
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    metrics = classification_metrics(logits.argmax(axis=-1), labels, logits.shape[-1])
    del metrics["confusion_matrix"]
    return metrics


def train_and_test(args: argparse.Namespace) -> dict:
    """Run the whole example and return the results that ``main`` prints and saves."""
    started = time.monotonic()
    set_seed(args.seed)
    tokenizer = ReformerByteTokenizer()
    splits = build_splits(load_books(args.data_dir, args.max_bytes_per_book), tokenizer, args)
    model = build_model(args, num_labels=len(BOOKS))
    bf16 = use_bf16(args.bf16)
    logger.warning(
        "Passages of %d bytes: %d training, %d validation, %d test. Model: %.2fM parameters, bf16=%s.",
        args.chunk_length, len(splits["train"]), len(splits["validation"]), len(splits["test"]),
        model.num_parameters() / 1e6, bf16,
    )

    training_arguments = TrainingArguments(
        output_dir=args.output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, args.max_steps // 10),
        max_steps=args.max_steps,
        weight_decay=0.01,
        max_grad_norm=1.0,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        logging_steps=max(1, args.eval_steps // 2),
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        save_strategy="steps",
        save_steps=args.eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="balanced_accuracy",
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=args.quiet,
    )
    trainer = Trainer(
        model=model,
        args=training_arguments,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorForSequenceClassification(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_eval_metrics,
    )
    trainer.train()
    # The best checkpoint by validation accuracy, loadable with AutoModelForSequenceClassification.
    trainer.save_model(args.output_dir)

    prediction = trainer.predict(splits["test"])
    test_labels = np.asarray(splits["test"]["label"])
    metrics = classification_metrics(prediction.predictions.argmax(axis=-1), test_labels, len(BOOKS))
    baseline = majority_baseline(test_labels)
    return {
        "accuracy": round(metrics["accuracy"], 4),
        "baseline": round(baseline, 4),
        "margin": round(metrics["accuracy"] - baseline, 4),
        "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "wall_seconds": round(time.monotonic() - started, 1),
        "authors": [author for author, _ in BOOKS],
        "test_passages_per_author": np.bincount(test_labels, minlength=len(BOOKS)).tolist(),
        "confusion_matrix": metrics["confusion_matrix"],
        "train_passages": len(splits["train"]),
        "validation_passages": len(splits["validation"]),
        "num_parameters": model.num_parameters(),
        "bf16": bf16,
        "torch_threads": torch.get_num_threads(),
        "settings": {key: value for key, value in vars(args).items() if key != "quiet"},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help=f"Directory that contains {', '.join(file_name for _, file_name in BOOKS)}.")
    parser.add_argument("--output-dir", default="runs/author_identification",
                        help="Directory for checkpoints, the best model and results.json.")

    parser.add_argument("--chunk-length", type=int, default=1024, help="Passage length in bytes.")
    parser.add_argument("--max-bytes-per-book", type=int, default=0,
                        help="Read only this many characters of each book, before the split (0: all).")
    parser.add_argument("--validation-fraction", type=float, default=0.10,
                        help="Share of each book, just before the test tail, used for validation.")
    parser.add_argument("--test-fraction", type=float, default=0.15,
                        help="Share at the end of each book used for testing.")
    parser.add_argument("--balance", default="oversample", choices=["oversample", "downsample", "none"],
                        help="Balance the training passages per author: repeat the smaller books' passages, "
                             "draw fewer of the larger book's, or keep the books' proportions.")
    parser.add_argument("--max-eval-chunks", type=int, default=240,
                        help="Validation passages, drawn equally from each author (0: all, unbalanced).")

    parser.add_argument("--hidden-size", type=int, default=128, help="Width of each reversible stream.")
    parser.add_argument("--num-attention-heads", type=int, default=4, help="Attention heads per layer.")
    parser.add_argument("--attention-layers", nargs="+", default=["local", "lsh", "local", "lsh"],
                        choices=["local", "lsh", "full"], help="Attention kind of each layer.")
    parser.add_argument("--attention-chunk-length", type=int, default=64,
                        help="Chunk length of LSH and local attention, in tokens.")
    parser.add_argument("--pooling", default="mean", choices=["mean", "first"],
                        help="classifier_pooling of the config, used only when ReformerConfig has that field.")
    parser.add_argument("--dropout", type=float, default=0.0, help="Hidden dropout probability.")
    parser.add_argument("--initializer-range", type=float, default=0.1,
                        help="Standard deviation of the initial weights (ReformerConfig.initializer_range).")

    parser.add_argument("--batch-size", type=int, default=8, help="Passages per training step.")
    parser.add_argument("--max-steps", type=int, default=600, help="Training steps.")
    parser.add_argument("--eval-steps", type=int, default=100, help="Steps between validation runs and checkpoints.")
    parser.add_argument("--learning-rate", type=float, default=5e-4,
                        help="Peak learning rate of the cosine schedule, after a warmup of 10%% of the steps.")
    parser.add_argument("--bf16", default="auto", choices=["auto", "true", "false"],
                        help="bf16 autocast. auto turns it on for GPUs that support it and CPUs with AVX512-BF16 "
                             "or AMX.")
    parser.add_argument("--seed", type=int, default=42,
                        help="Seed of the weights, the batch order and the class balancing.")
    parser.add_argument("--quiet", action="store_true", help="Hide the progress bars.")

    args = parser.parse_args(argv)
    for name in ("chunk_length", "hidden_size", "batch_size", "max_steps", "eval_steps", "attention_chunk_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}.")
    for name in ("max_bytes_per_book", "max_eval_chunks"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or a positive integer, got {getattr(args, name)}.")
    fractions_valid = args.validation_fraction > 0 and args.test_fraction > 0
    if not (fractions_valid and args.validation_fraction + args.test_fraction < 1):
        parser.error(
            f"--validation-fraction and --test-fraction must be positive with a sum below 1, got "
            f"{args.validation_fraction} and {args.test_fraction}."
        )
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results = train_and_test(args)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
