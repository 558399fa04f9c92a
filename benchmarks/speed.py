"""Measure training and inference speed and memory of reformer_hf and three other implementations.

Four implementations of one causal language model run at growing sequence lengths:

    reformer_hf: ``reformer_hf.ReformerForCausalLM``.
    transformers: ``transformers.ReformerModelWithLMHead`` with the same sizes.
    reformer_pytorch: ``reformer_pytorch.ReformerLM`` (lucidrains' ``reformer-pytorch`` package, read
        at version 1.4.4), as close to the same sizes as it allows. The differences are listed below.
    full_attention: a pre-norm Transformer of the same width and depth, written here, whose
        attention is ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``.

Reference model: layers alternating local and LSH attention (6 by default), hidden size 256, 4 heads
of size 64, feed-forward size 1024 and vocabulary 256. The batch size is 1 and dropout is off. Local
chunks are 64 tokens and LSH chunks 128, each with one chunk of look-back and none of look-ahead, and
LSH uses 1 hash round. ``num_buckets`` is what transformers derives (see ``num_buckets_for``). The axial
position shape is two factors whose product is the length.

reformer_pytorch differs from the reference model in these ways, all fixed by its ``ReformerLM``:

- Every layer is LSH attention. Its only local attention is ``n_local_attn_heads``, which gives some
  heads of every LSH layer a local window of ``2 * bucket_size`` = 256 tokens plus one window of
  look-back (512 keys per query). Those heads would score more keys than its LSH heads (256), so
  all-LSH layers (256 keys per query in every layer) come closer to the reference's 128 and 256.
  Every layer so has one shared query-key projection, where the reference's local layers have
  separate query and key projections.
- ``bucket_size`` is the length of a sorted chunk, so it is set to the LSH chunk length, 128. The
  bucket count follows from it as ``length / bucket_size``, half the reference's, and the length
  must be a multiple of ``2 * bucket_size`` = 256.
- Its axial position embeddings are summed, two tables of width 256, not concatenated widths 64 and
  192. Its two reversible streams are averaged before the final layer norm, so its LM head has 256
  inputs where the Hugging Face Reformers concatenate the streams into 512.
- It computes attention with ``einsum`` and masks, with no fused kernel, and draws new random
  rotations for hashing at every forward pass.

Each point (implementation, length, depth, hash rounds, threads, dtype) runs in its own subprocess,
so that the peak resident set size (RSS) of one point does not include another's. The script
re-invokes itself with ``--worker SPEC_JSON`` and reads one JSON line back. A point that runs past
``--timeout``, runs out of memory or raises is recorded with status ``"timeout"``, ``"oom"`` or
``"error"`` and its message, never dropped. The implementations are interleaved at each length, so
that drift of the machine (heat, other load) affects all of them alike.

Per point it records the median time of a training step (forward, backward and an AdamW step, after
one warm-up step) and of an inference forward pass under ``torch.no_grad``, and tokens per second for
both. It also records the peak RSS of the worker (``ru_maxrss``), its growth over the RSS after the
model was built, the loss of the last timed training step, and the achieved GFLOP/s by the formula
in ``FLOP_FORMULA``. The float32 and bfloat16 matmul peaks of the machine are measured in the same
run, for each thread count, and each point's GFLOP/s is also given as a fraction of the peak of its
dtype. With ``--dtypes bfloat16`` the forward passes run under bfloat16 autocast while the weights
and the optimizer stay float32. With ``--device cuda`` the workers run on the GPU and also record
``torch.cuda.max_memory_allocated``.

Run from the repository root: ``python benchmarks/speed.py --output-dir benchmarks/results``.
"""

import argparse
import contextlib
import difflib
import importlib.metadata
import inspect
import itertools
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
IMPLEMENTATIONS = ("reformer_hf", "transformers", "reformer_pytorch", "full_attention")
DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")
RESULT_PREFIX = "SPEED_RESULT "

