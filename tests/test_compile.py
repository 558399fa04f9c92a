"""torch.compile: graph counts that must not grow, and compiled results equal to eager ones.

Inference and irreversible training compile to one graph. Reversible training runs the layer
stack eagerly inside the compiled model, because its backward pass replays torch's random state,
which compiled kernels do not follow, so the graph splits around the stack.
"""

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from reformer_hf import ReformerConfig, ReformerForCausalLM

# Graphs that torch._dynamo.explain finds in a reversible training forward pass with torch 2.13.
# The stack runs eagerly. The nested forward calls that lead to it split around it.
REVERSIBLE_TRAINING_GRAPHS = 5


def tiny_model(**overrides) -> ReformerForCausalLM:
    settings = dict(
        vocab_size=40, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh"], lsh_chunk_length=8, local_chunk_length=8, num_buckets=4, num_hashes=2,
        axial_pos_shape=[8, 8], axial_pos_embds_dim=[16, 16], hidden_dropout_prob=0.0,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return ReformerForCausalLM(ReformerConfig(**settings))


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.randint(3, 40, (2, 64), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[1, :20] = 0
    return input_ids, attention_mask


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def explain(function, *args):
    return torch._dynamo.explain(function)(*args)


@pytest.mark.parametrize("hash_seed", [None, 3])
def test_inference_compiles_to_one_graph(hash_seed):
    model = tiny_model(hash_seed=hash_seed).eval()
    input_ids, attention_mask = padded_batch()

    def forward(ids, mask):
        with torch.no_grad():
            return model(ids, attention_mask=mask).logits

    report = explain(forward, input_ids, attention_mask)
    assert report.graph_break_count == 0, [reason.reason for reason in report.break_reasons]
    assert report.graph_count == 1


def test_irreversible_training_compiles_to_one_graph():
    model = tiny_model(reversible=False).train()
    input_ids, attention_mask = padded_batch()
    report = explain(lambda ids, mask: model(ids, attention_mask=mask, labels=ids).loss, input_ids, attention_mask)
    assert report.graph_break_count == 0, [reason.reason for reason in report.break_reasons]
    assert report.graph_count == 1


def test_reversible_training_splits_only_around_the_stack():
    model = tiny_model().train()
    input_ids, attention_mask = padded_batch()
    report = explain(lambda ids, mask: model(ids, attention_mask=mask, labels=ids).loss, input_ids, attention_mask)
    assert report.graph_count == REVERSIBLE_TRAINING_GRAPHS
    assert all("_run_reversible" in reason.reason for reason in report.break_reasons)


def test_compiled_inference_matches_eager():
    model = tiny_model(hash_seed=1).eval()
    input_ids, attention_mask = padded_batch()
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(input_ids, attention_mask=attention_mask).logits
        actual = compiled(input_ids, attention_mask=attention_mask).logits
    real = attention_mask.bool()
    torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=0)


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: param.grad.clone() for name, param in model.named_parameters() if param.grad is not None}


@pytest.mark.parametrize("reversible", [True, False])
def test_compiled_training_step_matches_eager(reversible):
    model = tiny_model(reversible=reversible).train()
    input_ids, attention_mask = padded_batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    # The irreversible graph draws the LSH rotations inside it. fallback_random makes Inductor draw
    # them with torch's own generator, as eager mode does.
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(model)
        torch.manual_seed(1)
        compiled_loss = compiled(input_ids, attention_mask=attention_mask, labels=labels).loss
        compiled_loss.backward()
    compiled_grads = gradients(model)
    model.zero_grad()
    torch.manual_seed(1)
    eager_loss = model(input_ids, attention_mask=attention_mask, labels=labels).loss
    eager_loss.backward()
    eager_grads = gradients(model)
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-5, rtol=0)
    assert compiled_grads.keys() == eager_grads.keys()
    for name, grad in compiled_grads.items():
        torch.testing.assert_close(grad, eager_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def trainer_losses(output_dir, torch_compile: bool) -> list[float]:
    ids = torch.randint(3, 40, (12, 64), generator=torch.Generator().manual_seed(2)).tolist()
    dataset = Dataset.from_dict({"input_ids": ids, "labels": ids})
    arguments = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=4, max_steps=3, learning_rate=3e-3, use_cpu=True,
        report_to="none", save_strategy="no", logging_steps=1, seed=0, torch_compile=torch_compile,
    )
    trainer = Trainer(model=tiny_model(), args=arguments, train_dataset=dataset)
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_trainer_with_torch_compile_matches_eager(tmp_path):
    eager = trainer_losses(tmp_path / "eager", torch_compile=False)
    compiled = trainer_losses(tmp_path / "compiled", torch_compile=True)
    assert len(compiled) == len(eager) == 3
    for compiled_loss, eager_loss in zip(compiled, eager):
        assert abs(compiled_loss - eager_loss) <= 1e-4, (compiled, eager)
