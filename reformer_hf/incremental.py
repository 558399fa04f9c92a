"""Incremental decoding: a cache of every layer's keys and values, and one-token attention steps.

Generation feeds the prompt once (the prefill), then one token per step. The cache keeps, for every
layer, the projected keys and values of all tokens so far, and for LSH layers their buckets, so a
step costs one token's projections plus one query's attention over the cached keys.

What a step attends to, per attention kind:

- local: the keys whose positions fall in the query's chunk window, exactly as in a full forward
  pass, since chunk windows are fixed by positions.
- LSH, strictly causal (``lsh_strictly_causal=True``, the default): the query's own bucket, the last
  ``lsh_num_chunks_before * lsh_chunk_length`` earlier tokens in it, in every round. This is exactly
  what the full forward pass computes, so cached and uncached generation agree.
- LSH with chunk windows (``lsh_strictly_causal=False``): the tokens so far are sorted by bucket and
  the query attends to its chunk window in that order. In a full forward pass later tokens shift
  the chunks too, so the two can differ; this is why strictly causal is the default.
- LSH under ``chunk_window_wraps`` (converted transformers checkpoints) follows transformers'
  cached generation. The window wraps around the sorted tokens so far, and a token counts as often
  as the window covers it. An LSH layer attends fully until the tokens so far first fill a chunk,
  after that it hashes them all.

Shape legend: b batch, h heads, L cached tokens including the new one, d head size, r hash rounds.
"""

import math

import torch

from .chunking import MASK_VALUE, SELF_MASK_VALUE, _SoftmaxWithLogSumExp, padded_length
from .local_attention import FullSelfAttention
from .lsh_attention import combine_hash_rounds, hash_vectors, normalize_keys


class _GrowingTensor:
    """A tensor that grows along one dim, stored in a buffer with spare room.

    Appending writes into the spare room and doubles the buffer when it is full, so generating
    ``m`` tokens copies the cache O(log m) times instead of once per token.
    """

    def __init__(self, tensor: torch.Tensor, dim: int):
        self.dim = dim
        self.length = tensor.shape[dim]
        self.buffer = tensor

    @property
    def value(self) -> torch.Tensor:
        return self.buffer.narrow(self.dim, 0, self.length)

    def append(self, tensor: torch.Tensor) -> None:
        added = tensor.shape[self.dim]
        if self.length + added > self.buffer.shape[self.dim]:
            shape = list(self.buffer.shape)
            shape[self.dim] = max(2 * (self.length + added), 16)
            grown = self.buffer.new_empty(shape)
            grown.narrow(self.dim, 0, self.length).copy_(self.value)
            self.buffer = grown
        self.buffer.narrow(self.dim, self.length, added).copy_(tensor)
        self.length += added

    def reorder(self, index: torch.Tensor) -> None:
        self.buffer = self.value.index_select(0, index)


class LayerCache:
    """Keys ``[b, h, L, d]``, values ``[b, h, L, d]`` and, for LSH layers, buckets ``[b, h, r, L]``.

    LSH layers cache the shared query-key vectors as keys, and also the keys normalised as LSH
    attention uses them. Under ``chunk_window_wraps`` the buckets carry the per-round offsets that
    transformers' Reformer adds, and are ``None`` until the layer first hashes.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, buckets: torch.Tensor | None = None,
                 normalize: bool = False, rotations: torch.Tensor | None = None):
        self._keys = _GrowingTensor(keys, dim=2)
        self._values = _GrowingTensor(values, dim=2)
        self._normalized_keys = _GrowingTensor(normalize_keys(keys), dim=2) if normalize else None
        self.buckets = buckets
        # The rotations the prompt was hashed with: later tokens must land in the same buckets.
        self.rotations = rotations

    @property
    def keys(self) -> torch.Tensor:
        return self._keys.value

    @property
    def values(self) -> torch.Tensor:
        return self._values.value

    @property
    def normalized_keys(self) -> torch.Tensor:
        return self._normalized_keys.value

    def append(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Add ``[b, h, 1, d]`` keys and values of a new token."""
        self._keys.append(keys)
        self._values.append(values)
        if self._normalized_keys is not None:
            self._normalized_keys.append(normalize_keys(keys))

    def reorder(self, index: torch.Tensor) -> None:
        for stored in (self._keys, self._values, self._normalized_keys):
            if stored is not None:
                stored.reorder(index)
        if self.buckets is not None:
            self.buckets = self.buckets.index_select(0, index)


