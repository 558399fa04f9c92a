"""Chunk arithmetic shared by LSH and local attention.

Both attention kinds split a sequence into chunks of equal length and let each chunk attend to itself
and to a fixed number of neighbouring chunks. By default the neighbours never wrap around: the first
chunk has no chunk before it and the last chunk none after it, so the missing slots are filled and
masked out. ``config.chunk_window_wraps`` selects transformers' cyclic windows instead.

Shape legend: c chunks, w chunk length, k = (before + 1 + after) * w keys per chunk window.
"""

import math
from collections.abc import Callable, Sequence

import torch


def padded_length(length: int, multiple: int) -> int:
    """Round ``length`` up to a multiple of ``multiple``."""
    return math.ceil(length / multiple) * multiple


def pad_to_multiple(tensor: torch.Tensor, multiple: int, dim: int, value=0) -> torch.Tensor:
    """Pad ``tensor`` at the end of ``dim`` with ``value`` up to a multiple of ``multiple``."""
    length = tensor.shape[dim]
    missing = padded_length(length, multiple) - length
    if missing == 0:
        return tensor
    pad_shape = list(tensor.shape)
    pad_shape[dim] = missing
    padding = torch.full(pad_shape, value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, padding], dim=dim)


def split_into_chunks(tensor: torch.Tensor, chunk_length: int, dim: int) -> torch.Tensor:
    """Split ``dim`` of length ``n`` into two dims ``(n // chunk_length, chunk_length)``."""
    dim = dim % tensor.dim()
    length = tensor.shape[dim]
    if length % chunk_length:
        raise ValueError(f"internal error: length {length} is not a multiple of chunk length {chunk_length}")
    new_shape = tensor.shape[:dim] + (length // chunk_length, chunk_length) + tensor.shape[dim + 1 :]
    return tensor.reshape(new_shape)


def look_adjacent(
    chunks: torch.Tensor, num_before: int, num_after: int, chunk_dim: int, fill_value, wrap: bool = False
) -> torch.Tensor:
    """Concatenate each chunk with its neighbours, without wrapping around unless ``wrap`` is set.

    Args:
        chunks: Tensor whose ``chunk_dim`` indexes chunks and whose next dim indexes positions in a
            chunk, for example ``[b, h, c, w, d]`` with ``chunk_dim=2``.
        num_before: Number of earlier chunks to prepend (look-back).
        num_after: Number of later chunks to append (look-ahead).
        chunk_dim: The chunk dim.
        fill_value: Value of the slots that fall before the first or after the last chunk. Callers
            pass a value that their masks recognise, such as a position of -1.
        wrap: Take the neighbours cyclically instead, as transformers' Reformer does: the chunk
            before the first is the last. ``fill_value`` is then unused.

    Returns:
        ``[..., c, (num_before + 1 + num_after) * w, ...]``: for chunk ``i``, chunks
        ``i - num_before`` to ``i + num_after`` in order.
    """
    chunk_dim = chunk_dim % chunks.dim()
    if num_before == 0 and num_after == 0:
        return chunks
    num_chunks = chunks.shape[chunk_dim]
    if wrap:
        windows = [chunks.roll(-offset, dims=chunk_dim) for offset in range(-num_before, num_after + 1)]
        stacked = torch.stack(windows, dim=chunk_dim + 1)
        return stacked.reshape(stacked.shape[: chunk_dim + 1] + (-1,) + stacked.shape[chunk_dim + 3 :])
    fill_shape = list(chunks.shape)
    parts = []
    if num_before:
        fill_shape[chunk_dim] = num_before
        parts.append(torch.full(fill_shape, fill_value, dtype=chunks.dtype, device=chunks.device))
    parts.append(chunks)
    if num_after:
        fill_shape[chunk_dim] = num_after
        parts.append(torch.full(fill_shape, fill_value, dtype=chunks.dtype, device=chunks.device))
    extended = torch.cat(parts, dim=chunk_dim)  # [..., num_before + c + num_after, w, ...]

    windows = [extended.narrow(chunk_dim, offset, num_chunks) for offset in range(num_before + 1 + num_after)]
    # Stack the shifted views next to the position dim and merge them into one key axis.
    stacked = torch.stack(windows, dim=chunk_dim + 1)  # [..., c, before+1+after, w, ...]
    new_shape = stacked.shape[: chunk_dim + 1] + (-1,) + stacked.shape[chunk_dim + 3 :]
    return stacked.reshape(new_shape)


# Logits are computed in float32 whatever the model's dtype, so these values are safe under fp16/bf16
# weights. A masked key gets MASK_VALUE. Under shared query-key attention a query's own key gets the
# milder SELF_MASK_VALUE, so that it wins only when every other key is masked.
MASK_VALUE = -1e9
SELF_MASK_VALUE = -1e5


# Below this, exp(x) is under 2e-35 and is taken as zero. torch's CPU exp is 7 to 20 times slower on
# arguments under about -88, where float32 results underflow, and masked logits sit there.
EXP_CUTOFF = -80.0


class _SoftmaxWithLogSumExp(torch.autograd.Function):
    """Softmax over the last dim that also returns the log-sum-exp, with one exp per element.

    A row whose logits are all at most ``MASK_VALUE / 2`` (every key masked) gets zero
    probabilities when ``zero_masked_rows`` is set. The backward pass reuses the probabilities
    instead of calling exp again.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, zero_masked_rows: bool) -> tuple[torch.Tensor, torch.Tensor]:
        row_max = logits.amax(dim=-1, keepdim=True)
        probs = logits - row_max
        underflow = probs < EXP_CUTOFF
        probs.clamp_min_(EXP_CUTOFF).exp_().masked_fill_(underflow, 0.0)
        total = probs.sum(dim=-1, keepdim=True)
        probs.div_(total)
        logsumexp = row_max + torch.log(total)
        if zero_masked_rows:
            probs.masked_fill_(row_max <= MASK_VALUE / 2, 0.0)
        ctx.save_for_backward(probs)
        return probs, logsumexp

    @staticmethod
    def backward(ctx, grad_probs, grad_logsumexp):
        (probs,) = ctx.saved_tensors
        # d lse / d logits = probs, and the softmax Jacobian gives probs * (g - sum(g * probs)).
        if grad_probs is None:
            grad_logits = torch.zeros_like(probs)
        else:
            grad_logits = grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True)
        if grad_logsumexp is not None:
            grad_logits.add_(grad_logsumexp)
        return grad_logits.mul_(probs), None


def fused_attention(
    query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, logit_bias: torch.Tensor, dropout: torch.nn.Module
) -> torch.Tensor | None:
    """Compute ``attend``'s outputs with ``scaled_dot_product_attention``, or return None where it cannot.

    The fused kernel never forms the ``[..., w, k]`` probabilities. On one CPU thread, with windows
    of 128 queries and 256 keys, its forward pass took 0.28 times the time of ``attend``'s softmax
    path, and forward plus backward 0.6 times. It is skipped under active dropout, whose masks the reversible backward pass
    must replay from torch's generator, and under float16, where the mask value -1e9 overflows.
    """
    if dropout.training and dropout.p > 0:
        return None
    dtype = query.dtype
    if torch.is_autocast_enabled(query.device.type):
        dtype = torch.get_autocast_dtype(query.device.type)
    if dtype not in (torch.float32, torch.bfloat16):
        return None
    lead, w, k = query.shape[:-2], query.shape[-2], keys.shape[-2]
    # One batch of windows: [1, windows, w, d] queries against [1, windows, k, d] keys.
    bias = logit_bias.expand(*lead, w, k)
    outputs = torch.nn.functional.scaled_dot_product_attention(
        query.reshape(1, -1, w, query.shape[-1]),
        keys.reshape(1, -1, k, keys.shape[-1]),
        values.reshape(1, -1, k, values.shape[-1]),
        attn_mask=bias.reshape(1, -1, w, k).to(dtype),
        scale=1.0,
    )
    # A query whose keys are all masked gets zeros, as in attend.
    has_keys = logit_bias.amax(dim=-1, keepdim=True).expand(*lead, w, 1) > MASK_VALUE / 2
    return outputs.reshape(*lead, w, values.shape[-1]) * has_keys.to(outputs.dtype)


def attend(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    logit_bias: torch.Tensor,
    dropout: torch.nn.Module,
    replace_masked: bool = False,
    need_logsumexp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attend each query to its window of keys.

    Args:
        query: ``[..., w, d]``, already scaled.
        keys: ``[..., k, d]``.
        values: ``[..., k, d]``.
        logit_bias: ``[..., w, k]`` added to the float32 logits: 0 where allowed, a mask value
            elsewhere.
        dropout: Dropout applied to the attention probabilities.
        replace_masked: Replace masked logits by their mask value instead of adding it, as
            transformers' Reformer does. Then a query that can attend only to itself gets a
            log-sum-exp of exactly ``SELF_MASK_VALUE``, and a query whose keys are all masked
            gets what transformers gives it. Otherwise such a query gets zeros.
        need_logsumexp: Return the log-sum-exp. Without it (and without ``replace_masked``) the
            attention may run in torch's fused ``scaled_dot_product_attention``, and ``None``
            takes the log-sum-exp's place.

    Returns:
        The outputs ``[..., w, d]`` in the dtype of ``values``, and the float32 log-sum-exp of each
        query's logits ``[..., w]``, which LSH attention needs to combine hash rounds.
    """
    if not (replace_masked or need_logsumexp):
        fused = fused_attention(query, keys, values, logit_bias, dropout)
        if fused is not None:
            return fused, None
    logits = torch.matmul(query.float(), keys.float().transpose(-1, -2))
    if replace_masked:
        # transformers' order of operations: its float32 rounding at -1e9 gives a query whose keys
        # are all masked the sum of their values, and the parity tests compare against that.
        logits = torch.where(logit_bias == 0, logits, logit_bias)
        logsumexp = torch.logsumexp(logits, dim=-1, keepdim=True)
        probs = torch.exp(logits - logsumexp)
    else:
        # A masked logit gets no gradient: its probability is exactly zero, or its row is zeroed.
        # Out of place: under autocast the matmul returns bf16 or fp16 logits, and adding the float32
        # bias promotes them to float32, where the mask values fit.
        probs, logsumexp = _SoftmaxWithLogSumExp.apply(logits + logit_bias, True)
    probs = dropout(probs)
    outputs = torch.matmul(probs.to(values.dtype), values)
    return outputs, logsumexp.squeeze(-1)


class _Groups:
    """Slicing plan of ``attend_in_groups``: the ranges of query chunks and each input's slice.

    An input marked as windowed is sliced with ``before`` chunks more in front and ``after`` more
    behind each range, where the sequence has them, so that the group can build its own windows.
    """

    def __init__(self, num_chunks: int, group_chunks: int, before: int, after: int, dims: list[int], windowed: list[bool]):
        self.num_chunks, self.before, self.after = num_chunks, before, after
        self.dims, self.windowed = dims, windowed
        size = group_chunks if 0 < group_chunks < num_chunks else num_chunks
        self.ranges = [(start, min(size, num_chunks - start)) for start in range(0, num_chunks, size)]

    def input_range(self, index: int, start: int, size: int) -> tuple[int, int]:
        if not self.windowed[index]:
            return start, size
        low = max(0, start - self.before)
        return low, min(self.num_chunks, start + size + self.after) - low

    def slices(self, tensors, start: int, size: int) -> list:
        parts = []
        for index, tensor in enumerate(tensors):
            if tensor is None:
                parts.append(None)
            else:
                low, length = self.input_range(index, start, size)
                parts.append(tensor.narrow(self.dims[index], low, length))
        return parts

    def window_function(self, start: int, size: int) -> Callable:
        """Return ``window(chunks, fill_value, chunk_dim)`` for a windowed slice of this range.

        It gives each query chunk of the range its window of ``before + 1 + after`` chunks, with
        ``fill_value`` where the window passes an end of the sequence.
        """
        offset = start - max(0, start - self.before)

        def window(chunks: torch.Tensor, fill_value, chunk_dim: int) -> torch.Tensor:
            if fill_value is None:
                # The group's own chunks, without their neighbours.
                return chunks if chunks.shape[chunk_dim] == size else chunks.narrow(chunk_dim, offset, size)
            windows = look_adjacent(chunks, self.before, self.after, chunk_dim, fill_value)
            if offset == 0 and windows.shape[chunk_dim] == size:
                return windows
            return windows.narrow(chunk_dim, offset, size)

        return window


def _rng_states(device: torch.device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


class _GroupedAttention(torch.autograd.Function):
    """Attention over groups of chunks that keeps only its inputs and recomputes each group in backward.

    The forward pass runs every group without gradients and saves torch's random state before each,
    so that the backward pass redraws the same dropout masks. The backward pass then recomputes one
    group at a time with gradients and adds its input gradients into one tensor per input.
    """

    @staticmethod
    def forward(ctx, compute, groups, output_chunk_dim, *tensors):
        device = next(tensor.device for tensor in tensors if tensor is not None)
        outputs, logsumexps, states = [], [], []
        for start, size in groups.ranges:
            states.append(_rng_states(device))
            group_outputs, group_logsumexp = compute(groups.window_function(start, size), *groups.slices(tensors, start, size))
            outputs.append(group_outputs)
            logsumexps.append(group_logsumexp)
        ctx.compute, ctx.groups, ctx.output_chunk_dim = compute, groups, output_chunk_dim
        ctx.states, ctx.device = states, device
        ctx.has_logsumexp = logsumexps[0] is not None
        ctx.needs_grad = [t is not None and t.requires_grad for t in tensors]
        ctx.save_for_backward(*tensors)
        outputs = torch.cat(outputs, dim=output_chunk_dim)
        if not ctx.has_logsumexp:
            return outputs, None
        return outputs, torch.cat(logsumexps, dim=output_chunk_dim)

    @staticmethod
    def backward(ctx, grad_outputs, grad_logsumexp):
        tensors = ctx.saved_tensors
        groups, dim = ctx.groups, ctx.output_chunk_dim
        grads = [torch.zeros_like(t) if needed else None for t, needed in zip(tensors, ctx.needs_grad)]
        devices = [ctx.device] if ctx.device.type == "cuda" else []
        for (start, size), (cpu_state, cuda_state) in zip(groups.ranges, ctx.states):
            parts = []
            for part, needed in zip(groups.slices(tensors, start, size), ctx.needs_grad):
                if needed:
                    part = part.detach().requires_grad_()
                parts.append(part)
            with torch.random.fork_rng(devices=devices, device_type=ctx.device.type), torch.enable_grad():
                torch.set_rng_state(cpu_state)
                if cuda_state is not None:
                    torch.cuda.set_rng_state(cuda_state, ctx.device)
                group_outputs, group_logsumexp = ctx.compute(groups.window_function(start, size), *parts)
            results, result_grads = [], []
            if grad_outputs is not None:
                results.append(group_outputs)
                result_grads.append(grad_outputs.narrow(dim, start, size))
            if ctx.has_logsumexp and grad_logsumexp is not None:
                results.append(group_logsumexp)
                result_grads.append(grad_logsumexp.narrow(dim, start, size))
            inputs = [part for part, needed in zip(parts, ctx.needs_grad) if needed]
            part_grads = iter(torch.autograd.grad(results, inputs, result_grads, allow_unused=True))
            for index, needed in enumerate(ctx.needs_grad):
                if needed:
                    part_grad = next(part_grads)
                    if part_grad is not None:
                        low, length = groups.input_range(index, start, size)
                        grads[index].narrow(groups.dims[index], low, length).add_(part_grad)
        return None, None, None, *grads


def attend_in_groups(
    compute: Callable[..., tuple[torch.Tensor, torch.Tensor | None]],
    chunked: Sequence[tuple[torch.Tensor | None, int, bool]],
    output_chunk_dim: int,
    group_chunks: int,
    num_before: int = 0,
    num_after: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``compute`` over groups of ``group_chunks`` query chunks and concatenate its results.

    The ``[..., w, k]`` tensors of attention (masks, logits, probabilities) take ``w * k`` values per
    chunk, far more than the ``[..., w, d]`` inputs and outputs, and the key and value windows
    repeat every chunk ``before + 1 + after`` times. Computed in groups, both exist for one group at
    a time. When gradients are needed, the groups run inside one autograd function that keeps only
    the inputs and recomputes each group, with the same dropout masks, just before its backward
    pass. That costs one more forward pass of the windows.

    Args:
        compute: Called as ``compute(window, *parts)`` with one slice of each ``chunked`` tensor
            (``None`` stays ``None``). ``window(part, fill_value, chunk_dim)`` turns a windowed
            part into the windows of the group's query chunks, ``[..., g, k, ...]``, and with
            ``fill_value=None`` into the query chunks themselves, ``[..., g, w, ...]``. It returns
            outputs ``[..., g, w, d]`` and a log-sum-exp ``[..., g, w]`` or ``None``, both with
            their chunk dim at ``output_chunk_dim``. It must not read tensors that need gradients
            other than its arguments.
        chunked: ``(tensor, chunk_dim, windowed)`` triples whose ``chunk_dim`` indexes the same
            chunks. A windowed tensor's slice also contains the neighbouring chunks its windows need.
        output_chunk_dim: Chunk dim of both results.
        group_chunks: Query chunks per group; 0, or at least the number of chunks, runs one group.
        num_before, num_after: Neighbouring chunks in each window.

    Returns:
        ``compute``'s results over all chunks. Without dropout they equal one call on the whole
        tensors up to float rounding; with dropout each group draws its own masks.
    """
    tensors = [tensor for tensor, _, _ in chunked]
    num_chunks = next(tensor.shape[dim] for tensor, dim, _ in chunked if tensor is not None)
    groups = _Groups(
        num_chunks, group_chunks, num_before, num_after, [dim for _, dim, _ in chunked], [w for _, _, w in chunked]
    )
    if len(groups.ranges) == 1:
        return compute(groups.window_function(0, num_chunks), *tensors)
    if torch.is_grad_enabled() and any(tensor is not None and tensor.requires_grad for tensor in tensors):
        return _GroupedAttention.apply(compute, groups, output_chunk_dim, *tensors)
    outputs, logsumexps = [], []
    for start, size in groups.ranges:
        group_outputs, group_logsumexp = compute(groups.window_function(start, size), *groups.slices(tensors, start, size))
        outputs.append(group_outputs)
        logsumexps.append(group_logsumexp)
    logsumexp = None if logsumexps[0] is None else torch.cat(logsumexps, dim=output_chunk_dim)
    return torch.cat(outputs, dim=output_chunk_dim), logsumexp
