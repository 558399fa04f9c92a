"""Conversion of transformers' Reformer checkpoints into ``reformer_hf`` models.

``convert_from_transformers`` reads a transformers ``ReformerModel``, ``ReformerModelWithLMHead``,
``ReformerForMaskedLM``, ``ReformerForSequenceClassification`` or ``ReformerForQuestionAnswering``,
either in memory or from a local directory, and returns the ``reformer_hf`` model with the same
weights. The converted config switches on the compatibility options (``chunk_window_wraps``,
``hash_seed_mode="transformers"``, ``compact_padding=False``, ``lsh_strictly_causal=False``) under
which the converted model reproduces the original's outputs.

Every config field is either mapped, known to have no effect on the outputs, or refused with an
error that names it. Weights are matched name by name, and a weight left over on either side is an
error too.
"""

import json
import logging
import math
import shutil
from pathlib import Path

import torch
from transformers import GenerationConfig, PretrainedConfig

from . import heads, modeling
from .configuration import ReformerConfig

logger = logging.getLogger(__name__)

# transformers class name -> reformer_hf class name.
ARCHITECTURES = {
    "ReformerModel": "ReformerModel",
    "ReformerModelWithLMHead": "ReformerForCausalLM",
    "ReformerForMaskedLM": "ReformerForMaskedLM",
    "ReformerForSequenceClassification": "ReformerForSequenceClassification",
    "ReformerForQuestionAnswering": "ReformerForQuestionAnswering",
}

# transformers field -> reformer_hf field, copied unchanged.
RENAMED_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_attention_heads": "num_attention_heads",
    "attention_head_size": "attention_head_size",
    "feed_forward_size": "feed_forward_size",
    "lsh_attn_chunk_length": "lsh_chunk_length",
    "lsh_num_chunks_before": "lsh_num_chunks_before",
    "lsh_num_chunks_after": "lsh_num_chunks_after",
    "num_hashes": "num_hashes",
    "hash_seed": "hash_seed",
    "local_attn_chunk_length": "local_chunk_length",
    "local_num_chunks_before": "local_num_chunks_before",
    "local_num_chunks_after": "local_num_chunks_after",
    "hidden_dropout_prob": "hidden_dropout_prob",
    "lsh_attention_probs_dropout_prob": "lsh_attention_probs_dropout_prob",
    "local_attention_probs_dropout_prob": "local_attention_probs_dropout_prob",
    "classifier_dropout": "classifier_dropout",
    "chunk_size_feed_forward": "feed_forward_chunk_size",
    "chunk_size_lm_head": "lm_head_chunk_size",
    "layer_norm_eps": "layer_norm_eps",
    "initializer_range": "initializer_range",
    "axial_norm_std": "axial_norm_std",
    "is_decoder": "is_decoder",
    "pad_token_id": "pad_token_id",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
    "id2label": "id2label",
    "label2id": "label2id",
    "problem_type": "problem_type",
    "output_hidden_states": "output_hidden_states",
    "return_dict": "return_dict",
    "use_cache": "use_cache",
    "dtype": "dtype",
    "torch_dtype": "dtype",
}

# Fields handled by hand in config_from_transformers.
HANDLED_FIELDS = {
    "attn_layers", "num_hidden_layers", "num_buckets", "hidden_act", "axial_pos_embds", "axial_pos_shape",
    "axial_pos_embds_dim", "max_position_embeddings", "tie_word_embeddings", "output_attentions",
    "is_encoder_decoder", "add_cross_attention", "sinusoidal_pos_embds", "pruned_heads", "torchscript",
    "tie_encoder_decoder",
}

# Fields of older Reformer configs that transformers' Reformer no longer reads
# (google/reformer-crime-and-punishment still carries them).
INERT_LEGACY_FIELDS = {"attention_probs_dropout_prob", "intermediate_size", "num_chunks_before", "num_chunks_after"}

