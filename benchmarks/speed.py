"""Measure training and inference speed and memory of reformer_hf, transformers' Reformer and full attention.

Three implementations of one causal language model run at growing sequence lengths:

    reformer_hf: ``reformer_hf.ReformerForCausalLM``.
    transformers: ``transformers.ReformerModelWithLMHead`` with the same sizes.
    full_attention: a pre-norm Transformer of the same width and depth, written here, whose
        attention is ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.

Reference model: layers alternating local and LSH attention (6 by default), hidden size 256, 4 heads
of size 64, feed-forward size 1024 and vocabulary 256. The batch size is 1 and dropout is off. Local
chunks are 64 tokens and LSH chunks 128, each with one chunk of look-back and none of look-ahead, and
LSH uses 1 hash round. ``num_buckets`` is ``2 * length / 128`` rounded to a power of two. The axial
position shape is two factors whose product is the length.

Each point (implementation, length, depth, hash rounds, threads) runs in its own subprocess, so that
the peak resident set size (RSS) of one point does not include another's. The script re-invokes
itself with ``--worker SPEC_JSON`` and reads one JSON line back. A point that runs past ``--timeout``,
runs out of memory or raises is recorded with status ``"timeout"``, ``"oom"`` or ``"error"`` and its
message, never dropped. The implementations are interleaved at each length, so that drift of the
machine (heat, other load) affects all of them alike.

Per point it records the median time of a training step (forward, backward and an AdamW step, after
one warm-up step) and of an inference forward pass under ``torch.no_grad``, and tokens per second for
both. It also records the peak RSS of the worker (``ru_maxrss``), its growth over the RSS after the
model was built, and the achieved GFLOP/s by the formula in ``FLOP_FORMULA``. The float32 and bfloat16 matmul peaks of the
machine are measured in the same run, for each thread count, as the scale for those GFLOP/s.

Run from the repository root: ``python benchmarks/speed.py --output-dir benchmarks/results``.
"""

import argparse
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = ("reformer_hf", "transformers", "full_attention")
RESULT_PREFIX = "SPEED_RESULT "

HIDDEN_SIZE = 256
NUM_HEADS = 4
HEAD_SIZE = 64
FEED_FORWARD_SIZE = 1024
VOCAB_SIZE = 256
BATCH_SIZE = 1
LOCAL_CHUNK_LENGTH = 64
LSH_CHUNK_LENGTH = 128
CHUNKS_BEFORE = 1
AXIAL_POS_EMBDS_DIM = (64, 192)

FLOP_FORMULA = (
    "FLOPs per training token = c * N + c/2 * sum over layers of 4 * heads * head_size * keys_per_query, "
    "where N is the number of parameters outside the token and position embeddings (the LM head "
    "counts), c = 8 for the reversible Reformers (forward, recomputed forward, backward = 2 forwards) "
    "and c = 6 for full attention. The second term is the query-key score and the probability-value "
    "products (2 multiply-adds each, per key scored). keys_per_query is the key window computed per "
    "query: (1 + chunks_before) * local_chunk_length for local attention, num_hashes * (1 + "
    "chunks_before) * lsh_chunk_length for LSH attention, and (length + 1) / 2 for causal full "
    "attention. Inference FLOPs per token are the same with c = 2. Achieved GFLOP/s = FLOPs per token "
    "* tokens per second / 1e9."
)


# ---------------------------------------------------------------------------------------------
# Sizes


def attention_layers_for(depth: int) -> list[str]:
    """Return the attention kind of each layer: local first, then alternating with LSH."""
    return ["local" if index % 2 == 0 else "lsh" for index in range(depth)]


def num_buckets_for(length: int) -> int:
    """Return ``2 * length / LSH_CHUNK_LENGTH`` rounded to the nearest power of two, at least 2."""
    target = max(2.0, 2.0 * length / LSH_CHUNK_LENGTH)
    return 2 ** round(math.log2(target))


def axial_pos_shape_for(length: int) -> tuple[int, int]:
    """Split ``length`` into two factors whose product is ``length``, the first as close to its square root as allowed."""
    first = int(math.isqrt(length))
    while length % first:
        first -= 1
    return first, length // first