HIDDEN_SIZE = 256
NUM_HEADS = 4
HEAD_SIZE = 64
FEED_FORWARD_SIZE = 1024
# Positions each implementation's feed-forward layers process at once (all three support it).
FEED_FORWARD_CHUNK = 4096
VOCAB_SIZE = 256
BATCH_SIZE = 1
LOCAL_CHUNK_LENGTH = 64
LSH_CHUNK_LENGTH = 128
CHUNKS_BEFORE = 1
AXIAL_POS_EMBDS_DIM = (64, 192)

FLOP_FORMULA = (
    "FLOPs per training token = c * N + c/2 * sum over layers of 4 * heads * head_size * keys_per_query, "
    "where N is the number of parameters outside the token and position embeddings (the LM head "
    "counts), c = 8 for the reversible Reformers reformer_hf, transformers and reformer_pytorch "
    "(forward, recomputed forward, backward = 2 forwards) and c = 6 for full attention. The second "
    "term is the query-key score and the probability-value products (2 FLOPs per multiply-add, per "
    "key scored). keys_per_query is the key window computed per query: (1 + chunks_before + "
    "chunks_after) * local_chunk_length for local attention, num_hashes * (1 + chunks_before + "
    "chunks_after) * lsh_chunk_length for LSH attention, and (length + 1) / 2 for causal full "
    "attention. reformer_pytorch has LSH attention in every layer, with chunks of bucket_size = "
    "lsh_chunk_length tokens and one chunk of look-back. With reformer_hf_options, reformer_hf's "
    "terms come from its built config (attention_layers, chunk lengths, look-back and look-ahead, "
    "num_hashes, heads and head size), and c = 6 when its training step is not reversible "
    "(reversible=false, or irreversible_max_tokens at least the tokens of the batch). Inference "
    "FLOPs per token are the same with c = 2. Achieved GFLOP/s = FLOPs per token * tokens per second "
    "/ 1e9, and the fraction of peak divides it by the matmul peak of the point's dtype."
)


# ---------------------------------------------------------------------------------------------
# Sizes


def attention_layers_for(depth: int) -> list[str]:
    """Return the attention kind of each layer: local first, then alternating with LSH."""
    return ["local" if index % 2 == 0 else "lsh" for index in range(depth)]


def feed_forward_chunk_for(length: int, spec: dict | None = None) -> int:
    """Return the feed-forward chunk size of all three Reformers.

    That is the spec's ``"feed_forward_chunk"`` when set (generation sets 0, since transformers
    cannot chunk a one-token step), else ``FEED_FORWARD_CHUNK`` where it divides the length, as
    transformers requires, else 0 (the whole sequence at once).
    """
    if spec is not None and "feed_forward_chunk" in spec:
        return spec["feed_forward_chunk"]
    return FEED_FORWARD_CHUNK if length % FEED_FORWARD_CHUNK == 0 else 0


