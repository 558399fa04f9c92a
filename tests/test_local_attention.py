"""Local and full self-attention against banded and plain attention written with plain torch."""

import pytest
import torch

from reformer_hf.local_attention import FullSelfAttention, LocalSelfAttention


def banded_attention(attention, hidden_states, key_padding_mask, chunk_length, before, after, causal):
    """Full attention where query chunk ``i`` may see key chunks ``i - before`` to ``i + after``.

    ``before = after = None`` allows every chunk, which is plain full attention.
    """
    b, n, _ = hidden_states.shape
    h, d = attention.num_heads, attention.head_size

    def heads(linear):
        return linear(hidden_states).view(b, n, h, d).transpose(1, 2)  # [b, h, n, d]

    logits = heads(attention.query) @ heads(attention.key).transpose(-1, -2) * d**-0.5
    positions = torch.arange(n)
    chunk = positions // chunk_length
    allowed = key_padding_mask[:, None, None, :].expand(b, 1, n, n)
    if before is not None:
        allowed = allowed & (chunk[None, :] >= chunk[:, None] - before) & (chunk[None, :] <= chunk[:, None] + after)
    if causal:
        allowed = allowed & (positions[None, :] <= positions[:, None])
    probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
    return (probs @ heads(attention.value)).transpose(1, 2).reshape(b, n, h * d)


def padded_batch(length: int, real_lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    hidden_states = torch.randn(len(real_lengths), length, 32)
    key_padding_mask = torch.arange(length) < torch.tensor(real_lengths)[:, None]
    return hidden_states, key_padding_mask


def assert_close_at_real(actual, expected, key_padding_mask):
    """Compare real positions only: a padded query may have no allowed key, where the reference is NaN."""
    torch.testing.assert_close(actual[key_padding_mask], expected[key_padding_mask], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "before, after, causal",
    [(1, 0, True), (2, 0, True), (0, 0, True), (1, 0, False), (0, 1, False), (1, 1, False), (0, 0, False)],
)
@pytest.mark.parametrize("real_lengths", [[16, 16], [16, 9]], ids=["unpadded", "padded"])
def test_local_equals_banded(tiny_config, before, after, causal, real_lengths):
    config = tiny_config(
        is_decoder=causal, local_chunk_length=4, local_num_chunks_before=before, local_num_chunks_after=after
    )
    attention = LocalSelfAttention(config, layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(16, real_lengths)

    outputs, buckets = attention(hidden_states, key_padding_mask)

    expected = banded_attention(attention, hidden_states, key_padding_mask, 4, before, after, causal)
    assert buckets is None
    assert_close_at_real(outputs, expected, key_padding_mask)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("real_lengths", [[12, 12], [12, 5]], ids=["unpadded", "padded"])
def test_full_equals_plain_attention(tiny_config, causal, real_lengths):
    # The sequence length need not be a multiple of local_chunk_length for full attention.
    attention = FullSelfAttention(tiny_config(is_decoder=causal, local_chunk_length=8), layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(12, real_lengths)

    outputs, _ = attention(hidden_states, key_padding_mask)

    expected = banded_attention(attention, hidden_states, key_padding_mask, 12, None, None, causal)
    assert_close_at_real(outputs, expected, key_padding_mask)


def test_first_chunk_no_wrap_around(tiny_config):
    # With look-back, a wrapping window would put the last chunk before the first one.
    config = tiny_config(is_decoder=False, local_num_chunks_before=1, local_num_chunks_after=0)
    attention = LocalSelfAttention(config, layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(16, [16])
    changed = hidden_states.clone()
    changed[:, 12:] = torch.randn(1, 4, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    assert torch.equal(changed_outputs[:, :4], outputs[:, :4])
    assert not torch.allclose(changed_outputs[:, 12:], outputs[:, 12:])


def test_last_chunk_no_wrap_around(tiny_config):
    config = tiny_config(is_decoder=False, local_num_chunks_before=0, local_num_chunks_after=1)
    attention = LocalSelfAttention(config, layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(16, [16])
    changed = hidden_states.clone()
    changed[:, :4] = torch.randn(1, 4, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    assert torch.equal(changed_outputs[:, 12:], outputs[:, 12:])


@pytest.mark.parametrize("attention_class", [LocalSelfAttention, FullSelfAttention])
@pytest.mark.parametrize("cut", [1, 6, 13])
def test_causal(tiny_config, attention_class, cut):
    attention = attention_class(tiny_config(is_decoder=True, local_num_chunks_before=2), layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(16, [16])
    changed = hidden_states.clone()
    changed[:, cut:] = torch.randn(1, 16 - cut, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    assert torch.equal(changed_outputs[:, :cut], outputs[:, :cut])
    assert not torch.allclose(changed_outputs[:, cut:], outputs[:, cut:])


@pytest.mark.parametrize("attention_class", [LocalSelfAttention, FullSelfAttention])
def test_padded_keys_ignored(tiny_config, attention_class):
    attention = attention_class(tiny_config(is_decoder=False, local_num_chunks_after=1), layer_idx=0).eval()
    hidden_states, key_padding_mask = padded_batch(16, [10])
    changed = hidden_states.clone()
    changed[:, 10:] = torch.randn(1, 6, 32)

    outputs, _ = attention(hidden_states, key_padding_mask)
    changed_outputs, _ = attention(changed, key_padding_mask)

    assert torch.equal(changed_outputs[:, :10], outputs[:, :10])


def test_attention_dropout_in_training(tiny_config):
    attention = LocalSelfAttention(tiny_config(attention_probs_dropout_prob=0.5), layer_idx=0)
    hidden_states, key_padding_mask = padded_batch(16, [16])
    evaluated, _ = attention.eval()(hidden_states, key_padding_mask)
    trained, _ = attention.train()(hidden_states, key_padding_mask)
    assert not torch.allclose(trained, evaluated)
