"""Attention in groups of chunks (``attention_group_length``) gives the results of attention over the whole sequence.

Each comparison builds two models with the same weights, one with groups and one without, and seeds
torch before each run so that the LSH rotations draw the same numbers. The inputs are 64 positions
of chunks of 4, so a group length of 12 makes groups of 3 chunks with a shorter last group, and a
group length of 2 makes groups of a single chunk.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from reformer_hf.configuration import ReformerConfig
from reformer_hf.modeling import ReformerForCausalLM, ReformerModel

LENGTH = 64

VARIANTS = {
    "local": dict(attention_layers=["local", "local"]),
    "local-look-ahead": dict(
        attention_layers=["local"], is_decoder=False, local_num_chunks_before=2, local_num_chunks_after=1
    ),
    "local-wraps": dict(attention_layers=["local"], is_decoder=False, local_num_chunks_after=1, chunk_window_wraps=True),
    "full": dict(attention_layers=["full"]),
    "lsh-strictly-causal": dict(attention_layers=["lsh", "lsh"], num_hashes=2),
    "lsh-chunk-window": dict(
        attention_layers=["lsh"], lsh_strictly_causal=False, num_hashes=3, lsh_duplicate_correction=True
    ),
    "lsh-same-bucket": dict(
        attention_layers=["lsh"], lsh_strictly_causal=False, lsh_same_bucket_only=True, num_hashes=2,
        lsh_duplicate_correction=True,
    ),
    "lsh-look-ahead": dict(attention_layers=["lsh"], is_decoder=False, lsh_num_chunks_after=1, num_hashes=2),
    "lsh-wraps": dict(attention_layers=["lsh"], is_decoder=False, chunk_window_wraps=True, num_hashes=2),
    "lsh-transformers-rounding": dict(
        attention_layers=["lsh", "local"], is_decoder=False, lsh_transformers_rounding=True, chunk_window_wraps=True,
        compact_padding=False,
    ),
}


def twin_models(tiny_config, group_length: int, model_class=ReformerModel, **overrides):
    """Return a model that attends in groups of ``group_length`` positions and one that attends to the whole sequence."""
    whole = model_class(tiny_config(attention_group_length=0, **overrides))
    grouped = model_class(tiny_config(attention_group_length=group_length, **overrides))
    grouped.load_state_dict(whole.state_dict())
    return grouped, whole


def padded_batch() -> dict:
    """Return two rows. The second has 9 padded positions at its end and a hole in the middle."""
    input_ids = torch.randint(3, 32, (2, LENGTH))
    attention_mask = torch.ones(2, LENGTH, dtype=torch.long)
    attention_mask[1, -9:] = 0
    attention_mask[1, 20] = 0
    return dict(input_ids=input_ids, attention_mask=attention_mask)


def run(model, inputs: dict, seed: int = 7) -> tuple[torch.Tensor, dict]:
    """Backpropagate a fixed random projection of the outputs and return the outputs and the gradients."""
    torch.manual_seed(seed)
    hidden = model(**inputs).last_hidden_state
    weights = torch.randn(hidden.shape, generator=torch.Generator().manual_seed(1))
    (hidden * weights * inputs["attention_mask"][..., None]).sum().backward()
    grads = {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}
    return hidden.detach(), grads


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("group_length", [2, 12])
@pytest.mark.parametrize("reversible", [True, False])
def test_groups_match_whole_sequence(tiny_config, variant, group_length, reversible):
    overrides = {"axial_pos_shape": (8, 8), "reversible": reversible, **VARIANTS[variant]}
    grouped, whole = twin_models(tiny_config, group_length, **overrides)
    inputs = padded_batch()
    grouped_hidden, grouped_grads = run(grouped, inputs)
    whole_hidden, whole_grads = run(whole, inputs)
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(grouped_hidden[real], whole_hidden[real], rtol=1e-5, atol=1e-5)
    assert grouped_grads.keys() == whole_grads.keys()
    for name in whole_grads:
        torch.testing.assert_close(grouped_grads[name], whole_grads[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("variant", ["local", "lsh-chunk-window", "lsh-wraps"])
def test_groups_match_whole_sequence_without_gradients(tiny_config, variant):
    grouped, whole = twin_models(tiny_config, 12, **VARIANTS[variant])
    grouped.eval()
    whole.eval()
    inputs = padded_batch()
    with torch.no_grad():
        grouped_hidden = grouped(**inputs).last_hidden_state
        whole_hidden = whole(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(grouped_hidden[real], whole_hidden[real], rtol=1e-5, atol=1e-6)


def test_input_gradients_match_with_groups(tiny_config):
    """The gradient reaching the embeddings also passes through the groups' recomputation."""
    grouped, whole = twin_models(tiny_config, 12, attention_layers=["lsh", "local"], num_hashes=2)
    inputs = padded_batch()
    embeddings = {}
    for name, model in (("grouped", grouped), ("whole", whole)):
        torch.manual_seed(3)
        embedded = model.get_input_embeddings()(inputs["input_ids"]).detach().requires_grad_(True)
        model(inputs_embeds=embedded, attention_mask=inputs["attention_mask"]).last_hidden_state.pow(2).sum().backward()
        embeddings[name] = embedded.grad
    torch.testing.assert_close(embeddings["grouped"], embeddings["whole"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention_layers", [["lsh", "local"], ["local", "full"]])
def test_dropout_masks_are_replayed_in_groups(tiny_config, attention_layers):
    """With attention dropout, the reversible stack's recomputation draws each group's masks again.

    Grouped attention draws its masks group by group, so it is compared with itself. The reversible
    and the irreversible stack must agree exactly. They do only if the backward recomputation of
    each group redraws the masks of its forward pass.
    """
    config = dict(
        attention_layers=attention_layers, attention_group_length=8, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.3, num_hashes=2,
    )
    reversible = ReformerForCausalLM(tiny_config(reversible=True, **config))
    irreversible = ReformerForCausalLM(tiny_config(reversible=False, **config))
    irreversible.load_state_dict(reversible.state_dict())
    input_ids = torch.randint(3, 32, (2, LENGTH))
    losses, grads = [], []
    for model in (reversible, irreversible):
        model.train()
        torch.manual_seed(11)
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        losses.append(loss.detach())
        grads.append({name: param.grad.clone() for name, param in model.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for name in grads[1]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6, msg=name)

    # Without replay the recomputation would draw new masks: a different seed changes the loss.
    torch.manual_seed(12)
    assert not torch.allclose(reversible(input_ids=input_ids, labels=input_ids).loss, losses[0])


class _LargestTensor(TorchDispatchMode):
    """Record the size in bytes of the largest tensor any operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        outputs = func(*args, **(kwargs or {}))
        for output in outputs if isinstance(outputs, (tuple, list)) else [outputs]:
            if isinstance(output, torch.Tensor):
                self.largest = max(self.largest, output.untyped_storage().nbytes())
        return outputs


@pytest.mark.parametrize("attention_layers", [["lsh"], ["local"]])
def test_groups_bound_the_largest_attention_tensor(attention_layers):
    """Without groups the largest tensors are the masks and probabilities of all windows at once.

    Narrow hidden states, many heads and few buckets make those ``heads * length * keys`` tensors
    the largest of the step by far. In groups of 32 positions out of 1,024 they shrink to a group's
    share.
    """
    length = 1024
    largest = {}
    for group_length in (0, 32):
        config = ReformerConfig(
            vocab_size=32, hidden_size=16, num_attention_heads=8, attention_head_size=4, feed_forward_size=16,
            attention_layers=attention_layers, lsh_chunk_length=16, local_chunk_length=16, num_buckets=4,
            axial_pos_shape=(32, 32), axial_pos_embds_dim=(8, 8), hidden_dropout_prob=0.0,
            attention_group_length=group_length,
        )
        model = ReformerModel(config)
        input_ids = torch.randint(3, 32, (1, length))
        tracker = _LargestTensor()
        with tracker:
            model(input_ids=input_ids).last_hidden_state.sum().backward()
        largest[group_length] = tracker.largest
    # Whole sequence: 8 heads x 1,024 queries x 32 keys x 4 bytes = 1 MiB per mask or probability tensor.
    assert largest[0] >= 8 * length * 32 * 4
    assert largest[32] * 4 <= largest[0], largest


def test_negative_group_length_is_refused(tiny_config):
    with pytest.raises(ValueError) as error:
        tiny_config(attention_group_length=-1)
    assert str(error.value) == "attention_group_length must be a non-negative int, got -1."
