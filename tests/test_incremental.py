"""The generation cache: continuing from a cache computes what a full forward pass computes."""

import pytest
import torch

from reformer_hf import ReformerConfig, ReformerForCausalLM
from reformer_hf.incremental import ReformerCache

SCHEDULES = {
    "local": {"attention_layers": ["local", "local"]},
    "full": {"attention_layers": ["full", "local"]},
    "lsh": {"attention_layers": ["lsh", "lsh"]},
    "mixed-3-rounds": {"num_hashes": 3},
    "mixed-duplicate-correction": {"num_hashes": 2, "lsh_duplicate_correction": True},
    "mixed-factorised": {"num_buckets": [2, 4], "local_num_chunks_before": 2, "lsh_num_chunks_before": 2},
}


def causal_model(**overrides) -> ReformerForCausalLM:
    settings = dict(
        vocab_size=30, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh", "local", "lsh"], lsh_chunk_length=8, local_chunk_length=4, num_buckets=4,
        axial_pos_shape=[8, 16], axial_pos_embds_dim=[16, 16], hash_seed=1, hidden_dropout_prob=0.0,
        initializer_range=0.3,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return ReformerForCausalLM(ReformerConfig(**settings)).eval()


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_steps_from_cache_equal_full_forward(name):
    model = causal_model(**SCHEDULES[name])
    input_ids = torch.randint(3, 30, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(input_ids).logits
        prefill = model(input_ids[:, :13], use_cache=True)
        assert isinstance(prefill.cache, ReformerCache)
        torch.testing.assert_close(prefill.logits, full[:, :13], atol=1e-5, rtol=0)
        # Several tokens in one call, then one at a time.
        chunk = model(input_ids[:, 13:20], cache=prefill.cache)
        steps = [chunk.logits] + [model(input_ids[:, t : t + 1], cache=prefill.cache).logits for t in range(20, 40)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full[:, 13:], atol=1e-5, rtol=0)
    assert prefill.cache.get_seq_length() == 40


@pytest.mark.parametrize("num_hashes", [1, 2])
def test_unseeded_cache_hashes_new_tokens_with_prompt_rotations(num_hashes):
    # Without hash_seed every forward pass draws new rotations. The cache must keep the prompt's
    # rotations, so that new tokens land in the buckets the cached keys were sorted into. Seeding
    # the default generator alike before the prefill and the full pass gives both the same draws.
    model = causal_model(hash_seed=None, num_hashes=num_hashes)
    input_ids = torch.randint(3, 30, (2, 40), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.manual_seed(5)
        full = model(input_ids).logits
        torch.manual_seed(5)
        prefill = model(input_ids[:, :13], use_cache=True)
        steps = [model(input_ids[:, t : t + 1], cache=prefill.cache).logits for t in range(13, 40)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full[:, 13:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["mixed-3-rounds", "mixed-factorised"])
def test_cached_generation_equals_uncached_with_left_padding(name):
    model = causal_model(**SCHEDULES[name])
    prompt = torch.randint(3, 30, (3, 12), generator=torch.Generator().manual_seed(2))
    attention_mask = torch.ones_like(prompt)
    attention_mask[1, :4] = 0
    attention_mask[2, :9] = 0
    settings = {"attention_mask": attention_mask, "max_new_tokens": 50, "do_sample": False, "pad_token_id": 0}
    cached = model.generate(prompt, use_cache=True, **settings)
    uncached = model.generate(prompt, use_cache=False, **settings)
    assert torch.equal(cached, uncached)
    assert cached[0, 12:].unique().numel() >= 5


def test_beam_search_and_sampling_with_cache_equal_uncached():
    model = causal_model(num_hashes=2)
    prompt = torch.randint(3, 30, (2, 9), generator=torch.Generator().manual_seed(3))
    beams = {"max_new_tokens": 30, "num_beams": 3, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(model.generate(prompt, use_cache=True, **beams), model.generate(prompt, use_cache=False, **beams))
    sampled = []
    for use_cache in (True, False):
        torch.manual_seed(7)
        sampled.append(model.generate(prompt, use_cache=use_cache, do_sample=True, top_k=10, top_p=0.9,
                                      max_new_tokens=30, pad_token_id=0))
    assert torch.equal(*sampled)


def test_cache_is_not_used_in_training():
    model = causal_model()
    input_ids = torch.randint(3, 30, (1, 16))
    with torch.no_grad():
        cache = model(input_ids, use_cache=True).cache
    model.train()
    assert model(input_ids, use_cache=True).cache is None
    with pytest.raises(ValueError, match="A generation cache was passed in training mode"):
        model(input_ids[:, :1], cache=cache)


def test_bad_cache_continuations_are_refused():
    model = causal_model()
    input_ids = torch.randint(3, 30, (2, 16))
    with torch.no_grad():
        cache = model(input_ids, use_cache=True).cache
        with pytest.raises(ValueError, match="The cache was built with num_hashes=1, but this call asks for 2"):
            model(input_ids[:, :1], cache=cache, num_hashes=2)
        with pytest.raises(ValueError, match="The cache contains 2 rows but the input has 1"):
            model(input_ids[:1, :1], cache=cache)
        with pytest.raises(ValueError, match=r"attention_mask must have shape \[2, 17\]"):
            model(input_ids[:, :1], cache=cache, attention_mask=torch.ones(2, 16))
        with pytest.raises(ValueError, match="Tokens added to a cache must be real"):
            model(input_ids[:, :1], cache=cache, attention_mask=torch.cat([torch.ones(2, 16), torch.zeros(2, 1)], 1))
        with pytest.raises(ValueError, match="labels cannot be combined with a generation cache"):
            model(input_ids[:, :1], cache=cache, labels=input_ids[:, :1])
        # Nothing above extended the cache.
        assert cache.get_seq_length() == 16


def test_cache_refuses_positions_past_capacity():
    model = causal_model(axial_pos_shape=[4, 4])
    input_ids = torch.randint(3, 30, (1, 16))
    with torch.no_grad():
        cache = model(input_ids, use_cache=True).cache
        with pytest.raises(ValueError, match="The next token would take position 16, but the model embeds only 16"):
            model(input_ids[:, :1], cache=cache)
