"""Measure cached generation of reformer_hf against transformers' Reformer ``generate``.

Both models are the reference model of ``speed.py`` (6 layers alternating local and LSH attention,
hidden size 256, 1 hash round), built with positions for 8,192 tokens. Each point runs in its own
subprocess: one greedy ``generate`` call of 1 new token after the prompt (the prefill) and one of
``--new-tokens`` new tokens, both after a warm-up call on a short prompt. The per-token rate is
``(new_tokens - 1) / (time of the long call - time of the short call)``, which leaves the prefill
out.

Run from the repository root: ``python benchmarks/generation.py --output-dir benchmarks/results``.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speed  # noqa: E402  (the model builders)

IMPLEMENTATIONS = ("reformer_hf", "transformers")
RESULT_PREFIX = "GENERATION_RESULT "
POSITIONS = 8192


def run_point(implementation: str, context: int, new_tokens: int, threads: int) -> dict:
    """Time greedy generation after a ``context``-token prompt in this process."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = dict(implementation=implementation, length=POSITIONS, depth=6, num_hashes=1, threads=threads,
                feed_forward_chunk=0)
    build = speed.build_reformer_hf_model if implementation == "reformer_hf" else speed.build_transformers_model
    model, _ = build(spec)
    model.eval()
    prompt = torch.randint(3, speed.VOCAB_SIZE, (1, context))

    def generate_seconds(count: int) -> float:
        start = time.perf_counter()
        output = model.generate(prompt, max_new_tokens=count, min_new_tokens=count, do_sample=False)
        elapsed = time.perf_counter() - start
        if output.shape[1] != context + count:
            raise RuntimeError(f"generate returned {output.shape[1] - context} new tokens, expected {count}.")
        return elapsed

    with torch.no_grad():
        model.generate(prompt[:, :256], max_new_tokens=4, do_sample=False)  # warm-up
        prefill = generate_seconds(1)
        total = generate_seconds(new_tokens)
    step_seconds = (total - prefill) / (new_tokens - 1)
    return {
        "status": "ok",
        "prefill_seconds": prefill,
        "total_seconds": total,
        "seconds_per_new_token": step_seconds,
        "new_tokens_per_second": 1.0 / step_seconds,
        "end_to_end_tokens_per_second": new_tokens / total,
    }


def measure(implementation: str, context: int, new_tokens: int, threads: int, timeout: float) -> dict:
    """Run one point in a subprocess and return its record."""
    command = [sys.executable, __file__, "--worker", implementation, str(context), str(new_tokens), str(threads)]
    record = {"implementation": implementation, "context": context, "new_tokens": new_tokens, "threads": threads}
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                   env=speed.thread_environment(threads))
    except subprocess.TimeoutExpired:
        return {**record, "status": "timeout", "message": f"no result within {timeout:g} s"}
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return {**record, **json.loads(line[len(RESULT_PREFIX):])}
    return {**record, "status": "error", "message": completed.stderr[-2000:]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=[1024, 4096], help="prompt lengths")
    parser.add_argument("--new-tokens", type=int, default=129, help="tokens generated after each prompt")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one point may run")
    parser.add_argument("--quick", action="store_true", help="a 256-token prompt and 5 new tokens")
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.contexts, args.new_tokens = [256], 5
    if args.new_tokens < 2:
        parser.error(f"--new-tokens must be at least 2, got {args.new_tokens}.")
    if any(context < 1 or context + args.new_tokens > POSITIONS for context in args.contexts):
        parser.error(f"each context plus --new-tokens must lie in [1, {POSITIONS}], got {args.contexts}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    points = []
    for context in args.contexts:
        for implementation in IMPLEMENTATIONS:
            point = measure(implementation, context, args.new_tokens, args.threads, args.timeout)
            points.append(point)
            rate = point.get("new_tokens_per_second")
            summary = f"{rate:.1f} new tokens/s" if rate else point.get("message", "")
            print(f"{implementation} context {context}: {point['status']}, {summary}", flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    result = {"machine": speed.machine_info(), "command": sys.argv, "positions": POSITIONS, "points": points}
    (args.output_dir / "generation.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        implementation, context, new_tokens, threads = sys.argv[2], *map(int, sys.argv[3:6])
        print(RESULT_PREFIX + json.dumps(run_point(implementation, context, new_tokens, threads)), flush=True)
    else:
        sys.exit(main())
