"""Numerical parity with transformers' own Reformer.

Each case builds a small transformers Reformer from random weights and converts it with
``convert_from_transformers``. Both must then compute the same logits and last hidden states in
evaluation and training mode, the same loss and parameter gradients, and the same tokens in greedy
cached generation. transformers' implementation was written independently of ours, so these
tests check our LSH and local attention, the reversible layers and the conversion at once.
"""

import pytest
import torch
import transformers

from reformer_hf.conversion import convert_from_transformers, state_dict_from_transformers

OUTPUT_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-5  # relative to the largest gradient entry of each parameter

CASES = {
    "mixed-causal-1-round": {},
    "mixed-causal-3-rounds": {"num_hashes": 3},
    "mixed-causal-factorised": {"num_buckets": [2, 4], "num_hashes": 2},
    "mixed-bidirectional-2-rounds": {"is_decoder": False, "num_hashes": 2},
    "mixed-bidirectional-factorised": {"is_decoder": False, "num_buckets": [4, 2], "lsh_num_chunks_after": 1,
                                       "local_num_chunks_after": 1},
    "lsh-only-causal-2-rounds": {"attn_layers": ["lsh", "lsh"], "num_hashes": 2},
    "lsh-only-bidirectional": {"attn_layers": ["lsh", "lsh"], "is_decoder": False},
    "local-only-causal": {"attn_layers": ["local", "local"], "local_num_chunks_before": 2},
    "local-only-bidirectional": {"attn_layers": ["local", "local"], "is_decoder": False},
    # transformers' chunked feed-forward needs lengths that the chunk size divides: 40 (37 padded) and 128.
    "learned-positions-chunked-feed-forward": {"axial_pos_embds": False, "chunk_size_feed_forward": 8,
                                               "num_hashes": 2},
    "axial-chunked-feed-forward-bidirectional": {"is_decoder": False, "chunk_size_feed_forward": 8},
    "learned-positions-causal": {"axial_pos_embds": False},
}
# transformers cannot generate with a chunked feed-forward layer: a single new token is not a
# multiple of the chunk size.
CAUSAL_CASES = [
    name for name, overrides in CASES.items()
    if overrides.get("is_decoder", True) and not overrides.get("chunk_size_feed_forward")
]


def transformers_config(**overrides) -> transformers.ReformerConfig:
    settings = dict(
        vocab_size=40, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attn_layers=["local", "lsh", "local", "lsh"], lsh_attn_chunk_length=8, local_attn_chunk_length=4,
        num_buckets=4, num_hashes=1, hash_seed=3, is_decoder=True, axial_pos_shape=[8, 16],
        axial_pos_embds_dim=[16, 16], max_position_embeddings=128, hidden_dropout_prob=0.0,
        lsh_attention_probs_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0, axial_norm_std=1.0,
        eos_token_id=None,
    )
    settings.update(overrides)
    return transformers.ReformerConfig(**settings)


def build_pair(name: str, **extra):
    """A random transformers Reformer with an LM head and its conversion."""
    torch.manual_seed(sum(map(ord, name)))
    config = transformers_config(**CASES[name], **extra)
    head = transformers.ReformerModelWithLMHead if config.is_decoder else transformers.ReformerForMaskedLM
    original = head(config)
    return original, convert_from_transformers(original)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    difference = (actual - expected).abs().max().item()
    assert difference <= OUTPUT_TOLERANCE, f"{what}: max difference {difference:.3g}"


@pytest.mark.parametrize("name", list(CASES))
def test_evaluation_outputs_match(name):
    original, converted = build_pair(name)
    original.eval()
    converted.eval()
    generator = torch.Generator().manual_seed(1)
    # 37 is no multiple of the chunk lengths, so both models pad internally.
    input_ids = torch.randint(3, 40, (3, 37), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 29:] = 0  # right padding
    attention_mask[2, :6] = 0  # left padding
    with torch.no_grad():
        for mask in (None, attention_mask):
            # Outputs at padding are arbitrary in both implementations; real tokens must agree.
            real = torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask.bool()
            expected = original(input_ids, attention_mask=mask).logits
            actual = converted(input_ids, attention_mask=mask).logits
            assert_close(actual[real], expected[real], f"logits (mask={mask is not None})")
            expected_hidden = original.reformer(input_ids, attention_mask=mask).last_hidden_state
            actual_hidden = converted.reformer(input_ids, attention_mask=mask).last_hidden_state
            assert_close(actual_hidden[real], expected_hidden[real], f"last hidden states (mask={mask is not None})")


@pytest.mark.parametrize("name", list(CASES))
def test_training_loss_and_gradients_match(name):
    original, converted = build_pair(name)
    original.train()
    converted.train()
    generator = torch.Generator().manual_seed(2)
    # transformers trains axial positions only on sequences of exactly prod(axial_pos_shape).
    input_ids = torch.randint(3, 40, (2, 128), generator=generator)
    labels = input_ids.clone()
    labels[:, ::5] = -100
    expected = original(input_ids, labels=labels)
    actual = converted(input_ids, labels=labels)
    assert_close(actual.logits, expected.logits, "training logits")
    assert abs(actual.loss.item() - expected.loss.item()) <= OUTPUT_TOLERANCE
    expected.loss.backward()
    actual.loss.backward()

    expected_grads = {name: p.grad for name, p in original.named_parameters() if p.grad is not None}
    expected_grads = state_dict_from_transformers(expected_grads, converted.config)
    actual_grads = {name: p.grad for name, p in converted.named_parameters()}
    assert set(expected_grads) == set(actual_grads)
    for param_name, expected_grad in expected_grads.items():
        actual_grad = actual_grads[param_name]
        assert actual_grad is not None, f"{param_name} got no gradient"
        scale = expected_grad.abs().max().item()
        difference = (actual_grad - expected_grad.reshape(actual_grad.shape)).abs().max().item()
        assert difference <= GRADIENT_TOLERANCE * max(scale, 1e-12), (
            f"{param_name}: gradient difference {difference:.3g} at scale {scale:.3g}"
        )