class ReformerCache:
    """Everything a Reformer needs to continue a batch of sequences one token at a time.

    Attributes:
        layers: One ``LayerCache`` per layer.
        key_valid: ``[b, L]``, true at real tokens (padding of the prompt is kept, masked).
        positions: ``[b, L]`` position id of every cached token.
        num_hashes: Hash rounds the LSH buckets were computed with.
    """

    def __init__(self):
        self.layers: list[LayerCache] = []
        self.key_valid: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.num_hashes: int | None = None

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def is_empty(self) -> bool:
        return not self.layers

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of cached token slots, padding included."""
        return 0 if self.key_valid is None else self.key_valid.shape[1]

    def next_positions(self, compact_padding: bool) -> torch.Tensor:
        """``[b]`` position id of the next token of every row."""
        if compact_padding:
            return self.key_valid.sum(dim=1)
        return torch.full_like(self.key_valid[:, 0], self.key_valid.shape[1], dtype=torch.long)

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Keep the rows ``beam_idx`` (beam search)."""
        beam_idx = beam_idx.to(self.key_valid.device)
        for layer in self.layers:
            layer.reorder(beam_idx)
        self.key_valid = self.key_valid.index_select(0, beam_idx)
        self.positions = self.positions.index_select(0, beam_idx)


def _like_transformers(attention) -> bool:
    """Return whether an LSH layer follows transformers' cached generation (wrapped chunk windows)."""
    return attention.wraps and not attention.strictly_causal


