"""Measure how closely the LSH attention variants approximate full shared query-key attention.

Two options of ``ReformerConfig`` follow the Reformer paper (Kitaev, Kaiser and Levskaya, 2020).
``lsh_same_bucket_only`` lets a query attend only to keys in its own bucket, not to its whole chunk
window. ``lsh_duplicate_correction`` subtracts the log of the number of hash rounds that found a
query-key pair, so that a key found in several rounds is counted once. This script compares four
variants (neither option, either one, both) with plain full attention over the same vectors.

Every LSH number comes from ``LSHSelfAttention.forward``. The layer gets ``2 * d`` input features
and identity-like projections: ``query_key`` copies the first ``d`` features (the shared query-key
vectors of this script) and ``value`` copies the last ``d`` (independent Gaussian values). The
reference is written here with plain torch, using the library's scale: query ``q``, key
``k / |k|``, logit ``q . k / |k|``, a query's own key at -1e5 unless it is alone, and later
keys masked when causal. The script builds the inputs so that a logit equals ``logit_scale``
times the cosine between query and key.

Metrics, for each input kind, attention mode, variant and number of hash rounds, over seeds:
    relative error: ``|lsh - full| / |full|`` over all outputs (Frobenius norms). 1.0 is the error of
        an all-zero output, because the values are independent of the keys.
    coverage: the fraction of each query's full-attention probability that falls on keys that some
        hash round lets it attend to, averaged over queries.
    keys per query: the number of distinct keys some hash round lets a query attend to.
The key sets are recomputed here from the buckets the layer returns, and an LSH output rebuilt from
them is compared with the layer's output. That check guards the coverage numbers.

Run from the repository root: ``python benchmarks/lsh_variants.py --output-dir benchmarks/results``.
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import transformers  # noqa: E402

from reformer_hf import ReformerConfig  # noqa: E402
from reformer_hf.lsh_attention import LSHSelfAttention  # noqa: E402

VARIANTS = {
    "default": dict(lsh_same_bucket_only=False, lsh_duplicate_correction=False),
    "same_bucket_only": dict(lsh_same_bucket_only=True, lsh_duplicate_correction=False),
    "duplicate_correction": dict(lsh_same_bucket_only=False, lsh_duplicate_correction=True),
    "both": dict(lsh_same_bucket_only=True, lsh_duplicate_correction=True),
}
# With lsh_strictly_causal=True a decoder already attends only within the query's bucket, so there
# the "default" and "same_bucket_only" variants run the same computation.
MODES = {
    "bidirectional": dict(is_decoder=False),
    "causal_strict": dict(is_decoder=True, lsh_strictly_causal=True),
    "causal_chunk_window": dict(is_decoder=True, lsh_strictly_causal=False),
}
INPUT_KINDS = ("clustered", "isotropic")
MASK_VALUE = -1e9
SELF_MASK_VALUE = -1e5


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run.

    ``num_buckets`` is ``2 * length / chunk_length``, so a bucket contains half a chunk on average.
    """

    length: int
    chunk_length: int
    head_size: int
    hash_rounds: tuple[int, ...]
    seeds: tuple[int, ...]
    logit_scale: float
    num_clusters: int
    cluster_noise: float
    timing_repeats: int
    timing_min_seconds: float

    @property
    def num_buckets(self) -> int:
        return 2 * self.length // self.chunk_length


FULL_SETTINGS = Settings(
    length=2048,
    chunk_length=64,
    head_size=64,
    hash_rounds=(1, 2, 4, 8),
    seeds=(0, 1, 2, 3, 4),
    logit_scale=16.0,
    num_clusters=64,
    cluster_noise=0.5,
    timing_repeats=7,
    timing_min_seconds=0.05,
)
QUICK_SETTINGS = dataclasses.replace(
    FULL_SETTINGS, length=256, hash_rounds=(1, 2), seeds=(0, 1), num_clusters=8, timing_repeats=1,
    timing_min_seconds=0.0,
)


# ---------------------------------------------------------------------------------------------
# Inputs, layers and references


