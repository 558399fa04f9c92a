"""LSH attention: each step on hand-sized tensors, then the layer against brute-force references.

The references are written here with plain torch. A query ``q`` and key ``k`` share one projection
``s``: the query is ``s``, the key is ``s / |s|``, a masked key gets -1e9 and a
query's own key -1e5 added to its logit.

Two windows decide which keys a hash round finds. The chunk window of the Reformer paper (Kitaev,
Kaiser and Levskaya, 2020) contains the keys in the query's chunk of the (bucket, position) sort
and in its neighbouring chunks. The strictly causal window of decoders (``lsh_strictly_causal=True``,
the default) contains the keys in the query's own bucket at or before it, at most
``lsh_num_chunks_before * lsh_chunk_length`` sorted slots back.
"""

import pytest
import torch

from reformer_hf.chunking import look_adjacent, split_into_chunks
from reformer_hf.lsh_attention import (
    LSHSelfAttention,
    combine_hash_rounds,
    count_shared_windows,
    gather_rounds,
    hash_vectors,
    sort_by_bucket,
)

MASK_VALUE = -1e9
SELF_MASK_VALUE = -1e5


# ---------------------------------------------------------------------------------------------
# References


def project_heads(attention: LSHSelfAttention, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project to the shared query-key vectors and the values, both ``[b, h, n, d]``."""
    b, n, _ = hidden_states.shape
    h, d = attention.num_heads, attention.head_size
    shared = attention.query_key(hidden_states).view(b, n, h, d).transpose(1, 2)
    values = attention.value(hidden_states).view(b, n, h, d).transpose(1, 2)
    return shared, values


def shared_qk_logits(shared: torch.Tensor) -> torch.Tensor:
    """Compute the logits ``[b, h, n, n]`` of scaled queries against unit-length, scaled keys."""
    d = shared.shape[-1]
    query = shared
    keys = shared / shared.norm(dim=-1, keepdim=True)
    return query @ keys.transpose(-1, -2)


def merge_heads(outputs: torch.Tensor) -> torch.Tensor:
    b, h, n, d = outputs.shape
    return outputs.transpose(1, 2).reshape(b, n, h * d)


def allowed_keys(key_padding_mask: torch.Tensor, causal: bool) -> torch.Tensor:
    """Mask ``[b, 1, n, n]`` of the real keys, and with ``causal`` only those at or before the query."""
    n = key_padding_mask.shape[1]
    allowed = key_padding_mask[:, None, None, :].expand(-1, 1, n, n)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool).tril()
    return allowed


def full_shared_qk_attention(attention, hidden_states, key_padding_mask, causal):
    """Attend over every key of the sequence, with masked keys at -1e9 and the own key at -1e5.

    A padded query has no own key to fall back on; with every key masked it gets zeros.
    """
    shared, values = project_heads(attention, hidden_states)
    n = shared.shape[2]
    allowed = allowed_keys(key_padding_mask, causal)
    own = torch.eye(n, dtype=torch.bool) & key_padding_mask[:, None, :, None]
    bias = torch.zeros(allowed.shape).masked_fill(~allowed, MASK_VALUE)
    bias = bias.masked_fill(own, SELF_MASK_VALUE)
    probs = torch.softmax(shared_qk_logits(shared) + bias, dim=-1)
    probs = probs.masked_fill(~(allowed | own).any(dim=-1, keepdim=True), 0.0)
    return merge_heads(probs @ values)


def sorted_slots(buckets: torch.Tensor) -> torch.Tensor:
    """Compute the slot ``[b, h, r, n]`` of each position in its round's (bucket, position) sort.

    Computed without sorting: the slot is the number of positions whose (bucket, position) pair is
    smaller.
    """
    n = buckets.shape[-1]
    positions = torch.arange(n)
    query_buckets, key_buckets = buckets[..., :, None], buckets[..., None, :]  # [b, h, r, n, 1], [b, h, r, 1, n]
    same_bucket_earlier = (key_buckets == query_buckets) & (positions < positions[:, None])
    key_sorts_first = (key_buckets < query_buckets) | same_bucket_earlier
    return key_sorts_first.sum(dim=-1)


def same_bucket_pairs(buckets: torch.Tensor) -> torch.Tensor:
    """Mask ``[b, h, r, query, key]`` of the pairs that share a bucket in a round."""
    return buckets[..., :, None] == buckets[..., None, :]


def window_counts(buckets: torch.Tensor, chunk_length: int, before: int, after: int, same_bucket_only: bool):
    """Count the hash rounds in which query ``i`` finds key ``j`` in its chunk window: ``[b, h, n, n]``."""
    chunk = sorted_slots(buckets) // chunk_length  # [b, h, r, n]
    offset = chunk[..., None, :] - chunk[..., :, None]  # [b, h, r, query, key]
    found = (offset >= -before) & (offset <= after)
    if same_bucket_only:
        found = found & same_bucket_pairs(buckets)
    return found.sum(dim=2)


def strict_window_counts(buckets: torch.Tensor, max_slot_gap: int) -> torch.Tensor:
    """Count the hash rounds in which query ``i`` finds key ``j`` in its strictly causal window: ``[b, h, n, n]``.

    The key must share the query's bucket and sit 0 to ``max_slot_gap`` sorted slots before it.
    """
    slots = sorted_slots(buckets)
    gap = slots[..., :, None] - slots[..., None, :]  # [b, h, r, query, key]: query slot minus key slot
    found = same_bucket_pairs(buckets) & (gap >= 0) & (gap <= max_slot_gap)
    return found.sum(dim=2)


def attend_found_keys(attention, hidden_states, key_padding_mask, counts, count_each_key_once):
    """Attend over the keys that any hash round finds, each weighted by how often it is found.

    Combining rounds by their log-sum-exp gives a key found in ``c`` rounds the weight
    ``c * exp(logit)``. With duplicate correction each key found at all counts once.
    """
    shared, values = project_heads(attention, hidden_states)
    multiplicity = counts.clamp(max=1) if count_each_key_once else counts

    plain_logits = shared_qk_logits(shared)
    logits = plain_logits.masked_fill(~allowed_keys(key_padding_mask, attention.is_decoder), float("-inf"))
    # A real query's own key is never masked, only pushed down, so a query with nothing else
    # attends to itself. A padded query has no own key and, with nothing to attend to, gets zeros.
    own_logits = plain_logits.diagonal(dim1=-2, dim2=-1) + SELF_MASK_VALUE
    own_logits = own_logits.masked_fill(~key_padding_mask[:, None, :], float("-inf"))
    logits = logits.diagonal_scatter(own_logits, dim1=-2, dim2=-1)
    logits = logits + multiplicity.float().log()  # log 0 = -inf drops keys that no round finds
    probs = torch.softmax(logits, dim=-1).nan_to_num(nan=0.0)  # a row of -inf gives NaN
    return merge_heads(probs @ values)


def brute_force_lsh(attention, hidden_states, key_padding_mask, buckets, count_each_key_once):
    """Reference of the chunk window, for a layer that is not strictly causal."""
    assert not attention.strictly_causal, "use brute_force_strict_lsh for a strictly causal layer"
    counts = window_counts(
        buckets,
        attention.chunk_length,
        attention.num_chunks_before,
        attention.num_chunks_after,
        attention.same_bucket_only,
    )
    return attend_found_keys(attention, hidden_states, key_padding_mask, counts, count_each_key_once)


def brute_force_strict_lsh(attention, hidden_states, key_padding_mask, buckets, count_each_key_once, max_slot_gap=None):
    """Reference of the strictly causal window, by default ``num_chunks_before * chunk_length`` slots back."""
    if max_slot_gap is None:
        max_slot_gap = attention.num_chunks_before * attention.chunk_length
    counts = strict_window_counts(buckets, max_slot_gap)
    return attend_found_keys(attention, hidden_states, key_padding_mask, counts, count_each_key_once)


def make_attention(tiny_config, **overrides) -> LSHSelfAttention:
    return LSHSelfAttention(tiny_config(**overrides), layer_idx=0).eval()


def make_chunk_window_attention(tiny_config, causal: bool, **overrides) -> LSHSelfAttention:
    """Build a layer with the chunk window, causal or bidirectional.

    A causal layer needs ``lsh_strictly_causal=False`` for the chunk window. A bidirectional layer
    keeps the default ``True``, which ``is_decoder=False`` must ignore.
    """
    causal_fields = dict(is_decoder=True, lsh_num_chunks_after=0, lsh_strictly_causal=False)
    bidirectional_fields = dict(is_decoder=False, lsh_num_chunks_after=1)
    return make_attention(tiny_config, **(causal_fields if causal else bidirectional_fields), **overrides)


def padded_batch(length: int, real_lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Random hidden states ``[b, length, 32]`` and a right-padding mask with the given real lengths."""
    hidden_states = torch.randn(len(real_lengths), length, 32)
    key_padding_mask = torch.arange(length) < torch.tensor(real_lengths)[:, None]
    return hidden_states, key_padding_mask


# ---------------------------------------------------------------------------------------------
# Steps on hand-sized tensors


def test_hash_hand_example():
    # Identity rotation, 4 buckets: bucket = argmax([x0, x1, -x0, -x1]).
    vectors = torch.tensor([[1.0, 0.5], [-0.2, -1.0], [0.3, -0.9], [-2.0, 0.1]]).view(1, 1, 4, 2)
    rotations = torch.eye(2).view(1, 2, 1, 2)  # [h, d, r, s]
    buckets = hash_vectors(vectors, rotations, [4])
    assert buckets.tolist() == [[[[0, 3, 3, 2]]]]


def test_hash_factorised_hand_example():
    # Buckets [2, 4]: b1 = argmax([x0, -x0]), b2 = argmax([x1, x2, -x1, -x2]), bucket = b1 + 2 * b2.
    vectors = torch.tensor(
        [[1.0, 0.2, -0.5], [-1.0, 0.9, 0.1], [0.5, -0.1, 0.3], [-0.1, -0.4, -0.2]]
    ).view(1, 1, 4, 3)
    rotations = torch.eye(3).view(1, 3, 1, 3)
    buckets = hash_vectors(vectors, rotations, [2, 4])
    assert buckets.tolist() == [[[[6, 1, 2, 5]]]]


def reference_hash(vectors: torch.Tensor, rotations: torch.Tensor, bucket_factors: list[int]) -> torch.Tensor:
    b, h, n, _ = vectors.shape
    num_rounds = rotations.shape[2]
    buckets = torch.empty(b, h, num_rounds, n, dtype=torch.long)
    for batch in range(b):
        for head in range(h):
            for round_idx in range(num_rounds):
                rotated = vectors[batch, head] @ rotations[head, :, round_idx, :]  # [n, s]
                for position in range(n):
                    bucket, place_value, offset = 0, 1, 0
                    for num_buckets in bucket_factors:
                        half = rotated[position, offset : offset + num_buckets // 2].tolist()
                        scores = half + [-value for value in half]
                        bucket += scores.index(max(scores)) * place_value
                        place_value *= num_buckets
                        offset += num_buckets // 2
                    buckets[batch, head, round_idx, position] = bucket
    return buckets


@pytest.mark.parametrize("bucket_factors", [[2], [8], [4, 2], [2, 6]])
def test_hash_matches_reference(bucket_factors):
    vectors = torch.randn(2, 2, 9, 5, dtype=torch.float64)
    rotations = torch.randn(2, 5, 3, sum(u // 2 for u in bucket_factors), dtype=torch.float64)
    buckets = hash_vectors(vectors, rotations, bucket_factors)
    assert torch.equal(buckets, reference_hash(vectors, rotations, bucket_factors))


def test_hash_range_factorised():
    vectors = torch.randn(2, 2, 64, 8)
    rotations = torch.randn(2, 8, 2, 1 + 2)
    buckets = hash_vectors(vectors, rotations, [2, 4])
    assert int(buckets.min()) >= 0
    assert int(buckets.max()) < 8
    assert torch.unique(buckets).numel() == 8


def test_sort_stable_by_bucket_then_position():
    buckets = torch.randint(0, 3, (2, 2, 3, 10))  # many ties
    sorted_idx, _ = sort_by_bucket(buckets)
    for row_buckets, row_sorted in zip(buckets.reshape(-1, 10).tolist(), sorted_idx.reshape(-1, 10).tolist()):
        expected = sorted(range(10), key=lambda position: (row_buckets[position], position))
        assert row_sorted == expected


def test_undo_sort_inverts_sort():
    buckets = torch.randint(0, 4, (2, 2, 3, 12))
    sorted_idx, undo_sort_idx = sort_by_bucket(buckets)
    positions = torch.arange(12).expand_as(buckets)
    assert torch.equal(sorted_idx.gather(-1, undo_sort_idx), positions)
    assert torch.equal(undo_sort_idx.gather(-1, sorted_idx), positions)


def test_gather_rounds_vectors_and_scalars():
    vectors = torch.randn(2, 3, 6, 4)
    scalars = torch.randn(2, 3, 6)
    sorted_idx = torch.stack([torch.randperm(6) for _ in range(2 * 3 * 2)]).view(2, 3, 2, 6)

    gathered_vectors = gather_rounds(vectors, sorted_idx)
    gathered_scalars = gather_rounds(scalars, sorted_idx)

    assert gathered_vectors.shape == (2, 3, 2, 6, 4)
    for batch in range(2):
        for head in range(3):
            for round_idx in range(2):
                order = sorted_idx[batch, head, round_idx]
                assert torch.equal(gathered_vectors[batch, head, round_idx], vectors[batch, head, order])
                assert torch.equal(gathered_scalars[batch, head, round_idx], scalars[batch, head, order])


@pytest.mark.parametrize("same_bucket_only", [False, True])
@pytest.mark.parametrize("before, after", [(1, 0), (0, 1), (1, 1)])
def test_shared_window_counts_match_brute_force(same_bucket_only, before, after):
    chunk_length, n, num_rounds = 4, 16, 3
    buckets = torch.randint(0, 4, (1, 2, num_rounds, n))
    sorted_idx, undo_sort_idx = sort_by_bucket(buckets)
    chunk_of = undo_sort_idx // chunk_length
    query_positions = split_into_chunks(sorted_idx, chunk_length, dim=3)  # [b, h, r, c, w]
    key_positions = look_adjacent(query_positions, before, after, 3, -1)  # [b, h, r, c, k]

    counts = count_shared_windows(
        undo_sort_idx,
        query_positions,
        key_positions,
        chunk_length,
        before,
        after,
        buckets if same_bucket_only else None,
    )

    for head in range(2):
        for index in torch.cartesian_prod(*(torch.arange(size) for size in query_positions.shape[2:])).tolist():
            round_idx, chunk, slot = index
            query = int(query_positions[0, head, round_idx, chunk, slot])
            for key_slot, key in enumerate(key_positions[0, head, round_idx, chunk].tolist()):
                if key < 0:
                    continue
                expected = 0
                for other_round in range(num_rounds):
                    offset = int(chunk_of[0, head, other_round, key] - chunk_of[0, head, other_round, query])
                    shares_bucket = bool(buckets[0, head, other_round, key] == buckets[0, head, other_round, query])
                    expected += -before <= offset <= after and (shares_bucket or not same_bucket_only)
                assert int(counts[0, head, round_idx, chunk, slot, key_slot]) == expected


@pytest.mark.parametrize("before", [1, 2])
def test_strict_window_counts_match_brute_force(before):
    chunk_length, n, num_rounds = 4, 24, 3
    max_slot_gap = before * chunk_length
    buckets = torch.randint(0, 2, (1, 2, num_rounds, n))  # 2 buckets of about 12, longer than the gap
    sorted_idx, undo_sort_idx = sort_by_bucket(buckets)
    query_positions = split_into_chunks(sorted_idx, chunk_length, dim=3)  # [b, h, r, c, w]
    key_positions = look_adjacent(query_positions, before, 0, 3, -1)  # [b, h, r, c, k]

    counts = count_shared_windows(
        undo_sort_idx, query_positions, key_positions, chunk_length, before, 0, buckets, max_slot_gap
    )

    seen_counts = set()
    found_bucket_mate_too_far_back = False
    for head in range(2):
        for index in torch.cartesian_prod(*(torch.arange(size) for size in query_positions.shape[2:])).tolist():
            round_idx, chunk, slot = index
            query = int(query_positions[0, head, round_idx, chunk, slot])
            for key_slot, key in enumerate(key_positions[0, head, round_idx, chunk].tolist()):
                if key < 0:
                    continue
                expected = 0
                for other_round in range(num_rounds):
                    gap = int(undo_sort_idx[0, head, other_round, query] - undo_sort_idx[0, head, other_round, key])
                    shares_bucket = bool(buckets[0, head, other_round, key] == buckets[0, head, other_round, query])
                    expected += shares_bucket and 0 <= gap <= max_slot_gap
                    found_bucket_mate_too_far_back |= shares_bucket and gap > max_slot_gap
                assert int(counts[0, head, round_idx, chunk, slot, key_slot]) == expected
                seen_counts.add(expected)
    # The case must have pairs found in no, some and all rounds, and earlier bucket-mates that the
    # gap limit drops.
    assert seen_counts == {0, 1, 2, 3}
    assert found_bucket_mate_too_far_back


def test_combine_disjoint_rounds_is_softmax_over_union():
    num_rounds, num_keys = 3, 12
    logits = torch.randn(2, 2, 5, num_keys, dtype=torch.float64)
    values = torch.randn(2, 2, num_keys, 4, dtype=torch.float64)
    key_round = torch.randperm(num_keys) % num_rounds  # each key belongs to exactly one round

    outputs, logsumexps = [], []
    for round_idx in range(num_rounds):
        round_logits = logits.masked_fill(key_round != round_idx, float("-inf"))
        outputs.append(torch.softmax(round_logits, dim=-1) @ values)
        logsumexps.append(torch.logsumexp(round_logits, dim=-1))
    combined = combine_hash_rounds(torch.stack(outputs, dim=2), torch.stack(logsumexps, dim=2))

    torch.testing.assert_close(combined, torch.softmax(logits, dim=-1) @ values)


# ---------------------------------------------------------------------------------------------
# Rotations and buckets of the layer


def test_rotations_seeded_in_eval(tiny_config):
    attention = make_attention(tiny_config, hash_seed=3)
    first = attention.draw_rotations(2, torch.device("cpu"), torch.float32)
    assert first.shape == (2, 8, 2, 2)  # [h, d, r, s]
    assert torch.equal(first, attention.draw_rotations(2, torch.device("cpu"), torch.float32))


def test_more_rounds_keep_first_rotations(tiny_config):
    attention = make_attention(tiny_config, hash_seed=3)
    two_rounds = attention.draw_rotations(2, torch.device("cpu"), torch.float32)
    four_rounds = attention.draw_rotations(4, torch.device("cpu"), torch.float32)
    assert torch.equal(four_rounds[:, :, :2], two_rounds)


def test_rotations_differ_per_layer(tiny_config):
    config = tiny_config(hash_seed=3)
    first = LSHSelfAttention(config, layer_idx=0).eval().draw_rotations(1, torch.device("cpu"), torch.float32)
    second = LSHSelfAttention(config, layer_idx=1).eval().draw_rotations(1, torch.device("cpu"), torch.float32)
    assert not torch.equal(first, second)


def test_rotations_fresh_in_training(tiny_config):
    attention = make_attention(tiny_config, hash_seed=3).train()
    first = attention.draw_rotations(1, torch.device("cpu"), torch.float32)
    second = attention.draw_rotations(1, torch.device("cpu"), torch.float32)
    assert not torch.equal(first, second)


def test_seeded_eval_leaves_global_rng(tiny_config):
    attention = make_attention(tiny_config, hash_seed=3)
    hidden_states, key_padding_mask = padded_batch(16, [16])
    state = torch.get_rng_state()
    attention(hidden_states, key_padding_mask)
    assert torch.equal(torch.get_rng_state(), state)


def test_padding_buckets_sort_last(tiny_config):
    attention = make_attention(tiny_config, num_hashes=2)
    hidden_states, key_padding_mask = padded_batch(16, [16, 9])
    _, buckets = attention(hidden_states, key_padding_mask)
    assert buckets.shape == (2, 2, 2, 16)  # [b, h, r, n]
    assert bool((buckets[1, :, :, 9:] == 4).all())
    assert int(buckets[:, :, :, :9].max()) < 4
    assert int(buckets[0].max()) < 4


def test_given_buckets_reused(tiny_config):
    attention = make_attention(tiny_config, num_hashes=2)
    hidden_states, key_padding_mask = padded_batch(16, [16, 11])
    outputs, buckets = attention(hidden_states, key_padding_mask)

    reused_outputs, reused_buckets = attention(hidden_states, key_padding_mask, buckets=buckets)
    other_outputs, _ = attention(hidden_states, key_padding_mask, buckets=buckets.flip(-1).clamp(max=3))

    assert reused_buckets is buckets
    assert torch.equal(reused_outputs, outputs)
    assert not torch.allclose(other_outputs, outputs)


def test_num_hashes_per_call(tiny_config):
    attention = make_attention(tiny_config, num_hashes=1)
    hidden_states, key_padding_mask = padded_batch(16, [16])
    _, buckets = attention(hidden_states, key_padding_mask, num_hashes=3)
    assert buckets.shape[2] == 3


# ---------------------------------------------------------------------------------------------
# The layer against references: the chunk window


@pytest.mark.parametrize("duplicate_correction", [False, True])
@pytest.mark.parametrize("num_hashes", [1, 3])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("real_lengths", [[16, 16], [16, 11]], ids=["unpadded", "padded"])
def test_one_chunk_equals_full_attention(tiny_config, duplicate_correction, num_hashes, causal, real_lengths):
    attention = make_chunk_window_attention(
        tiny_config,
        causal,
        lsh_chunk_length=16,
        num_hashes=num_hashes,
        lsh_duplicate_correction=duplicate_correction,
    )
    hidden_states, key_padding_mask = padded_batch(16, real_lengths)

    outputs, _ = attention(hidden_states, key_padding_mask)

    expected = full_shared_qk_attention(attention, hidden_states, key_padding_mask, causal)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


def test_one_chunk_equals_full_attention_in_training(tiny_config):
    # Training draws fresh rotations from the default generator, which cannot matter with one chunk.
    attention = make_chunk_window_attention(tiny_config, causal=True, lsh_chunk_length=16, num_hashes=2).train()
    hidden_states, key_padding_mask = padded_batch(16, [16, 13])
    outputs, _ = attention(hidden_states, key_padding_mask)
    expected = full_shared_qk_attention(attention, hidden_states, key_padding_mask, causal=True)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("duplicate_correction", [False, True])
@pytest.mark.parametrize("same_bucket_only", [False, True])
@pytest.mark.parametrize("num_hashes", [1, 3])
@pytest.mark.parametrize("causal", [True, False])
def test_chunks_match_brute_force(tiny_config, duplicate_correction, same_bucket_only, num_hashes, causal):
    attention = make_chunk_window_attention(
        tiny_config,
        causal,
        num_hashes=num_hashes,
        lsh_same_bucket_only=same_bucket_only,
        lsh_duplicate_correction=duplicate_correction,
    )
    hidden_states, key_padding_mask = padded_batch(24, [24, 17])

    outputs, buckets = attention(hidden_states, key_padding_mask)

    expected = brute_force_lsh(attention, hidden_states, key_padding_mask, buckets, duplicate_correction)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


def test_duplicate_correction_counts_keys_once(tiny_config):
    # Several chunks and rounds: a key found in two rounds is a duplicate, so the correction matters.
    kwargs = dict(num_hashes=3, lsh_duplicate_correction=True)
    corrected = make_chunk_window_attention(tiny_config, causal=True, **kwargs)
    uncorrected = make_chunk_window_attention(tiny_config, causal=True, **{**kwargs, "lsh_duplicate_correction": False})
    uncorrected.load_state_dict(corrected.state_dict())
    hidden_states, key_padding_mask = padded_batch(24, [24, 19])

    corrected_outputs, buckets = corrected(hidden_states, key_padding_mask)
    uncorrected_outputs, _ = uncorrected(hidden_states, key_padding_mask)

    counted_once = brute_force_lsh(corrected, hidden_states, key_padding_mask, buckets, count_each_key_once=True)
    counted_per_round = brute_force_lsh(corrected, hidden_states, key_padding_mask, buckets, count_each_key_once=False)
    assert (counted_once - counted_per_round).abs().max() > 1e-3, "the case must have duplicates"
    torch.testing.assert_close(corrected_outputs, counted_once, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(uncorrected_outputs, counted_per_round, rtol=1e-5, atol=1e-5)


def test_same_bucket_only_masks_other_buckets(tiny_config):
    attention = make_chunk_window_attention(tiny_config, causal=True, lsh_same_bucket_only=True)
    hidden_states, key_padding_mask = padded_batch(24, [24, 21])

    outputs, buckets = attention(hidden_states, key_padding_mask)

    attention.same_bucket_only = False
    any_bucket = brute_force_lsh(attention, hidden_states, key_padding_mask, buckets, False)
    attention.same_bucket_only = True
    own_bucket = brute_force_lsh(attention, hidden_states, key_padding_mask, buckets, False)
    assert (own_bucket - any_bucket).abs().max() > 1e-3, "the case must have keys from other buckets"
    torch.testing.assert_close(outputs, own_bucket, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The layer against references: the strictly causal window


def test_strict_flag_needs_decoder(tiny_config):
    assert make_attention(tiny_config).strictly_causal
    assert not make_attention(tiny_config, lsh_strictly_causal=False).strictly_causal
    assert not make_attention(tiny_config, is_decoder=False, lsh_num_chunks_after=1).strictly_causal


@pytest.mark.parametrize("duplicate_correction", [False, True])
@pytest.mark.parametrize("num_hashes", [1, 3])
@pytest.mark.parametrize("before", [1, 2])
@pytest.mark.parametrize("real_lengths", [[24, 24], [24, 17]], ids=["unpadded", "padded"])
def test_strict_matches_brute_force(tiny_config, duplicate_correction, num_hashes, before, real_lengths):
    attention = make_attention(
        tiny_config,
        num_hashes=num_hashes,
        lsh_num_chunks_before=before,
        lsh_duplicate_correction=duplicate_correction,
    )
    hidden_states, key_padding_mask = padded_batch(24, real_lengths)

    outputs, buckets = attention(hidden_states, key_padding_mask)

    expected = brute_force_strict_lsh(attention, hidden_states, key_padding_mask, buckets, duplicate_correction)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


def test_strict_matches_brute_force_in_training(tiny_config):
    attention = make_attention(tiny_config, num_hashes=2, lsh_duplicate_correction=True).train()
    hidden_states, key_padding_mask = padded_batch(24, [24, 19])
    outputs, buckets = attention(hidden_states, key_padding_mask)
    expected = brute_force_strict_lsh(attention, hidden_states, key_padding_mask, buckets, count_each_key_once=True)
    torch.testing.assert_close(outputs, expected, rtol=1e-5, atol=1e-5)


def test_strict_window_narrower_than_chunks(tiny_config):
    # The strict brute-force test means something only if its case has earlier bucket-mates that the
    # gap limit drops, and earlier bucket-mates in the chunk window that the strict window drops.
    attention = make_attention(tiny_config, num_hashes=3)
    hidden_states, key_padding_mask = padded_batch(24, [24, 17])
    _, buckets = attention(hidden_states, key_padding_mask)

    strict = brute_force_strict_lsh(attention, hidden_states, key_padding_mask, buckets, False)
    no_gap_limit = brute_force_strict_lsh(attention, hidden_states, key_padding_mask, buckets, False, max_slot_gap=24)
    attention.strictly_causal = False
    same_bucket_chunks = brute_force_lsh(attention, hidden_states, key_padding_mask, buckets, False)

    assert (strict - no_gap_limit).abs().max() > 1e-3
    assert (strict - same_bucket_chunks).abs().max() > 1e-3


def test_strict_duplicate_correction_counts_keys_once(tiny_config):
    kwargs = dict(num_hashes=3, lsh_duplicate_correction=True)
    corrected = make_attention(tiny_config, **kwargs)
    uncorrected = make_attention(tiny_config, **{**kwargs, "lsh_duplicate_correction": False})
    uncorrected.load_state_dict(corrected.state_dict())
    hidden_states, key_padding_mask = padded_batch(24, [24, 19])

    corrected_outputs, buckets = corrected(hidden_states, key_padding_mask)
    uncorrected_outputs, _ = uncorrected(hidden_states, key_padding_mask)

    counted_once = brute_force_strict_lsh(corrected, hidden_states, key_padding_mask, buckets, True)
    counted_per_round = brute_force_strict_lsh(corrected, hidden_states, key_padding_mask, buckets, False)
    assert (counted_once - counted_per_round).abs().max() > 1e-3, "the case must have duplicates"
    torch.testing.assert_close(corrected_outputs, counted_once, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(uncorrected_outputs, counted_per_round, rtol=1e-5, atol=1e-5)


def test_strict_padding_keys_ignored(tiny_config):
    attention = make_attention(tiny_config, num_hashes=2)
    hidden_states, key_padding_mask = padded_batch(24, [24, 17])
    changed = hidden_states.clone()
    changed[1, 17:] = torch.randn(7, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    torch.testing.assert_close(changed_outputs[:, :17], outputs[:, :17], rtol=0, atol=1e-6)
    torch.testing.assert_close(changed_outputs[0], outputs[0], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Causality


STRICTLY_CAUSAL = {"strict": True, "chunk-window": False}


@pytest.mark.parametrize("strictly_causal", list(STRICTLY_CAUSAL.values()), ids=list(STRICTLY_CAUSAL))
@pytest.mark.parametrize("num_hashes", [1, 3])
def test_causal_one_chunk(tiny_config, num_hashes, strictly_causal):
    attention = make_attention(
        tiny_config, lsh_chunk_length=16, num_hashes=num_hashes, lsh_strictly_causal=strictly_causal
    )
    hidden_states, key_padding_mask = padded_batch(16, [16])
    changed = hidden_states.clone()
    changed[:, 7:] = torch.randn(1, 9, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    # Not bitwise: the sorted order changes, and with it the order of the float sums.
    torch.testing.assert_close(changed_outputs[:, :7], outputs[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(changed_outputs[:, 7:], outputs[:, 7:])


@pytest.mark.parametrize("strictly_causal", list(STRICTLY_CAUSAL.values()), ids=list(STRICTLY_CAUSAL))
@pytest.mark.parametrize("num_hashes", [1, 3])
def test_causal_mask_with_fixed_buckets(tiny_config, num_hashes, strictly_causal):
    # With the buckets held fixed, the chunks stay the same, so only the causal mask keeps later
    # keys out of earlier queries.
    attention = make_attention(tiny_config, num_hashes=num_hashes, lsh_strictly_causal=strictly_causal)
    hidden_states, key_padding_mask = padded_batch(24, [24])
    changed = hidden_states.clone()
    changed[:, 10:] = torch.randn(1, 14, 32)

    outputs, buckets = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask, buckets=buckets)

    torch.testing.assert_close(changed_outputs[:, :10], outputs[:, :10], rtol=0, atol=1e-6)
    assert not torch.allclose(changed_outputs[:, 10:], outputs[:, 10:])


def change_after(hidden_states: torch.Tensor, cut: int) -> torch.Tensor:
    """Copy ``hidden_states`` with fresh random vectors at positions ``cut`` and later."""
    changed = hidden_states.clone()
    changed[:, cut:] = torch.randn_like(changed[:, cut:])
    return changed


@pytest.mark.parametrize("num_hashes", [1, 3])
@pytest.mark.parametrize("cut", [5, 10, 17])
def test_strict_causal_several_chunks(tiny_config, num_hashes, cut):
    # 24 positions in chunks of 4: six chunks, so the chunk window would let later tokens in.
    attention = make_attention(tiny_config, num_hashes=num_hashes)
    hidden_states, key_padding_mask = padded_batch(24, [24])
    changed = change_after(hidden_states, cut)

    outputs, buckets = attention(hidden_states, key_padding_mask)
    changed_outputs, changed_buckets = attention(changed, key_padding_mask)

    _, slots = sort_by_bucket(buckets)
    _, changed_slots = sort_by_bucket(changed_buckets)
    assert not torch.equal(changed_slots[..., :cut], slots[..., :cut]), "earlier positions must move in the sort"
    torch.testing.assert_close(changed_outputs[:, :cut], outputs[:, :cut], rtol=0, atol=1e-6)
    assert not torch.allclose(changed_outputs[:, cut:], outputs[:, cut:])


def test_chunk_window_leaks_later_tokens(tiny_config):
    # The known limit of the chunk window: later tokens' buckets move earlier queries to other
    # sorted slots, and so to other chunks with other earlier keys. This seed and cut show it.
    attention = make_attention(tiny_config, num_hashes=1, lsh_strictly_causal=False)
    hidden_states, key_padding_mask = padded_batch(24, [24])
    changed = change_after(hidden_states, 10)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    assert (changed_outputs[:, :10] - outputs[:, :10]).abs().max() > 1e-3


@pytest.mark.parametrize("bucket_factors", [[8], [4, 6]])
def test_hashing_equals_argmax_over_both_signs_with_ties(bucket_factors):
    """Buckets are the first argmax of ``[xR; -xR]`` per factor, also where entries tie.

    Small integer vectors and rotations make ties between a rotation's two signs and between
    rotations common.
    """
    vectors = torch.randint(-2, 3, (2, 3, 40, 4)).float()
    rotations = torch.randint(-1, 2, (3, 4, 2, sum(u // 2 for u in bucket_factors))).float()
    rotated = torch.einsum("bhnd,hdrs->bhrns", vectors, rotations)
    expected, offset, place_value = 0, 0, 1
    for num_buckets in bucket_factors:
        half = rotated[..., offset : offset + num_buckets // 2]
        expected = expected + torch.cat([half, -half], dim=-1).argmax(dim=-1) * place_value
        offset += num_buckets // 2
        place_value *= num_buckets
    assert (rotated == 0).any()
    torch.testing.assert_close(hash_vectors(vectors, rotations, bucket_factors), expected, rtol=0, atol=0)
