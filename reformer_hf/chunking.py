"""Chunk arithmetic shared by LSH and local attention.

Both attention kinds split a sequence into chunks of equal length and let each chunk attend to itself
and to a fixed number of neighbouring chunks. By default the neighbours never wrap around: the first
chunk has no chunk before it and the last chunk none after it, so the missing slots are filled and
masked out. ``config.chunk_window_wraps`` selects transformers' cyclic windows instead.

Shape legend: c chunks, w chunk length, k = (before + 1 + after) * w keys per chunk window.
"""

import math

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


def attend(
    query: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    logit_bias: torch.Tensor,
    dropout: torch.nn.Module,
    replace_masked: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attend each query to its window of keys.

    Args:
        query: ``[..., w, d]``, already scaled.
        keys: ``[..., k, d]``.
        values: ``[..., k, d]``.
        logit_bias: ``[..., w, k]`` added to the float32 logits: 0 where allowed, a mask value
            elsewhere. Masked logits (at most ``MASK_VALUE / 2``) are set to ``MASK_VALUE``.
        dropout: Dropout applied to the attention probabilities.
        replace_masked: Replace masked logits by their mask value instead of adding it, as
            transformers' Reformer does. Then a query that can attend only to itself gets a
            log-sum-exp of exactly ``SELF_MASK_VALUE``, and a query whose keys are all masked
            gets the average of their values. Otherwise such a query gets zeros.

    Returns:
        The outputs ``[..., w, d]`` in the dtype of ``values``, and the float32 log-sum-exp of each
        query's logits ``[..., w]``, which LSH attention needs to combine hash rounds.
    """
    logits = torch.matmul(query.float(), keys.float().transpose(-1, -2))
    if replace_masked:
        logits = torch.where(logit_bias == 0, logits, logit_bias)
    else:
        # Masked keys get exactly MASK_VALUE rather than logit + MASK_VALUE: float32 rounds the sum to
        # MASK_VALUE anyway, and this way no gradient reaches logits the outputs never depended on.
        masked = logit_bias <= MASK_VALUE / 2
        logits = torch.where(masked, MASK_VALUE, logits + logit_bias)
    logsumexp = torch.logsumexp(logits, dim=-1, keepdim=True)
    probs = torch.exp(logits - logsumexp)
    if not replace_masked:
        # A query whose keys are all masked (a padded position) gets zeros rather than the average
        # of its window's values. transformers' Reformer returns that average, hence replace_masked.
        probs = probs.masked_fill(masked.all(dim=-1, keepdim=True), 0.0)
    probs = dropout(probs)
    outputs = torch.matmul(probs.to(values.dtype), values)
    return outputs, logsumexp.squeeze(-1)