def make_inputs(kind: str, settings: Settings, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw shared query-key vectors and values, both ``[n, d]`` float64.

    Clustered vectors are one of ``num_clusters`` random unit directions plus Gaussian noise of
    norm about ``cluster_noise``. Every shared vector has norm ``logit_scale``, so that the
    library's logit ``q . k / |k|`` equals ``logit_scale`` times the cosine.
    """
    generator = torch.Generator().manual_seed(seed)
    n, d = settings.length, settings.head_size
    if kind == "clustered":
        centers = torch.nn.functional.normalize(torch.randn(settings.num_clusters, d, generator=generator), dim=-1)
        cluster_ids = torch.randint(0, settings.num_clusters, (n,), generator=generator)
        noise = torch.randn(n, d, generator=generator) * settings.cluster_noise / math.sqrt(d)
        directions = centers[cluster_ids] + noise
    elif kind == "isotropic":
        directions = torch.randn(n, d, generator=generator)
    else:
        raise ValueError(f"Input kind {kind!r} is invalid. Use one of {', '.join(INPUT_KINDS)}.")
    shared = torch.nn.functional.normalize(directions, dim=-1) * settings.logit_scale
    values = torch.randn(n, d, generator=generator)
    return shared.double(), values.double()


def build_layer(settings: Settings, mode: str, variant: str, hash_seed: int) -> LSHSelfAttention:
    """Build an evaluation-mode layer whose projections pass the shared vectors and values through."""
    d = settings.head_size
    config = ReformerConfig(
        hidden_size=2 * d,
        num_attention_heads=1,
        attention_head_size=d,
        attention_layers=("lsh",),
        lsh_chunk_length=settings.chunk_length,
        lsh_num_chunks_before=1,
        lsh_num_chunks_after=0,
        num_buckets=settings.num_buckets,
        hash_seed=hash_seed,
        position_embedding_type="learned",
        max_position_embeddings=settings.length,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **MODES[mode],
        **VARIANTS[variant],
    )
    layer = LSHSelfAttention(config, layer_idx=0).eval()
    identity, zeros = torch.eye(d), torch.zeros(d, d)
    with torch.no_grad():
        layer.query_key.weight.copy_(torch.cat([identity, zeros], dim=1))  # [d, 2d]
        layer.value.weight.copy_(torch.cat([zeros, identity], dim=1))
    return layer


def reference_logits(shared: torch.Tensor, causal: bool) -> torch.Tensor:
    """Full shared query-key logits ``[n, n]`` with the library's masks."""
    n, d = shared.shape
    logits = shared @ torch.nn.functional.normalize(shared, dim=-1).T
    if causal:
        later = torch.ones(n, n, dtype=torch.bool).triu(diagonal=1)
        logits = logits.masked_fill(later, MASK_VALUE)
    # Under shared QK a query's own key is nearly always its largest logit, so it is pushed down
    # and wins only when nothing else is allowed (the first position of a causal sequence).
    return logits + torch.eye(n, dtype=logits.dtype) * SELF_MASK_VALUE


def found_key_counts(buckets: torch.Tensor, layer: LSHSelfAttention) -> torch.Tensor:
    """Count in how many hash rounds query ``i`` may attend key ``j``: ``[n, n]``.

    Args:
        buckets: ``[r, n]`` buckets of one head, as the layer returned them.
        layer: The layer, whose window rules are restated here independently of its code.
    """
    num_rounds, n = buckets.shape
    positions = torch.arange(n)
    before, after = layer.num_chunks_before, layer.num_chunks_after
    counts = torch.zeros(n, n, dtype=torch.int32)
    for round_buckets in buckets:
        order = torch.sort(round_buckets, stable=True).indices  # (bucket, position) sort
        slots = torch.empty_like(order)
        slots[order] = positions
        same_bucket = round_buckets[:, None] == round_buckets[None, :]
        if layer.strictly_causal:
            # Own bucket, at most num_chunks_before * chunk_length sorted slots back.
            gap = slots[:, None] - slots[None, :]
            found = same_bucket & (gap >= 0) & (gap <= before * layer.chunk_length)
        else:
            chunks = slots // layer.chunk_length
            offset = chunks[None, :] - chunks[:, None]  # key chunk minus query chunk
            found = (offset >= -before) & (offset <= after)
            if layer.same_bucket_only:
                found &= same_bucket
            if layer.is_decoder:
                found &= positions[None, :] <= positions[:, None]
        counts += found.int()
    return counts


def attend_found_keys(
    logits: torch.Tensor, values: torch.Tensor, counts: torch.Tensor, count_each_key_once: bool
) -> torch.Tensor:
    """Attend over the found keys, each weighted by its number of rounds or, corrected, once."""
    multiplicity = counts.clamp(max=1) if count_each_key_once else counts
    return torch.softmax(logits + multiplicity.double().log(), dim=-1) @ values


# ---------------------------------------------------------------------------------------------
# Measurements


def measure_variant(layer, settings, shared, values, logits, full_probs, full_outputs) -> dict[int, dict]:
    """Run one layer for every hash round count and return the metrics of each count."""
    hidden_states = torch.cat([shared, values], dim=-1).float().unsqueeze(0)  # [1, n, 2d]
    key_padding_mask = torch.ones(1, settings.length, dtype=torch.bool)
    metrics = {}
    for num_hashes in settings.hash_rounds:
        with torch.no_grad():
            outputs, buckets = layer(hidden_states, key_padding_mask, num_hashes=num_hashes)
        outputs = outputs[0].double()  # [n, d]

        counts = found_key_counts(buckets[0, 0], layer)
        found = counts > 0
        rebuilt = attend_found_keys(logits, values, counts, layer.duplicate_correction)
        metrics[num_hashes] = {
            "relative_error": float((outputs - full_outputs).norm() / full_outputs.norm()),
            "coverage": float((full_probs * found).sum(dim=-1).mean()),
            "keys_per_query": float(found.sum(dim=-1).double().mean()),
            "max_abs_diff_vs_rebuilt": float((outputs - rebuilt).abs().max()),
        }
    return metrics


def measure_accuracy(settings: Settings) -> tuple[list[dict], list[dict]]:
    """Measure every input kind, mode, variant and round count over all seeds.

    Returns the per-seed records of the LSH variants and of the full-attention references.
    """
    records, reference_records = [], []
    for seed in settings.seeds:
        for kind in INPUT_KINDS:
            shared, values = make_inputs(kind, settings, seed)
            for mode, mode_fields in MODES.items():
                logits = reference_logits(shared, causal=mode_fields["is_decoder"])
                full_probs = torch.softmax(logits, dim=-1)
                full_outputs = full_probs @ values
                entropy = -(full_probs * full_probs.clamp(min=1e-300).log()).sum(dim=-1)
                reference_records.append(
                    {"input": kind, "mode": mode, "seed": seed, "effective_keys": float(entropy.exp().mean())}
                )
                for variant in VARIANTS:
                    layer = build_layer(settings, mode, variant, hash_seed=seed)
                    per_rounds = measure_variant(layer, settings, shared, values, logits, full_probs, full_outputs)
                    for num_hashes, metrics in per_rounds.items():
                        records.append(
                            {"input": kind, "mode": mode, "variant": variant, "num_hashes": num_hashes,
                             "seed": seed, **metrics}
                        )
    return records, reference_records


def seconds_per_call(layer, hidden_states, key_padding_mask, num_hashes: int, num_calls: int) -> float:
    """Run the layer's forward pass ``num_calls`` times without gradients and return the mean seconds."""
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(num_calls):
            layer(hidden_states, key_padding_mask, num_hashes=num_hashes)
        return (time.perf_counter() - start) / num_calls


def measure_time(settings: Settings) -> list[dict]:
    """Time each variant's forward pass and divide by the default variant's time in the same run.

    Variants are timed in turn within each repeat, in a rotating order, so that a slowdown of the
    machine hits all of them alike. One sample runs the forward pass often enough that the default
    variant takes at least ``timing_min_seconds``, which keeps millisecond calls from being mostly
    timer and scheduler noise. Each entry is the median over repeats, after one warm-up call.
    """
    shared, values = make_inputs("clustered", settings, seed=settings.seeds[0])
    hidden_states = torch.cat([shared, values], dim=-1).float().unsqueeze(0)
    key_padding_mask = torch.ones(1, settings.length, dtype=torch.bool)
    variant_names = list(VARIANTS)
    results = []
    for mode in MODES:
        layers = {variant: build_layer(settings, mode, variant, hash_seed=0) for variant in variant_names}
        for num_hashes in settings.hash_rounds:
            for variant in variant_names:
                seconds_per_call(layers[variant], hidden_states, key_padding_mask, num_hashes, num_calls=1)
            default_seconds = seconds_per_call(layers["default"], hidden_states, key_padding_mask, num_hashes, 1)
            num_calls = max(1, math.ceil(settings.timing_min_seconds / default_seconds))

            samples = {variant: [] for variant in variant_names}
            for repeat in range(settings.timing_repeats):
                shift = repeat % len(variant_names)
                for variant in variant_names[shift:] + variant_names[:shift]:
                    samples[variant].append(
                        seconds_per_call(layers[variant], hidden_states, key_padding_mask, num_hashes, num_calls)
                    )
            default_median = statistics.median(samples["default"])
            for variant in variant_names:
                median = statistics.median(samples[variant])
                results.append(
                    {"mode": mode, "variant": variant, "num_hashes": num_hashes, "calls_per_sample": num_calls,
                     "median_seconds": median, "ratio_to_default": median / default_median}
                )
    return results


def mean_std(samples: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single sample)."""
    return {
        "mean": statistics.fmean(samples),
        "std": statistics.stdev(samples) if len(samples) > 1 else 0.0,
    }


def summarize(records: list[dict], reference_records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Aggregate the per-seed records over seeds, with paired changes of the error against default."""
    by_case = {}
    for record in records:
        key = (record["input"], record["mode"], record["variant"], record["num_hashes"])
        by_case.setdefault(key, []).append(record)
    summary = []
    for (kind, mode, variant, num_hashes), case_records in by_case.items():
        defaults = {r["seed"]: r for r in by_case[(kind, mode, "default", num_hashes)]}
        error_changes = [r["relative_error"] - defaults[r["seed"]]["relative_error"] for r in case_records]
        entry = {"input": kind, "mode": mode, "variant": variant, "num_hashes": num_hashes}
        for metric in ("relative_error", "coverage", "keys_per_query"):
            entry[metric] = mean_std([r[metric] for r in case_records])
        entry["relative_error_change_vs_default"] = mean_std(error_changes)
        entry["max_abs_diff_vs_rebuilt"] = max(r["max_abs_diff_vs_rebuilt"] for r in case_records)
        summary.append(entry)

    references = {}
    for record in reference_records:
        references.setdefault((record["input"], record["mode"]), []).append(record["effective_keys"])
    reference_summary = [
        {"input": kind, "mode": mode, "effective_keys": mean_std(samples)}
        for (kind, mode), samples in references.items()
    ]
    return summary, reference_summary


# ---------------------------------------------------------------------------------------------
# Reports


def machine_info(num_threads: int) -> dict:
    """Describe the machine and software the numbers come from."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": num_threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "reformer_hf_commit": commit,
    }


def format_mean_std(value: dict, digits: int = 3, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{value['mean']:{sign}.{digits}f} ± {value['std']:.{digits}f}"


def metric_table(
    summary: list[dict], settings: Settings, metric: str, digits: int = 3, signed: bool = False
) -> list[str]:
    """Render one metric as a markdown table: a row per input, mode and variant, a column per round count."""
    header = "| input | mode | variant | " + " | ".join(f"r={r}" for r in settings.hash_rounds) + " |"
    lines = [header, "|" + "---|" * (3 + len(settings.hash_rounds))]
    cells = {(e["input"], e["mode"], e["variant"], e["num_hashes"]): e[metric] for e in summary}
    for kind in INPUT_KINDS:
        for mode in MODES:
            for variant in VARIANTS:
                if signed and variant == "default":
                    continue
                row = [format_mean_std(cells[(kind, mode, variant, r)], digits, signed) for r in settings.hash_rounds]
                lines.append(f"| {kind} | {mode} | {variant} | " + " | ".join(row) + " |")
    return lines


def timing_table(timings: list[dict], settings: Settings) -> list[str]:
    header = "| mode | variant | " + " | ".join(f"r={r}" for r in settings.hash_rounds) + " |"
    lines = [header, "|" + "---|" * (2 + len(settings.hash_rounds))]
    ratios = {(t["mode"], t["variant"], t["num_hashes"]): t["ratio_to_default"] for t in timings}
    for mode in MODES:
        for variant in VARIANTS:
            row = [f"{ratios[(mode, variant, r)]:.2f}" for r in settings.hash_rounds]
            lines.append(f"| {mode} | {variant} | " + " | ".join(row) + " |")
    return lines


def write_markdown(path: Path, report: dict, settings: Settings) -> None:
    summary, timings = report["summary"], report["timing"]
    machine = report["machine"]
    lines = [
        "# LSH attention variants against full attention",
        "",
        f"Written by `benchmarks/lsh_variants.py`{' --quick' if report['quick'] else ''} on "
        f"{machine['processor']} ({machine['cpu_count']} CPUs, {machine['torch_num_threads']} torch thread), "
        f"torch {machine['torch']}, commit {machine['reformer_hf_commit']}.",
        f"Length {settings.length}, chunk length {settings.chunk_length}, {settings.num_buckets} buckets, "
        f"head size {settings.head_size}, one chunk of look-back, no look-ahead, seeds {list(settings.seeds)}. "
        f"Logits are {settings.logit_scale:g} x cos(query, key). Clustered inputs: {settings.num_clusters} "
        f"directions plus noise of norm {settings.cluster_noise:g}. Values are Gaussian and independent of the keys.",
        "Cells are mean ± sample standard deviation over seeds; r is the number of hash rounds. "
        "In causal_strict, default and same_bucket_only are the same computation.",
        "",
        "## Relative error of the outputs (lower is better; an all-zero output scores 1.0)",
        "",
        *metric_table(summary, settings, "relative_error"),
        "",
        "## Change of the relative error against default, paired by seed (negative is better)",
        "",
        *metric_table(summary, settings, "relative_error_change_vs_default", signed=True),
        "",
        "## Coverage: share of full-attention probability on keys the hash rounds found",
        "",
        *metric_table(summary, settings, "coverage"),
        "",
        "## Distinct keys per query",
        "",
        *metric_table(summary, settings, "keys_per_query", digits=1),
        "",
        "## Forward time relative to default in the same run (median of "
        f"{settings.timing_repeats} interleaved samples, clustered input, no gradients)",
        "",
        *timing_table(timings, settings),
        "",
        "## Effective number of keys of full attention, exp(entropy), averaged over queries",
        "",
        "| input | mode | keys |",
        "|---|---|---|",
        *[f"| {e['input']} | {e['mode']} | {format_mean_std(e['effective_keys'], digits=1)} |"
          for e in report["reference_summary"]],
        "",
        f"Largest difference between a layer output and the output rebuilt from its buckets: "
        f"{max(e['max_abs_diff_vs_rebuilt'] for e in summary):.2e}.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_plot(path: Path, summary: list[dict], settings: Settings) -> None:
    """Plot relative error against hash rounds: a panel per input and mode, a line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "default": dict(color="tab:blue", marker="o", linestyle="-"),
        "same_bucket_only": dict(color="tab:orange", marker="s", linestyle="--"),
        "duplicate_correction": dict(color="tab:green", marker="^", linestyle="-"),
        "both": dict(color="tab:red", marker="v", linestyle="--"),
    }
    cells = {(e["input"], e["mode"], e["variant"], e["num_hashes"]): e["relative_error"] for e in summary}
    figure, axes = plt.subplots(
        len(INPUT_KINDS), len(MODES), figsize=(4.2 * len(MODES), 3.6 * len(INPUT_KINDS)), sharex=True, squeeze=False
    )
    for row, kind in enumerate(INPUT_KINDS):
        for column, mode in enumerate(MODES):
            axis = axes[row][column]
            for variant, style in styles.items():
                means = [cells[(kind, mode, variant, r)]["mean"] for r in settings.hash_rounds]
                stds = [cells[(kind, mode, variant, r)]["std"] for r in settings.hash_rounds]
                axis.errorbar(settings.hash_rounds, means, yerr=stds, label=variant, capsize=3, markersize=5, **style)
            axis.axhline(1.0, color="gray", linestyle=":", linewidth=1)  # error of an all-zero output
            axis.set_xscale("log", base=2)
            axis.set_xticks(settings.hash_rounds, [str(r) for r in settings.hash_rounds])
            title = f"{kind}, {mode}"
            if mode == "causal_strict":
                title += "\n(default and same_bucket_only coincide)"
            axis.set_title(title, fontsize=10)
            axis.grid(True, alpha=0.3)
            if column == 0:
                axis.set_ylabel("relative error vs full attention")
            if row == len(INPUT_KINDS) - 1:
                axis.set_xlabel("hash rounds")
    axes[0][0].legend(fontsize=8)
    figure.suptitle(
        f"LSH variants, length {settings.length}, chunk {settings.chunk_length}, {settings.num_buckets} buckets, "
        f"mean ± std over {len(settings.seeds)} seeds; dotted: error of an all-zero output"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results",
                        help="Folder for lsh_variants.json, .md and .png (created if missing).")
    parser.add_argument("--quick", action="store_true",
                        help="Run a tiny configuration (length 256, 1-2 hash rounds, 2 seeds) in a few seconds.")
    parser.add_argument("--num-threads", type=int, default=1, help="torch intra-op threads (default 1).")
    parser.add_argument("--num-seeds", type=int, default=None,
                        help=f"Number of seeds, 0 to N-1 (default {len(FULL_SETTINGS.seeds)}, "
                             f"{len(QUICK_SETTINGS.seeds)} with --quick).")
    parser.add_argument("--logit-scale", type=float, default=None,
                        help="Logit of a query and a key that point the same way "
                             f"(default {FULL_SETTINGS.logit_scale:g}).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num_threads < 1:
        raise SystemExit(f"--num-threads must be at least 1, got {args.num_threads}.")
    if args.num_seeds is not None and args.num_seeds < 1:
        raise SystemExit(f"--num-seeds must be at least 1, got {args.num_seeds}.")
    if args.logit_scale is not None and not args.logit_scale > 0:
        raise SystemExit(f"--logit-scale must be positive, got {args.logit_scale}.")
    torch.set_num_threads(args.num_threads)
    settings = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    if args.logit_scale is not None:
        settings = dataclasses.replace(settings, logit_scale=args.logit_scale)
    if args.num_seeds is not None:
        settings = dataclasses.replace(settings, seeds=tuple(range(args.num_seeds)))

    start = time.perf_counter()
    records, reference_records = measure_accuracy(settings)
    timings = measure_time(settings)
    summary, reference_summary = summarize(records, reference_records)
    report = {
        "machine": machine_info(args.num_threads),
        "quick": args.quick,
        "settings": {**dataclasses.asdict(settings), "num_buckets": settings.num_buckets,
                     "num_chunks_before": 1, "num_chunks_after": 0},
        "variants": VARIANTS,
        "modes": MODES,
        "summary": summary,
        "reference_summary": reference_summary,
        "timing": timings,
        "records": records,
        "reference_records": reference_records,
        "wall_seconds": time.perf_counter() - start,
    }

    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "lsh_variants.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_markdown(args.output_dir / "lsh_variants.md", report, settings)
    write_plot(args.output_dir / "lsh_variants.png", summary, settings)
    print(f"Wrote lsh_variants.json, .md and .png to {args.output_dir} in {report['wall_seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