def keys_per_query(kind: str, length: int, num_hashes: int) -> float:
    """Return the number of keys one query scores in one head of a layer of this attention kind."""
    if kind == "local":
        return (1 + CHUNKS_BEFORE) * min(LOCAL_CHUNK_LENGTH, length)
    if kind == "lsh":
        return num_hashes * (1 + CHUNKS_BEFORE) * min(LSH_CHUNK_LENGTH, length)
    if kind == "full":
        return (length + 1) / 2
    raise ValueError(f"Attention kind {kind!r} is invalid. Use 'local', 'lsh' or 'full'.")


def flops_per_token(implementation: str, non_embedding_parameters: int, spec: dict) -> dict:
    """Return the training and inference FLOPs per token of ``FLOP_FORMULA``."""
    if implementation == "full_attention":
        kinds, training_factor = ["full"] * spec["depth"], 6
    else:
        kinds, training_factor = attention_layers_for(spec["depth"]), 8
    attention_forward = sum(
        4 * NUM_HEADS * HEAD_SIZE * keys_per_query(kind, spec["length"], spec["num_hashes"]) for kind in kinds
    )
    return {
        "training": training_factor * non_embedding_parameters + training_factor / 2 * attention_forward,
        "inference": 2 * non_embedding_parameters + attention_forward,
    }


# ---------------------------------------------------------------------------------------------
# Models (built inside the worker only)


def build_full_attention_model(depth: int, length: int):
    """Build a pre-norm causal Transformer with learned positions and an untied LM head."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention_norm = nn.LayerNorm(HIDDEN_SIZE)
            self.qkv = nn.Linear(HIDDEN_SIZE, 3 * NUM_HEADS * HEAD_SIZE)
            self.attention_output = nn.Linear(NUM_HEADS * HEAD_SIZE, HIDDEN_SIZE)
            self.feed_forward_norm = nn.LayerNorm(HIDDEN_SIZE)
            self.feed_forward = nn.Sequential(
                nn.Linear(HIDDEN_SIZE, FEED_FORWARD_SIZE), nn.ReLU(), nn.Linear(FEED_FORWARD_SIZE, HIDDEN_SIZE)
            )

        def forward(self, hidden_states):
            b, n, _ = hidden_states.shape
            qkv = self.qkv(self.attention_norm(hidden_states))
            # [b, n, 3 * h * d] -> 3 x [b, h, n, d]
            query, key, value = qkv.view(b, n, 3, NUM_HEADS, HEAD_SIZE).permute(2, 0, 3, 1, 4)
            context = F.scaled_dot_product_attention(query, key, value, is_causal=True)
            # [b, h, n, d] -> [b, n, h * d]
            context = context.transpose(1, 2).reshape(b, n, NUM_HEADS * HEAD_SIZE)
            hidden_states = hidden_states + self.attention_output(context)
            return hidden_states + self.feed_forward(self.feed_forward_norm(hidden_states))

    class FullAttentionLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(VOCAB_SIZE, HIDDEN_SIZE)
            self.position_embedding = nn.Embedding(length, HIDDEN_SIZE)
            self.blocks = nn.ModuleList(Block() for _ in range(depth))
            self.final_norm = nn.LayerNorm(HIDDEN_SIZE)
            self.lm_head = nn.Linear(HIDDEN_SIZE, VOCAB_SIZE, bias=False)

        def forward(self, input_ids, labels=None):
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            hidden_states = self.token_embedding(input_ids) + self.position_embedding(positions)
            for block in self.blocks:
                hidden_states = block(hidden_states)
            logits = self.lm_head(self.final_norm(hidden_states))
            if labels is None:
                return logits, None
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB_SIZE), labels[:, 1:].reshape(-1))
            return logits, loss

    model = FullAttentionLM()
    embeddings = {id(p) for p in (model.token_embedding.weight, model.position_embedding.weight)}
    return model, embeddings


def reformer_sizes(spec: dict) -> dict:
    """Return the config fields that both Reformer implementations name alike."""
    length = spec["length"]
    return dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=HIDDEN_SIZE,
        num_attention_heads=NUM_HEADS,
        attention_head_size=HEAD_SIZE,
        feed_forward_size=FEED_FORWARD_SIZE,
        hidden_act="relu",
        lsh_num_chunks_before=CHUNKS_BEFORE,
        lsh_num_chunks_after=0,
        num_buckets=num_buckets_for(length),
        num_hashes=spec["num_hashes"],
        local_num_chunks_before=CHUNKS_BEFORE,
        local_num_chunks_after=0,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        is_decoder=True,
    )


def build_reformer_hf_model(spec: dict):
    from reformer_hf import ReformerConfig, ReformerForCausalLM

    config = ReformerConfig(
        **reformer_sizes(spec),
        attention_layers=attention_layers_for(spec["depth"]),
        lsh_chunk_length=LSH_CHUNK_LENGTH,
        local_chunk_length=LOCAL_CHUNK_LENGTH,
        axial_pos_shape=axial_pos_shape_for(spec["length"]),
        axial_pos_embds_dim=AXIAL_POS_EMBDS_DIM,
    )
    model = ReformerForCausalLM(config)
    return model, embedding_parameter_ids(model)


def build_transformers_model(spec: dict):
    from transformers import ReformerConfig, ReformerModelWithLMHead

    config = ReformerConfig(
        **reformer_sizes(spec),
        attn_layers=attention_layers_for(spec["depth"]),
        lsh_attn_chunk_length=LSH_CHUNK_LENGTH,
        local_attn_chunk_length=LOCAL_CHUNK_LENGTH,
        lsh_attention_probs_dropout_prob=0.0,
        local_attention_probs_dropout_prob=0.0,
        axial_pos_shape=list(axial_pos_shape_for(spec["length"])),
        axial_pos_embds_dim=list(AXIAL_POS_EMBDS_DIM),
        max_position_embeddings=spec["length"],
        chunk_size_lm_head=0,
        chunk_size_feed_forward=0,
        tie_word_embeddings=False,
    )
    model = ReformerModelWithLMHead(config)
    return model, embedding_parameter_ids(model)


def embedding_parameter_ids(model) -> set[int]:
    """Return the ids of the token and position embedding parameters of a Hugging Face model."""
    import torch

    embedding_ids = {id(model.get_input_embeddings().weight)}
    for name, parameter in model.named_parameters():
        if "position" in name and isinstance(parameter, torch.nn.Parameter):
            embedding_ids.add(id(parameter))
    return embedding_ids


# ---------------------------------------------------------------------------------------------
# Worker


def current_rss_bytes() -> int:
    """Return the resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS missing from /proc/self/status")


