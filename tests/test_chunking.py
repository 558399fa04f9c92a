"""Chunk arithmetic: padding, splitting, neighbouring chunks without wrap-around, and ``attend``."""

import pytest
import torch

from reformer_hf.chunking import (
    MASK_VALUE,
    SELF_MASK_VALUE,
    attend,
    look_adjacent,
    pad_to_multiple,
    padded_length,
    split_into_chunks,
)


@pytest.mark.parametrize("length, multiple, expected", [(1, 4, 4), (4, 4, 4), (5, 4, 8), (13, 6, 18), (7, 1, 7)])
def test_padded_length(length, multiple, expected):
    assert padded_length(length, multiple) == expected


def test_pad_appends_value():
    tensor = torch.arange(10).reshape(2, 5)
    padded = pad_to_multiple(tensor, 4, dim=1, value=-7)
    assert padded.shape == (2, 8)
    assert torch.equal(padded[:, :5], tensor)
    assert bool((padded[:, 5:] == -7).all())


def test_pad_keeps_dtype():
    mask = torch.ones(2, 3, dtype=torch.bool)
    padded = pad_to_multiple(mask, 4, dim=1, value=False)
    assert padded.dtype == torch.bool
    assert padded.tolist() == [[True, True, True, False]] * 2


def test_pad_noop_when_multiple():
    tensor = torch.randn(2, 8, 3)
    assert pad_to_multiple(tensor, 4, dim=1) is tensor


def test_split_values():
    tensor = torch.arange(24).reshape(2, 12)
    chunks = split_into_chunks(tensor, 4, dim=1)
    assert chunks.shape == (2, 3, 4)
    assert chunks[1, 2].tolist() == [20, 21, 22, 23]


def test_split_negative_dim():
    tensor = torch.randn(2, 12, 5)
    assert split_into_chunks(tensor, 3, dim=-2).shape == (2, 4, 3, 5)


def test_split_rejects_partial_chunk():
    with pytest.raises(ValueError, match="internal error: length 10 is not a multiple of chunk length 4"):
        split_into_chunks(torch.zeros(10), 4, dim=0)


def reference_look_adjacent(chunks: torch.Tensor, before: int, after: int, fill_value) -> torch.Tensor:
    """Window of chunk ``i`` for ``chunks`` ``[c, w, ...]``: chunks ``i - before .. i + after``, filled off the ends."""
    num_chunks = chunks.shape[0]
    windows = []
    for index in range(num_chunks):
        parts = []
        for neighbour in range(index - before, index + after + 1):
            if 0 <= neighbour < num_chunks:
                parts.append(chunks[neighbour])
            else:
                parts.append(torch.full_like(chunks[0], fill_value))
        windows.append(torch.cat(parts, dim=0))
    return torch.stack(windows)


@pytest.mark.parametrize("before, after", [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1), (3, 0), (0, 5)])
def test_look_adjacent_matches_reference(before, after):
    chunks = torch.arange(4 * 3).reshape(4, 3) + 1  # [c, w]
    actual = look_adjacent(chunks, before, after, chunk_dim=0, fill_value=-1)
    assert torch.equal(actual, reference_look_adjacent(chunks, before, after, -1))


def test_look_adjacent_first_chunk_no_wrap():
    chunks = torch.arange(4 * 2).reshape(4, 2)
    windows = look_adjacent(chunks, 1, 1, chunk_dim=0, fill_value=-1)
    assert windows[0].tolist() == [-1, -1, 0, 1, 2, 3]
    assert windows[3].tolist() == [4, 5, 6, 7, -1, -1]


def test_look_adjacent_inner_chunk_dim():
    # [b, h, c, w, d] with the chunk dim at 2, as the attention layers call it.
    chunks = torch.randn(2, 3, 5, 4, 6)
    actual = look_adjacent(chunks, 1, 1, chunk_dim=2, fill_value=0.0)
    assert actual.shape == (2, 3, 5, 12, 6)
    for batch in range(2):
        for head in range(3):
            expected = reference_look_adjacent(chunks[batch, head], 1, 1, 0.0)
            assert torch.equal(actual[batch, head], expected)


