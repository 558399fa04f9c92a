"""Measure the eight performance targets of the benchmark plan in one run and write ``BENCHMARKS.md``.

One command runs every point the targets need, each in its own subprocess through ``speed.py``'s
worker, plus cached generation through ``generation.py``. The points:

- lengths from 1,024 to 65,536 tokens for all four implementations, in float32 on one thread
- short inputs: reformer_hf with ``irreversible_max_tokens=1024`` at 1,024 tokens
- bfloat16 autocast, and two threads, at 4,096 and 65,536 tokens
- depths from 2 to 24 layers at 8,192 tokens
- 1 to 8 hash rounds at 4,096 tokens
- cached generation after 4,096 tokens of context
- one training step of 1,048,576 tokens (reformer_hf only, two threads, no warm-up step)

Every record lands in ``targets.json`` as soon as it is measured, so that an interrupted run keeps
what it measured. ``--report-only`` rewrites ``BENCHMARKS.md`` and the plots from that file. The
ratios in ``BENCHMARKS.md`` all come from the points of one run. ``benchmarks/notes.md``, written
by hand after reading a run, is copied into the page below the tables.

Run from the repository root: ``python benchmarks/targets.py``. The full run took 50 minutes
on 2 CPU cores. ``--quick`` runs a tiny version in about two minutes for the tests.
"""

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("reformer_hf", "transformers", "reformer_pytorch", "full_attention")
REFORMERS = ("reformer_hf", "transformers")
LOSS_TOLERANCE = 0.02  # bf16 against float32, as in tests/test_training_dynamics.py


def make_point(implementation: str, length: int, *, phase: str, depth: int = 6, num_hashes: int = 1, threads: int = 1,
          dtype: str = "float32", steps: int = 3, timeout: float = 900.0, **extra) -> dict:
    spec = dict(implementation=implementation, length=length, depth=depth, num_hashes=num_hashes, threads=threads,
                dtype=dtype, steps=steps, device="cpu", **extra)
    return {"phase": phase, "timeout": timeout, "spec": spec}


def plan(quick: bool) -> list[dict]:
    """Return the points of one run, in the order they run."""
    if quick:
        short, medium, long, depth_length, huge = 256, 512, 1024, 256, 2048
        depths, rounds, steps, reference_depth = (1, 2), (2,), 1, 2
        timeouts = {"length": 300, "long": 300, "huge": 300}
    else:
        short, medium, long, depth_length, huge = 1024, 4096, 65536, 8192, 1_048_576
        depths, rounds, steps, reference_depth = (2, 6, 12, 24), (2, 4, 8), 3, 6
        timeouts = {"length": 900, "long": 1200, "huge": 2400}

    def point(implementation: str, length: int, **fields) -> dict:
        return make_point(implementation, length, **{"depth": reference_depth, **fields})

    points = []
    lengths = [short, medium] + ([] if quick else [16384]) + [long]
    for length in lengths:
        is_long = length == long
        for implementation in IMPLEMENTATIONS:
            if implementation == "full_attention" and is_long and not quick:
                # About 8e13 FLOPs per step: recorded as a timeout after 5 minutes, not skipped.
                points.append(point(implementation, length, phase="length", steps=1, timeout=300))
                continue
            points.append(point(
                implementation, length, phase="length", steps=1 if is_long else steps,
                timeout=timeouts["long" if is_long else "length"],
                track_tensors=implementation != "full_attention", profile=implementation == "reformer_hf",
            ))
    points.append(point("reformer_hf", short, phase="short", steps=steps,
                        reformer_hf_options={"irreversible_max_tokens": short}))
    for length in (medium, long):
        for implementation in REFORMERS:
            points.append(point(implementation, length, phase="bfloat16", dtype="bfloat16",
                                steps=1 if length == long else steps, timeout=timeouts["long"]))
    for length in (medium, long):
        for implementation in REFORMERS:
            points.append(point(implementation, length, phase="threads", threads=2,
                                steps=1 if length == long else steps, timeout=timeouts["long"]))
    for depth in depths:
        for implementation in REFORMERS:
            if implementation == "transformers" and depth not in (depths[0], depths[-1]):
                continue
            points.append(point(implementation, depth_length, phase="depth", depth=depth, steps=1,
                                track_tensors=True))
    for num_hashes in rounds:
        for implementation in ("reformer_hf", "transformers", "reformer_pytorch"):
            points.append(point(implementation, medium, phase="hashes", num_hashes=num_hashes, steps=1))
    points.append(point("reformer_hf", huge, phase="huge", threads=2, steps=1, warmup=0, inference=False,
                        timeout=timeouts["huge"], reformer_hf_options={"feed_forward_chunk_size": 16384}))
    return points


