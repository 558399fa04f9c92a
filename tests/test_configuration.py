"""ReformerConfig: derived fields, serialisation and one test per validation rule."""

import json
import re

import pytest

from reformer_hf.configuration import ReformerConfig
from reformer_hf.modeling import ReformerForCausalLM


def raises_message(text: str):
    """``pytest.raises`` for a ``ValueError`` whose message contains ``text`` literally."""
    return pytest.raises(ValueError, match=re.escape(text))


def test_defaults_valid():
    config = ReformerConfig()
    assert config.num_hidden_layers == 6
    assert config.max_position_embeddings == 128 * 128
    assert config.is_decoder is True
    assert config.lsh_strictly_causal is True


def test_max_positions_derived_from_axial_shape(tiny_config):
    config = tiny_config(axial_pos_shape=(4, 8, 2), axial_pos_embds_dim=(8, 8, 16))
    assert config.max_position_embeddings == 64


@pytest.mark.parametrize(
    "max_positions, chunk_length, expected",
    [(64, 4, 32), (64, 8, 16), (64, 64, 2), (64, 128, 2), (48, 4, 32)],
)
def test_resolved_num_buckets_derived(tiny_config, max_positions, chunk_length, expected):
    # 2 * max_positions / chunk_length, rounded to the nearest power of two (in log scale), at least 2.
    config = tiny_config(
        num_buckets=None,
        position_embedding_type="learned",
        max_position_embeddings=max_positions,
        lsh_chunk_length=chunk_length,
    )
    assert config.resolved_num_buckets == expected


def test_resolved_num_buckets_explicit(tiny_config):
    assert tiny_config(num_buckets=8).resolved_num_buckets == 8
    assert tiny_config(num_buckets=(2, 4)).resolved_num_buckets == [2, 4]


def test_dict_round_trip(tiny_config):
    config = tiny_config(num_buckets=(2, 4), attention_layers=("lsh", "full", "local"), num_hashes=3)
    restored = ReformerConfig.from_dict(config.to_dict())
    assert restored.to_dict() == config.to_dict()


def test_json_round_trip(tiny_config, tmp_path):
    config = tiny_config(num_buckets=(2, 4), hash_seed=7, lsh_strictly_causal=False)
    config.save_pretrained(tmp_path)
    restored = ReformerConfig.from_pretrained(tmp_path)
    assert restored.num_buckets == [2, 4]
    assert restored.hash_seed == 7
    assert restored.lsh_strictly_causal is False
    assert restored.attention_layers == ["lsh", "local"]


def test_invalid_saved_config_rejected_on_load(tiny_config, tmp_path):
    tiny_config().save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    saved["num_buckets"] = 5
    path.write_text(json.dumps(saved))
    with raises_message("num_buckets must be an even int of at least 2, or a pair of them, got 5"):
        ReformerConfig.from_pretrained(tmp_path)


# One test per rule of ReformerConfig.validate, in the order it checks them.

POSITIVE_INT_FIELDS = [
    "vocab_size",
    "hidden_size",
    "num_attention_heads",
    "attention_head_size",
    "feed_forward_size",
    "lsh_chunk_length",
    "num_hashes",
    "local_chunk_length",
]


@pytest.mark.parametrize("name", POSITIVE_INT_FIELDS)
@pytest.mark.parametrize("value", [0, -3, 2.0, True])
def test_size_not_positive_int(tiny_config, name, value):
    with raises_message(f"{name} must be a positive int, got {value!r}."):
        tiny_config(**{name: value})


NON_NEGATIVE_INT_FIELDS = [
    "lsh_num_chunks_before",
    "lsh_num_chunks_after",
    "local_num_chunks_before",
    "local_num_chunks_after",
    "feed_forward_chunk_size",
]


@pytest.mark.parametrize("name", NON_NEGATIVE_INT_FIELDS)
@pytest.mark.parametrize("value", [-1, 1.5])
def test_count_negative(tiny_config, name, value):
    with raises_message(f"{name} must be a non-negative int, got {value!r}."):
        tiny_config(is_decoder=False, **{name: value})


@pytest.mark.parametrize("name", ["hidden_dropout_prob", "attention_probs_dropout_prob"])
@pytest.mark.parametrize("value", [-0.1, 1.0, "0.1", True])
def test_dropout_not_probability(tiny_config, name, value):
    with raises_message(f"{name} must be a probability in [0, 1), got {value!r}."):
        tiny_config(**{name: value})


def test_hidden_act_unknown(tiny_config):
    with raises_message("hidden_act must be one of relu, gelu, gelu_tanh, silu, got 'tanh'."):
        tiny_config(hidden_act="tanh")


def test_attention_layers_empty(tiny_config):
    with raises_message("attention_layers must name at least one layer, got an empty list."):
        tiny_config(attention_layers=[])


def test_attention_kind_unknown(tiny_config):
    with raises_message(
        "attention_layers[1] is 'global', an unknown attention kind. Use one of 'lsh', 'local', 'full'."
    ):
        tiny_config(attention_layers=["lsh", "global"])


@pytest.mark.parametrize("name", ["lsh_num_chunks_after", "local_num_chunks_after"])
def test_look_ahead_with_decoder(tiny_config, name):
    with raises_message(
        f"{name} must be 0 when is_decoder=True, got 1: causal attention never looks at later chunks. "
        f"Set {name}=0 or is_decoder=False."
    ):
        tiny_config(is_decoder=True, **{name: 1})