@pytest.mark.parametrize("name", CAUSAL_CASES)
@pytest.mark.parametrize("prompt_length", [5, 11])
def test_cached_greedy_generation_matches(name, prompt_length):
    # Larger initial weights make a random model's greedy continuation vary instead of repeating one
    # token, so that the cache's attention pattern decides every step.
    original, converted = build_pair(name, initializer_range=0.5)
    original.eval()
    converted.eval()
    prompt = torch.randint(3, 40, (1, prompt_length), generator=torch.Generator().manual_seed(prompt_length))
    settings = {"max_new_tokens": 64, "do_sample": False, "use_cache": True, "pad_token_id": 0}
    expected = original.generate(prompt, **settings)
    actual = converted.generate(prompt, **settings)
    assert expected.shape == (1, prompt_length + 64)
    assert expected[0, prompt_length:].unique().numel() >= 5, "degenerate continuation; the check would be weak"
    assert torch.equal(actual, expected)


def test_transformers_cache_semantics_are_reproduced_not_recomputed():
    # transformers' cached LSH generation differs from its own uncached forward passes. The converted
    # model must follow the cached one, which shows that the cache path is emulated, not bypassed.
    original, converted = build_pair("mixed-causal-3-rounds", initializer_range=0.5)
    original.eval()
    converted.eval()
    prompt = torch.randint(3, 40, (1, 11), generator=torch.Generator().manual_seed(0))
    settings = {"max_new_tokens": 64, "do_sample": False, "pad_token_id": 0}
    cached = original.generate(prompt, use_cache=True, **settings)
    uncached = original.generate(prompt, use_cache=False, **settings)
    assert not torch.equal(cached, uncached)
    assert torch.equal(converted.generate(prompt, use_cache=True, **settings), cached)
    assert torch.equal(converted.generate(prompt, use_cache=False, **settings), uncached)


def test_our_defaults_differ_from_transformers_where_documented():
    # With chunk_window_wraps off, the first chunk of a bidirectional model no longer attends to the
    # sequence's last chunk, so its outputs change. The other chunks do not wrap and stay equal.
    original, converted = build_pair("local-only-bidirectional")
    original.eval()
    converted.eval()
    input_ids = torch.randint(3, 40, (1, 32), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = original(input_ids).logits
        converted.config.chunk_window_wraps = False
        for module in converted.modules():
            if hasattr(module, "wraps"):
                module.wraps = False
        unwrapped = converted(input_ids).logits
    first_chunk, later = slice(0, 4), slice(4, 32)
    assert (unwrapped[:, first_chunk] - expected[:, first_chunk]).abs().max() > 1e-3
    assert_close(unwrapped[:, later], expected[:, later], "chunks that do not wrap")


def compare_gradients(original, converted) -> None:
    expected_grads = {name: p.grad for name, p in original.named_parameters() if p.grad is not None}
    expected_grads = state_dict_from_transformers(expected_grads, converted.config)
    actual_grads = {name: p.grad for name, p in converted.named_parameters()}
    assert set(expected_grads) == set(actual_grads)
    for param_name, expected_grad in expected_grads.items():
        scale = expected_grad.abs().max().item()
        difference = (actual_grads[param_name] - expected_grad.reshape(actual_grads[param_name].shape)).abs().max()
        assert difference.item() <= GRADIENT_TOLERANCE * max(scale, 1e-12), param_name


@pytest.mark.parametrize("head", ["sequence-classification", "question-answering", "causal-lm-padded"])
def test_heads_train_on_padded_batches_like_transformers(head):
    torch.manual_seed(5)
    if head == "sequence-classification":
        original = transformers.ReformerForSequenceClassification(transformers_config(is_decoder=False, num_labels=3))
        targets = {"labels": torch.tensor([2, 0])}
    elif head == "question-answering":
        original = transformers.ReformerForQuestionAnswering(transformers_config(is_decoder=False, num_hashes=2))
        targets = {"start_positions": torch.tensor([3, 50]), "end_positions": torch.tensor([9, 60])}
    else:
        original = transformers.ReformerModelWithLMHead(transformers_config(num_hashes=2))
    converted = convert_from_transformers(original)
    original.train()
    converted.train()
    input_ids = torch.randint(3, 40, (2, 128), generator=torch.Generator().manual_seed(6))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 70:] = 0
    if head == "causal-lm-padded":
        targets = {"labels": input_ids.masked_fill(attention_mask == 0, -100)}
    expected = original(input_ids, attention_mask=attention_mask, **targets)
    actual = converted(input_ids, attention_mask=attention_mask, **targets)
    assert abs(actual.loss.item() - expected.loss.item()) <= OUTPUT_TOLERANCE
    expected.loss.backward()
    actual.loss.backward()
    compare_gradients(original, converted)
