"""The ``reformer-hf pretrain`` job: causal language-model pretraining with the transformers Trainer.

A preset fixes every setting, and any of them can be overridden. The job loads text and cuts it
into long byte sequences with a held-out tail. It trains with ``Trainer``, which shows a progress
bar, evaluates in bits per byte and writes checkpoints. At the end it evaluates the held-out split,
writes a directory that the Auto classes load, and prints a generated sample.

Under ``accelerate launch`` or ``torch.distributed.run`` each process runs ``pretrain``. The main
process of each node builds the datasets first and the others then read them from the ``datasets``
cache. Only the global main process writes the final model, tokenizer, model card and trainer
state, and only it generates the sample. One optimizer step consumes per-device batch x processes
x accumulation steps sequences.
"""

import dataclasses
import functools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, set_seed
from transformers.utils import logging

from .configuration import ReformerConfig
from .data import build_lm_datasets, load_documents, python_stdlib_documents
from .modeling import ReformerForCausalLM
from .tokenization import ReformerByteTokenizer

logger = logging.get_logger(__name__)


@dataclass
class PretrainSettings:
    """Every setting of a pretraining run. Presets fill them; the command line overrides them.

    ``axial_pos_shape`` and ``axial_pos_embds_dim`` may be empty, which derives them from
    ``sequence_length`` and ``hidden_size``. ``num_buckets`` is empty (derive from the length),
    one int, or a pair. ``max_corpus_bytes`` caps the default corpus (0: no cap), and
    ``max_eval_sequences`` caps the held-out sequences that every evaluation reads (0: no cap).
    ``eval_num_hashes`` adds a final evaluation with that many hash rounds (0: none).
    """

    # Model.
    hidden_size: int = 256
    num_attention_heads: int = 4
    attention_head_size: int = 64
    feed_forward_size: int = 512
    hidden_act: str = "relu"
    attention_layers: list[str] = field(default_factory=lambda: ["local", "lsh", "local", "lsh"])
    lsh_chunk_length: int = 64
    lsh_num_chunks_before: int = 1
    num_buckets: list[int] = field(default_factory=list)
    num_hashes: int = 1
    eval_num_hashes: int = 0
    hash_seed: int = 0
    local_chunk_length: int = 64
    local_num_chunks_before: int = 1
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    axial_pos_shape: list[int] = field(default_factory=list)
    axial_pos_embds_dim: list[int] = field(default_factory=list)
    feed_forward_chunk_size: int = 0
    attention_group_length: int = 4096
    reversible: bool = True
    # Data.
    sequence_length: int = 4096
    validation_fraction: float = 0.05
    max_corpus_bytes: int = 0
    max_eval_sequences: int = 32
    # Optimisation.
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-3
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 50
    max_steps: int = 1300
    weight_decay: float = 0.01
    adam_beta2: float = 0.98
    max_grad_norm: float = 1.0
    bf16: str = "auto"
    seed: int = 42
    # Reporting.
    logging_steps: int = 50
    eval_steps: int = 200
    save_steps: int = 400
    save_total_limit: int = 2
    sample_length: int = 300
    sample_temperature: float = 0.8


PRESETS: dict[str, dict] = {
    # A 4-layer model on 4,096-byte sequences, one per step for 1,300 steps: about 10 minutes on
    # 2 CPU cores with bf16 autocast (measured on an AMD EPYC with AVX512-BF16). On a novel it gets
    # to about 2.9 held-out bits per byte; --max-steps 600 halves the time and stops near 3.3.
    "cpu-demo": {},
    # The enwik8-64K model of the Reformer paper: 12 layers of width 1024 with 8 heads,
    # 65,536-byte sequences and 4 hash rounds. Needs an accelerator with tens of GB of memory.
    "enwik8": {
        "hidden_size": 1024,
        "num_attention_heads": 8,
        "attention_head_size": 128,
        "feed_forward_size": 4096,
        "attention_layers": ["lsh"] * 12,
        "lsh_chunk_length": 256,
        "num_buckets": [],
        "num_hashes": 4,
        "eval_num_hashes": 8,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "axial_pos_shape": [128, 512],
        "axial_pos_embds_dim": [256, 768],
        "sequence_length": 65536,
        "per_device_batch_size": 1,
        "gradient_accumulation_steps": 8,
        "learning_rate": 3e-4,
        "warmup_steps": 1000,
        "max_steps": 100_000,
        "eval_steps": 2000,
        "save_steps": 2000,
        "logging_steps": 50,
    },
}