@pytest.mark.parametrize("name", ["lsh_num_chunks_after", "local_num_chunks_after"])
def test_look_ahead_without_decoder_valid(tiny_config, name):
    assert getattr(tiny_config(is_decoder=False, **{name: 1}), name) == 1


def test_strict_causal_without_look_back(tiny_config):
    with pytest.raises(ValueError) as error:
        tiny_config(lsh_num_chunks_before=0)
    assert str(error.value) == (
        "lsh_num_chunks_before must be at least 1 when is_decoder=True and lsh_strictly_causal=True, got 0: "
        "a query's earlier bucket-mates can sit in the chunk before it. "
        "Set lsh_num_chunks_before=1 or lsh_strictly_causal=False."
    )


@pytest.mark.parametrize(
    "overrides",
    [
        dict(lsh_strictly_causal=False),
        dict(is_decoder=False),
        dict(attention_layers=["local", "full"]),
    ],
    ids=["chunk-window", "bidirectional", "no-lsh-layer"],
)
def test_no_look_back_valid(tiny_config, overrides):
    assert tiny_config(lsh_num_chunks_before=0, **overrides).lsh_num_chunks_before == 0


@pytest.mark.parametrize("value", [[2], [2, 2, 2]])
def test_bucket_list_not_pair(tiny_config, value):
    with raises_message(f"num_buckets as a list must be a pair [u1, u2], got {value!r}. Pass an int, a pair or None."):
        tiny_config(num_buckets=value)


@pytest.mark.parametrize("value", [3, 0, -2, 2.0, [4, 3], [1, 4]])
def test_bucket_count_odd_or_small(tiny_config, value):
    with raises_message(f"num_buckets must be an even int of at least 2, or a pair of them, got {value!r}"):
        tiny_config(num_buckets=value)


def test_position_type_unknown(tiny_config):
    with raises_message("position_embedding_type must be 'axial' or 'learned', got 'rotary'."):
        tiny_config(position_embedding_type="rotary")


def test_axial_shape_one_axis(tiny_config):
    with raises_message("axial_pos_shape needs at least two axes, got [64]."):
        tiny_config(axial_pos_shape=[64], axial_pos_embds_dim=[32])


def test_axial_dims_count_mismatch(tiny_config):
    with raises_message(
        "axial_pos_embds_dim has 3 widths but axial_pos_shape has 2 axes ([8, 8, 16] vs [8, 8]). "
        "Give one width per axis."
    ):
        tiny_config(axial_pos_embds_dim=[8, 8, 16])


@pytest.mark.parametrize(
    "name, shape, dims", [("axial_pos_shape", [8, 0], [16, 16]), ("axial_pos_embds_dim", [8, 8], [32, 0])]
)
def test_axial_sizes_not_positive(tiny_config, name, shape, dims):
    with raises_message(f"{name} must be a positive int, got 0."):
        tiny_config(axial_pos_shape=shape, axial_pos_embds_dim=dims)


def test_axial_dims_wrong_sum(tiny_config):
    with raises_message(
        "axial_pos_embds_dim [16, 8] sums to 24, but it must sum to hidden_size = 32. Change the widths or hidden_size."
    ):
        tiny_config(axial_pos_embds_dim=[16, 8])


def test_axial_capacity_mismatch(tiny_config):
    with raises_message(
        "max_position_embeddings is 100 but axial_pos_shape [8, 8] holds 64 positions. "
        "Leave max_position_embeddings unset or set it to 64."
    ):
        tiny_config(max_position_embeddings=100)


@pytest.mark.parametrize("value", [None, 0])
def test_learned_capacity_not_positive(tiny_config, value):
    with raises_message(f"max_position_embeddings must be a positive int, got {value!r}."):
        tiny_config(position_embedding_type="learned", max_position_embeddings=value)


@pytest.mark.parametrize("name", ["pad_token_id", "bos_token_id", "eos_token_id"])
@pytest.mark.parametrize("value", [32, -1])
def test_special_token_outside_vocab(tiny_config, name, value):
    with raises_message(
        f"{name} must be an id inside the vocabulary [0, 32), got {value!r}. Raise vocab_size or choose another id."
    ):
        tiny_config(**{name: value})


def test_special_token_none_valid(tiny_config):
    assert tiny_config(pad_token_id=None).pad_token_id is None


@pytest.mark.parametrize("value", [1.5, "0", True])
def test_hash_seed_not_int(tiny_config, value):
    with raises_message(f"hash_seed must be an int or None, got {value!r}."):
        tiny_config(hash_seed=value)


@pytest.mark.parametrize("value", [0, -1e-5])
def test_layer_norm_eps_not_positive(tiny_config, value):
    with raises_message(f"layer_norm_eps must be positive, got {value!r}."):
        tiny_config(layer_norm_eps=value)


def test_tied_embeddings_rejected(tiny_config):
    with raises_message(
        "tie_word_embeddings=True is not supported: the output layer reads both reversible streams "
        "(2 * hidden_size = 64 features) while the token embeddings have hidden_size = 32. "
        "Set tie_word_embeddings=False."
    ):
        tiny_config(tie_word_embeddings=True)


def test_causal_lm_needs_decoder(tiny_config):
    with raises_message(
        "ReformerForCausalLM needs a causal model, but the config has is_decoder=False. "
        "Build the config with is_decoder=True."
    ):
        ReformerForCausalLM(tiny_config(is_decoder=False))


def test_attention_layers_string_rejected():
    with pytest.raises(ValueError, match=r"attention_layers must be a list of attention kinds, one per layer, got the "
                                         r"string 'lsh'\. Pass a list such as \['lsh'\]\."):
        ReformerConfig(attention_layers="lsh")