def test_look_adjacent_negative_chunk_dim():
    chunks = torch.randn(5, 4, 6)
    negative = look_adjacent(chunks, 1, 0, chunk_dim=-3, fill_value=0.0)
    assert torch.equal(negative, look_adjacent(chunks, 1, 0, chunk_dim=0, fill_value=0.0))


def test_attend_matches_softmax():
    query, keys, values = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 8)
    allowed = torch.rand(2, 3, 4, 12) > 0.3
    allowed[..., 0] = True
    logit_bias = torch.zeros(allowed.shape).masked_fill(~allowed, MASK_VALUE)

    outputs, logsumexp = attend(query, keys, values, logit_bias, torch.nn.Identity())

    logits = (query @ keys.transpose(-1, -2)).masked_fill(~allowed, float("-inf"))
    torch.testing.assert_close(outputs, torch.softmax(logits, dim=-1) @ values, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logsumexp, torch.logsumexp(logits, dim=-1), rtol=1e-5, atol=1e-6)


def test_attend_masked_key_weight_zero():
    # A masked key must add exactly nothing, even with a huge value and a large logit.
    query = torch.ones(1, 1, 4)
    keys = torch.tensor([[[1.0, 0, 0, 0], [50.0, 0, 0, 0]]])
    values = torch.tensor([[[1.0, 2, 3, 4], [1e6, 1e6, 1e6, 1e6]]])
    logit_bias = torch.tensor([[[0.0, MASK_VALUE]]])
    outputs, _ = attend(query, keys, values, logit_bias, torch.nn.Identity())
    assert torch.equal(outputs, values[:, :1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_attend_low_precision_dtypes(dtype):
    query, keys, values = (torch.randn(1, 2, 4, 8).to(dtype) for _ in range(3))
    logit_bias = torch.zeros(1, 2, 4, 4)
    logit_bias[..., 3] = MASK_VALUE

    outputs, logsumexp = attend(query, keys, values, logit_bias, torch.nn.Identity())

    assert outputs.dtype == dtype
    assert logsumexp.dtype == torch.float32
    assert bool(torch.isfinite(outputs).all())


@pytest.mark.parametrize("autocast", [False, True])
def test_fused_attention_matches_the_softmax_path(autocast):
    # need_logsumexp=False runs torch's fused scaled_dot_product_attention; it must agree with the
    # explicit softmax, on rows with some keys masked, only the own key left, and every key masked.
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(2, 3, 8, 16, generator=generator, requires_grad=True)
    keys = torch.randn(2, 3, 24, 16, generator=generator, requires_grad=True)
    values = torch.randn(2, 3, 24, 16, generator=generator, requires_grad=True)
    allowed = torch.rand(2, 3, 8, 24, generator=generator) > 0.5
    logit_bias = torch.zeros(2, 3, 8, 24).masked_fill(~allowed, MASK_VALUE)
    logit_bias[0, 0, 1] = MASK_VALUE
    logit_bias[0, 0, 1, 5] = SELF_MASK_VALUE
    logit_bias[1, 2, 3] = MASK_VALUE
    dropout = torch.nn.Dropout(0.0)
    results = []
    for need_logsumexp in (True, False):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            outputs, logsumexp = attend(query, keys, values, logit_bias, dropout, need_logsumexp=need_logsumexp)
        assert (logsumexp is None) == (not need_logsumexp)
        grads = torch.autograd.grad(outputs.float().square().sum(), [query, keys, values])
        results.append((outputs.float(), grads))
    (expected, expected_grads), (actual, actual_grads) = results
    assert torch.equal(actual[1, 2, 3], torch.zeros_like(actual[1, 2, 3]))
    # Relative to the whole tensor: the kernels sum in different orders, and a single small
    # gradient entry can differ by more than its own size in bf16.
    tolerance = 2e-2 if autocast else 1e-5
    for actual_tensor, expected_tensor in zip((actual, *actual_grads), (expected, *expected_grads)):
        difference = (actual_tensor - expected_tensor).norm() / expected_tensor.norm()
        assert difference <= tolerance, difference
