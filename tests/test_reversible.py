"""Reversible stack: the same outputs and gradients as the irreversible path, with constant memory.

Each comparison builds two models with the same weights, one with ``reversible=True`` and one with
``reversible=False``, and seeds torch before each run so that dropout and the LSH rotations draw
the same numbers on both paths.
"""

import pytest
import torch

from reformer_hf.lsh_attention import LSHSelfAttention
from reformer_hf.modeling import ReformerForCausalLM

DROPOUT = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)

# The models are causal, so LSH layers use the strictly causal window unless a schedule turns it off.
LAYER_SCHEDULES = {
    "lsh": dict(attention_layers=["lsh", "lsh"]),
    "lsh-chunk-window": dict(attention_layers=["lsh", "lsh"], lsh_strictly_causal=False, lsh_duplicate_correction=True),
    "local": dict(attention_layers=["local", "local"]),
    "full": dict(attention_layers=["full", "full"]),
    "mixed": dict(attention_layers=["lsh", "local", "full", "lsh"], lsh_duplicate_correction=True),
}


def twin_models(tiny_config, **overrides) -> tuple[ReformerForCausalLM, ReformerForCausalLM]:
    """A reversible and an irreversible model with the same weights."""
    reversible = ReformerForCausalLM(tiny_config(reversible=True, **overrides))
    irreversible = ReformerForCausalLM(tiny_config(reversible=False, **overrides))
    irreversible.load_state_dict(reversible.state_dict())
    return reversible, irreversible


