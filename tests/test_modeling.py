"""ReformerModel and ReformerForCausalLM: padding invariance, causality, determinism, input errors,
saving and loading, the loss and generation.

Outputs are compared in evaluation mode with ``hash_seed`` set, so that LSH layers hash the same way
on every call.
"""

import re

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, set_seed

import reformer_hf  # noqa: F401  (registers the Auto classes)
from reformer_hf.configuration import ReformerConfig
from reformer_hf.modeling import ReformerForCausalLM, ReformerModel

LAYER_SCHEDULES = {
    "lsh": dict(attention_layers=["lsh", "lsh"], num_hashes=2),
    "local": dict(attention_layers=["local", "local"]),
    "full": dict(attention_layers=["full"]),
    "mixed": dict(attention_layers=["lsh", "local", "full"], num_hashes=2),
}


def raises_message(text: str):
    return pytest.raises(ValueError, match=re.escape(text))


def base_model(tiny_config, schedule: str = "mixed", **overrides) -> ReformerModel:
    return ReformerModel(tiny_config(**{**LAYER_SCHEDULES[schedule], **overrides})).eval()


def random_ids(*shape: int) -> torch.Tensor:
    """Ids of ordinary tokens: 3 and up, past the special ids 0, 1 and 2."""
    return torch.randint(3, 32, shape)


def encode(model, input_ids, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=input_ids, **kwargs).last_hidden_state


# ---------------------------------------------------------------------------------------------
# Padding invariance


