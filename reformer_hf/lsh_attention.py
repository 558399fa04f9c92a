"""LSH self-attention (Kitaev, Kaiser and Levskaya, "Reformer: The Efficient Transformer", ICLR 2020).

Queries and keys share one projection. Each hash round draws random rotations R and puts every
vector x in the bucket ``argmax([xR; -xR])``, so that vectors at a small angle tend to share a
bucket. The sequence is sorted by (bucket, position), split into chunks, and each chunk attends to
itself and its neighbouring chunks. The outputs are moved back to their positions, and the rounds
are combined with weights given by each round's log-sum-exp, which is exact softmax attention over
the union of the keys the rounds found.

The steps are separate functions (``hash_vectors``, ``sort_by_bucket``, ``attend_in_chunks``,
``undo_sort``, ``combine_hash_rounds``) so that tests can call each on a hand-sized tensor.

Padding: padded positions get a bucket past the last real one, so they sort to the end of every
round and never move a real token into another chunk. Each round is chunked on its own, so the
chunk boundaries of real tokens do not depend on the padded length either.

Shape legend: b batch, h heads, n length, d head size, r hash rounds, s rotations per round
(half the buckets), c chunks, w chunk length, k keys per chunk window.
"""

import math

import torch
from torch import nn

from .chunking import MASK_VALUE, SELF_MASK_VALUE, attend, attend_in_groups, look_adjacent, split_into_chunks
from .configuration import ReformerConfig