def resolve_settings(preset: str, overrides: dict) -> PretrainSettings:
    """Start from ``preset`` and apply ``overrides`` (field name to value)."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Choose one of {', '.join(sorted(PRESETS))}.")
    names = {f.name for f in dataclasses.fields(PretrainSettings)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown settings {unknown}. Valid settings: {', '.join(sorted(names))}.")
    return PretrainSettings(**{**PRESETS[preset], **overrides})


def axial_shape_for(sequence_length: int) -> list[int]:
    """Two axes whose product is the smallest power-of-two-based cover of ``sequence_length``."""
    columns = 2 ** math.ceil(math.log2(math.sqrt(sequence_length)))
    rows = math.ceil(sequence_length / columns)
    return [rows, columns]


def build_config(settings: PretrainSettings) -> ReformerConfig:
    """Turn the model settings into a validated ``ReformerConfig``."""
    axial_pos_shape = settings.axial_pos_shape or axial_shape_for(settings.sequence_length)
    axial_pos_embds_dim = settings.axial_pos_embds_dim or [settings.hidden_size // 4,
                                                           settings.hidden_size - settings.hidden_size // 4]
    num_buckets = None
    if len(settings.num_buckets) == 1:
        num_buckets = settings.num_buckets[0]
    elif settings.num_buckets:
        num_buckets = list(settings.num_buckets)
    config = ReformerConfig(
        hidden_size=settings.hidden_size,
        num_attention_heads=settings.num_attention_heads,
        attention_head_size=settings.attention_head_size,
        feed_forward_size=settings.feed_forward_size,
        hidden_act=settings.hidden_act,
        attention_layers=settings.attention_layers,
        lsh_chunk_length=settings.lsh_chunk_length,
        lsh_num_chunks_before=settings.lsh_num_chunks_before,
        num_buckets=num_buckets,
        num_hashes=settings.num_hashes,
        hash_seed=settings.hash_seed,
        local_chunk_length=settings.local_chunk_length,
        local_num_chunks_before=settings.local_num_chunks_before,
        hidden_dropout_prob=settings.hidden_dropout_prob,
        attention_probs_dropout_prob=settings.attention_probs_dropout_prob,
        axial_pos_shape=axial_pos_shape,
        axial_pos_embds_dim=axial_pos_embds_dim,
        feed_forward_chunk_size=settings.feed_forward_chunk_size,
        attention_group_length=settings.attention_group_length,
        reversible=settings.reversible,
        is_decoder=True,
    )
    if config.max_position_embeddings < settings.sequence_length:
        raise ValueError(
            f"axial_pos_shape {axial_pos_shape} holds {config.max_position_embeddings} positions, fewer than "
            f"sequence_length = {settings.sequence_length}. Enlarge axial_pos_shape or leave it empty to derive it."
        )
    return config


def cpu_supports_bf16() -> bool:
    """Return whether this CPU has native bf16 instructions (AVX512-BF16 or AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(setting: str) -> bool:
    if setting not in ("auto", "true", "false"):
        raise ValueError(f"bf16 must be 'auto', 'true' or 'false', got {setting!r}.")
    if setting != "auto":
        return setting == "true"
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_supports_bf16()


class BitsPerByteTrainer(Trainer):
    """``Trainer`` that also logs losses in bits per byte.

    With byte tokens the loss in nats per token divided by ln 2 is bits per byte. The end-of-text
    token after each document counts as one more byte, which shifts the figure by well under 0.1%
    on book-length documents.
    """

    def log(self, logs: dict, *args, **kwargs) -> None:
        for key in [key for key in logs if key == "loss" or key.endswith("_loss")]:
            logs[key[: -len("loss")] + "bits_per_byte"] = round(logs[key] / math.log(2), 4)
        super().log(logs, *args, **kwargs)


def collate_causal_lm(examples: list[dict], num_hashes: int | None = None) -> dict:
    """Stack equal-length sequences; the labels are the inputs, which the model shifts itself."""
    input_ids = torch.tensor([example["input_ids"] for example in examples], dtype=torch.long)
    batch = {"input_ids": input_ids, "labels": input_ids.clone()}
    if num_hashes is not None:
        batch["num_hashes"] = num_hashes
    return batch


def load_corpus(data_files: list[str] | None, dataset: str | None, settings: PretrainSettings, **dataset_options):
    if data_files or dataset:
        return load_documents(data_files=data_files, dataset=dataset, **dataset_options)
    return python_stdlib_documents(max_bytes=settings.max_corpus_bytes or None)


def pretrain(
    settings: PretrainSettings,
    output_dir: str,
    data_files: list[str] | None = None,
    dataset: str | None = None,
    report_to: str = "none",
    **dataset_options,
) -> dict:
    """Run the whole job and return the final metrics.

    The metrics include ``eval_bits_per_byte`` on the held-out split, ``eval_history`` (step and
    bits per byte of every evaluation, the first before training), ``minutes`` of wall time and a
    generated ``sample``, which is None on every process but the global main one.
    """
    started = time.monotonic()
    bf16 = use_bf16(settings.bf16)
    config = build_config(settings)
    # Creating the arguments sets up torch.distributed when a launcher started this process.
    arguments = build_training_arguments(settings, output_dir, report_to, bf16)
    set_seed(settings.seed)
    # The saved tokenizer truncates to what the model can embed, so pipelines with truncation=True
    # never hand it a longer input.
    tokenizer = ReformerByteTokenizer(model_max_length=config.max_position_embeddings)

    # Each node has its own datasets cache. The node's main process fills it, and the other
    # processes then read from it.
    with arguments.main_process_first(desc="dataset preparation"):
        documents = load_corpus(data_files, dataset, settings, **dataset_options)
        splits = build_lm_datasets(
            documents, tokenizer, settings.sequence_length, validation_fraction=settings.validation_fraction
        )
    validation = splits["validation"]
    if settings.max_eval_sequences and len(validation) > settings.max_eval_sequences:
        # Every evaluation runs over the whole held-out split, so a large corpus gets a fixed,
        # contiguous part of it; the rest stays unseen.
        validation = validation.select(range(settings.max_eval_sequences))

    model = ReformerForCausalLM(config)
    if arguments.should_log:
        log_run_summary(arguments, settings, model, len(splits["train"]), len(validation))
    trainer = BitsPerByteTrainer(
        model=model,
        args=arguments,
        train_dataset=splits["train"],
        eval_dataset=validation,
        data_collator=collate_causal_lm,
        processing_class=tokenizer,
    )
    train_output = trainer.train()
    metrics = trainer.evaluate()
    metrics["train_loss"] = train_output.training_loss
    if settings.eval_num_hashes and "lsh" in config.attention_layers:
        # LSH finds more of each query's neighbours with more hash rounds; evaluate that too.
        trainer.data_collator = functools.partial(collate_causal_lm, num_hashes=settings.eval_num_hashes)
        metrics.update(trainer.evaluate(metric_key_prefix=f"eval_{settings.eval_num_hashes}_hashes"))
        trainer.data_collator = collate_causal_lm
    model.model_card_info = training_card_info(
        settings, data_files, dataset, metrics, len(splits["train"]), num_processes=arguments.world_size
    )
    # save_model writes the weights, the model card and the tokenizer (the processing class) on the
    # main process only. save_state adds trainer_state.json with the log history.
    trainer.save_model(output_dir)
    trainer.save_state()

    # The final evaluation repeats the one at the last step when max_steps is a multiple of
    # eval_steps; keep one entry per step.
    history = {entry["step"]: entry["eval_bits_per_byte"] for entry in trainer.state.log_history
               if "eval_bits_per_byte" in entry}
    metrics["eval_history"] = sorted(history.items())
    metrics["minutes"] = round((time.monotonic() - started) / 60, 2)
    # Every process generates: under FSDP each forward call gathers parameters from all of them.
    sample = generate_sample(model, tokenizer, validation, settings)
    metrics["sample"] = sample if trainer.is_world_process_zero() else None
    return metrics


def build_training_arguments(
    settings: PretrainSettings, output_dir: str, report_to: str, bf16: bool
) -> TrainingArguments:
    """Map the optimisation and reporting settings onto ``TrainingArguments``."""
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        max_steps=settings.max_steps,
        weight_decay=settings.weight_decay,
        adam_beta2=settings.adam_beta2,
        max_grad_norm=settings.max_grad_norm,
        bf16=bf16,
        use_cpu=not torch.cuda.is_available(),
        seed=settings.seed,
        logging_steps=settings.logging_steps,
        eval_strategy="steps",
        eval_steps=settings.eval_steps,
        eval_on_start=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        report_to=report_to,
        dataloader_drop_last=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        # Every parameter gets a gradient in every step, so DDP needs no search for unused ones.
        ddp_find_unused_parameters=False,
    )


