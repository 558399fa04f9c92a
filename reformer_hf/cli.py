"""Command-line interface: ``reformer-hf pretrain``, ``convert``, ``train-tokenizer`` and ``bench``.

Every field of ``PretrainSettings`` is an option of ``pretrain`` (``--hidden-size 512``,
``--attention-layers local,lsh``), applied on top of the chosen preset. ``convert`` turns a local
transformers Reformer checkpoint into a ``reformer_hf`` one. ``train-tokenizer`` trains a
SentencePiece subword tokenizer and saves it as a Hugging Face fast tokenizer. ``bench`` runs
``benchmarks/speed.py`` of a source checkout with the arguments that follow it.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

from .sentencepiece_training import (
    DEFAULT_CHARACTER_COVERAGE,
    DEFAULT_INPUT_SENTENCE_SIZE,
    DEFAULT_MODEL_MAX_LENGTH,
    MODEL_TYPES,
    SPECIAL_TOKENS,
    train_sentencepiece_tokenizer,
)
from .training import PRESETS, PretrainSettings


def _parse_list(item_type):
    def parse(text: str) -> list:
        if text.strip().lower() in ("", "auto"):
            return []
        try:
            return [item_type(part.strip()) for part in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid list {text!r}: expected comma-separated {item_type.__name__} values, e.g. 64,64, or 'auto'"
            ) from None

    return parse


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: use true or false")


SETTING_HELP = {
    "hidden_size": "width of each of the two reversible streams",
    "num_attention_heads": "number of attention heads",
    "attention_head_size": "size of one head's query, key and value vectors",
    "feed_forward_size": "inner width of the feed-forward layers",
    "hidden_act": "feed-forward activation: relu, gelu, gelu_tanh or silu",
    "attention_layers": "attention kind of each layer, in order: lsh, local or full",
    "lsh_chunk_length": "length of the chunks of the bucket-sorted sequence in LSH layers",
    "lsh_num_chunks_before": "earlier chunks each LSH chunk attends to",
    "num_buckets": "LSH buckets: one even int, a pair u1,u2, or auto (about 2 x length / chunk length)",
    "num_hashes": "LSH hash rounds in training",
    "eval_num_hashes": "hash rounds of one extra final evaluation; 0 skips it",
    "hash_seed": "seed of the LSH rotations in evaluation, which makes evaluation deterministic",
    "local_chunk_length": "chunk length of local attention layers",
    "local_num_chunks_before": "earlier chunks each local chunk attends to",
    "hidden_dropout_prob": "dropout on embeddings, attention outputs and feed-forward layers",
    "attention_probs_dropout_prob": "dropout on attention probabilities",
    "axial_pos_shape": "axial position shape, e.g. 64,64 for 4,096 positions; auto covers --sequence-length",
    "axial_pos_embds_dim": "width of each axial position axis, summing to --hidden-size; auto splits 1:3",
    "feed_forward_chunk_size": "positions the feed-forward layers process at once; 0 processes all at once",
    "attention_group_length": "positions whose attention windows are processed at once; 0 processes all at once",
    "reversible": "reversible residual layers (true) or the plain residual stack with the same weights (false)",
    "sequence_length": "length of each training sequence, in bytes",
    "validation_fraction": "fraction of the byte stream, taken from its end, held out for evaluation",
    "max_corpus_bytes": "bytes of the default standard-library corpus to use; 0 uses all of it",
    "max_eval_sequences": "held-out sequences read by each evaluation; 0 reads all of them",
    "per_device_batch_size": "sequences per device and step; an optimizer step uses this x processes x "
                             "--gradient-accumulation-steps",
    "gradient_accumulation_steps": "steps whose gradients are summed before each optimizer update",
    "learning_rate": "peak AdamW learning rate",
    "lr_scheduler_type": "transformers learning-rate schedule, e.g. cosine, linear or constant_with_warmup",
    "warmup_steps": "optimizer steps of linear warm-up",
    "max_steps": "optimizer steps of training",
    "weight_decay": "AdamW weight decay",
    "adam_beta2": "AdamW beta2",
    "max_grad_norm": "gradient clipping norm",
    "bf16": "bf16 autocast: auto (on where the CPU or GPU supports it), true or false",
    "seed": "seed of initialisation, data order and dropout (transformers.set_seed)",
    "logging_steps": "steps between training-loss logs",
    "eval_steps": "steps between evaluations",
    "save_steps": "steps between checkpoints",
    "save_total_limit": "checkpoints kept in --output-dir",
    "sample_length": "bytes generated for the sample printed at the end",
    "sample_temperature": "sampling temperature of that sample",
}


def _add_setting_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override the preset; lists are comma-separated)")
    hints = typing.get_type_hints(PretrainSettings)
    for setting in dataclasses.fields(PretrainSettings):
        hint = hints[setting.name]
        if hint is bool:
            parse, metavar = _parse_bool, "BOOL"
        elif typing.get_origin(hint) is list:
            item_type = typing.get_args(hint)[0]
            parse, metavar = _parse_list(item_type), "LIST"
        else:
            parse, metavar = hint, hint.__name__.upper()
        group.add_argument(
            "--" + setting.name.replace("_", "-"),
            dest=setting.name,
            type=parse,
            default=None,
            metavar=metavar,
            help=f"{SETTING_HELP[setting.name]} (cpu-demo: {_describe(getattr(PretrainSettings(), setting.name))})",
        )


def _describe(value) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "auto"
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reformer-hf", description="Train and use Reformer models.")
    commands = parser.add_subparsers(dest="command", required=True)
    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain a causal byte-level Reformer with the transformers Trainer",
        description="Pretrain a causal byte-level Reformer. With no data option it trains on the running "
        "Python's standard library sources and pydoc reference text, which every Python install has. "
        "Under accelerate launch (e.g. accelerate launch --multi_gpu --num_processes 2 -m reformer_hf pretrain ...) "
        "it trains data-parallel, and only the main process writes the output and prints the results.",
    )
    data = pretrain.add_mutually_exclusive_group()
    data.add_argument("--data-files", nargs="+", metavar="PATH",
                      help="plain text files, or Wikipedia XML dumps (.xml or .bz2)")
    data.add_argument("--dataset", metavar="NAME_OR_DIR",
                      help="a datasets name or a local dataset directory")
    pretrain.add_argument("--text-column", default="text", help="column of --dataset that contains the text")
    pretrain.add_argument("--dataset-split", default="train", help="split of --dataset to read")
    pretrain.add_argument("--wikipedia-raw-xml", action="store_true",
                          help="train on the raw XML of Wikipedia dumps, as enwik8 does, instead of article text")
    pretrain.add_argument("--preset", default="cpu-demo", choices=sorted(PRESETS),
                          help="starting settings: cpu-demo (about 10 minutes on 2 CPU cores) or enwik8 "
                          "(the Reformer paper's 12-layer model on 65,536-byte sequences)")
    pretrain.add_argument("--output-dir", default="runs/pretrain",
                          help="where checkpoints and the final model and tokenizer are written")
    pretrain.add_argument("--report-to", default="none",
                          help="Trainer logging integrations, e.g. tensorboard; none by default")
    _add_setting_options(pretrain)

    convert = commands.add_parser(
        "convert",
        help="convert a local transformers Reformer checkpoint to reformer_hf",
        description="Convert a transformers Reformer checkpoint (a folder with config.json and model.safetensors "
        "or pytorch_model.bin) into a reformer_hf folder that the Auto classes load. The converted config "
        "switches on the options under which it reproduces the original's outputs. Tokenizer files are copied.",
    )
    convert.add_argument("--from-transformers", required=True, metavar="DIR", dest="source",
                         help="folder of the transformers checkpoint")
    convert.add_argument("--output-dir", required=True, metavar="DIR", help="folder to write the converted model to")
    convert.add_argument("--num-buckets", type=_parse_list(int), metavar="LIST",
                         help="bucket count to use when the checkpoint's config leaves num_buckets unset: one even "
                         "int or a pair u1,u2, the value the model was trained with")
    convert.add_argument("--check", action="store_true",
                         help="load both models and report the largest output difference on a random batch")
    _add_train_tokenizer_parser(commands)
    # main() passes everything after "bench" to the script unparsed, so this parser only documents it.
    commands.add_parser(
        "bench",
        help="measure speed and memory against sequence length (benchmarks/speed.py)",
        description="Run benchmarks/speed.py of a source checkout with the arguments that follow, "
        "e.g. reformer-hf bench --quick --output-dir results. See reformer-hf bench --help.",
        add_help=False,
    )
    return parser


SPEED_BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


def _add_train_tokenizer_parser(commands) -> None:
    train_tokenizer = commands.add_parser(
        "train-tokenizer",
        help="train a SentencePiece subword tokenizer for a Reformer model",
        description="Train a SentencePiece Unigram or BPE tokenizer on text files and save it as a Hugging Face fast "
        "tokenizer that AutoTokenizer loads. Ids 0 to 6 are <pad>, <s>, </s>, <unk>, <cls>, <sep> and <mask>. "
        "A pair of texts is encoded as <cls> A <sep> B <sep>, a single text without special tokens.",
    )
    train_tokenizer.add_argument("--data-files", nargs="+", required=True, metavar="PATH",
                                 help="plain text files, or Wikipedia XML dumps (.xml or .bz2)")
    train_tokenizer.add_argument("--vocab-size", type=int, required=True, metavar="N",
                                 help="number of token ids, special tokens and byte pieces included")
    train_tokenizer.add_argument("--output-dir", required=True, metavar="DIR",
                                 help="folder to write tokenizer.json, tokenizer_config.json and "
                                 "sentencepiece.model to")
    train_tokenizer.add_argument("--model-type", default=MODEL_TYPES[0], choices=MODEL_TYPES,
                                 help=f"SentencePiece model type (default: {MODEL_TYPES[0]})")
    train_tokenizer.add_argument("--model-max-length", type=int, default=DEFAULT_MODEL_MAX_LENGTH, metavar="N",
                                 help="the tokenizer's model_max_length in tokens; set it to the model's "
                                 f"max_position_embeddings (default: {DEFAULT_MODEL_MAX_LENGTH}, that of the "
                                 "default ReformerConfig)")
    train_tokenizer.add_argument("--character-coverage", type=float, default=DEFAULT_CHARACTER_COVERAGE,
                                 metavar="FRACTION",
                                 help="share of the corpus's characters that get their own piece; the rest are "
                                 f"encoded as bytes (default: {DEFAULT_CHARACTER_COVERAGE})")
    train_tokenizer.add_argument("--input-sentence-size", type=int, default=DEFAULT_INPUT_SENTENCE_SIZE, metavar="N",
                                 help="lines sampled from the corpus for training; 0 uses every line "
                                 f"(default: {DEFAULT_INPUT_SENTENCE_SIZE})")
    train_tokenizer.add_argument("--seed", type=int, default=0, help="seed of the --input-sentence-size sample (default: 0)")
    train_tokenizer.add_argument("--no-byte-fallback", dest="byte_fallback", action="store_false",
                                 help="encode characters outside the vocabulary as <unk> instead of their UTF-8 bytes, "
                                 "which frees 256 ids")
    train_tokenizer.add_argument("--add-cls-and-sep", action="store_true",
                                 help="encode a single text as <cls> A <sep> too, for classification of single texts "
                                 "(prompts for generation then end in <sep>)")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["bench"]:
        return _run_bench(arguments[1:])
    args = build_parser().parse_args(argv)
    if args.command == "pretrain":
        return _run_pretrain(args)
    if args.command == "convert":
        return _run_convert(args)
    if args.command == "train-tokenizer":
        return _run_train_tokenizer(args)
    return 2


def _run_bench(arguments: list[str]) -> int:
    """Run ``benchmarks/speed.py`` in a subprocess with ``arguments`` and return its exit code."""
    if not SPEED_BENCHMARK.is_file():
        print(
            f"reformer-hf bench: error: {SPEED_BENCHMARK} not found. The benchmarks ship with the source "
            "checkout only, so install reformer_hf from a clone with pip install -e .",
            file=sys.stderr,
        )
        return 2
    return subprocess.run([sys.executable, str(SPEED_BENCHMARK), *arguments]).returncode


def _run_train_tokenizer(args: argparse.Namespace) -> int:
    try:
        tokenizer = train_sentencepiece_tokenizer(
            args.data_files,
            args.vocab_size,
            args.output_dir,
            model_type=args.model_type,
            model_max_length=args.model_max_length,
            character_coverage=args.character_coverage,
            input_sentence_size=args.input_sentence_size,
            seed=args.seed,
            byte_fallback=args.byte_fallback,
            add_cls_and_sep=args.add_cls_and_sep,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"reformer-hf train-tokenizer: error: {error}", file=sys.stderr)
        return 2

    print(f"Saved a {args.model_type} tokenizer with {len(tokenizer)} ids to {args.output_dir}")
    special_ids = ", ".join(
        f"{name.removesuffix('_token')}={tokenizer.convert_tokens_to_ids(token)} {token}"
        for name, token in SPECIAL_TOKENS.items()
    )
    print(f"Special token ids: {special_ids}")
    print(f"Build the model's config with vocab_size={len(tokenizer)} and max_position_embeddings="
          f"{tokenizer.model_max_length}. Pad, bos and eos have the ids that ReformerConfig defaults to.")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .conversion import ConversionError, check_conversion, convert_from_transformers

    source, output_dir = Path(args.source), Path(args.output_dir)
    try:
        if output_dir.exists() and output_dir.resolve() == source.resolve():
            raise ValueError("--output-dir must differ from --from-transformers; the source would be overwritten.")
        overrides = {}
        if args.num_buckets:
            overrides["num_buckets"] = args.num_buckets[0] if len(args.num_buckets) == 1 else args.num_buckets
        model = convert_from_transformers(source, output_dir, config_overrides=overrides)
        print(f"Converted {source} to {type(model).__name__} in {output_dir}")
        if args.check:
            difference = check_conversion(source, output_dir)
            verdict = "the outputs agree" if difference <= 1e-4 else "the outputs DIFFER; please report this"
            print(f"Largest output difference on a random batch: {difference:.3g} ({verdict})")
    except (ValueError, FileNotFoundError, ConversionError) as error:
        print(f"reformer-hf convert: error: {error}", file=sys.stderr)
        return 2
    return 0


def _run_pretrain(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from .training import pretrain, resolve_settings

    overrides = {
        setting.name: getattr(args, setting.name)
        for setting in dataclasses.fields(PretrainSettings)
        if getattr(args, setting.name) is not None
    }
    try:
        settings = resolve_settings(args.preset, overrides)
        metrics = pretrain(
            settings,
            output_dir=args.output_dir,
            data_files=args.data_files,
            dataset=args.dataset,
            report_to=args.report_to,
            **_dataset_options(args),
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"reformer-hf pretrain: error: {error}", file=sys.stderr)
        return 2

    # Under accelerate launch or torch.distributed.run every process gets here with the same
    # metrics. Only the main process, which wrote the output, reports them.
    if not PartialState().is_main_process:
        return 0
    sample = metrics.pop("sample")
    print("\nFinal metrics:")
    print(json.dumps(metrics, indent=2))
    print(f"\nHeld-out bits per byte: {metrics['eval_bits_per_byte']:.3f}")
    print(f"Model and tokenizer written to {args.output_dir}")
    print("\nGenerated sample:\n" + "-" * 72 + "\n" + sample + "\n" + "-" * 72)
    return 0


def _dataset_options(args: argparse.Namespace) -> dict:
    if args.dataset:
        return {"text_column": args.text_column, "dataset_split": args.dataset_split}
    if args.data_files:
        return {"wikipedia_raw_xml": args.wikipedia_raw_xml}
    return {}


if __name__ == "__main__":
    sys.exit(main())