def batch_inputs() -> dict:
    """Two rows of 13 tokens. The second is left-padded and has a hole in the middle."""
    input_ids = torch.randint(3, 32, (2, 13))
    attention_mask = torch.ones(2, 13, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[1, 7] = 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def loss_and_gradients(model, seed: int, **inputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = model(**inputs).loss
    loss.backward()
    gradients = {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}
    return loss.detach(), gradients


def backward_node_names(tensor: torch.Tensor) -> set[str]:
    """Names of every node in the autograd graph behind ``tensor``."""
    names, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(node.name())
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


REVERSIBLE_NODE = "_ReversibleStackFunctionBackward"


@pytest.mark.parametrize("schedule", list(LAYER_SCHEDULES))
def test_gradients_match_irreversible(tiny_config, schedule):
    reversible, irreversible = twin_models(
        tiny_config, num_hashes=3, feed_forward_chunk_size=3, **DROPOUT, **LAYER_SCHEDULES[schedule]
    )
    inputs = batch_inputs()

    reversible_loss, reversible_grads = loss_and_gradients(reversible, seed=7, **inputs)
    irreversible_loss, irreversible_grads = loss_and_gradients(irreversible, seed=7, **inputs)
    other_seed_loss, _ = loss_and_gradients(irreversible, seed=8, **inputs)

    assert other_seed_loss != irreversible_loss, "dropout must be active for this test to mean anything"
    assert torch.equal(reversible_loss, irreversible_loss)
    all_names = {name for name, _ in reversible.named_parameters()}
    assert set(reversible_grads) == all_names
    assert set(irreversible_grads) == all_names
    for name in all_names:
        torch.testing.assert_close(reversible_grads[name], irreversible_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_input_embeds_gradient_matches(tiny_config):
    reversible, irreversible = twin_models(
        tiny_config, num_hashes=2, feed_forward_chunk_size=3, attention_layers=["lsh", "local", "full"], **DROPOUT
    )
    inputs = batch_inputs()
    inputs_embeds = reversible.get_input_embeddings()(inputs.pop("input_ids")).detach()
    reversible_embeds = inputs_embeds.clone().requires_grad_(True)
    irreversible_embeds = inputs_embeds.clone().requires_grad_(True)

    loss_and_gradients(reversible, seed=3, inputs_embeds=reversible_embeds, **inputs)
    loss_and_gradients(irreversible, seed=3, inputs_embeds=irreversible_embeds, **inputs)

    assert reversible_embeds.grad is not None
    assert bool(reversible_embeds.grad.abs().sum() > 0)
    torch.testing.assert_close(reversible_embeds.grad, irreversible_embeds.grad, rtol=1e-4, atol=1e-6)


def test_parameters_get_gradients_with_frozen_embeddings(tiny_config):
    reversible, irreversible = twin_models(
        tiny_config, num_hashes=2, attention_layers=["lsh", "local", "full"], **DROPOUT
    )
    for model in (reversible, irreversible):
        model.reformer.embeddings.requires_grad_(False)
    inputs = batch_inputs()
    inputs_embeds = reversible.get_input_embeddings()(inputs.pop("input_ids")).detach()
    reversible.train()
    torch.manual_seed(0)
    logits = reversible(inputs_embeds=inputs_embeds, attention_mask=inputs["attention_mask"]).logits
    assert REVERSIBLE_NODE in backward_node_names(logits)

    _, reversible_grads = loss_and_gradients(reversible, seed=5, inputs_embeds=inputs_embeds, **inputs)
    _, irreversible_grads = loss_and_gradients(irreversible, seed=5, inputs_embeds=inputs_embeds, **inputs)

    trainable = {name for name, param in reversible.named_parameters() if param.requires_grad}
    assert set(reversible_grads) == trainable
    assert any(name.startswith("reformer.encoder.") for name in trainable)
    for name in trainable:
        torch.testing.assert_close(reversible_grads[name], irreversible_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_accumulate_hooks_fire_once(tiny_config):
    # Hooks that run when a gradient is accumulated into .grad, as DistributedDataParallel's do.
    model = ReformerForCausalLM(tiny_config(reversible=True, feed_forward_chunk_size=4)).train()
    calls = {}
    for name, param in model.named_parameters():
        param.register_post_accumulate_grad_hook(lambda _, name=name: calls.update({name: calls.get(name, 0) + 1}))
    model(**batch_inputs()).loss.backward()
    assert calls == {name: 1 for name, _ in model.named_parameters()}


@pytest.mark.xfail(
    strict=True,
    reason="The reversible backward pass computes parameter gradients with torch.autograd.grad, which "
    "runs tensor hooks (Tensor.register_hook) on each partial gradient, and autograd runs them again on "
    "the returned sum, so a hook that rescales a gradient applies twice.",
)
def test_tensor_hook_applies_once(tiny_config):
    reversible, irreversible = twin_models(tiny_config, attention_layers=["local", "full"], feed_forward_chunk_size=4)
    inputs = batch_inputs()
    name = "reformer.encoder.layers.0.feed_forward.dense.weight"
    gradients = []
    for model in (reversible, irreversible):
        model.get_parameter(name).register_hook(lambda grad: grad * 0.5)
        gradients.append(loss_and_gradients(model, seed=0, **inputs)[1][name])
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_eval_outputs_identical(tiny_config, grad_enabled):
    reversible, irreversible = twin_models(
        tiny_config, num_hashes=2, feed_forward_chunk_size=3, attention_layers=["lsh", "local", "full"], **DROPOUT
    )
    reversible.eval()
    irreversible.eval()
    inputs = batch_inputs()
    inputs.pop("labels")

    with torch.set_grad_enabled(grad_enabled):
        reversible_logits = reversible(**inputs).logits
        irreversible_logits = irreversible(**inputs).logits

    assert (REVERSIBLE_NODE in backward_node_names(reversible_logits)) == grad_enabled
    assert torch.equal(reversible_logits, irreversible_logits)


def count_saved_tensors(model, input_ids: torch.Tensor) -> tuple[int, int]:
    """Number and total bytes of the tensors that one training forward pass saves for backward."""
    count, total_bytes = 0, 0

    def pack(tensor):
        nonlocal count, total_bytes
        count += 1
        total_bytes += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model.train()(input_ids, labels=input_ids)
    return count, total_bytes


def test_saved_tensors_constant_in_depth(tiny_config):
    input_ids = torch.randint(3, 32, (2, 32))
    saved = {}
    for reversible in (True, False):
        for num_layers in (2, 8):
            config = tiny_config(reversible=reversible, attention_layers=["lsh", "local"] * (num_layers // 2))
            saved[reversible, num_layers] = count_saved_tensors(ReformerForCausalLM(config), input_ids)

    assert saved[True, 8] == saved[True, 2]
    assert saved[False, 8][0] > saved[False, 2][0]
    assert saved[False, 8][1] > 3 * saved[True, 8][1]


def test_backward_leaves_global_rng(tiny_config):
    model = ReformerForCausalLM(tiny_config(reversible=True, **DROPOUT)).train()
    loss = model(**batch_inputs()).loss
    state = torch.get_rng_state()
    loss.backward()
    assert torch.equal(torch.get_rng_state(), state)


def test_backward_reuses_buckets(tiny_config, monkeypatch):
    model = ReformerForCausalLM(tiny_config(reversible=True, attention_layers=["lsh", "local", "lsh"])).train()
    loss = model(**batch_inputs()).loss
    given_buckets = []
    original_forward = LSHSelfAttention.forward

    def recording_forward(self, hidden_states, key_padding_mask, num_hashes=None, buckets=None):
        given_buckets.append(buckets is not None)
        return original_forward(self, hidden_states, key_padding_mask, num_hashes=num_hashes, buckets=buckets)

    monkeypatch.setattr(LSHSelfAttention, "forward", recording_forward)
    loss.backward()
    assert given_buckets == [True, True]


@pytest.mark.parametrize("offset, expect_reversible", [(None, True), (-1, True), (0, False), (1000, False)])
def test_short_batches_run_irreversibly(tiny_config, offset, expect_reversible):
    # irreversible_max_tokens is set relative to the batch's positions after padding (2 rows);
    # None leaves the default 0.
    multiple = ReformerForCausalLM(tiny_config()).reformer.length_multiple
    positions = 2 * -(-13 // multiple) * multiple
    overrides = {} if offset is None else {"irreversible_max_tokens": positions + offset}
    model = ReformerForCausalLM(tiny_config(**overrides, **DROPOUT))
    reference = ReformerForCausalLM(tiny_config(reversible=False, **DROPOUT))
    reference.load_state_dict(model.state_dict())
    inputs = batch_inputs()
    model.train()
    torch.manual_seed(7)
    loss = model(**inputs).loss
    assert (REVERSIBLE_NODE in backward_node_names(loss)) == expect_reversible
    loss_value, grads = loss_and_gradients(model, seed=7, **inputs)
    reference_loss, reference_grads = loss_and_gradients(reference, seed=7, **inputs)
    assert torch.equal(loss_value, reference_loss)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_irreversible_max_tokens_rejects_negative(tiny_config):
    with pytest.raises(ValueError, match="irreversible_max_tokens"):
        tiny_config(irreversible_max_tokens=-1)


def test_retained_graph_runs_backward_twice(tiny_config):
    """The backward pass rebuilds inputs in place only in its own copies: a retained graph gives the same gradients twice."""
    model = ReformerForCausalLM(tiny_config(attention_layers=["lsh", "local", "lsh"]))
    input_ids = torch.randint(3, 32, (2, 16))
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward(retain_graph=True)
    first = {name: param.grad.clone() for name, param in model.named_parameters()}
    model.zero_grad()
    loss.backward()
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, first[name], rtol=0, atol=0, msg=name)