def heads(tensor: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``[b, n, h * d]`` to ``[b, h, n, d]``."""
    b, n, _ = tensor.shape
    return tensor.view(b, n, num_heads, -1).transpose(1, 2)


def prefill_layer(attention, normalized: torch.Tensor, buckets: torch.Tensor | None, transformers_stage: dict,
                  rotations: torch.Tensor | None = None) -> LayerCache:
    """Cache one layer after a full forward pass over the prompt.

    Args:
        attention: The layer's ``LSHSelfAttention``, ``LocalSelfAttention`` or ``FullSelfAttention``.
        normalized: ``[b, n, hidden]`` layer-normed inputs of the layer at the prompt's slots.
        buckets: ``[b, h, r, n]`` buckets of the forward pass (LSH layers).
        transformers_stage: For ``chunk_window_wraps``: ``hashed`` (whether transformers' Reformer
            hashed the prompt) and ``padded`` (whether it padded it, which widens the bucket offsets).
        rotations: ``[h, d, r, s]`` rotations of the forward pass (LSH layers).
    """
    h = attention.num_heads
    if hasattr(attention, "query_key"):
        keys = heads(attention.query_key(normalized), h)
        values = heads(attention.value(normalized), h)
        if _like_transformers(attention):
            if not transformers_stage["hashed"]:
                buckets = None
            else:
                width = attention.num_buckets + (1 if transformers_stage["padded"] else 0)
                buckets = buckets + width * torch.arange(buckets.shape[2], device=buckets.device)[:, None]
        return LayerCache(keys, values, buckets, normalize=True, rotations=rotations)
    return LayerCache(heads(attention.key(normalized), h), heads(attention.value(normalized), h))


def transformers_padded_length(config, length: int) -> int:
    """Return the length transformers' Reformer pads an input of ``length`` tokens to.

    It pads only an input longer than the shortest chunk length, to a multiple of every chunk length.
    """
    chunk_lengths = [config.lsh_chunk_length] if "lsh" in config.attention_layers else []
    if "local" in config.attention_layers:
        chunk_lengths.append(config.local_chunk_length)
    if length <= min(chunk_lengths):
        return length
    return padded_length(length, math.lcm(*chunk_lengths))


def transformers_prefill_stage(config, prompt_length: int, has_padding: bool) -> dict:
    """Describe how transformers' Reformer runs its LSH layers over a prompt of ``prompt_length``."""
    padded = transformers_padded_length(config, prompt_length)
    return {"hashed": padded > config.lsh_chunk_length, "padded": has_padding or padded > prompt_length}


def step_attention(attention, normalized: torch.Tensor, layer: LayerCache, key_valid: torch.Tensor,
                   positions: torch.Tensor, num_hashes: int) -> torch.Tensor:
    """Attend one new token per row to the cache, after appending it.

    Args:
        attention: The layer's attention module.
        normalized: ``[b, 1, hidden]`` layer-normed input of the new token.
        layer: The layer's cache, extended here by the new token.
        key_valid, positions: ``[b, L]`` for all tokens including the new one.
        num_hashes: Hash rounds of the cached buckets.

    Returns:
        ``[b, 1, h * d]`` attention outputs.
    """
    b = normalized.shape[0]
    h = attention.num_heads
    if hasattr(attention, "query_key"):
        query = heads(attention.query_key(normalized), h)  # [b, h, 1, d]
        layer.append(query, heads(attention.value(normalized), h))
        outputs = _lsh_step(attention, query, layer, key_valid, positions, num_hashes)
    else:
        query = heads(attention.query(normalized), h)
        layer.append(heads(attention.key(normalized), h), heads(attention.value(normalized), h))
        outputs = _local_step(attention, query, layer, key_valid, positions)
    return outputs.transpose(1, 2).reshape(b, 1, -1)


def _softmax_attend(logits: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[b, h, r, L]`` float32 logits and ``[b, h, L, d]`` values to outputs ``[b, h, r, d]`` and lse ``[b, h, r]``.

    The softmax is chunking's, which keeps masked logits off the slow path of torch's exp.
    """
    probs, lse = _SoftmaxWithLogSumExp.apply(logits, False)
    return torch.matmul(probs.to(values.dtype), values), lse.squeeze(-1)


def _local_step(attention, query, layer, key_valid, positions) -> torch.Tensor:
    d = query.shape[-1]
    current = positions[:, -1:]  # [b, 1]
    if isinstance(attention, FullSelfAttention):
        lower = torch.zeros_like(current)
    else:
        w, before = attention.chunk_length, attention.num_chunks_before
        lower = (torch.div(current, w, rounding_mode="floor") - before) * w
        if attention.wraps:
            # transformers' Reformer slices the cached states from this start; a negative start
            # counts from the end of the cache.
            lower = torch.where(lower < 0, (current + lower).clamp(min=0), lower)
    allowed = key_valid & (positions >= lower) & (positions <= current)  # [b, L]
    # Attend only from the first slot that some row's window reaches. The keys before it are masked
    # in every row, so leaving them out changes no attention weight and keeps each step O(window).
    start = int(allowed.any(dim=0).int().argmax())
    allowed = allowed[:, start:]
    keys, values = layer.keys[:, :, start:], layer.values[:, :, start:]
    logits = torch.matmul((query * d**-0.5).float(), keys.float().transpose(-1, -2))  # [b, h, 1, L - start]
    logits = torch.where(allowed[:, None, None, :], logits, MASK_VALUE)
    outputs, _ = _softmax_attend(logits, values)
    return outputs  # [b, h, 1, d]


def _lsh_step(attention, query, layer, key_valid, positions, num_hashes) -> torch.Tensor:
    config = attention.config
    b, h, length, _ = layer.keys.shape
    if layer.rotations is not None and not _like_transformers(attention) and layer.rotations.shape[2] == num_hashes:
        rotations = layer.rotations
    else:
        # transformers' Reformer draws new rotations at every step, which its cached mode follows.
        rotations = attention.draw_rotations(num_hashes, query.device, query.dtype)
    query_buckets = hash_vectors(query, rotations, attention.bucket_factors)  # [b, h, r, 1]
    dots = torch.matmul(query.float(), layer.normalized_keys.float().transpose(-1, -2))  # [b, h, 1, L]
    is_self = torch.zeros(length, dtype=torch.bool, device=query.device)
    is_self[-1] = True

    if _like_transformers(attention) and layer.buckets is None:
        # transformers' Reformer attends fully until the tokens so far fill a chunk.
        logits = torch.where(is_self, SELF_MASK_VALUE, dots)
        logits = torch.where(key_valid[:, None, None, :], logits, MASK_VALUE)
        outputs, _ = _softmax_attend(logits, layer.values)  # [b, h, 1, d]
        if length >= attention.chunk_length:
            all_buckets = hash_vectors(layer.keys, rotations, attention.bucket_factors)
            offsets = attention.num_buckets * torch.arange(num_hashes, device=query.device)[:, None]
            layer.buckets = all_buckets + offsets
        return outputs

    if _like_transformers(attention):
        # Offsets as transformers' Reformer adds them: one bucket wider per round when the cached
        # buckets show a padding bucket.
        width = attention.num_buckets + int(bool(layer.buckets.max() > num_hashes * attention.num_buckets - 1))
        query_buckets = query_buckets + width * torch.arange(num_hashes, device=query.device)[:, None]
    layer.buckets = torch.cat([layer.buckets, query_buckets], dim=-1) if layer.buckets is not None else query_buckets
    buckets = layer.buckets  # [b, h, r, L]
    valid = key_valid[:, None, None, :]

    if attention.strictly_causal:
        same = (buckets == buckets[..., -1:]) & valid & ~is_self
        # Earlier tokens of the bucket, counted back from the query: keep the last before * w.
        from_query = same.flip(-1).cumsum(-1).flip(-1)
        allowed = same & (from_query <= attention.num_chunks_before * attention.chunk_length)
        allowed = allowed | is_self
        log_count = torch.zeros(allowed.shape, device=query.device)
        if attention.duplicate_correction and num_hashes > 1:
            log_count = -torch.log(allowed.sum(dim=2, keepdim=True).clamp(min=1).float()).expand_as(log_count)
    else:
        allowed, log_count = _sorted_window(attention, buckets, key_valid)

    logits = dots.expand(b, h, buckets.shape[2], length)
    if attention.transformers_rounding:
        logits = torch.where(is_self, SELF_MASK_VALUE, logits) + log_count
    else:
        logits = logits + torch.where(is_self, SELF_MASK_VALUE, 0.0) + log_count
    logits = torch.where(allowed, logits, MASK_VALUE)
    outputs, lse = _softmax_attend(logits, layer.values)  # [b, h, r, d], [b, h, r]
    combined = combine_hash_rounds(outputs.unsqueeze(3), lse.unsqueeze(3), attention.transformers_rounding)
    return combined  # [b, h, 1, d]


def _sorted_window(attention, buckets: torch.Tensor, key_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return which cached tokens the query's chunk window covers in each round, and how often.

    The tokens so far (padding excluded) are sorted by bucket, then position; the window spans the
    query's chunk and the ``num_chunks_before`` chunks before it. Under ``chunk_window_wraps`` it
    wraps around the sorted tokens and can cover one several times.
    """
    b, h, r, length = buckets.shape
    w, before, after = attention.chunk_length, attention.num_chunks_before, attention.num_chunks_after
    valid = key_valid[:, None, None, :].expand(b, h, r, length)
    sort_keys = torch.where(valid, buckets, buckets.max() + 1)
    order = torch.sort(sort_keys, dim=-1, stable=True).indices
    slot_of = torch.argsort(order, dim=-1)  # [b, h, r, L]
    count_valid = key_valid.sum(dim=1)[:, None, None, None]  # [b, 1, 1, 1]
    query_slot = slot_of[..., -1:]
    start = (torch.div(query_slot, w, rounding_mode="floor") - before) * w
    end = start + (before + 1 + after) * w
    if attention.wraps:
        # Number of t in [start, end) with t = slot (mod count_valid).
        covered = (torch.div(end - 1 - slot_of, count_valid, rounding_mode="floor")
                   - torch.div(start - 1 - slot_of, count_valid, rounding_mode="floor"))
    else:
        covered = ((slot_of >= start) & (slot_of < end)).long()
    covered = torch.where(valid, covered, 0)
    return covered > 0, torch.log(covered.clamp(min=1).float())