# Fields that record where a checkpoint came from and never change what it computes.
PROVENANCE_FIELDS = {"_name_or_path", "architectures", "model_type", "transformers_version", "_commit_hash",
                     "output_past", "use_bfloat16", "finetuning_task", "tokenizer_class", "prefix",
                     "task_specific_params", "cross_attention_hidden_size", "decoder_start_token_id", "sep_token_id"}

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "silu": "silu", "swish": "silu"}

# The options under which a converted checkpoint computes what transformers' Reformer computes.
COMPATIBILITY_OPTIONS = {
    "chunk_window_wraps": True,
    "hash_seed_mode": "transformers",
    "compact_padding": False,
    "lsh_strictly_causal": False,
    "lsh_same_bucket_only": False,
    "lsh_duplicate_correction": False,
    "lsh_transformers_rounding": True,
    "classifier_pooling": "first",
    "reversible": True,
}

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "spiece.model", "sentencepiece.bpe.model", "vocab.json", "vocab.txt", "merges.txt",
                   "chat_template.jinja")


class ConversionError(ValueError):
    """A transformers checkpoint that cannot be converted as it is."""


def config_from_transformers(
    source: dict | PretrainedConfig, overrides: dict | None = None
) -> tuple[ReformerConfig, dict]:
    """Map a transformers ``ReformerConfig`` (object or dict) to a ``reformer_hf`` config.

    ``overrides`` replaces transformers fields before the mapping, for example
    ``{"num_buckets": [64, 128]}`` for a checkpoint whose config leaves it unset.

    Returns:
        The config and a dict of generation settings found among the fields (older checkpoints
        kept ``max_length``, ``num_beams`` and the like in ``config.json``), for a
        ``GenerationConfig``.

    Raises:
        ConversionError: naming the first field that the conversion cannot represent.
    """
    fields = source.to_dict() if isinstance(source, PretrainedConfig) else dict(source)
    fields.update(overrides or {})
    model_type = fields.get("model_type", "reformer")
    if model_type != "reformer":
        raise ConversionError(
            f"The config has model_type {model_type!r}, not 'reformer': this is not a transformers Reformer "
            f"checkpoint. Only transformers' Reformer models can be converted."
        )
    generation_defaults = GenerationConfig().to_dict()
    generic_defaults = PretrainedConfig().to_dict()
    mapped = dict(COMPATIBILITY_OPTIONS)
    generation = {}
    for name, value in fields.items():
        if name in RENAMED_FIELDS:
            mapped[RENAMED_FIELDS[name]] = value
        elif name in HANDLED_FIELDS or name in PROVENANCE_FIELDS or name in INERT_LEGACY_FIELDS:
            continue
        elif name in generation_defaults:
            if value != generation_defaults[name] and value is not None:
                generation[name] = value
        elif name in generic_defaults and value == generic_defaults[name]:
            continue
        else:
            raise ConversionError(
                f"The config field {name!r} (value {value!r}) has no counterpart in reformer_hf, so the converted "
                f"model could not honour it. Remove the field or reset it to its default before converting."
            )

    _map_layers(fields, mapped)
    _map_buckets(fields, mapped)
    _map_positions(fields, mapped)
    activation = fields.get("hidden_act", "relu")
    if activation not in ACTIVATIONS:
        raise ConversionError(
            f"The config field 'hidden_act' is {activation!r}, which reformer_hf does not implement. Supported: "
            f"{', '.join(sorted(ACTIVATIONS))}."
        )
    mapped["hidden_act"] = ACTIVATIONS[activation]
    for name, allowed in (("tie_word_embeddings", False), ("output_attentions", False), ("is_encoder_decoder", False),
                          ("add_cross_attention", False), ("sinusoidal_pos_embds", False), ("torchscript", False),
                          ("tie_encoder_decoder", False)):
        value = fields.get(name, allowed)
        if value != allowed:
            raise ConversionError(
                f"The config field {name!r} is {value!r}; reformer_hf supports only {allowed!r}. "
                f"Set {name}={allowed!r} before converting."
            )
    if fields.get("pruned_heads"):
        raise ConversionError(
            f"The config field 'pruned_heads' is {fields['pruned_heads']!r}; reformer_hf does not prune heads. "
            f"Convert a checkpoint without pruned heads."
        )
    for name in ("eos_token_id", "bos_token_id", "pad_token_id"):
        if isinstance(mapped.get(name), list):
            raise ConversionError(
                f"The config field {name!r} is a list {mapped[name]!r}; reformer_hf takes one id. Keep one id."
            )
    if "id2label" in mapped:
        mapped["id2label"] = {int(key): value for key, value in mapped["id2label"].items()}
    if mapped.get("dtype") is None:
        mapped.pop("dtype", None)
    try:
        config = ReformerConfig(**mapped)
    except ValueError as error:
        raise ConversionError(f"The converted config is invalid: {error}") from error
    return config, generation