def log_run_summary(arguments: TrainingArguments, settings: PretrainSettings, model, num_train: int,
                    num_validation: int) -> None:
    """Log the data sizes, the model size and the global batch of one optimizer step."""
    logger.warning(
        "Training on %d sequences of %d bytes, evaluating on %d held-out sequences.",
        num_train, settings.sequence_length, num_validation,
    )
    logger.warning("Model: %.2fM parameters, layers %s.", model.num_parameters() / 1e6, model.config.attention_layers)
    # train_batch_size is the batch of one process. It is the per-device batch times the number of
    # GPUs that one DataParallel process drives, which is 1 under DDP and on CPUs.
    global_batch = arguments.train_batch_size * arguments.world_size * arguments.gradient_accumulation_steps
    logger.warning(
        "Global batch per optimizer step: %d sequences (sequences per process: %d, processes: %d, "
        "accumulation steps: %d).",
        global_batch, arguments.train_batch_size, arguments.world_size, arguments.gradient_accumulation_steps,
    )


def training_card_info(settings: PretrainSettings, data_files, dataset, metrics: dict, train_sequences: int,
                       num_processes: int = 1) -> dict:
    """Describe a pretraining run, trained on ``num_processes`` data-parallel processes, for the model card."""
    if data_files:
        names = [Path(path).name for path in data_files]
        data = "Plain text or Wikipedia files: " + ", ".join(f"`{name}`" for name in names) + "."
    elif dataset:
        names = [str(dataset)]
        data = f"The dataset `{dataset}`."
    else:
        names = ["python-standard-library"]
        data = "The Python standard library's `.py` sources and pydoc reference text of the Python that ran training."
    data += (f" Read as bytes, cut into {train_sequences:,} training sequences of {settings.sequence_length:,} bytes; "
             f"the last {settings.validation_fraction:.0%} of the byte stream was held out for evaluation.")
    global_batch = settings.per_device_batch_size * num_processes * settings.gradient_accumulation_steps
    training = (f"`reformer-hf pretrain`: {settings.max_steps:,} steps of {global_batch} sequence(s) "
                f"({settings.per_device_batch_size} per device x {num_processes} process(es) x "
                f"{settings.gradient_accumulation_steps} accumulation step(s)), AdamW at peak learning "
                f"rate {settings.learning_rate:g} ({settings.lr_scheduler_type} schedule, {settings.warmup_steps} "
                f"warm-up steps), seed {settings.seed}.")
    card_metrics = {"eval_bits_per_byte": metrics.get("eval_bits_per_byte")}
    return {"name": "reformer_hf byte-level causal language model", "datasets": names, "training_data": data,
            "training": training, "metrics": card_metrics, "tags": ["causal-lm", "byte-level"]}


def generate_sample(model: ReformerForCausalLM, tokenizer, validation, settings: PretrainSettings) -> str:
    """Continue the first bytes of the held-out text and return prompt plus continuation."""
    prompt_ids = validation[0]["input_ids"][:64]
    model.eval()
    with torch.no_grad():
        output = model.generate(
            input_ids=torch.tensor([prompt_ids], device=model.device),
            max_new_tokens=settings.sample_length,
            do_sample=True,
            temperature=settings.sample_temperature,
            top_k=0,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(output[0], skip_special_tokens=True)