def peak_rss_bytes() -> int:
    # On Linux ru_maxrss is in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_point(spec: dict) -> dict:
    """Build one model and time its training steps and inference forward passes."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    implementation = spec["implementation"]
    if implementation == "full_attention":
        model, embedding_ids = build_full_attention_model(spec["depth"], spec["length"])
    elif implementation == "reformer_hf":
        model, embedding_ids = build_reformer_hf_model(spec)
    elif implementation == "transformers":
        model, embedding_ids = build_transformers_model(spec)
    else:
        raise ValueError(f"Implementation {implementation!r} is invalid. Use one of {', '.join(IMPLEMENTATIONS)}.")

    parameters = sum(p.numel() for p in model.parameters())
    non_embedding_parameters = sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    input_ids = torch.randint(3, VOCAB_SIZE, (BATCH_SIZE, spec["length"]))
    rss_after_build = current_rss_bytes()

    def loss_of(output):
        return output[1] if isinstance(output, tuple) else output.loss

    def training_step():
        optimizer.zero_grad(set_to_none=True)
        loss_of(model(input_ids, labels=input_ids)).backward()
        optimizer.step()

    def inference_step():
        with torch.no_grad():
            model(input_ids)

    def median_seconds(step, repeats: int) -> tuple[float, list[float]]:
        step()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return statistics.median(times), times

    model.train()
    training_seconds, training_times = median_seconds(training_step, spec["steps"])
    model.eval()
    inference_seconds, inference_times = median_seconds(inference_step, spec["steps"])

    tokens = BATCH_SIZE * spec["length"]
    flops = flops_per_token(implementation, non_embedding_parameters, spec)
    peak = peak_rss_bytes()
    return {
        "status": "ok",
        "parameters": parameters,
        "non_embedding_parameters": non_embedding_parameters,
        "training_step_seconds": training_seconds,
        "training_step_times": training_times,
        "inference_seconds": inference_seconds,
        "inference_times": inference_times,
        "training_tokens_per_second": tokens / training_seconds,
        "inference_tokens_per_second": tokens / inference_seconds,
        "training_seconds_per_token": training_seconds / tokens,
        "inference_seconds_per_token": inference_seconds / tokens,
        "peak_rss_bytes": peak,
        "rss_after_build_bytes": rss_after_build,
        "rss_growth_bytes": peak - rss_after_build,
        "training_flops_per_token": flops["training"],
        "inference_flops_per_token": flops["inference"],
        "training_gflops_per_second": flops["training"] * tokens / training_seconds / 1e9,
        "inference_gflops_per_second": flops["inference"] * tokens / inference_seconds / 1e9,
    }


def worker_main(spec_json: str) -> int:
    """Run one point and print its record as one JSON line after ``RESULT_PREFIX``."""
    spec = json.loads(spec_json)
    try:
        record = run_point(spec)
    except MemoryError as error:
        record = {"status": "oom", "message": f"MemoryError: {error}"}
    except RuntimeError as error:
        status = "oom" if "out of memory" in str(error).lower() else "error"
        record = {"status": status, "message": f"{type(error).__name__}: {error}"}
    except Exception as error:  # noqa: BLE001 - every failure becomes a record
        record = {"status": "error", "message": f"{type(error).__name__}: {error}"}
    print(RESULT_PREFIX + json.dumps(record), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Parent: points, matmul peak, report


def thread_environment(threads: int) -> dict:
    environment = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        environment[name] = str(threads)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    return environment


def measure_point(spec: dict, timeout: float) -> dict:
    """Run one point in a subprocess and return its record, whatever happened to the subprocess."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env=thread_environment(spec["threads"]), capture_output=True, text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        record = {"status": "timeout", "message": f"the worker ran past the timeout of {timeout:g} s"}
    else:
        result_lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        stderr_tail = completed.stderr.strip()[-2000:]
        if result_lines:
            record = json.loads(result_lines[-1][len(RESULT_PREFIX):])
        elif completed.returncode == -9:
            # SIGKILL with no record is what the kernel's out-of-memory killer leaves.
            record = {"status": "oom", "message": f"the worker was killed by SIGKILL (likely out of memory). {stderr_tail}"}
        else:
            status = "oom" if "out of memory" in stderr_tail.lower() or "MemoryError" in stderr_tail else "error"
            record = {"status": status, "message": f"the worker exited with code {completed.returncode}: {stderr_tail}"}
    return {**spec, **record, "wall_seconds": time.perf_counter() - start}