def hash_vectors(vectors: torch.Tensor, rotations: torch.Tensor, bucket_factors: list[int]) -> torch.Tensor:
    """Assign each vector to a bucket in every hash round.

    Args:
        vectors: ``[b, h, n, d]``.
        rotations: ``[h, d, r, s]`` with ``s = sum(u // 2 for u in bucket_factors)``.
        bucket_factors: ``[u]`` for plain hashing or ``[u1, u2]`` for factorised hashing, where the
            bucket is ``b1 + u1 * b2``.

    Returns:
        Buckets ``[b, h, r, n]`` in ``[0, prod(bucket_factors))``.
    """
    rotated = torch.einsum("bhnd,hdrs->bhrns", vectors.detach(), rotations)
    buckets = None
    offset, place_value = 0, 1
    for num_buckets in bucket_factors:
        half = rotated[..., offset : offset + num_buckets // 2]
        # argmax([half; -half]) without building it: the first half wins ties, as argmax's first
        # maximum would.
        highest, high_index = half.max(dim=-1)
        lowest, low_index = half.min(dim=-1)
        factor_buckets = torch.where(highest >= -lowest, high_index, low_index + num_buckets // 2)  # [b, h, r, n]
        buckets = factor_buckets * place_value if buckets is None else buckets + factor_buckets * place_value
        offset += num_buckets // 2
        place_value *= num_buckets
    return buckets


@torch.compiler.disable
def seeded_normal(shape: tuple[int, ...], seed: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Draw standard normal values from a private generator seeded with ``seed``.

    torch.compile cannot trace a new ``torch.Generator``, so this runs outside the graph.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def sort_by_bucket(buckets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the indices that sort each round by (bucket, position), and their inverse.

    A stable sort on the bucket alone keeps positions ascending inside each bucket.
    """
    sorted_idx = torch.sort(buckets, dim=-1, stable=True).indices  # [b, h, r, n]
    undo_sort_idx = torch.argsort(sorted_idx, dim=-1)
    return sorted_idx, undo_sort_idx


def gather_rounds(tensor: torch.Tensor, sorted_idx: torch.Tensor) -> torch.Tensor:
    """Gather ``[b, h, n, ...]`` into ``[b, h, r, n, ...]`` in each round's sorted order."""
    b, h, r, n = sorted_idx.shape
    trailing = tensor.shape[3:]
    expanded = tensor.unsqueeze(2).expand(b, h, r, n, *trailing)
    index = sorted_idx.reshape(b, h, r, n, *([1] * len(trailing))).expand(b, h, r, n, *trailing)
    return expanded.gather(3, index)


def count_shared_windows(
    slot_of: torch.Tensor,
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    chunk_length: int,
    num_before: int,
    num_after: int,
    buckets: torch.Tensor | None,
    max_slot_gap: int | None = None,
) -> torch.Tensor:
    """Count in how many hash rounds each query attends each key of its window.

    Args:
        slot_of: ``[b, h, r, n]`` index of every position in each round's sorted order.
        query_positions: ``[b, h, r, c, w]``.
        key_positions: ``[b, h, r, c, k]``, with -1 in slots outside the sequence.
        chunk_length, num_before, num_after: The chunk window.
        buckets: ``[b, h, r, n]`` when queries attend only to their own bucket, else ``None``.
        max_slot_gap: With strictly causal attention, the largest number of sorted slots a key
            may lie behind its query; it replaces the chunk window.

    Returns:
        ``[b, h, r, c, w, k]`` counts, at least 1 where the key lies in the window of this round.
    """
    b, h, r, c, w = query_positions.shape
    k = key_positions.shape[-1]
    flat_queries = query_positions.reshape(b, h, 1, -1).expand(b, h, r, -1)
    flat_keys = key_positions.clamp(min=0).reshape(b, h, 1, -1).expand(b, h, r, -1)
    # Slot of each query and key in every round t: [b, h, t, r, c, w, 1] and [b, h, t, r, c, 1, k].
    query_slots = slot_of.gather(3, flat_queries).reshape(b, h, r, r, c, w, 1)
    key_slots = slot_of.gather(3, flat_keys).reshape(b, h, r, r, c, 1, k)
    if max_slot_gap is None:
        offset = key_slots // chunk_length - query_slots // chunk_length
        shared = (offset >= -num_before) & (offset <= num_after)
    else:
        gap = query_slots - key_slots
        shared = (gap >= 0) & (gap <= max_slot_gap)
    if buckets is not None:
        query_buckets = buckets.gather(3, flat_queries).reshape(b, h, r, r, c, w, 1)
        key_buckets = buckets.gather(3, flat_keys).reshape(b, h, r, r, c, 1, k)
        shared = shared & (query_buckets == key_buckets)
    return shared.sum(dim=2)


def normalize_keys(query_key: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale shared query-key vectors ``[..., d]`` to length about 1: ``x / sqrt(|x|^2 + d * eps)``.

    Written as ``x * rsqrt(mean(x^2) + eps) / sqrt(d)``, the form transformers' Reformer uses, so
    that converted checkpoints give the same logits. ``eps`` keeps a zero vector finite.
    """
    mean_square = query_key.pow(2).mean(dim=-1, keepdim=True)
    return query_key * torch.rsqrt(mean_square + eps) / math.sqrt(query_key.shape[-1])


def combine_hash_rounds(outputs: torch.Tensor, logsumexp: torch.Tensor, transformers_rounding: bool = False) -> torch.Tensor:
    """Combine ``[b, h, r, n, d]`` round outputs with their ``[b, h, r, n]`` log-sum-exp weights.

    Each round's output is a softmax over the keys it found. Weighting round ``t`` by
    ``exp(lse_t - logsumexp_t(lse_t))`` turns the rounds into one softmax over all keys found.

    With ``transformers_rounding`` the weights are computed literally by that formula, as
    transformers' Reformer does. At log-sum-exps near the self-mask value -1e5 float32 keeps only
    about two decimals, so the weights of a query that can attend only to itself sum to 1 +- 0.4%.
    """
    if transformers_rounding:
        weights = torch.exp(logsumexp - torch.logsumexp(logsumexp, dim=2, keepdim=True)).unsqueeze(-1)
    else:
        weights = torch.softmax(logsumexp, dim=2).unsqueeze(-1)  # [b, h, r, n, 1]
    return (weights.to(outputs.dtype) * outputs).sum(dim=2)


class LSHSelfAttention(nn.Module):
    """Multi-head LSH self-attention with a shared query-key projection.

    ``forward`` returns the per-head outputs concatenated, ``[b, n, h * d]``, and the buckets it
    used, so that the reversible backward pass can replay the exact same hashing.
    """

    def __init__(self, config: ReformerConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_size = config.attention_head_size
        self.chunk_length = config.lsh_chunk_length
        self.num_chunks_before = config.lsh_num_chunks_before
        self.num_chunks_after = config.lsh_num_chunks_after
        num_buckets = config.resolved_num_buckets
        self.bucket_factors = list(num_buckets) if isinstance(num_buckets, list) else [num_buckets]
        # num_hashes and hash_seed are read from the config at every call, so that setting
        # model.config.hash_seed after construction takes effect as users expect.
        self.config = config
        self.is_decoder = config.is_decoder
        self.strictly_causal = config.is_decoder and config.lsh_strictly_causal
        self.same_bucket_only = config.lsh_same_bucket_only or self.strictly_causal
        self.duplicate_correction = config.lsh_duplicate_correction
        self.wraps = config.chunk_window_wraps
        self.transformers_rounding = config.lsh_transformers_rounding
        self.group_length = config.attention_group_length

        all_head_size = self.num_heads * self.head_size
        self.query_key = nn.Linear(config.hidden_size, all_head_size, bias=False)
        self.value = nn.Linear(config.hidden_size, all_head_size, bias=False)
        self.dropout = nn.Dropout(config.attention_dropout("lsh"))
        self._seeded_rotations: dict = {}  # see seeded_rotations

    @property
    def num_buckets(self) -> int:
        return math.prod(self.bucket_factors)

    def draw_rotations(self, num_hashes: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Draw the random rotations ``[h, d, r, s]`` of one call.

        In evaluation with a hash seed they come from a private generator, so every call draws
        the same rotations and raising ``num_hashes`` keeps the first rounds unchanged. Otherwise
        they come from torch's default generator, whose state the reversible backward pass saves
        and restores. ``config.hash_seed_mode="transformers"`` draws them as transformers'
        Reformer does instead (see ``ReformerConfig``).
        """
        half_buckets = sum(u // 2 for u in self.bucket_factors)
        hash_seed = self.config.hash_seed
        if self.config.hash_seed_mode == "transformers":
            # transformers' Reformer reseeds with hash_seed itself in every layer and mode.
            shape = (self.num_heads, self.head_size, num_hashes, half_buckets)
            if hash_seed is None:
                return torch.randn(shape, device=device, dtype=dtype)
            return self.seeded_rotations(shape, hash_seed, device, dtype)
        shape = (num_hashes, self.num_heads, self.head_size, half_buckets)
        if not self.training and hash_seed is not None:
            rotations = self.seeded_rotations(shape, hash_seed + self.layer_idx, device, torch.float32)
        else:
            rotations = torch.randn(shape, device=device, dtype=torch.float32)
        return rotations.permute(1, 2, 0, 3).to(dtype)

    def seeded_rotations(
        self, shape: tuple[int, ...], seed: int, device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """Return rotations drawn in ``dtype`` from ``seed``, drawn once and then kept.

        ``eval()`` draws those of ``config.num_hashes`` in advance, so that a torch.compile graph
        finds them kept and does not split where a private generator would be created.
        """
        key = (shape, seed, device, dtype)
        rotations = self._seeded_rotations.get(key)
        if rotations is None:
            rotations = seeded_normal(shape, seed, device, dtype)
            self._seeded_rotations[key] = rotations
        return rotations

    def train(self, mode: bool = True) -> "LSHSelfAttention":
        super().train(mode)
        self._seeded_rotations = {}
        weight = self.query_key.weight
        if not mode and self.config.hash_seed is not None and weight.device.type != "meta":
            self.draw_rotations(self.config.num_hashes, weight.device, weight.dtype)
        return self

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_padding_mask: torch.Tensor,
        num_hashes: int | None = None,
        buckets: torch.Tensor | None = None,
        rotations_out: list | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend with LSH.

        Args:
            hidden_states: ``[b, n, hidden_size]`` with ``n`` a multiple of the chunk length.
            key_padding_mask: ``[b, n]``, true at real tokens. Padding may sit anywhere; it
                sorts after every real token in each round.
            num_hashes: Hash rounds for this call; the config's ``num_hashes`` when ``None``.
            buckets: ``[b, h, r, n]`` buckets to reuse instead of hashing, as returned by an
                earlier call on the same input.
            rotations_out: When given, receives the rotations ``[h, d, r, s]`` of this call, which
                the generation cache keeps to hash later tokens alike.

        Returns:
            Outputs ``[b, n, h * d]`` and the buckets ``[b, h, r, n]``.
        """
        b, n, _ = hidden_states.shape
        h, d = self.num_heads, self.head_size
        num_hashes = num_hashes or self.config.num_hashes

        query_key = self.query_key(hidden_states).view(b, n, h, d).transpose(1, 2)  # [b, h, n, d]
        values = self.value(hidden_states).view(b, n, h, d).transpose(1, 2)  # [b, h, n, d]

        # Rotations are drawn on every call, even when buckets are given, so that the default
        # generator advances identically in the forward pass and in the backward recomputation.
        rotations = self.draw_rotations(num_hashes, hidden_states.device, query_key.dtype)
        if rotations_out is not None:
            rotations_out.append(rotations)
        if buckets is None:
            buckets = hash_vectors(query_key, rotations, self.bucket_factors)
            padding = ~key_padding_mask[:, None, None, :]
            buckets = buckets.masked_fill(padding, self.num_buckets)  # padding sorts last

        outputs = self.attend_hashed(query_key, values, buckets, key_padding_mask)
        return outputs.transpose(1, 2).reshape(b, n, h * d), buckets

    def window_function(self, length: int):
        """Return ``adjacent(chunks, fill_value)`` that adds each chunk's neighbours to
        ``[b, h, r, c, w, ...]`` chunks.

        By default each round is chunked on its own and windows stop at its ends. With
        ``chunk_window_wraps`` the rounds are laid end to end and the windows wrap around the whole,
        as in transformers' Reformer. A round of a single chunk still attends to itself only, as
        transformers does for a sequence no longer than one chunk.
        """
        before, after = self.num_chunks_before, self.num_chunks_after
        if not self.wraps or length <= self.chunk_length:
            return lambda chunks, fill_value: look_adjacent(chunks, before, after, 3, fill_value)

        def adjacent(chunks: torch.Tensor, fill_value) -> torch.Tensor:
            b, h, r, c = chunks.shape[:4]
            laid_out = chunks.reshape(b, h, r * c, *chunks.shape[4:])
            windows = look_adjacent(laid_out, before, after, 2, fill_value, wrap=True)
            return windows.reshape(b, h, r, c, *windows.shape[3:])

        return adjacent

    def attend_hashed(
        self, query_key: torch.Tensor, values: torch.Tensor, buckets: torch.Tensor, key_padding_mask: torch.Tensor
    ) -> torch.Tensor:
        """Sort, chunk, attend, undo the sort and combine rounds: ``[b, h, n, d]`` outputs."""
        b, h, n, d = query_key.shape
        w = self.chunk_length
        before, after = self.num_chunks_before, self.num_chunks_after

        sorted_idx, undo_sort_idx = sort_by_bucket(buckets)
        sorted_query_key = gather_rounds(query_key, sorted_idx)  # [b, h, r, n, d]
        sorted_values = gather_rounds(values, sorted_idx)
        sorted_buckets = buckets.gather(3, sorted_idx)  # [b, h, r, n]
        sorted_valid = gather_rounds(key_padding_mask[:, None, :].expand(b, h, n), sorted_idx)

        # Split each round into chunks: [b, h, r, c, w, ...].
        # Keys are the shared vectors normalised to unit length, so a logit is |q| times the cosine
        # of the angle between query and key: the angle is what the hashing groups by. Queries
        # are not rescaled (as in trax and transformers), so |q| sets the sharpness of attention.
        # The keys are normalised per group, from the query chunks and their neighbours.
        query = split_into_chunks(sorted_query_key, w, dim=3)
        keys = None
        window_values = split_into_chunks(sorted_values, w, dim=3)
        query_positions = split_into_chunks(sorted_idx, w, dim=3)  # [b, h, r, c, w]
        key_positions = query_positions
        key_valid = split_into_chunks(sorted_valid, w, dim=3)
        query_buckets = key_buckets = None
        if self.same_bucket_only:
            query_buckets = key_buckets = split_into_chunks(sorted_buckets, w, dim=3)
        max_slot_gap = before * w if self.strictly_causal else None
        num_rounds = sorted_idx.shape[2]
        # Wrapped windows cross rounds, so they are built here for the whole sequence. The others are
        # built per group of chunks in attend_in_groups, which needs less memory.
        wrap = self.wraps and n > w
        query_slots = key_slots = None
        if wrap:
            adjacent = self.window_function(n)
            keys = adjacent(normalize_keys(query), 0.0)  # [b, h, r, c, k, d]
            window_values = adjacent(window_values, 0.0)
            key_positions = adjacent(query_positions, -1)  # [b, h, r, c, k]
            key_valid = adjacent(key_valid, False)
            if self.same_bucket_only:
                key_buckets = adjacent(query_buckets, -1)
            slots = torch.arange(n, device=query.device).expand(b, h, num_rounds, n)
            query_slots = split_into_chunks(slots, w, dim=3)  # [b, h, r, c, w]
            key_slots = adjacent(query_slots, -1)  # [b, h, r, c, k]
        else:
            # Without wrap-around every window starts `before` chunks before its query's chunk, so
            # the sorted-slot gap between a query and a key depends only on their places in the
            # window: one [w, k] table serves every chunk, head and round.
            num_keys = (before + 1 + after) * w
            window_gap = before * w + torch.arange(w, device=query.device)[:, None] - torch.arange(num_keys, device=query.device)

        def attend_chunks(
            window, query, keys, values, query_positions, key_positions, key_valid, query_buckets, key_buckets,
            query_slots, key_slots,
        ):
            if keys is None:
                # Without wrap-around the query chunks arrive with their neighbours.
                keys = window(normalize_keys(query), 0.0, 3)  # [b, h, r, g, k, d]
                query = window(query, None, 3)  # [b, h, r, g, w, d]
            else:
                keys = window(keys, 0.0, 3)
            values = window(values, 0.0, 3)

            key_positions = window(key_positions, -1, 3)  # [b, h, r, g, k]
            key_valid = window(key_valid, False, 3)
            allowed = key_valid.unsqueeze(-2)  # [b, h, r, g, 1, k]
            if self.is_decoder:
                allowed = allowed & (key_positions.unsqueeze(-2) <= query_positions.unsqueeze(-1))
            if self.same_bucket_only:
                key_buckets = window(key_buckets, -1, 3)
                allowed = allowed & (key_buckets.unsqueeze(-2) == query_buckets.unsqueeze(-1))

            if wrap:
                gap = query_slots.unsqueeze(-1) - key_slots.unsqueeze(-2)  # [b, h, r, g, w, k]
                is_self = key_positions.unsqueeze(-2) == query_positions.unsqueeze(-1)
            else:
                gap = window_gap
                is_self = gap == 0
            if max_slot_gap is not None:
                # Which keys share a chunk with a query depends on how many later tokens sort before
                # it. Inside one bucket, though, the sorted slots of earlier tokens do not move when
                # later tokens change, so "own bucket, at most before * w slots back" is a window
                # that only earlier tokens decide. The chunk window always contains it.
                allowed = allowed & (gap >= 0) & (gap <= max_slot_gap)

            logit_bias = torch.zeros(allowed.shape, dtype=torch.float32, device=query.device)
            logit_bias = logit_bias.masked_fill(~allowed, MASK_VALUE)
            # Under shared QK a query's key is its own direction, so its own logit is nearly always
            # the largest. It is kept only as a fallback for a query with nothing else to attend to.
            # A padded query has no such fallback and gets zeros, except under transformers'
            # rounding, where it falls back on itself as in transformers.
            if not self.transformers_rounding:
                is_self = is_self & key_valid.unsqueeze(-2)
            logit_bias = logit_bias.masked_fill(is_self, SELF_MASK_VALUE)
            if self.duplicate_correction and num_rounds > 1:
                counts = count_shared_windows(
                    undo_sort_idx, query_positions, key_positions, w, before, after,
                    buckets if self.same_bucket_only else None, max_slot_gap,
                )
                logit_bias = logit_bias - torch.log(counts.clamp(min=1).float())

            # One round needs no log-sum-exp to combine rounds by.
            return attend(
                query, keys, values, logit_bias, self.dropout, replace_masked=self.transformers_rounding,
                need_logsumexp=num_rounds > 1,
            )

        windowed = not wrap
        outputs, logsumexp = attend_in_groups(
            attend_chunks,
            [(query, 3, windowed), (keys, 3, False), (window_values, 3, windowed), (query_positions, 3, False),
             (key_positions, 3, windowed), (key_valid, 3, windowed), (query_buckets, 3, False),
             (key_buckets, 3, windowed), (query_slots, 3, False), (key_slots, 3, False)],
            output_chunk_dim=3,
            group_chunks=max(1, self.group_length // w) if self.group_length else 0,
            num_before=0 if wrap else before,
            num_after=0 if wrap else after,
        )  # [b, h, r, c, w, d] and [b, h, r, c, w]

        # Back to one sequence per round, then to the original order.
        outputs = outputs.reshape(b, h, -1, n, d)  # [b, h, r, n, d]
        outputs = outputs.gather(3, undo_sort_idx.unsqueeze(-1).expand_as(outputs))
        if logsumexp is None:
            return outputs.squeeze(2)
        logsumexp = logsumexp.reshape(b, h, -1, n)  # [b, h, r, n]
        logsumexp = logsumexp.gather(3, undo_sort_idx)
        return combine_hash_rounds(outputs, logsumexp, self.transformers_rounding)