def _map_layers(fields: dict, mapped: dict) -> None:
    layers = fields.get("attn_layers")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConversionError(f"The config field 'attn_layers' must be a non-empty list, got {layers!r}.")
    for index, kind in enumerate(layers):
        if kind not in ("lsh", "local"):
            raise ConversionError(
                f"The config field 'attn_layers' has {kind!r} at index {index}; transformers' Reformer only "
                f"knows 'lsh' and 'local'."
            )
    declared = fields.get("num_hidden_layers")
    if declared is not None and declared != len(layers):
        raise ConversionError(
            f"The config field 'num_hidden_layers' is {declared} but 'attn_layers' lists {len(layers)} layers. "
            f"Make them agree."
        )
    mapped["attention_layers"] = list(layers)


def _map_buckets(fields: dict, mapped: dict) -> None:
    num_buckets = fields.get("num_buckets")
    if "lsh" not in fields["attn_layers"]:
        mapped["num_buckets"] = num_buckets if num_buckets is not None else 2
        if isinstance(mapped["num_buckets"], (list, tuple)):
            mapped["num_buckets"] = list(mapped["num_buckets"])
        return
    if num_buckets is None:
        chunk_length = fields.get("lsh_attn_chunk_length", 64)
        raise ConversionError(
            "The config field 'num_buckets' is None. transformers' Reformer then picks a bucket count from the "
            "length of each input (2 * length / lsh_attn_chunk_length rounded down to a power of two, split in "
            "two factors when large), so the converted model could not reproduce it for every length. Pass the "
            "value used in training with --num-buckets (or config_overrides={'num_buckets': ...} in Python); "
            f"for training length 4096 and chunk length {chunk_length} transformers picked "
            f"{_transformers_bucket_count(4096, chunk_length, fields)}."
        )
    if isinstance(num_buckets, (list, tuple)):
        if len(num_buckets) == 1:
            num_buckets = num_buckets[0]
        elif len(num_buckets) != 2:
            raise ConversionError(
                f"The config field 'num_buckets' is {list(num_buckets)!r}; reformer_hf factorises buckets into "
                f"exactly two factors. Convert a checkpoint with an int or a pair."
            )
        else:
            num_buckets = list(num_buckets)
    mapped["num_buckets"] = num_buckets