def measure_matmul_peak(threads: int, size: int, repeats: int) -> dict:
    """Return the median GFLOP/s of ``size`` x ``size`` float32 and bfloat16 matmuls on ``threads`` threads."""
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    peaks = {"threads": threads, "size": size, "repeats": repeats}
    try:
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(size, size).to(dtype)
            b = torch.randn(size, size).to(dtype)
            torch.matmul(a, b)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                torch.matmul(a, b)
                times.append(time.perf_counter() - start)
            peaks[f"{str(dtype).removeprefix('torch.')}_gflops_per_second"] = 2 * size**3 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(previous_threads)
    return peaks


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """Describe the machine and software the numbers come from."""
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "reformer_hf": package_version("reformer_hf") or package_version("reformer-hf"),
        "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
    }


def write_plot(path: Path, points: list[dict]) -> None:
    """Plot time per token and peak RSS against length, log-log, one line per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = sorted({(p["implementation"], p["depth"], p["num_hashes"], p["threads"]) for p in points})
    show_group = len({g[1:] for g in groups}) > 1
    for group in groups:
        ok = sorted(
            (p for p in points if (p["implementation"], p["depth"], p["num_hashes"], p["threads"]) == group
             and p["status"] == "ok"),
            key=lambda p: p["length"],
        )
        if not ok:
            continue
        label = group[0] + (f" (depth {group[1]}, {group[2]} hashes, {group[3]} threads)" if show_group else "")
        lengths = [p["length"] for p in ok]
        (line,) = time_axis.plot(lengths, [p["training_seconds_per_token"] * 1e6 for p in ok], "o-",
                                 label=f"{label}, training step")
        time_axis.plot(lengths, [p["inference_seconds_per_token"] * 1e6 for p in ok], "s--",
                       color=line.get_color(), label=f"{label}, inference")
        memory_axis.plot(lengths, [p["peak_rss_bytes"] / 2**20 for p in ok], "o-", color=line.get_color(), label=label)
    for axis, ylabel, title in (
        (time_axis, "time per token (µs)", "Time per token (median)"),
        (memory_axis, "peak RSS of the worker (MiB)", "Peak memory"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("sequence length (tokens)")
        axis.set_ylabel(ylabel)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="sequence lengths (default 1024 4096 16384 65536; --quick: 256 512).")
    parser.add_argument("--depths", type=int, nargs="+", default=None, help="numbers of layers (default 6; --quick: 2).")
    parser.add_argument("--num-hashes", type=int, nargs="+", default=[1], help="LSH hash rounds (default 1).")
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="torch intra-op threads of the workers, also set as OMP_NUM_THREADS (default 1).")
    parser.add_argument("--implementations", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS),
                        help="implementations to measure (default all).")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per point after one warm-up step; the median is reported (default 5; --quick: 1).")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds one point may run, model build included, before it is recorded as a timeout (default 1800).")
    parser.add_argument("--matmul-size", type=int, default=None,
                        help="side of the square matmuls that measure the peak (default 2048; --quick: 512).")
    parser.add_argument("--quick", action="store_true",
                        help="tiny run for the tests: lengths 256 512, 2 layers, 1 step.")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results",
                        help="folder for speed.json and speed.png (default benchmarks/results).")
    parser.add_argument("--worker", metavar="SPEC_JSON", help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    if args.worker is not None:
        return args

    # Defaults that depend on --quick, then checks of the values.
    args.lengths = args.lengths or ([256, 512] if args.quick else [1024, 4096, 16384, 65536])
    args.depths = args.depths or ([2] if args.quick else [6])
    if args.steps is None:
        args.steps = 1 if args.quick else 5
    args.matmul_size = args.matmul_size or (512 if args.quick else 2048)
    for name in ("lengths", "depths", "num_hashes", "threads"):
        if any(value < 1 for value in getattr(args, name)):
            parser.error(f"--{name.replace('_', '-')} must be positive integers, got {getattr(args, name)}.")
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}.")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}.")
    if args.matmul_size < 1:
        parser.error(f"--matmul-size must be positive, got {args.matmul_size}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker)

    start = time.perf_counter()
    matmul_repeats = 1 if args.quick else 5
    matmul_peaks = [measure_matmul_peak(threads, args.matmul_size, matmul_repeats) for threads in args.threads]
    points = []
    for threads in args.threads:
        for depth in args.depths:
            for num_hashes in args.num_hashes:
                for length in args.lengths:
                    # Implementations are interleaved at each length, so that drift affects all alike.
                    for implementation in args.implementations:
                        spec = {"implementation": implementation, "length": length, "depth": depth,
                                "num_hashes": num_hashes, "threads": threads, "steps": args.steps}
                        point = measure_point(spec, args.timeout)
                        points.append(point)
                        summary = (f"{point['training_tokens_per_second']:.0f} training tokens/s, "
                                   f"{point['inference_tokens_per_second']:.0f} inference tokens/s, "
                                   f"peak RSS {point['peak_rss_bytes'] / 2**20:.0f} MiB"
                                   if point["status"] == "ok" else point.get("message", "")[:200])
                        print(f"{implementation} length {length} depth {depth} hashes {num_hashes} threads {threads}: "
                              f"{point['status']}, {summary}", flush=True)

    report = {
        "machine": machine_info(),
        "command": [Path(sys.executable).name, *sys.argv],
        "quick": args.quick,
        "settings": {
            "lengths": args.lengths, "depths": args.depths, "num_hashes": args.num_hashes, "threads": args.threads,
            "implementations": args.implementations, "steps": args.steps, "timeout_seconds": args.timeout,
            "batch_size": BATCH_SIZE, "hidden_size": HIDDEN_SIZE, "num_attention_heads": NUM_HEADS,
            "attention_head_size": HEAD_SIZE, "feed_forward_size": FEED_FORWARD_SIZE, "vocab_size": VOCAB_SIZE,
            "local_chunk_length": LOCAL_CHUNK_LENGTH, "lsh_chunk_length": LSH_CHUNK_LENGTH,
            "chunks_before": CHUNKS_BEFORE, "axial_pos_embds_dim": list(AXIAL_POS_EMBDS_DIM),
            "num_buckets": {str(length): num_buckets_for(length) for length in args.lengths},
            "axial_pos_shape": {str(length): list(axial_pos_shape_for(length)) for length in args.lengths},
            "optimizer": "AdamW (lr 1e-4)",
        },
        "flop_formula": FLOP_FORMULA,
        "matmul_peak": matmul_peaks,
        "points": points,
        "wall_seconds": time.perf_counter() - start,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "speed.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    write_plot(args.output_dir / "speed.png", points)
    print(f"Wrote speed.json and speed.png to {args.output_dir} in {report['wall_seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
