"""Generation through ``GenerationMixin``: batching, padding, limits and quiet steps."""

import logging
import warnings

import pytest
import torch

from reformer_hf import ReformerConfig, ReformerForCausalLM


def causal_model(**overrides) -> ReformerForCausalLM:
    settings = dict(
        vocab_size=30, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh", "local", "lsh"], lsh_chunk_length=8, local_chunk_length=4, num_buckets=4,
        num_hashes=2, axial_pos_shape=[8, 16], axial_pos_embds_dim=[16, 16], hash_seed=1, hidden_dropout_prob=0.0,
        initializer_range=0.3, pad_token_id=0, eos_token_id=None,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return ReformerForCausalLM(ReformerConfig(**settings)).eval()


def left_pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(row) for row in rows)
    input_ids = torch.zeros(len(rows), length, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), length, dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, length - len(row):] = row
        attention_mask[index, length - len(row):] = 1
    return input_ids, attention_mask


@pytest.mark.parametrize("use_cache", [True, False])
def test_left_padded_batch_continues_each_row_as_alone(use_cache):
    model = causal_model()
    generator = torch.Generator().manual_seed(4)
    rows = [torch.randint(3, 30, (length,), generator=generator) for length in (5, 17, 11)]
    input_ids, attention_mask = left_pad(rows)
    settings = {"max_new_tokens": 40, "do_sample": False, "use_cache": use_cache}
    batched = model.generate(input_ids, attention_mask=attention_mask, **settings)
    for index, row in enumerate(rows):
        alone = model.generate(row[None], **settings)
        assert torch.equal(batched[index, input_ids.shape[1]:], alone[0, len(row):]), f"row {index}"
        assert alone[0, len(row):].unique().numel() >= 5


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_generation_is_quiet(capsys):
    model = causal_model()
    prompt = torch.randint(3, 30, (2, 7))
    handler = Collect()
    loggers = [logging.getLogger("transformers"), logging.getLogger("reformer_hf")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for use_cache in (True, False):
                model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=30, do_sample=False,
                               use_cache=use_cache)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [str(w.message) for w in caught] == []
    assert handler.messages == []
    assert capsys.readouterr().out == ""


def test_generate_refuses_past_capacity_before_first_step():
    model = causal_model(axial_pos_shape=[4, 8])  # 32 positions
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    prompt = torch.randint(3, 30, (1, 20))
    with pytest.raises(ValueError, match=r"The prompt has 20 tokens and generation may run to 33, but the model "
                                         r"embeds only 32 positions"):
        model.generate(prompt, max_new_tokens=13)
    assert calls == []
    assert model.generate(prompt, max_new_tokens=12, do_sample=False).shape == (1, 32)


def test_beam_search_returns_the_requested_sequences():
    model = causal_model()
    prompt = torch.randint(3, 30, (2, 6))
    output = model.generate(prompt, num_beams=4, num_return_sequences=2, max_new_tokens=12, do_sample=False,
                            return_dict_in_generate=True, output_scores=True)
    assert output.sequences.shape == (4, 18)
    assert torch.equal(output.sequences[:, :6], prompt.repeat_interleave(2, dim=0))