def _transformers_bucket_count(length: int, chunk_length: int, fields: dict) -> int | list[int]:
    """Return the bucket count transformers' Reformer derives for ``length`` when ``num_buckets`` is None."""
    exponent = (2 * (length // chunk_length)).bit_length() - 1
    count = 2**exponent
    limit = 2 * max(int((fields.get("max_position_embeddings", 4096) // chunk_length) ** 0.5), chunk_length)
    if count > limit:
        return [2 ** (exponent // 2), 2 ** (exponent - exponent // 2)]
    return count


def _map_positions(fields: dict, mapped: dict) -> None:
    if fields.get("axial_pos_embds", True):
        shape = list(fields.get("axial_pos_shape", [64, 64]))
        if len(shape) != 2:
            raise ConversionError(
                f"The config field 'axial_pos_shape' is {shape!r}; transformers' Reformer evaluates only two axes, "
                f"so such a checkpoint cannot have been used. Convert a checkpoint with two axes."
            )
        mapped["position_embedding_type"] = "axial"
        mapped["axial_pos_shape"] = shape
        mapped["axial_pos_embds_dim"] = list(fields.get("axial_pos_embds_dim", [64, 192]))
        capacity = math.prod(shape)
        declared = fields.get("max_position_embeddings", capacity)
        if declared != capacity:
            logger.warning(
                "max_position_embeddings is %s but axial_pos_shape %s contains %s positions, so the converted model "
                "embeds %s positions, the axial capacity. transformers' Reformer accepted at most %s.",
                declared, shape, capacity, capacity, min(declared, capacity),
            )
        mapped["max_position_embeddings"] = capacity
    else:
        mapped["position_embedding_type"] = "learned"
        mapped["max_position_embeddings"] = fields.get("max_position_embeddings", 4096)
        mapped.setdefault("axial_pos_shape", [1, 1])


def state_dict_from_transformers(
    source: dict[str, torch.Tensor], config: ReformerConfig, converted_names: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Rename and reshape transformers Reformer weights to ``reformer_hf`` names.

    Works for the base model (no prefix) and the heads (``reformer.`` prefix) alike. When given,
    ``converted_names`` receives each new name's original name, for error messages.
    """
    converted_names = {} if converted_names is None else converted_names
    converted = {}
    sources = {}
    for name, tensor in source.items():
        new_name = name
        replacements = (
            (".encoder.layer_norm.", ".layer_norm."),
            (".attention.output.dense.", ".attention.output."),
            (".feed_forward.dense.dense.", ".feed_forward.dense."),
            (".feed_forward.output.dense.", ".feed_forward.output."),
            ("lm_head.decoder.", "lm_head."),
        )
        padded = "." + new_name
        for old, new in replacements:
            padded = padded.replace(old, new)
        new_name = padded[1:]
        if name == "lm_head.bias" and "lm_head.decoder.bias" in source:
            # transformers' LM heads hold a second bias that their forward pass never reads.
            continue
        if ".position_embeddings.weights." in new_name:
            if tensor.dim() != 3 or (tensor.shape[0] != 1 and tensor.shape[1] != 1):
                raise ConversionError(
                    f"The weight {name} has shape {list(tensor.shape)}; transformers' axial position weights have "
                    f"shape [axis length, 1, width] or [1, axis length, width]. The checkpoint is damaged."
                )
            tensor = tensor.reshape(tensor.shape[0] * tensor.shape[1], tensor.shape[2])
        converted[new_name] = tensor
        sources[new_name] = name
    converted_names.update(sources)
    return converted


def load_transformers_checkpoint(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read ``config.json`` and the weights of a transformers checkpoint directory.

    Safetensors files are read with ``safetensors``; a ``pytorch_model.bin`` only with
    ``torch.load(weights_only=True)``, which refuses pickled code.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory. Pass the folder that contains config.json.")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: a transformers checkpoint folder contains config.json.")
    try:
        fields = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{config_path} is not valid JSON: {error}") from error
    present = [name for name in WEIGHT_FILES if (directory / name).is_file()]
    if not present:
        raise FileNotFoundError(
            f"No weights found in {directory}: expected one of {', '.join(WEIGHT_FILES)}."
        )
    weights_name = present[0]
    if weights_name.endswith(".index.json"):
        index = json.loads((directory / weights_name).read_text())
        shard_names = sorted(set(index.get("weight_map", {}).values()))
        if not shard_names:
            raise ConversionError(f"{directory / weights_name} lists no weight shards.")
        state_dict = {}
        for shard in shard_names:
            state_dict.update(_load_weight_file(directory / shard))
    else:
        state_dict = _load_weight_file(directory / weights_name)
    return fields, state_dict


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"The weight file {path} is missing.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError, depending on the content
        raise ConversionError(
            f"Refusing to load {path}: torch.load(weights_only=True) rejected it ({type(error).__name__}), so it holds "
            f"more than plain tensors, and loading it fully could run code stored in the file. Convert a checkpoint "
            f"saved as model.safetensors instead."
        ) from None
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise ConversionError(f"{path} does not hold a dict of tensors, so it is not a model state dict.")
    return loaded


def _architecture(fields: dict, state_dict: dict[str, torch.Tensor]) -> str:
    declared = fields.get("architectures") or []
    for name in declared:
        if name in ARCHITECTURES:
            return name
    if declared:
        raise ConversionError(
            f"The checkpoint's architectures {declared!r} name no transformers Reformer class; convertible classes: "
            f"{', '.join(ARCHITECTURES)}."
        )
    if any(name.startswith("qa_outputs.") for name in state_dict):
        return "ReformerForQuestionAnswering"
    if any(name.startswith("classifier.") for name in state_dict):
        return "ReformerForSequenceClassification"
    if any(name.startswith("lm_head.") for name in state_dict):
        return "ReformerModelWithLMHead" if fields.get("is_decoder") else "ReformerForMaskedLM"
    return "ReformerModel"


def _name_tokenizer_class(directory: Path) -> None:
    """Record transformers' Reformer tokenizer class in a copied ``tokenizer_config.json`` that lacks one.

    Without it AutoTokenizer would pick the tokenizer registered for the converted config's
    model type, the byte-level one, instead of the checkpoint's SentencePiece tokenizer.
    """
    path = directory / "tokenizer_config.json"
    has_vocabulary = (directory / "spiece.model").is_file() or (directory / "tokenizer.json").is_file()
    if not has_vocabulary:
        return
    settings = json.loads(path.read_text()) if path.is_file() else {}
    if settings.get("tokenizer_class"):
        return
    settings["tokenizer_class"] = "ReformerTokenizer"
    path.write_text(json.dumps(settings, indent=2) + "\n")


def convert_from_transformers(
    model_or_path, output_dir: str | Path | None = None, *, tokenizer=None, config_overrides: dict | None = None
):
    """Convert a transformers Reformer into the matching ``reformer_hf`` model.

    Args:
        model_or_path: A transformers Reformer model in memory, or a local directory with
            ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (sharded
            checkpoints with an index file work too).
        output_dir: When given, save the converted model there, with the generation settings and
            the tokenizer (the ``tokenizer`` argument, or the tokenizer files of the source
            directory), so that the Auto classes load it.
        tokenizer: A tokenizer to save with the model.
        config_overrides: transformers config fields to replace before converting, such as
            ``{"num_buckets": 64}`` when the checkpoint's config leaves it unset.

    Returns:
        The converted model, in evaluation mode when the source was.

    Raises:
        ConversionError: for a config field or weight that has no counterpart, naming it.
        FileNotFoundError: when the directory, its config or its weights are missing.
    """
    source_dir = None
    if isinstance(model_or_path, (str, Path)):
        source_dir = Path(model_or_path)
        fields, state_dict = load_transformers_checkpoint(source_dir)
        architecture = _architecture(fields, state_dict)
        training = False
        generation_path = source_dir / "generation_config.json"
        saved_generation = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
    elif isinstance(model_or_path, torch.nn.Module) and hasattr(model_or_path, "config"):
        architecture = type(model_or_path).__name__
        if architecture not in ARCHITECTURES:
            raise ConversionError(
                f"Cannot convert a {architecture}; convertible transformers classes: {', '.join(ARCHITECTURES)}."
            )
        fields = model_or_path.config.to_dict()
        state_dict = {name: tensor.detach() for name, tensor in model_or_path.state_dict().items()}
        training = model_or_path.training
        source_generation = getattr(model_or_path, "generation_config", None)
        saved_generation = source_generation.to_diff_dict() if source_generation is not None else {}
    else:
        raise TypeError(
            f"model_or_path must be a transformers Reformer model or a directory path, got "
            f"{type(model_or_path).__name__}."
        )

    config, generation = config_from_transformers(fields, config_overrides)
    if config.is_decoder and architecture in ("ReformerForSequenceClassification", "ReformerForQuestionAnswering"):
        raise ConversionError(
            f"The {architecture} checkpoint has is_decoder=True (causal attention). reformer_hf's encoder heads "
            f"always attend in both directions, so the converted model would not reproduce it. Convert a "
            f"checkpoint trained with is_decoder=False."
        )
    config.architectures = [ARCHITECTURES[architecture]]
    model_class = getattr(heads, ARCHITECTURES[architecture], None) or getattr(modeling, ARCHITECTURES[architecture])
    model = model_class(config)
    original_names = {}
    converted = state_dict_from_transformers(state_dict, config, original_names)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"The {architecture} weights do not match {model_class.__name__}: "
            + (f"missing weights for reformer_hf's {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
               if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {', '.join(original_names[n] for n in unexpected[:5])}"
               f"{' ...' if len(unexpected) > 5 else ''}" if unexpected else "")
            + ". The checkpoint does not fit its own config."
        )
    for name, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ConversionError(
                f"The weight {original_names[name]} has shape {list(tensor.shape)} in the checkpoint, but the converted "
                f"model's {name} has {list(expected[name].shape)} "
                f"per its config. The checkpoint does not fit its own config."
            )
    dtype = next(iter(converted.values())).dtype
    model.load_state_dict(converted, strict=True)
    model.to(dtype)
    model.train(training)
    # generation_config.json takes precedence over generation fields left in config.json, as in transformers.
    saved_generation = {key: value for key, value in saved_generation.items() if key != "transformers_version"}
    generation = {**generation, **saved_generation}
    if generation:
        model.generation_config = GenerationConfig.from_dict({**model.generation_config.to_dict(), **generation})

    if output_dir is not None:
        output_dir = Path(output_dir)
        model.save_pretrained(output_dir)
        if tokenizer is not None:
            tokenizer.save_pretrained(output_dir)
        elif source_dir is not None:
            for name in TOKENIZER_FILES:
                if (source_dir / name).is_file():
                    shutil.copy2(source_dir / name, output_dir / name)
            _name_tokenizer_class(output_dir)
    return model


def check_conversion(
    source_dir: str | Path, converted_dir: str | Path, length: int | None = None, seed: int = 0
) -> float:
    """Largest absolute difference between the outputs of a transformers checkpoint and its conversion.

    Both models run in evaluation mode on the same random batch of two rows. A checkpoint without a
    ``hash_seed`` gets one for the check, since LSH otherwise draws fresh rotations in each model.
    The transformers model gets the converted model's bucket count, in case the conversion set it.
    """
    import transformers
    from transformers import AutoConfig

    fields, state_dict = load_transformers_checkpoint(source_dir)
    original_class = getattr(transformers, _architecture(fields, state_dict))
    original = original_class.from_pretrained(source_dir).eval()
    name = AutoConfig.from_pretrained(converted_dir).architectures[0]
    converted = (getattr(heads, name, None) or getattr(modeling, name)).from_pretrained(converted_dir).eval()
    num_buckets = converted.config.num_buckets
    original.config.num_buckets = num_buckets
    for module in original.modules():
        if hasattr(module, "num_buckets"):
            module.num_buckets = num_buckets
    if original.config.hash_seed is None:
        original.config.hash_seed = converted.config.hash_seed = seed
        for module in original.modules():
            if hasattr(module, "hash_seed"):
                module.hash_seed = seed
    capacity = converted.config.max_position_embeddings
    chunk_length = max(converted.config.lsh_chunk_length, converted.config.local_chunk_length)
    length = length or min(capacity, 2 * chunk_length + 3)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, converted.config.vocab_size, (2, length), generator=generator)
    with torch.no_grad():
        expected = original(input_ids)
        actual = converted(input_ids)
    keys = ("logits", "start_logits", "end_logits", "last_hidden_state")
    return max(
        (expected[key].float() - actual[key].float()).abs().max().item()
        for key in keys
        if expected.get(key) is not None and actual.get(key) is not None
    )