def place_tokens(tokens: torch.Tensor, real_slots: list[int], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spread ``tokens`` over ``real_slots`` of a row of ``length``. Other slots get random ids and mask 0."""
    input_ids = random_ids(length)
    attention_mask = torch.zeros(length, dtype=torch.long)
    input_ids[real_slots] = tokens
    attention_mask[real_slots] = 1
    return input_ids, attention_mask


PADDING_LAYOUTS = {
    "right-1": (11, list(range(10))),
    "right-13": (23, list(range(10))),
    "left-5": (15, list(range(5, 15))),
    "hole": (14, [0, 1, 2, 3, 8, 9, 10, 11, 12, 13]),
    "both-sides": (17, [2, 3, 4, 6, 7, 9, 10, 11, 12, 13]),
}


ATTENTION_MODES = {
    "strictly-causal": dict(is_decoder=True),
    "causal-chunk-window": dict(is_decoder=True, lsh_strictly_causal=False),
    "bidirectional": dict(is_decoder=False, lsh_num_chunks_after=1, local_num_chunks_after=1),
}


@pytest.mark.parametrize("layout", list(PADDING_LAYOUTS))
@pytest.mark.parametrize("mode", list(ATTENTION_MODES))
@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_padding_invariance(tiny_config, schedule, mode, layout):
    model = base_model(tiny_config, schedule, **ATTENTION_MODES[mode])
    tokens = random_ids(10)
    length, real_slots = PADDING_LAYOUTS[layout]
    input_ids, attention_mask = place_tokens(tokens, real_slots, length)

    expected = encode(model, tokens[None])[0]
    actual = encode(model, input_ids[None], attention_mask=attention_mask[None])[0]

    torch.testing.assert_close(actual[real_slots], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_padding_token_values_ignored(tiny_config, schedule):
    model = base_model(tiny_config, schedule)
    input_ids = random_ids(1, 16)
    attention_mask = torch.ones(1, 16, dtype=torch.long)
    attention_mask[0, 11:] = 0
    attention_mask[0, 4] = 0
    changed = input_ids.clone()
    changed[attention_mask == 0] = random_ids(6)

    outputs = encode(model, input_ids, attention_mask=attention_mask)
    changed_outputs = encode(model, changed, attention_mask=attention_mask)

    real = attention_mask[0] == 1
    torch.testing.assert_close(changed_outputs[0, real], outputs[0, real], rtol=0, atol=1e-5)


@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_batched_with_longer_rows(tiny_config, schedule):
    model = base_model(tiny_config, schedule)
    short = random_ids(7)
    left_padded, left_mask = place_tokens(short, list(range(23, 30)), 30)
    holed, holed_mask = place_tokens(short, [0, 1, 2, 10, 11, 12, 13], 30)
    input_ids = torch.stack([random_ids(30), left_padded, holed])
    attention_mask = torch.stack([torch.ones(30, dtype=torch.long), left_mask, holed_mask])

    expected = encode(model, short[None])[0]
    batched = encode(model, input_ids, attention_mask=attention_mask)
    alone = encode(model, input_ids[:1])

    torch.testing.assert_close(batched[1, left_mask == 1], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[2, holed_mask == 1], expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[0], alone[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_padding_invariance_inputs_embeds(tiny_config, schedule):
    model = base_model(tiny_config, schedule)
    tokens = random_ids(10)
    real_slots = [0, 1, 2, 3, 4, 8, 9, 10, 11, 12]
    inputs_embeds = torch.randn(1, 16, 32)  # padded slots hold noise
    inputs_embeds[0, real_slots] = model.get_input_embeddings()(tokens).detach()
    attention_mask = torch.zeros(1, 16, dtype=torch.long)
    attention_mask[0, real_slots] = 1

    expected = encode(model, tokens[None])[0]
    with torch.no_grad():
        actual = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state[0]

    torch.testing.assert_close(actual[real_slots], expected, rtol=0, atol=1e-5)


def test_default_position_ids_count_real_tokens(tiny_config):
    model = base_model(tiny_config)
    tokens = random_ids(10)
    input_ids, attention_mask = place_tokens(tokens, list(range(6, 16)), 16)
    position_ids = torch.tensor([9, 9, 9, 9, 9, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])

    default = encode(model, input_ids[None], attention_mask=attention_mask[None])
    explicit = encode(model, input_ids[None], attention_mask=attention_mask[None], position_ids=position_ids[None])

    torch.testing.assert_close(explicit[0, 6:], default[0, 6:], rtol=0, atol=1e-6)


@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_padding_invariance_explicit_positions(tiny_config, schedule):
    model = base_model(tiny_config, schedule)
    tokens = random_ids(10)
    shifted_positions = torch.arange(5, 15)
    real_slots = [3, 4, 5, 6, 7, 10, 11, 12, 13, 14]
    input_ids, attention_mask = place_tokens(tokens, real_slots, 15)
    position_ids = torch.full((15,), -7)  # padded slots may hold any value
    position_ids[real_slots] = shifted_positions

    expected = encode(model, tokens[None], position_ids=shifted_positions[None])[0]
    unshifted = encode(model, tokens[None])[0]
    actual = encode(model, input_ids[None], attention_mask=attention_mask[None], position_ids=position_ids[None])[0]

    assert not torch.allclose(expected, unshifted, atol=1e-3), "shifted positions must change the outputs"
    torch.testing.assert_close(actual[real_slots], expected, rtol=0, atol=1e-5)


def test_one_dim_position_ids(tiny_config):
    model = base_model(tiny_config)
    input_ids = random_ids(2, 9)
    expected = encode(model, input_ids)
    torch.testing.assert_close(encode(model, input_ids, position_ids=torch.arange(9)), expected, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Outputs


def test_output_shapes(tiny_config):
    model = base_model(tiny_config)
    input_ids = random_ids(2, 9)
    with torch.no_grad():
        outputs = model(input_ids, output_hidden_states=True)
    assert outputs.last_hidden_state.shape == (2, 9, 64)
    assert len(outputs.hidden_states) == 3 + 1
    assert all(states.shape == (2, 9, 64) for states in outputs.hidden_states)


def test_tuple_outputs(tiny_config):
    model = base_model(tiny_config)
    input_ids = random_ids(2, 9)
    with torch.no_grad():
        as_tuple = model(input_ids, return_dict=False)
        as_dict = model(input_ids)
    assert len(as_tuple) == 1
    assert torch.equal(as_tuple[0], as_dict.last_hidden_state)


@pytest.mark.parametrize("reversible", [True, False])
def test_hidden_states_match_between_paths(tiny_config, reversible):
    # The reversible path collects per-layer states in its own loop, which must match the plain loop.
    model = base_model(tiny_config, reversible=reversible)
    twin = base_model(tiny_config, reversible=not reversible)
    twin.load_state_dict(model.state_dict())
    input_ids = random_ids(2, 9)

    states = model(input_ids, output_hidden_states=True).hidden_states
    twin_states = twin(input_ids, output_hidden_states=True).hidden_states

    for layer_states, twin_layer_states in zip(states, twin_states, strict=True):
        assert torch.equal(layer_states, twin_layer_states)


def test_forward_leaves_config_unchanged(tiny_config):
    model = base_model(tiny_config)
    before = model.config.to_dict()
    with torch.no_grad():
        model(random_ids(1, 30), num_hashes=4)
    assert model.config.to_dict() == before


# ---------------------------------------------------------------------------------------------
# Causality


# The inputs have 24 tokens, so LSH layers with the tiny config's chunks of 4 sort them into six
# chunks. The chunk window is causal only while one chunk covers the whole input.
CAUSAL_SCHEDULES = {
    "local": dict(attention_layers=["local", "local"]),
    "full": dict(attention_layers=["full"]),
    "lsh": dict(attention_layers=["lsh", "lsh"], num_hashes=2),
    "lsh-duplicate-correction": dict(attention_layers=["lsh", "lsh"], num_hashes=3, lsh_duplicate_correction=True),
    "mixed": dict(attention_layers=["lsh", "local", "full"], num_hashes=2),
    "lsh-chunk-window-one-chunk": dict(
        attention_layers=["lsh", "lsh"], lsh_chunk_length=32, num_hashes=2, lsh_strictly_causal=False
    ),
}


def change_tokens_after(input_ids: torch.Tensor, cut: int) -> torch.Tensor:
    """Copy ``input_ids`` with every token at position ``cut`` and later replaced by another ordinary id."""
    changed = input_ids.clone()
    changed[0, cut:] = (changed[0, cut:] - 3 + 1) % 29 + 3
    return changed


@pytest.mark.parametrize("schedule", list(CAUSAL_SCHEDULES))
@pytest.mark.parametrize("cut", [1, 9, 17])
def test_causal_lm_causal(tiny_config, schedule, cut):
    model = ReformerForCausalLM(tiny_config(**CAUSAL_SCHEDULES[schedule])).eval()
    input_ids = random_ids(1, 24)
    changed = change_tokens_after(input_ids, cut)

    with torch.no_grad():
        logits = model(input_ids).logits
        changed_logits = model(changed).logits

    torch.testing.assert_close(changed_logits[:, :cut], logits[:, :cut], rtol=0, atol=1e-5)
    assert not torch.allclose(changed_logits[:, cut:], logits[:, cut:], atol=1e-3)


def test_causal_lm_chunk_window_leaks(tiny_config):
    # With several chunks and lsh_strictly_causal=False, later tokens move earlier queries between
    # chunks, so earlier logits change. This seed and cut show it.
    model = ReformerForCausalLM(tiny_config(**CAUSAL_SCHEDULES["lsh"], lsh_strictly_causal=False)).eval()
    input_ids = random_ids(1, 24)
    changed = change_tokens_after(input_ids, 9)

    with torch.no_grad():
        logits = model(input_ids).logits
        changed_logits = model(changed).logits

    assert (changed_logits[:, :9] - logits[:, :9]).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------
# Determinism


def test_seeded_eval_repeatable(tiny_config):
    model = base_model(tiny_config, "lsh")
    input_ids = random_ids(2, 21)
    assert torch.equal(encode(model, input_ids), encode(model, input_ids))


def test_unseeded_eval_draws_fresh_rotations(tiny_config):
    model = base_model(tiny_config, "lsh", hash_seed=None)
    input_ids = random_ids(2, 21)
    assert not torch.allclose(encode(model, input_ids), encode(model, input_ids))


def test_seeded_eval_leaves_global_rng(tiny_config):
    model = base_model(tiny_config, "mixed", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    input_ids = random_ids(2, 21)
    state = torch.get_rng_state()
    encode(model, input_ids)
    assert torch.equal(torch.get_rng_state(), state)


def test_training_repeatable_with_set_seed(tiny_config):
    model = ReformerForCausalLM(
        tiny_config(**LAYER_SCHEDULES["mixed"], hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    ).train()
    input_ids = random_ids(2, 21)

    runs = []
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        set_seed(11)
        loss = model(input_ids, labels=input_ids).loss
        loss.backward()
        runs.append((loss.detach(), {name: param.grad.clone() for name, param in model.named_parameters()}))

    assert torch.equal(runs[0][0], runs[1][0])
    for name, gradient in runs[0][1].items():
        assert torch.equal(gradient, runs[1][1][name]), name


def test_more_hashes_change_lsh(tiny_config):
    model = base_model(tiny_config, "lsh")
    input_ids = random_ids(2, 21)
    assert not torch.allclose(encode(model, input_ids, num_hashes=4), encode(model, input_ids), atol=1e-4)


def test_more_hashes_ignored_by_local(tiny_config):
    model = base_model(tiny_config, "local")
    input_ids = random_ids(2, 21)
    assert torch.equal(encode(model, input_ids, num_hashes=4), encode(model, input_ids))


# ---------------------------------------------------------------------------------------------
# Input errors, raised before the embeddings run


def guard_embeddings(model) -> list:
    """Return the list that records every call reaching the model's embeddings."""
    embedding_calls = []
    model.base_model.embeddings.register_forward_pre_hook(lambda module, args: embedding_calls.append(module))
    return embedding_calls


@pytest.fixture
def guarded_model(tiny_config):
    """A causal LM and the list of calls that reached its embeddings."""
    model = ReformerForCausalLM(tiny_config()).eval()
    return model, guard_embeddings(model)


INPUT_ERRORS = {
    "both-inputs": (
        dict(input_ids=torch.full((1, 4), 5), inputs_embeds=torch.zeros(1, 4, 32)),
        "Pass exactly one of input_ids and inputs_embeds, got both.",
    ),
    "no-input": (
        dict(attention_mask=torch.ones(1, 4)),
        "Pass exactly one of input_ids and inputs_embeds, got neither.",
    ),
    "float-ids": (
        dict(input_ids=torch.full((1, 4), 5.0)),
        "input_ids must be an integer tensor of shape [batch_size, length], got dtype torch.float32 and shape [1, 4]. "
        "Add a batch dim with input_ids[None].",
    ),
    "bool-ids": (
        dict(input_ids=torch.ones(1, 4, dtype=torch.bool)),
        "input_ids must be an integer tensor of shape [batch_size, length], got dtype torch.bool and shape [1, 4].",
    ),
    "unbatched-ids": (
        dict(input_ids=torch.full((4,), 5)),
        "input_ids must be an integer tensor of shape [batch_size, length], got dtype torch.int64 and shape [4].",
    ),
    "embeds-width": (
        dict(inputs_embeds=torch.zeros(1, 4, 16)),
        "inputs_embeds must have shape [batch_size, length, 32], got [1, 4, 16].",
    ),
    "embeds-unbatched": (
        dict(inputs_embeds=torch.zeros(4, 32)),
        "inputs_embeds must have shape [batch_size, length, 32], got [4, 32].",
    ),
    "empty-row": (
        dict(input_ids=torch.zeros(1, 0, dtype=torch.long)),
        "The input is empty: batch_size=1, length=0. Pass at least one token.",
    ),
    "empty-batch": (
        dict(input_ids=torch.zeros(0, 4, dtype=torch.long)),
        "The input is empty: batch_size=0, length=4. Pass at least one token.",
    ),
    "id-too-large": (
        dict(input_ids=torch.tensor([[5, 32, 6]])),
        "input_ids contains id 32, outside the vocabulary [0, 32). Check that the tokenizer matches this model's "
        "vocab_size.",
    ),
    "id-negative": (
        dict(input_ids=torch.tensor([[5, -1, 6]])),
        "input_ids contains id -1, outside the vocabulary [0, 32).",
    ),
    "mask-shape": (
        dict(input_ids=torch.full((2, 4), 5), attention_mask=torch.ones(2, 5)),
        "attention_mask must have shape [batch_size, length] = [2, 4], got [2, 5]. "
        "Pass the mask that the tokenizer returned with the input.",
    ),
    "mask-values": (
        dict(input_ids=torch.full((1, 4), 5), attention_mask=torch.tensor([[1, 2, 1, 0]])),
        "attention_mask must contain only 0 (padding) and 1 (real token).",
    ),
    "positions-shape": (
        dict(input_ids=torch.full((2, 4), 5), position_ids=torch.arange(5)),
        "position_ids must have shape [batch_size, length] = [2, 4] or [length], got [1, 5].",
    ),
    "positions-batch": (
        dict(input_ids=torch.full((2, 4), 5), position_ids=torch.zeros(3, 4, dtype=torch.long)),
        "position_ids must have shape [batch_size, length] = [2, 4] or [length], got [3, 4].",
    ),
    "positions-range": (
        dict(input_ids=torch.full((1, 4), 5), position_ids=torch.tensor([[0, 1, 2, 64]])),
        "position_ids must lie in [0, 64) (max_position_embeddings), got values from 0 to 64.",
    ),
    "positions-negative": (
        dict(input_ids=torch.full((1, 4), 5), position_ids=torch.tensor([[-2, 0, 1, 2]])),
        "position_ids must lie in [0, 64) (max_position_embeddings), got values from -2 to 2.",
    ),
    "too-many-tokens": (
        dict(input_ids=torch.full((2, 65), 5)),
        "The input has 65 real tokens in a row, more than the 64 positions the model embeds "
        "(max_position_embeddings). Truncate the input to 64 tokens, or train a model with a larger axial_pos_shape.",
    ),
    "num-hashes-zero": (
        dict(input_ids=torch.full((1, 4), 5), num_hashes=0),
        "num_hashes must be a positive int or None, got 0.",
    ),
    "num-hashes-float": (
        dict(input_ids=torch.full((1, 4), 5), num_hashes=2.0),
        "num_hashes must be a positive int or None, got 2.0.",
    ),
    "num-hashes-bool": (
        dict(input_ids=torch.full((1, 4), 5), num_hashes=True),
        "num_hashes must be a positive int or None, got True.",
    ),
    "labels-shape": (
        dict(input_ids=torch.full((2, 4), 5), labels=torch.full((2, 3), 5)),
        "labels must have the input's shape [2, 4], got [2, 3].",
    ),
    "labels-outside-vocab": (
        dict(input_ids=torch.full((1, 4), 5), labels=torch.tensor([[5, 5, 32, 5]])),
        "labels contains id 32, outside the vocabulary [0, 32) and not the ignore index -100.",
    ),
    "labels-negative": (
        dict(input_ids=torch.full((1, 4), 5), labels=torch.tensor([[5, -100, -1, 5]])),
        "labels contains id -1, outside the vocabulary [0, 32) and not the ignore index -100.",
    ),
    "labels-with-bad-ids": (
        dict(input_ids=torch.tensor([[5, 40, 6]]), labels=torch.tensor([[5, 40]])),
        "input_ids contains id 40, outside the vocabulary [0, 32).",
    ),
}


@pytest.mark.parametrize("case", list(INPUT_ERRORS))
def test_input_error(guarded_model, case):
    model, embedding_calls = guarded_model
    inputs, message = INPUT_ERRORS[case]
    with raises_message(message):
        model(**inputs)
    assert embedding_calls == []


@pytest.mark.parametrize("case", [case for case in INPUT_ERRORS if "labels" not in case])
def test_base_model_input_error(tiny_config, case):
    model = ReformerModel(tiny_config()).eval()
    embedding_calls = guard_embeddings(model)
    inputs, message = INPUT_ERRORS[case]
    with raises_message(message):
        model(**inputs)
    assert embedding_calls == []


def test_padded_slots_positions_unchecked(guarded_model):
    model, _ = guarded_model
    attention_mask = torch.tensor([[0, 1, 1, 1]])
    position_ids = torch.tensor([[-5, 0, 1, 2]])
    with torch.no_grad():
        logits = model(torch.full((1, 4), 5), attention_mask=attention_mask, position_ids=position_ids).logits
    assert logits.shape == (1, 4, 32)


def test_capacity_counts_real_tokens_only(guarded_model):
    model, _ = guarded_model
    attention_mask = torch.ones(1, 70, dtype=torch.long)
    attention_mask[0, :6] = 0
    with torch.no_grad():
        logits = model(torch.full((1, 70), 5), attention_mask=attention_mask).logits
    assert logits.shape == (1, 70, 32)


def test_labels_ignore_index_accepted(guarded_model):
    model, _ = guarded_model
    labels = torch.tensor([[-100, 5, -100, 31]])
    assert torch.isfinite(model(torch.full((1, 4), 5), labels=labels).loss)


@pytest.mark.parametrize("model_class", [ReformerModel, ReformerForCausalLM])
def test_unknown_argument(tiny_config, model_class):
    model = model_class(tiny_config()).eval()
    with pytest.raises(TypeError, match="token_type_ids"):
        model(torch.full((1, 4), 5), token_type_ids=torch.zeros(1, 4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# Loss


def test_loss_ignores_masked_labels(tiny_config):
    model = ReformerForCausalLM(tiny_config()).eval()
    input_ids = random_ids(2, 11)
    labels = input_ids.clone()
    labels[0, 3] = -100
    labels[1, 7:] = -100

    outputs = model(input_ids, labels=labels)

    log_probs = torch.log_softmax(outputs.logits[:, :-1].double(), dim=-1)  # predicts tokens 1..n-1
    targets = labels[:, 1:]
    counted = targets != -100
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = -picked[counted].sum() / counted.sum()
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_loss_tuple_output(tiny_config):
    model = ReformerForCausalLM(tiny_config()).eval()
    input_ids = random_ids(2, 11)
    loss, logits = model(input_ids, labels=input_ids, return_dict=False)
    as_dict = model(input_ids, labels=input_ids)
    assert torch.equal(loss, as_dict.loss)
    assert torch.equal(logits, as_dict.logits)


# ---------------------------------------------------------------------------------------------
# Saving, loading and the Auto classes


@pytest.fixture
def saved_model(tiny_config, tmp_path):
    model = ReformerForCausalLM(tiny_config(**LAYER_SCHEDULES["mixed"])).eval()
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_save_writes_safetensors(saved_model):
    _, path = saved_model
    assert (path / "model.safetensors").is_file()
    assert (path / "config.json").is_file()


def test_load_round_trip(saved_model):
    model, path = saved_model
    loaded, loading_info = ReformerForCausalLM.from_pretrained(path, output_loading_info=True)
    loaded.eval()
    input_ids = random_ids(2, 19)

    assert not loading_info["missing_keys"]
    assert not loading_info["unexpected_keys"]
    assert not loading_info["mismatched_keys"]
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)


def test_auto_config_loads(saved_model):
    _, path = saved_model
    config = AutoConfig.from_pretrained(path)
    assert isinstance(config, ReformerConfig)
    assert config.attention_layers == ["lsh", "local", "full"]


def test_auto_model_loads_base(saved_model):
    model, path = saved_model
    loaded = AutoModel.from_pretrained(path)
    assert isinstance(loaded, ReformerModel)
    for name, tensor in model.reformer.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_auto_causal_lm_loads(saved_model):
    model, path = saved_model
    loaded = AutoModelForCausalLM.from_pretrained(path).eval()
    input_ids = random_ids(1, 9)
    assert isinstance(loaded, ReformerForCausalLM)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)


def test_default_config_builds_with_auto():
    model = AutoModelForCausalLM.from_config(ReformerConfig()).eval()
    assert isinstance(model, ReformerForCausalLM)
    with torch.no_grad():
        logits = model(torch.randint(3, 259, (1, 10))).logits
    assert logits.shape == (1, 10, 259)


# ---------------------------------------------------------------------------------------------
# Generation


def test_generate_left_padded_equals_unpadded(tiny_config):
    model = ReformerForCausalLM(tiny_config(**LAYER_SCHEDULES["mixed"])).eval()
    prompts = [random_ids(4), random_ids(9), random_ids(6)]
    input_ids = torch.zeros(3, 9, dtype=torch.long)
    attention_mask = torch.zeros(3, 9, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, 9 - len(prompt) :] = prompt
        attention_mask[row, 9 - len(prompt) :] = 1
    # min_new_tokens keeps every row from stopping early at the end-of-sequence id.
    settings = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0)

    batched = model.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)

    for row, prompt in enumerate(prompts):
        alone = model.generate(input_ids=prompt[None], **settings)
        assert batched[row, 9:].tolist() == alone[0, len(prompt) :].tolist(), f"row {row}"


