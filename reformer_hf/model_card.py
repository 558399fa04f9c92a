"""Model cards: the ``README.md`` that ``save_pretrained`` and ``push_to_hub`` write next to the weights.

A card starts with the Hub's YAML metadata (library, tags, license, datasets, metrics, pipeline tag)
and then describes the model in words: its configuration, training data, intended use and known
limitations. Whatever a training run knows (data files, steps, evaluation bits per byte) goes into
``model.model_card_info``, which the card reads; ``reformer-hf pretrain`` fills it.

A ``README.md`` that was not written by this module is never overwritten.
"""

import math
from pathlib import Path

GENERATED_MARKER = "<!-- written by reformer_hf.model_card; edit freely, then it is yours -->"

PIPELINE_TAGS = {
    "ReformerForCausalLM": "text-generation",
    "ReformerForMaskedLM": "fill-mask",
    "ReformerForSequenceClassification": "text-classification",
    "ReformerForTokenClassification": "token-classification",
    "ReformerForQuestionAnswering": "question-answering",
    "ReformerModel": "feature-extraction",
}

INTENDED_USE = {
    "text-generation": "continuing text (`model.generate`, `pipeline(\"text-generation\")`) and as a starting "
                       "point for fine-tuning on long inputs",
    "fill-mask": "predicting masked tokens (`pipeline(\"fill-mask\")`) and as a starting point for fine-tuning "
                 "encoders on long inputs",
    "text-classification": "classifying whole documents (`pipeline(\"text-classification\")`)",
    "token-classification": "labelling every token (`pipeline(\"token-classification\")`)",
    "question-answering": "extracting answer spans from long contexts (`pipeline(\"question-answering\")`)",
    "feature-extraction": "computing hidden states to build other heads on",
}


def describe_config(config) -> list[str]:
    """Return the configuration as readable table rows ``(setting, value)``."""
    layers = config.attention_layers
    rows = [
        ("layers", f"{len(layers)}: " + ", ".join(layers) + " attention"),
        ("width", f"{config.hidden_size} per reversible stream ({2 * config.hidden_size} in the final hidden "
                  f"states), {config.num_attention_heads} heads of size {config.attention_head_size}, "
                  f"feed-forward {config.feed_forward_size} ({config.hidden_act})"),
        ("attention direction", "causal" if config.is_decoder else "bidirectional"),
    ]
    if "lsh" in layers:
        buckets = config.resolved_num_buckets
        bucket_text = " x ".join(map(str, buckets)) if isinstance(buckets, list) else str(buckets)
        causal = ", strictly causal" if config.is_decoder and config.lsh_strictly_causal else ""
        rows.append(("LSH attention", f"chunks of {config.lsh_chunk_length}, {config.lsh_num_chunks_before} before "
                                      f"and {config.lsh_num_chunks_after} after, {bucket_text} buckets, "
                                      f"{config.num_hashes} hash round{'s' if config.num_hashes > 1 else ''}{causal}"))
    if "local" in layers:
        rows.append(("local attention", f"chunks of {config.local_chunk_length}, {config.local_num_chunks_before} "
                                        f"before and {config.local_num_chunks_after} after"))
    if config.position_embedding_type == "axial":
        shape = " x ".join(map(str, config.axial_pos_shape))
        rows.append(("positions", f"axial, shape {shape} ({config.max_position_embeddings:,} positions)"))
    else:
        rows.append(("positions", f"learned, {config.max_position_embeddings:,} positions"))
    rows.append(("vocabulary", f"{config.vocab_size:,} ids"))
    rows.append(("residual layers", "reversible" if config.reversible else "plain (irreversible)"))
    if config.chunk_window_wraps:
        rows.append(("compatibility", "converted from transformers' Reformer; its compatibility options are on"))
    return [f"| {name} | {value} |" for name, value in rows]


def render_model_card(model) -> str:
    """Return the card of ``model`` as Markdown with Hub metadata."""
    config = model.config
    info = dict(getattr(model, "model_card_info", None) or {})
    architecture = type(model).__name__
    pipeline_tag = PIPELINE_TAGS.get(architecture, "feature-extraction")
    tags = ["reformer", "reformer_hf", "lsh-attention", "long-context"] + list(info.get("tags", []))
    metadata = ["---", "library_name: transformers", f"license: {info.get('license', 'apache-2.0')}",
                f"pipeline_tag: {pipeline_tag}", "tags:"] + [f"  - {tag}" for tag in dict.fromkeys(tags)]
    datasets = info.get("datasets") or []
    if datasets:
        metadata += ["datasets:"] + [f"  - {name}" for name in datasets]
    metrics = {name: value for name, value in (info.get("metrics") or {}).items()
               if isinstance(value, (int, float)) and math.isfinite(value)}
    if metrics:
        metadata += ["model-index:", f"  - name: {info.get('name', architecture)}", "    results:",
                     "      - task:", f"          type: {pipeline_tag}", "        metrics:"]
        for name, value in metrics.items():
            metadata += [f"          - type: {name}", f"            value: {value:.4g}", f"            name: {name}"]
    metadata.append("---")

    title = info.get("name") or f"reformer_hf {architecture}"
    parameters = sum(parameter.numel() for parameter in model.parameters())
    lines = metadata + [
        "",
        GENERATED_MARKER,
        "",
        f"# {title}",
        "",
        f"A Reformer (Kitaev, Kaiser and Levskaya, 2020) `{architecture}` with {parameters:,} parameters, built "
        f"with reformer_hf: LSH and local attention over chunks, and reversible residual layers, so memory "
        f"grows slowly with length and not with depth.",
        "",
        "## Configuration",
        "",
        "| setting | value |",
        "|---|---|",
        *describe_config(config),
        "",
        "## Training data",
        "",
        info.get("training_data") or "Not recorded. Describe the data this checkpoint was trained on here.",
        "",
    ]
    if info.get("training"):
        lines += ["## Training", "", info["training"], ""]
    if metrics:
        lines += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in metrics.items()] + [""]
    lines += [
        "## Intended use",
        "",
        f"Intended for {INTENDED_USE[pipeline_tag]}. Load it with `import reformer_hf` followed by the matching "
        f"`transformers` Auto class, or with `trust_remote_code=True` where the modelling code was saved with it.",
        "",
        "## Known limitations",
        "",
        f"- Inputs longer than {config.max_position_embeddings:,} tokens (the position capacity) are refused.",
        "- LSH attention approximates full attention: a query sees the keys that hash into its chunk window, so "
        "rare long-range dependencies can be missed; more hash rounds (`num_hashes=` at call time) find more.",
        ("- Without `hash_seed` in the config, LSH draws new random rotations at every call, so outputs vary "
         "slightly between calls; set it for deterministic evaluation.") if "lsh" in config.attention_layers
        else "- No LSH layers: attention is local or full only.",
    ]
    lines += [f"- {item}" for item in info.get("limitations", [])]
    return "\n".join(lines) + "\n"


def write_model_card(model, directory: str | Path) -> Path | None:
    """Write ``README.md`` into ``directory`` unless a README not written here is already there."""
    path = Path(directory) / "README.md"
    if path.is_file() and GENERATED_MARKER not in path.read_text(encoding="utf-8", errors="replace"):
        return None
    path.write_text(render_model_card(model), encoding="utf-8")
    return path