def num_buckets_for(length: int) -> int | list[int]:
    """Return the bucket count transformers' Reformer derives for ``length`` when it is left unset.

    That is ``2 * length / LSH_CHUNK_LENGTH`` rounded down to a power of two, at least 2. Above
    ``2 * max(sqrt(length / LSH_CHUNK_LENGTH), LSH_CHUNK_LENGTH)`` buckets (256 here) it is split
    into two factors, as the Reformer paper suggests, so that hashing a token costs about
    ``2 * sqrt(buckets)`` rotations instead of ``buckets / 2``.
    """
    exponent = max(1, (2 * (length // LSH_CHUNK_LENGTH)).bit_length() - 1)
    limit = 2 * max(int(math.sqrt(length // LSH_CHUNK_LENGTH)), LSH_CHUNK_LENGTH)
    if 2**exponent <= limit:
        return 2**exponent
    return [2 ** (exponent // 2), 2 ** (exponent - exponent // 2)]


def axial_pos_shape_for(length: int) -> tuple[int, int]:
    """Split ``length`` into two factors whose product is ``length``, the first as close to its square root as allowed."""
    first = int(math.isqrt(length))
    while length % first:
        first -= 1
    return first, length // first


def keys_per_query(
    kind: str,
    length: int,
    num_hashes: int,
    *,
    chunk_length: int | None = None,
    chunks_before: int = CHUNKS_BEFORE,
    chunks_after: int = 0,
) -> float:
    """Return the number of keys one query scores in one head of a layer of this attention kind.

    ``chunk_length`` defaults to the reference model's chunk length of the kind.
    """
    window_chunks = 1 + chunks_before + chunks_after
    if kind == "local":
        return window_chunks * min(chunk_length or LOCAL_CHUNK_LENGTH, length)
    if kind == "lsh":
        return num_hashes * window_chunks * min(chunk_length or LSH_CHUNK_LENGTH, length)
    if kind == "full":
        return (length + 1) / 2
    raise ValueError(f"Attention kind {kind!r} is invalid. Use 'local', 'lsh' or 'full'.")


def attention_layout(implementation: str, spec: dict, config=None) -> dict:
    """Return the terms of ``FLOP_FORMULA`` that depend on the model: c, heads * head_size, keys per query per layer.

    ``config`` is reformer_hf's built ``ReformerConfig``. When given, reformer_hf's terms come from
    it, so that ``--reformer-hf-option`` overrides are counted.
    """
    length, num_hashes = spec["length"], spec["num_hashes"]
    if implementation == "reformer_hf" and config is not None:
        return reformer_hf_attention_layout(config, length)
    if implementation == "full_attention":
        kinds, training_factor = ["full"] * spec["depth"], 6
    elif implementation == "reformer_pytorch":
        kinds, training_factor = ["lsh"] * spec["depth"], 8
    else:
        kinds, training_factor = attention_layers_for(spec["depth"]), 8
    return {
        "training_flop_factor": training_factor,
        "attention_width": NUM_HEADS * HEAD_SIZE,
        "keys_per_query": [keys_per_query(kind, length, num_hashes) for kind in kinds],
    }


def reformer_hf_attention_layout(config, length: int) -> dict:
    """Return ``attention_layout``'s terms read from a reformer_hf ``ReformerConfig``."""
    keys = []
    for kind in config.attention_layers:
        if kind == "lsh":
            keys.append(keys_per_query(
                "lsh", length, config.num_hashes, chunk_length=config.lsh_chunk_length,
                chunks_before=config.lsh_num_chunks_before, chunks_after=config.lsh_num_chunks_after,
            ))
        elif kind == "local":
            keys.append(keys_per_query(
                "local", length, config.num_hashes, chunk_length=config.local_chunk_length,
                chunks_before=config.local_num_chunks_before, chunks_after=config.local_num_chunks_after,
            ))
        else:
            keys.append(keys_per_query(kind, length, config.num_hashes))
    # A training batch of at most irreversible_max_tokens positions runs as a plain residual stack.
    reversible = config.reversible and BATCH_SIZE * length > config.irreversible_max_tokens
    return {
        "training_flop_factor": 8 if reversible else 6,
        "attention_width": config.num_attention_heads * config.attention_head_size,
        "keys_per_query": keys,
    }


def flops_per_token(layout: dict, non_embedding_parameters: int) -> dict:
    """Return the training and inference FLOPs per token of ``FLOP_FORMULA``."""
    training_factor = layout["training_flop_factor"]
    attention_forward = sum(4 * layout["attention_width"] * keys for keys in layout["keys_per_query"])
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
    """Build the reference model as ``reformer_hf.ReformerForCausalLM``.

    The spec's optional ``"reformer_hf_options"`` (a dict) override the reference's config fields
    or set other ``ReformerConfig`` parameters.

    Raises:
        ValueError: an option names no parameter of ``ReformerConfig``, or ``ReformerConfig``
            rejects a value.
    """
    from reformer_hf import ReformerConfig, ReformerForCausalLM

    options = spec.get("reformer_hf_options") or {}
    check_reformer_hf_options(options, ReformerConfig)
    config_fields = dict(
        **reformer_sizes(spec),
        attention_layers=attention_layers_for(spec["depth"]),
        lsh_chunk_length=LSH_CHUNK_LENGTH,
        local_chunk_length=LOCAL_CHUNK_LENGTH,
        axial_pos_shape=axial_pos_shape_for(spec["length"]),
        axial_pos_embds_dim=AXIAL_POS_EMBDS_DIM,
        feed_forward_chunk_size=feed_forward_chunk_for(spec["length"], spec),
    )
    config = ReformerConfig(**{**config_fields, **options})
    model = ReformerForCausalLM(config)
    return model, embedding_parameter_ids(model)


def check_reformer_hf_options(options: dict, config_class) -> None:
    """Raise ``ValueError`` for an option that is not a named parameter of ``config_class``.

    ``ReformerConfig`` stores unknown keyword arguments as attributes without complaint, so a
    misspelt option would otherwise run the reference model unchanged.
    """
    parameters = inspect.signature(config_class.__init__).parameters
    valid = sorted(name for name, parameter in parameters.items()
                   if parameter.kind is inspect.Parameter.KEYWORD_ONLY)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"reformer_hf option {key!r} is not a parameter of ReformerConfig. {hint}"
                f"Valid keys: {', '.join(valid)}."
            )


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
        chunk_size_feed_forward=feed_forward_chunk_for(spec["length"], spec),
        tie_word_embeddings=False,
    )
    model = ReformerModelWithLMHead(config)
    return model, embedding_parameter_ids(model)


def build_reformer_pytorch_model(spec: dict):
    """Build lucidrains' ``reformer_pytorch.ReformerLM`` with the reference sizes, wrapped to return a loss.

    The differences from the reference model are listed in the module docstring.

    Raises:
        ImportError: reformer_pytorch is not installed or fails to import.
        ValueError: the length is not a multiple of ``2 * bucket_size``.
    """
    from torch import nn
    from torch.nn import functional as F

    try:
        from reformer_pytorch import ReformerLM
    except ImportError as error:
        raise ImportError(
            f"reformer_pytorch failed to import ({type(error).__name__}: {error}). "
            "Install it with pip install reformer-pytorch, or the 'benchmarks' extra of reformer_hf."
        ) from error

    length = spec["length"]
    # bucket_size is the length of one sorted chunk, because ReformerLM hashes into length / bucket_size
    # buckets and splits the n_hashes * length sorted positions into n_hashes * length / bucket_size chunks.
    bucket_size = LSH_CHUNK_LENGTH
    if length % (2 * bucket_size):
        raise ValueError(
            f"reformer_pytorch needs a length that is a multiple of 2 * bucket_size = {2 * bucket_size}, "
            f"got {length}. Use a length such as {max(1, round(length / (2 * bucket_size))) * 2 * bucket_size}."
        )

    class ReformerPytorchLM(nn.Module):
        """``ReformerLM`` returning ``(logits, loss)``, with the next-token loss computed here."""

        def __init__(self):
            super().__init__()
            self.lm = ReformerLM(
                num_tokens=VOCAB_SIZE, dim=HIDDEN_SIZE, depth=spec["depth"], max_seq_len=length,
                heads=NUM_HEADS, dim_head=HEAD_SIZE, ff_mult=FEED_FORWARD_SIZE // HIDDEN_SIZE,
                ff_activation=nn.ReLU, bucket_size=bucket_size, n_hashes=spec["num_hashes"], causal=True,
                lsh_dropout=0.0, ff_dropout=0.0, post_attn_dropout=0.0, layer_dropout=0.0,
                weight_tie=False, ff_chunks=max(1, length // (feed_forward_chunk_for(length, spec) or length)), attn_chunks=1, n_local_attn_heads=0,
                # reverse_thres=0 keeps every length reversible, the package's default.
                reverse_thres=0,
                axial_position_emb=True, axial_position_shape=axial_pos_shape_for(length),
            )

        def forward(self, input_ids, labels=None):
            logits = self.lm(input_ids)
            if labels is None:
                return logits, None
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB_SIZE), labels[:, 1:].reshape(-1))
            return logits, loss

    model = ReformerPytorchLM()
    embedding_ids = {id(model.lm.token_emb.weight), *(id(p) for p in model.lm.pos_emb.parameters())}
    return model, embedding_ids


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


MODEL_BUILDERS = {
    "reformer_hf": build_reformer_hf_model,
    "transformers": build_transformers_model,
    "reformer_pytorch": build_reformer_pytorch_model,
    "full_attention": lambda spec: build_full_attention_model(spec["depth"], spec["length"]),
}


def autocast_for(spec: dict):
    """Return the context that runs forward passes in the spec's dtype: bfloat16 autocast, or nothing for float32."""
    import torch

    if spec.get("dtype", "float32") == "bfloat16":
        return torch.autocast(spec.get("device", "cpu"), dtype=torch.bfloat16)
    return contextlib.nullcontext()


def median_seconds(step, repeats: int, synchronize, warmup: int = 1) -> tuple[float, list[float]]:
    """Run ``step`` ``warmup`` times, then ``repeats`` times, and return the median and all times in seconds."""
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def run_point(spec: dict) -> dict:
    """Build one model and time its training steps and inference forward passes."""
    import torch

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    implementation = spec["implementation"]
    if implementation not in MODEL_BUILDERS:
        raise ValueError(f"Implementation {implementation!r} is invalid. Use one of {', '.join(IMPLEMENTATIONS)}.")
    device = torch.device(spec.get("device", "cpu"))
    # NOTE: the CUDA path (device "cuda") has not been run yet. Every recorded number is from CPUs.
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if on_cuda else (lambda: None)

    model, embedding_ids = MODEL_BUILDERS[implementation](spec)
    model.to(device)
    parameters = sum(p.numel() for p in model.parameters())
    non_embedding_parameters = sum(p.numel() for p in model.parameters() if id(p) not in embedding_ids)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    input_ids = torch.randint(3, VOCAB_SIZE, (BATCH_SIZE, spec["length"]), device=device)
    rss_after_build = current_rss_bytes()
    cuda_after_build = torch.cuda.memory_allocated(device) if on_cuda else None
    losses = []

    def loss_of(output):
        return output[1] if isinstance(output, tuple) else output.loss

    def training_step():
        optimizer.zero_grad(set_to_none=True)
        # Only the forward pass runs under autocast, as torch's autocast documentation recommends.
        # NOTE: transformers' Reformer (5.25) and reformer_pytorch (1.4.4) recompute each layer in
        # their reversible backward pass in float32, because neither re-enters autocast there.
        # reformer_hf does re-enter it.
        with autocast_for(spec):
            loss = loss_of(model(input_ids, labels=input_ids))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    def inference_step():
        with torch.no_grad(), autocast_for(spec):
            model(input_ids)

    model.train()
    warmup = spec.get("warmup", 1)
    training_seconds, training_times = median_seconds(training_step, spec["steps"], synchronize, warmup)
    final_loss = losses[-1]
    peak_after_training = peak_rss_bytes()
    live_tensor_peak = None
    if spec.get("track_tensors"):
        # One more training step under a tracker of every tensor that operations create.
        with LiveTensorTracker() as tracker:
            training_step()
        live_tensor_peak = tracker.peak_bytes
    profile = None
    if spec.get("profile"):
        profile = profile_training_step(training_step)
    if spec.get("inference", True):
        model.eval()
        inference_seconds, inference_times = median_seconds(inference_step, spec["steps"], synchronize, warmup)
    else:
        inference_seconds, inference_times = math.nan, []

    tokens = BATCH_SIZE * spec["length"]
    layout = attention_layout(implementation, spec, getattr(model, "config", None))
    flops = flops_per_token(layout, non_embedding_parameters)
    peak = peak_rss_bytes()
    record = {
        "status": "ok",
        "parameters": parameters,
        "non_embedding_parameters": non_embedding_parameters,
        "training_flop_factor": layout["training_flop_factor"],
        "keys_per_query": layout["keys_per_query"],
        "training_step_seconds": training_seconds,
        "training_step_times": training_times,
        "inference_seconds": inference_seconds,
        "inference_times": inference_times,
        "training_tokens_per_second": tokens / training_seconds,
        "inference_tokens_per_second": tokens / inference_seconds,
        "training_seconds_per_token": training_seconds / tokens,
        "inference_seconds_per_token": inference_seconds / tokens,
        "final_loss": final_loss,
        "peak_rss_bytes": peak,
        "training_peak_rss_bytes": peak_after_training,
        "training_live_tensor_peak_bytes": live_tensor_peak,
        "training_profile": profile,
        "rss_after_build_bytes": rss_after_build,
        "rss_growth_bytes": peak - rss_after_build,
        "training_flops_per_token": flops["training"],
        "inference_flops_per_token": flops["inference"],
        "training_gflops_per_second": flops["training"] * tokens / training_seconds / 1e9,
        "inference_gflops_per_second": flops["inference"] * tokens / inference_seconds / 1e9,
    }
    if on_cuda:
        record["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device)
        record["cuda_after_build_bytes"] = cuda_after_build
    return record


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


def profile_training_step(training_step, top: int = 15) -> dict:
    """Run one training step under torch's profiler and return its operations with the most self CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        training_step()
    seconds = time.perf_counter() - start
    averages = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in averages) / 1e6
    return {
        "step_seconds_under_profiler": seconds,
        "self_cpu_seconds_total": total,
        "operations": [
            {"name": event.key, "calls": event.count, "self_cpu_seconds": event.self_cpu_time_total / 1e6}
            for event in averages[:top]
        ],
    }


class LiveTensorTracker:
    """Track the bytes of live tensor storages that operations create, and their peak.

    A ``TorchDispatchMode`` intercepts every aten operation, and each new storage counts until it
    is freed. Unlike the resident set size, the count does not depend on how the memory
    allocator reuses or returns freed memory. Tensors that existed before the tracker started
    (weights, optimizer state, inputs) are not counted.
    """

    def __enter__(self):
        import weakref

        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self
        self.live, self.current, self.peak_bytes = {}, 0, 0

        def release(key: int, size: int) -> None:
            if tracker.live.pop(key, None) is not None:
                tracker.current -= size

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                outputs = func(*args, **(kwargs or {}))
                for output in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
                    if not isinstance(output, torch.Tensor) or output.device.type == "meta":
                        continue
                    storage = output.untyped_storage()
                    key, size = storage.data_ptr(), storage.nbytes()
                    if size == 0 or key in tracker.live:
                        continue
                    tracker.live[key] = size
                    tracker.current += size
                    tracker.peak_bytes = max(tracker.peak_bytes, tracker.current)
                    weakref.finalize(storage, release, key, size)
                return outputs

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc_info):
        self.mode.__exit__(*exc_info)
        return False


ALLOCATORS = {
    "default": None,
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}


def allocator_library(name: str) -> str | None:
    """Return the path of the shared library of allocator ``name``, None for the default one.

    Raises:
        FileNotFoundError: when the library is not installed in a standard library folder.
    """
    if ALLOCATORS[name] is None:
        return None
    folders = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    for folder in folders:
        for file_name in ALLOCATORS[name]:
            if os.path.exists(os.path.join(folder, file_name)):
                return os.path.join(folder, file_name)
    raise FileNotFoundError(
        f"Allocator {name!r} needs one of {', '.join(ALLOCATORS[name])} in {', '.join(folders)}. "
        f"Install it (Debian: apt-get install libtcmalloc-minimal4 or libjemalloc2) or use --allocator default."
    )


def thread_environment(threads: int, allocator: str = "default") -> dict:
    environment = dict(os.environ)
    library = allocator_library(allocator)
    if library is not None:
        environment["LD_PRELOAD"] = library
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
            command, cwd=REPO_ROOT, env=thread_environment(spec["threads"], spec.get("allocator", "default")),
            capture_output=True, text=True,
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


def measure_matmul_peak(threads: int, size: int, repeats: int, device: str = "cpu") -> dict:
    """Return the median GFLOP/s of ``size`` x ``size`` float32 and bfloat16 matmuls on ``device``.

    ``threads`` sets torch's intra-op threads while they run.
    """
    import torch

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    peaks = {"threads": threads, "size": size, "repeats": repeats, "device": device}
    try:
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn(size, size, device=device).to(dtype)
            b = torch.randn(size, size, device=device).to(dtype)
            torch.matmul(a, b)  # warm-up
            synchronize()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                torch.matmul(a, b)
                synchronize()
                times.append(time.perf_counter() - start)
            peaks[f"{str(dtype).removeprefix('torch.')}_gflops_per_second"] = 2 * size**3 / statistics.median(times) / 1e9
    finally:
        torch.set_num_threads(previous_threads)
    return peaks


def add_fraction_of_peak(point: dict, matmul_peaks: list[dict]) -> None:
    """Add the point's training and inference GFLOP/s as fractions of the matmul peak of its dtype and thread count."""
    if point["status"] != "ok":
        return
    (peak,) = [peak for peak in matmul_peaks if peak["threads"] == point["threads"]]
    peak_gflops = peak[f"{point['dtype']}_gflops_per_second"]
    point["training_fraction_of_peak"] = point["training_gflops_per_second"] / peak_gflops
    point["inference_fraction_of_peak"] = point["inference_gflops_per_second"] / peak_gflops


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


def machine_info(device: str = "cpu") -> dict:
    """Describe the machine and software the numbers come from."""
    info = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "reformer_hf": package_version("reformer_hf") or package_version("reformer-hf"),
        "reformer_pytorch": package_version("reformer-pytorch"),
        "memory_total_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
    }
    if device == "cuda":
        import torch

        info["cuda_device"] = torch.cuda.get_device_name()
        info["cuda_memory_total_bytes"] = torch.cuda.get_device_properties(0).total_memory
    return info


def style_length_axis(axis, ylabel: str, title: str) -> None:
    """Give a plot against sequence length log-log axes, labels, a grid and a legend when it has lines."""
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xlabel("sequence length (tokens)")
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, which="both", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:  # no lines when every point failed
        axis.legend(fontsize=7)


def write_plot(path: Path, points: list[dict]) -> None:
    """Plot time per token and peak RSS against length, log-log, one line per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def group_of(point):
        return point["implementation"], point["depth"], point["num_hashes"], point["threads"], point["dtype"]

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = sorted({group_of(p) for p in points})
    show_settings = len({g[1:4] for g in groups}) > 1
    show_dtype = len({g[4] for g in groups}) > 1
    for group in groups:
        ok = sorted((p for p in points if group_of(p) == group and p["status"] == "ok"), key=lambda p: p["length"])
        if not ok:
            continue
        label = group[0] + (f" {group[4]}" if show_dtype else "")
        label += f" (depth {group[1]}, {group[2]} hashes, {group[3]} threads)" if show_settings else ""
        lengths = [p["length"] for p in ok]
        (line,) = time_axis.plot(lengths, [p["training_seconds_per_token"] * 1e6 for p in ok], "o-",
                                 label=f"{label}, training step")
        time_axis.plot(lengths, [p["inference_seconds_per_token"] * 1e6 for p in ok], "s--",
                       color=line.get_color(), label=f"{label}, inference")
        memory_axis.plot(lengths, [p["peak_rss_bytes"] / 2**20 for p in ok], "o-", color=line.get_color(),
                         label=f"{label}, peak RSS")
        if all("cuda_peak_bytes" in p for p in ok):
            memory_axis.plot(lengths, [p["cuda_peak_bytes"] / 2**20 for p in ok], "s--", color=line.get_color(),
                             label=f"{label}, CUDA peak allocated")
    style_length_axis(time_axis, "time per token (µs)", "Time per token (median)")
    style_length_axis(memory_axis, "peak memory of the worker (MiB)", "Peak memory")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_option(text: str) -> tuple[str, object]:
    """Parse one ``KEY=VALUE`` of ``--reformer-hf-option``: VALUE as JSON where it is valid JSON, else as a string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(
            f"invalid option {text!r}: expected KEY=VALUE, for example num_hashes=2 or attention_layers='[\"lsh\"]'."
        )
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


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
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=["float32"],
                        help="precision of the forward passes. bfloat16 runs them under autocast while the "
                             "weights and optimizer stay float32 (default float32).")
    parser.add_argument("--reformer-hf-option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="override or add a ReformerConfig field of the reformer_hf model. VALUE is parsed as "
                             "JSON where valid, else kept as a string. Repeatable.")
    parser.add_argument("--allocator", choices=tuple(ALLOCATORS), default="default",
                        help="memory allocator of the workers: default (the C library's), or tcmalloc or jemalloc "
                             "preloaded with LD_PRELOAD (default: default).")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="device the workers run on. cuda also records the peak of "
                             "torch.cuda.max_memory_allocated (default cpu).")
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
    args.reformer_hf_options = dict(args.reformer_hf_option)
    try:
        allocator_library(args.allocator)
    except FileNotFoundError as error:
        parser.error(str(error))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda needs a CUDA GPU, but torch.cuda.is_available() is False here "
                         f"(torch {torch.__version__}). Use --device cpu.")
    return args


def print_point(point: dict) -> None:
    """Print one line on a finished point: its rates and peak RSS, or its status and message."""
    if point["status"] == "ok":
        summary = (f"{point['training_tokens_per_second']:.0f} training tokens/s, "
                   f"{point['inference_tokens_per_second']:.0f} inference tokens/s, "
                   f"peak RSS {point['peak_rss_bytes'] / 2**20:.0f} MiB")
    else:
        summary = point.get("message", "")[:200]
    print(f"{point['implementation']} length {point['length']} depth {point['depth']} hashes {point['num_hashes']} "
          f"threads {point['threads']} {point['dtype']}: {point['status']}, {summary}", flush=True)


def settings_of(args: argparse.Namespace) -> dict:
    """Return the run's settings and the reference model's sizes for the report."""
    return {
        "lengths": args.lengths, "depths": args.depths, "num_hashes": args.num_hashes, "threads": args.threads,
        "implementations": args.implementations, "dtypes": args.dtypes, "device": args.device,
        "allocator": args.allocator,
        "steps": args.steps, "timeout_seconds": args.timeout,
        "reformer_hf_options": args.reformer_hf_options,
        "batch_size": BATCH_SIZE, "hidden_size": HIDDEN_SIZE, "num_attention_heads": NUM_HEADS,
        "attention_head_size": HEAD_SIZE, "feed_forward_size": FEED_FORWARD_SIZE, "vocab_size": VOCAB_SIZE,
        "local_chunk_length": LOCAL_CHUNK_LENGTH, "lsh_chunk_length": LSH_CHUNK_LENGTH,
        "chunks_before": CHUNKS_BEFORE, "axial_pos_embds_dim": list(AXIAL_POS_EMBDS_DIM),
        "num_buckets": {str(length): num_buckets_for(length) for length in args.lengths},
        "axial_pos_shape": {str(length): list(axial_pos_shape_for(length)) for length in args.lengths},
        "reformer_pytorch": {
            "attention": "LSH in every layer", "bucket_size": LSH_CHUNK_LENGTH,
            "num_buckets": {str(length): length // LSH_CHUNK_LENGTH for length in args.lengths},
            "axial_position_emb": "summed, 2 tables of width 256", "ff_activation": "ReLU",
        },
        "optimizer": "AdamW (lr 1e-4)",
        "autocast": "bfloat16 points run the forward passes under torch.autocast(dtype=torch.bfloat16); "
                    "weights, gradients and optimizer state stay float32",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker)

    start = time.perf_counter()
    matmul_repeats = 1 if args.quick else 5
    matmul_peaks = [measure_matmul_peak(threads, args.matmul_size, matmul_repeats, args.device)
                    for threads in args.threads]
    points = []
    # The implementation varies fastest, so that the implementations are interleaved at each length
    # and dtype and drift of the machine affects all of them alike.
    grid = itertools.product(
        args.threads, args.depths, args.num_hashes, args.lengths, args.dtypes, args.implementations
    )
    for threads, depth, num_hashes, length, dtype, implementation in grid:
        spec = {"implementation": implementation, "length": length, "depth": depth, "num_hashes": num_hashes,
                "threads": threads, "steps": args.steps, "dtype": dtype, "device": args.device,
                "allocator": args.allocator}
        if implementation == "reformer_hf":
            spec["reformer_hf_options"] = args.reformer_hf_options
        point = measure_point(spec, args.timeout)
        add_fraction_of_peak(point, matmul_peaks)
        points.append(point)
        print_point(point)

    report = {
        "machine": machine_info(args.device),
        "command": [Path(sys.executable).name, *sys.argv],
        "quick": args.quick,
        "settings": settings_of(args),
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