def test_generate_passes_num_hashes(tiny_config, monkeypatch):
    model = ReformerForCausalLM(tiny_config(**LAYER_SCHEDULES["lsh"])).eval()
    seen = []
    original_forward = ReformerForCausalLM.forward

    def recording_forward(self, *args, **kwargs):
        seen.append(kwargs.get("num_hashes"))
        return original_forward(self, *args, **kwargs)

    monkeypatch.setattr(ReformerForCausalLM, "forward", recording_forward)
    model.generate(input_ids=random_ids(1, 5), max_new_tokens=3, min_new_tokens=3, do_sample=False, num_hashes=3)
    assert seen == [3, 3, 3]


def test_generate_past_capacity_raises_first(tiny_config, monkeypatch):
    model = ReformerForCausalLM(tiny_config()).eval()
    capacity = model.config.max_position_embeddings
    prompt = random_ids(1, capacity - 2)
    calls = []
    original_forward = ReformerForCausalLM.forward
    monkeypatch.setattr(ReformerForCausalLM, "forward", lambda self, *a, **k: calls.append(1) or original_forward(self, *a, **k))
    message = (rf"The prompt has {capacity - 2} tokens and generation may run to {capacity + 3}, but the model "
               rf"embeds only {capacity} positions .* at most {capacity}\.")
    with pytest.raises(ValueError, match=message):
        model.generate(input_ids=prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert calls == []


def test_generate_within_capacity_reaches_limit(tiny_config):
    model = ReformerForCausalLM(tiny_config()).eval()
    capacity = model.config.max_position_embeddings
    output = model.generate(input_ids=random_ids(1, capacity - 3), max_new_tokens=3, min_new_tokens=3,
                            do_sample=False, pad_token_id=0)
    assert output.shape == (1, capacity)


def test_forward_accepts_use_cache(tiny_config):
    model = ReformerForCausalLM(tiny_config()).eval()
    input_ids = random_ids(2, 10)
    with torch.no_grad():
        plain = model(input_ids=input_ids).logits
        with_flag = model(input_ids=input_ids, use_cache=False).logits
    assert torch.equal(plain, with_flag)


def test_forward_rejects_output_attentions(tiny_config):
    model = ReformerForCausalLM(tiny_config()).eval()
    with pytest.raises(ValueError, match=r"output_attentions=True is not supported"):
        model(input_ids=random_ids(1, 8), output_attentions=True)


def test_hash_seed_set_after_construction(tiny_config):
    model = ReformerForCausalLM(tiny_config(**LAYER_SCHEDULES["lsh"], hash_seed=None)).eval()
    model.config.hash_seed = 7
    input_ids = random_ids(2, 24)
    with torch.no_grad():
        first = model(input_ids=input_ids).logits
        second = model(input_ids=input_ids).logits
    assert torch.equal(first, second)