def run_generation(output_dir: Path, quick: bool) -> dict:
    """Run generation.py at 4,096 tokens of context (256 with ``quick``) and return its report."""
    generation_dir = output_dir / "generation"
    command = [sys.executable, str(Path(__file__).resolve().parent / "generation.py"), "--output-dir", str(generation_dir)]
    command += ["--quick"] if quick else ["--contexts", "4096"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    report_path = generation_dir / "generation.json"
    if completed.returncode != 0 or not report_path.exists():
        message = completed.stderr.strip()[-2000:]
        print(f"generation.py failed with exit code {completed.returncode}: {message[-300:]}", file=sys.stderr)
        return {"status": "error", "message": message, "points": []}
    return json.loads(report_path.read_text(encoding="utf-8"))


def measure(args: argparse.Namespace) -> dict:
    results_path = args.output_dir / "targets.json"
    start = time.perf_counter()
    report = {
        "machine": speed.machine_info(),
        "command": [Path(sys.executable).name, *sys.argv],
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "flop_formula": speed.FLOP_FORMULA,
        "matmul_peak": [speed.measure_matmul_peak(threads, 512 if args.quick else 2048, 1 if args.quick else 5)
                        for threads in (1, 2)],
        "points": [],
    }
    for planned in plan(args.quick):
        record = speed.measure_point(planned["spec"], planned["timeout"])
        if record["status"] == "ok":
            speed.add_fraction_of_peak(record, report["matmul_peak"])
        record["phase"] = planned["phase"]
        report["points"].append(record)
        spec = planned["spec"]
        summary = (f"{record['training_tokens_per_second']:.0f} training tokens/s, "
                   f"peak RSS {record['peak_rss_bytes'] / 2**20:.0f} MiB"
                   if record["status"] == "ok" else record.get("message", "")[:200])
        print(f"[{planned['phase']}] {spec['implementation']} length {spec['length']} depth {spec['depth']} "
              f"hashes {spec['num_hashes']} threads {spec['threads']} {spec['dtype']}: {record['status']}, {summary}",
              flush=True)
        report["wall_seconds"] = time.perf_counter() - start
        results_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    report["generation"] = run_generation(args.output_dir, args.quick)
    report["wall_seconds"] = time.perf_counter() - start
    results_path.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


# ---------------------------------------------------------------------------------------------
# Report


def find(points: list[dict], phase: str | tuple, implementation: str, length: int, **fields) -> dict | None:
    phases = (phase,) if isinstance(phase, str) else phase
    for candidate in points:
        if (candidate["phase"] in phases and candidate["implementation"] == implementation
                and candidate["length"] == length and all(candidate.get(k) == v for k, v in fields.items())):
            return candidate
    return None


def value(record: dict | None, field: str) -> float | None:
    if record is None or record.get("status") != "ok":
        return None
    result = record.get(field)
    return None if result is None or (isinstance(result, float) and math.isnan(result)) else result


def ratio(numerator, denominator) -> float | None:
    return None if numerator is None or denominator in (None, 0) else numerator / denominator


def fmt(number, digits: int = 2, suffix: str = "") -> str:
    if number is None:
        return "not measured"
    return f"{number:,.{digits}f}{suffix}"


def mib(number) -> str:
    return "not measured" if number is None else f"{number / 2**20:,.0f} MiB"


def status_of(record: dict | None) -> str:
    if record is None:
        return "not run"
    if record["status"] == "ok":
        return "ok"
    return f"{record['status']}: {record.get('message', '')[:120]}"


def verdict(measured, target, higher_is_better: bool = True) -> str:
    if measured is None:
        return "not measured"
    met = measured >= target if higher_is_better else measured <= target
    return "met" if met else "missed"


def target_rows(report: dict) -> list[list[str]]:
    points = report["points"]
    lengths = sorted({p["length"] for p in points if p["phase"] == "length"})
    short, medium, long = lengths[0], lengths[1], lengths[-1]
    depth_points = sorted((p for p in points if p["phase"] == "depth" and p["implementation"] == "reformer_hf"),
                          key=lambda p: p["depth"])
    huge = next((p for p in points if p["phase"] == "huge"), None)
    rows = []

    def rhf(length, phase="length", **fields):
        return find(points, phase, "reformer_hf", length, **fields)

    def tf(length, phase="length", **fields):
        return find(points, phase, "transformers", length, **fields)

    for length in (medium, long):
        fraction = value(rhf(length), "training_fraction_of_peak")
        rows.append([f"1. float32 training step at {length:,} tokens: fraction of the float32 matmul peak",
                     "≥ 0.80", fmt(fraction), verdict(fraction, 0.8)])
    for length, target in ((medium, 1.25), (long, 1.6)):
        speedup = ratio(value(rhf(length), "training_tokens_per_second"), value(tf(length), "training_tokens_per_second"))
        rows.append([f"2. float32 training tokens/s at {length:,}: reformer_hf / transformers", f"≥ {target}",
                     fmt(speedup, suffix="×"), verdict(speedup, target)])
    bf16 = rhf(long, "bfloat16")
    speedup = ratio(value(bf16, "training_tokens_per_second"), value(tf(long), "training_tokens_per_second"))
    loss_gap = None
    if value(bf16, "final_loss") is not None and value(rhf(long), "final_loss") is not None:
        loss_gap = abs(bf16["final_loss"] - rhf(long)["final_loss"])
    rows.append([f"2. bf16-autocast reformer_hf / float32 transformers, training tokens/s at {long:,}", "≥ 2.5",
                 fmt(speedup, suffix="×"), verdict(speedup, 2.5)])
    rows.append([f"2. bf16 loss − float32 loss of reformer_hf at {long:,} (same seed and batch)",
                 f"≤ {LOSS_TOLERANCE}", fmt(loss_gap, 4), verdict(loss_gap, LOSS_TOLERANCE, higher_is_better=False)])
    rss_ratio = ratio(value(rhf(long), "training_peak_rss_bytes"), value(tf(long), "training_peak_rss_bytes"))
    live_ratio = ratio(value(rhf(long), "training_live_tensor_peak_bytes"),
                       value(tf(long), "training_live_tensor_peak_bytes"))
    rows.append([f"3. peak training memory at {long:,}: reformer_hf / transformers, resident set size", "≤ 0.35",
                 fmt(rss_ratio), verdict(rss_ratio, 0.35, higher_is_better=False)])
    rows.append([f"3. same, peak of live tensors (independent of the allocator)", "≤ 0.35",
                 fmt(live_ratio), verdict(live_ratio, 0.35, higher_is_better=False)])
    if len(depth_points) >= 2 and all(p["status"] == "ok" for p in (depth_points[0], depth_points[-1])):
        shallow, deep = depth_points[0], depth_points[-1]
        # AdamW: weights, gradients and two moments, 4 bytes each.
        added_state = 16 * (deep["parameters"] - shallow["parameters"])
        excess = (deep["training_peak_rss_bytes"] - shallow["training_peak_rss_bytes"] - added_state)
        growth = excess / shallow["training_peak_rss_bytes"]
        rows.append([f"4. depth {shallow['depth']} → {deep['depth']} at {deep['length']:,}: peak RSS growth beyond "
                     f"the added parameters, gradients and AdamW moments ({mib(added_state)}), relative to depth "
                     f"{shallow['depth']}",
                     "≤ 0.10", fmt(growth), verdict(growth, 0.10, higher_is_better=False)])
        if shallow.get("training_live_tensor_peak_bytes") and deep.get("training_live_tensor_peak_bytes"):
            # The tracked step creates the gradients anew (4 bytes per parameter); weights and AdamW
            # moments exist before it and are not counted.
            added_gradients = 4 * (deep["parameters"] - shallow["parameters"])
            live_excess = (deep["training_live_tensor_peak_bytes"] - shallow["training_live_tensor_peak_bytes"]
                           - added_gradients)
            growth_of_rss = live_excess / shallow["training_peak_rss_bytes"]
            growth_of_live = live_excess / shallow["training_live_tensor_peak_bytes"]
            rows.append([f"4. same, live tensors: peak growth beyond the added gradients ({mib(added_gradients)}), "
                         f"relative to depth {shallow['depth']}'s peak RSS and to its live-tensor peak", "≤ 0.10",
                         f"{fmt(growth_of_rss)} and {fmt(growth_of_live)}",
                         verdict(max(growth_of_rss, growth_of_live), 0.10, higher_is_better=False)])
    else:
        rows.append(["4. depth sweep", "≤ 0.10", "not measured", "not measured"])
    huge_rss = value(huge, "training_peak_rss_bytes")
    huge_length = huge["length"] if huge else 0
    rows.append([f"5. one training step at {huge_length:,} tokens: peak RSS (step time "
                 f"{fmt(value(huge, 'training_step_seconds'), 0, ' s')}, {status_of(huge)})", "≤ 12 GiB",
                 mib(huge_rss), verdict(None if huge_rss is None else huge_rss / 2**30, 12, higher_is_better=False)])
    growth = ratio(value(rhf(long), "training_seconds_per_token"), value(rhf(medium), "training_seconds_per_token"))
    rows.append([f"6. reformer_hf training time per token, {long:,} / {medium:,}", "≤ 1.15", fmt(growth),
                 verdict(growth, 1.15, higher_is_better=False)])
    generation = report.get("generation", {}).get("points", [])
    contexts = sorted({g["context"] for g in generation})
    context = contexts[-1] if contexts else None
    rates = {g["implementation"]: g.get("new_tokens_per_second") for g in generation
             if g["context"] == context and g.get("status") == "ok"}
    speedup = ratio(rates.get("reformer_hf"), rates.get("transformers"))
    rows.append([f"7. cached generation after {context or 0:,} tokens: new tokens/s, reformer_hf / transformers",
                 "≥ 3", fmt(speedup, suffix="×"), verdict(speedup, 3)])
    full = find(points, "length", "full_attention", short)
    for label, record in (("irreversible_max_tokens=" + f"{short}", rhf(short, "short")), ("defaults", rhf(short))):
        speedup = ratio(value(record, "training_tokens_per_second"), value(full, "training_tokens_per_second"))
        rows.append([f"8. training tokens/s at {short:,}: reformer_hf ({label}) / full attention", "≥ 1.0",
                     fmt(speedup, suffix="×"), verdict(speedup, 1.0)])
    return rows


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def point_rows(points: list[dict], fields) -> list[list[str]]:
    return [[render(p) for _, render in fields] for p in points]


def describe(points: list[dict]) -> list[tuple[str, object]]:
    return [
        ("implementation", lambda p: p["implementation"]),
        ("length", lambda p: f"{p['length']:,}"),
        ("status", lambda p: status_of(p)),
        ("training tokens/s", lambda p: fmt(value(p, "training_tokens_per_second"), 0)),
        ("inference tokens/s", lambda p: fmt(value(p, "inference_tokens_per_second"), 0)),
        ("training GFLOP/s (fraction of peak)",
         lambda p: f"{fmt(value(p, 'training_gflops_per_second'), 1)} ({fmt(value(p, 'training_fraction_of_peak'))})"),
        ("peak RSS in training", lambda p: mib(value(p, "training_peak_rss_bytes"))),
        ("live-tensor peak", lambda p: mib(value(p, "training_live_tensor_peak_bytes"))),
    ]


def measured(points: list[dict], phase: str, implementation: str, order: str) -> list[dict]:
    """Return the points of ``phase`` and ``implementation`` that measured something, sorted by ``order``."""
    chosen = [p for p in points if p["phase"] == phase and p["implementation"] == implementation and p["status"] == "ok"]
    return sorted(chosen, key=lambda p: p[order])


def write_plots(report: dict, output_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for implementation in IMPLEMENTATIONS:
        ok = measured(points, "length", implementation, "length")
        if not ok:
            continue
        lengths = [p["length"] for p in ok]
        (line,) = time_axis.plot(lengths, [p["training_seconds_per_token"] * 1e6 for p in ok], "o-", label=implementation)
        memory_axis.plot(lengths, [p["training_peak_rss_bytes"] / 2**20 for p in ok], "o-", color=line.get_color(),
                         label=f"{implementation}, RSS")
        tracked = [p for p in ok if p.get("training_live_tensor_peak_bytes")]
        if tracked:
            memory_axis.plot([p["length"] for p in tracked], [p["training_live_tensor_peak_bytes"] / 2**20 for p in tracked],
                             "s--", color=line.get_color(), label=f"{implementation}, live tensors")
    for huge in (p for p in points if p["phase"] == "huge" and p["status"] == "ok"):
        # Two threads and no warm-up step: a point of its own, not joined to the one-thread line.
        label = f"reformer_hf, {huge['threads']} threads, first step"
        time_axis.plot([huge["length"]], [huge["training_seconds_per_token"] * 1e6], "*", markersize=12, label=label)
        memory_axis.plot([huge["length"]], [huge["training_peak_rss_bytes"] / 2**20], "*", markersize=12,
                         label=f"{label}, RSS")
    speed.style_length_axis(time_axis, "training time per token (µs)", "Training step time per token")
    speed.style_length_axis(memory_axis, "MiB", "Peak memory of a training step")
    figure.tight_layout()
    figure.savefig(output_dir / "targets_length.png", dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for implementation in REFORMERS:
        ok = measured(points, "depth", implementation, "depth")
        if not ok:
            continue
        (line,) = axis.plot([p["depth"] for p in ok], [p["training_peak_rss_bytes"] / 2**20 for p in ok], "o-",
                            label=f"{implementation}, RSS")
        tracked = [p for p in ok if p.get("training_live_tensor_peak_bytes")]
        axis.plot([p["depth"] for p in tracked], [p["training_live_tensor_peak_bytes"] / 2**20 for p in tracked],
                  "s--", color=line.get_color(), label=f"{implementation}, live tensors")
    axis.set_xlabel("layers")
    axis.set_ylabel("MiB")
    lengths = {p["length"] for p in points if p["phase"] == "depth"}
    axis.set_title(f"Peak training memory against depth at {max(lengths, default=0):,} tokens")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(output_dir / "targets_depth.png", dpi=120)
    plt.close(figure)


def write_report(report: dict, output_dir: Path, page: Path) -> None:
    points = report["points"]
    machine = report["machine"]
    peaks = {p["threads"]: p for p in report["matmul_peak"]}
    relative = output_dir.resolve().relative_to(REPO_ROOT) if output_dir.resolve().is_relative_to(REPO_ROOT) else output_dir
    sections = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/targets.py` from one run"
        + (" (**--quick: tiny sizes, not a measurement**)" if report["quick"] else "")
        + f", started {report['started']}, {report['wall_seconds'] / 60:.0f} minutes. Every ratio below "
        "compares points of that run. Raw records: "
        f"[`{relative}/targets.json`]({relative}/targets.json).",
        "",
        f"Machine: {machine['cpu_model']}, {machine['cpu_count']} cores, {machine['memory_total_bytes'] / 2**30:.0f} GiB; "
        f"{machine['platform']}. Python {machine['python']}, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, reformer-pytorch {speed.package_version('reformer-pytorch')}.",
        "",
        "Matmul peak of this run (2,048 × 2,048): "
        + "; ".join(f"{t} thread{'s' if t > 1 else ''}: float32 {p['float32_gflops_per_second']:.0f} GFLOP/s, "
                    f"bfloat16 {p['bfloat16_gflops_per_second']:.0f} GFLOP/s" for t, p in sorted(peaks.items()))
        + ".",
        "",
        "Reference model: 6 layers alternating local and LSH attention, hidden size 256, 4 heads of 64, "
        "feed-forward 1,024 (processed 4,096 positions at a time by all three Reformers), vocabulary 256, "
        "batch 1, chunks of 64 (local) and 128 (LSH) with one chunk of look-back, 1 hash round, dropout off, "
        "AdamW. The bucket count is the one transformers derives from the length (factorised above 256 "
        "buckets). One torch thread per process unless a table says otherwise. A training step is forward, "
        "backward and the optimizer step. Times are medians of three steps after one warm-up step, except "
        "at 65,536 tokens and in the depth and hash-round tables, which time one step after the warm-up step, "
        "and at 1,048,576 tokens, which times the first step of the process.",
        "",
        f"FLOP formula: {report['flop_formula']}",
        "",
        "## Targets",
        "",
        table(["target", "goal", "measured", "verdict"], target_rows(report)),
        "",
        "## Sequence length (float32, one thread)",
        "",
        f"![time and memory against length]({relative}/targets_length.png)",
        "",
    ]

    by_length = sorted((p for p in points if p["phase"] in ("length", "short", "huge")),
                       key=lambda p: (p["length"], IMPLEMENTATIONS.index(p["implementation"]), p["phase"]))
    fields = describe(by_length)
    fields.insert(1, ("setting", lambda p: {"short": f"irreversible_max_tokens={p['length']}",
                                            "huge": f"{p['threads']} threads, no warm-up, feed-forward chunks of 16,384"}
                      .get(p["phase"], "")))
    sections += [table([name for name, _ in fields], point_rows(by_length, fields)), ""]

    for title, phase, extra in (
        ("bfloat16 autocast", "bfloat16", ("final loss", lambda p: fmt(value(p, "final_loss"), 4))),
        ("Two threads per process", "threads", None),
        ("Hash rounds (4,096 tokens)", "hashes", ("hash rounds", lambda p: str(p["num_hashes"]))),
        ("Depth", "depth", ("layers", lambda p: str(p["depth"]))),
    ):
        chosen = sorted((p for p in points if p["phase"] == phase),
                        key=lambda p: (p["length"], p["num_hashes"], p["depth"], IMPLEMENTATIONS.index(p["implementation"])))
        fields = describe(chosen)
        if extra:
            fields.insert(1, extra)
        sections += [f"## {title}", ""]
        if phase == "depth":
            sections += [f"![memory against depth]({relative}/targets_depth.png)", ""]
        sections += [table([name for name, _ in fields], point_rows(chosen, fields)), ""]

    generation = report.get("generation", {})
    sections += ["## Cached generation", ""]
    if generation.get("points"):
        rows = [[g["implementation"], f"{g['context']:,}", str(g.get("new_tokens")), status_of(g),
                 fmt(g.get("new_tokens_per_second"), 1), fmt(g.get("prefill_seconds"), 3, " s")]
                for g in generation["points"]]
        sections += [table(["implementation", "context", "new tokens", "status", "new tokens/s", "prefill"], rows), ""]
    else:
        sections += [f"Not measured: {generation.get('message', 'no record')}", ""]

    profiled = [p for p in points if p.get("training_profile")]
    if profiled:
        sections += ["## Profiles of reformer_hf training steps", "",
                     "Operations with the most self CPU time in one profiled training step (torch.profiler), "
                     "with their share of the step's self CPU time.", ""]
        for p in sorted(profiled, key=lambda p: p["length"]):
            profile = p["training_profile"]
            total = profile["self_cpu_seconds_total"]
            rows = [[op["name"], str(op["calls"]), f"{op['self_cpu_seconds']:.3f} s", f"{op['self_cpu_seconds'] / total:.1%}"]
                    for op in profile["operations"]]
            sections += [f"**{p['length']:,} tokens** ({total:.2f} s of self CPU time under the profiler)", "",
                         table(["operation", "calls", "self CPU", "share"], rows), ""]

    notes = Path(__file__).resolve().parent / "notes.md"
    if notes.exists() and not report["quick"]:
        sections += [notes.read_text(encoding="utf-8").rstrip(), ""]
    page.write_text("\n".join(sections), encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results",
                        help="folder for targets.json and the plots (default benchmarks/results)")
    parser.add_argument("--page", type=Path, default=None,
                        help="where to write the Markdown page (default BENCHMARKS.md at the repository root; "
                             "--quick: BENCHMARKS.md in --output-dir)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the tests; about two minutes")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the page and plots from --output-dir/targets.json without measuring")
    args = parser.parse_args(argv)
    if args.page is None:
        args.page = args.output_dir / "BENCHMARKS.md" if args.quick else REPO_ROOT / "BENCHMARKS.md"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results_path = args.output_dir / "targets.json"
        if not results_path.exists():
            print(f"{results_path} does not exist. Run without --report-only first.", file=sys.stderr)
            return 2
        report = json.loads(results_path.read_text(encoding="utf-8"))
    else:
        report = measure(args)
    write_plots(report, args.output_dir)
    write_report(report, args.output_dir, args.page)
    print(f"Wrote {args.page} and the plots in {args.output_dir}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
