"""Training mechanics that must not change the numbers: accumulation, resumption, checkpointing."""

import logging

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from reformer_hf import ReformerConfig, ReformerForCausalLM


def tiny_model(**overrides) -> ReformerForCausalLM:
    settings = dict(
        vocab_size=40, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh"], lsh_chunk_length=8, local_chunk_length=8, num_buckets=4, num_hashes=2,
        axial_pos_shape=[8, 8], axial_pos_embds_dim=[16, 16],
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return ReformerForCausalLM(ReformerConfig(**settings))


def token_dataset(rows: int = 24) -> Dataset:
    ids = torch.randint(3, 40, (rows, 64), generator=torch.Generator().manual_seed(1)).tolist()
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


def test_gradient_accumulation_matches_one_large_batch():
    batch = torch.randint(3, 40, (4, 64), generator=torch.Generator().manual_seed(2))
    accumulated, whole = tiny_model(hidden_dropout_prob=0.0), tiny_model(hidden_dropout_prob=0.0)
    for micro_batch in batch.chunk(4):
        torch.manual_seed(5)  # the same LSH rotations as the whole batch draws below
        (accumulated(micro_batch, labels=micro_batch).loss / 4).backward()
    torch.manual_seed(5)
    whole(batch, labels=batch).loss.backward()
    for (name, parameter), reference in zip(accumulated.named_parameters(), whole.parameters()):
        torch.testing.assert_close(parameter.grad, reference.grad, atol=1e-6, rtol=1e-5, msg=name)


def trainer(output_dir, max_steps: int) -> Trainer:
    arguments = TrainingArguments(
        output_dir=str(output_dir), max_steps=max_steps, per_device_train_batch_size=2, learning_rate=3e-3,
        logging_steps=1, save_strategy="steps", save_steps=3, use_cpu=True, report_to="none", seed=7,
        data_seed=7,
    )
    return Trainer(model=tiny_model(hidden_dropout_prob=0.1), args=arguments, train_dataset=token_dataset())


def losses(run: Trainer) -> list[float]:
    return [entry["loss"] for entry in run.state.log_history if "loss" in entry]


def test_resuming_from_a_checkpoint_repeats_the_uninterrupted_losses(tmp_path):
    straight = trainer(tmp_path / "run", 6)
    straight.train()  # saves checkpoint-3 on the way
    resumed = trainer(tmp_path / "resumed", 6)
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-3"))
    assert len(losses(straight)) == 6
    # Dropout masks and LSH rotations come from the random state that the checkpoint restores.
    assert losses(resumed)[-3:] == losses(straight)[-3:]


def test_two_seeded_runs_have_identical_losses(tmp_path):
    # Building a Trainer calls set_seed(seed). Dropout masks and LSH rotations come from the seeded
    # default generator, so a run built and trained after the first repeats every step's loss.
    first = trainer(tmp_path / "first", 6)
    first.train()
    second = trainer(tmp_path / "second", 6)
    second.train()
    assert len(losses(first)) == 6
    assert losses(first) == losses(second)
    assert len(set(losses(first))) > 1


@pytest.mark.parametrize("reversible", [True, False])
def test_activation_checkpointing_is_a_logged_no_op(reversible, tmp_path):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("reformer_hf.modeling")
    logger.addHandler(handler)
    try:
        arguments = TrainingArguments(output_dir=str(tmp_path), activation_checkpointing=True, max_steps=2,
                                      per_device_train_batch_size=2, use_cpu=True, report_to="none",
                                      save_strategy="no")
        model = tiny_model(reversible=reversible)
        run = Trainer(model=model, args=arguments, train_dataset=token_dataset(8))
        run.train()
        model.gradient_checkpointing_enable()
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    expected = "already recompute" if reversible else "not implemented for reversible=False"
    assert len([m for m in messages if expected in m]) == 1, messages
    assert all(torch.isfinite(torch.tensor(losses(run))))


def losses_under(dtype: torch.dtype | None, steps: int = 12) -> list[float]:
    model = tiny_model(hidden_dropout_prob=0.0, attention_layers=["local", "lsh", "local", "lsh"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.randint(3, 40, (steps, 2, 64), generator=torch.Generator().manual_seed(3))
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    # 20 pads: moved to the row's end, their last local chunks see only padding keys, all masked.
    attention_mask[1, :20] = 0
    history = []
    for step in range(steps):
        torch.manual_seed(step)
        labels = data[step].masked_fill(attention_mask == 0, -100)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            outputs = model(data[step], attention_mask=attention_mask, labels=labels, output_hidden_states=True)
        assert all(bool(torch.isfinite(states).all()) for states in outputs.hidden_states)
        outputs.loss.backward()
        assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
        optimizer.step()
        optimizer.zero_grad()
        history.append(outputs.loss.item())
    return history


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_training_tracks_float32(dtype):
    # Logits and masks stay in float32 inside attention, so mask values are safe in either dtype.
    reference, reduced = losses_under(None), losses_under(dtype)
    assert all(abs(a - b) <= 0.02 for a, b in zip(reference, reduced)), (reference, reduced)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["local", "lsh", "full"])
def test_padded_positions_get_zeros_from_attention(kind, dtype):
    # Row 1 has 20 pads, whose windows still contain real keys, and row 2 is padding only: every
    # query there has all its keys masked. Attention must give those queries exact zeros, in
    # every dtype, never NaN.
    model = tiny_model(hidden_dropout_prob=0.0, attention_layers=[kind, kind])
    input_ids = torch.randint(3, 40, (3, 64), generator=torch.Generator().manual_seed(4))
    attention_mask = torch.ones(3, 64, dtype=torch.long)
    attention_mask[1, 44:] = 0
    attention_mask[2] = 0
    captured = []
    for layer in model.reformer.encoder.layers:
        layer.attention.self_attention.register_forward_hook(
            lambda module, args, outputs: captured.append((outputs[0], args[1]))
        )
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        outputs = model(input_ids, attention_mask=attention_mask, labels=input_ids.masked_fill(attention_mask == 0, -100))
    outputs.loss.backward()
    assert torch.isfinite(outputs.logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert len(captured) == 4  # two layers, run forward and again in the reversible backward pass
    for attention_outputs, key_padding_mask in captured:
        assert torch.isfinite(attention_outputs).all()
        assert attention_outputs.dtype == (dtype or torch.float32)
        assert not key_padding_mask[2].any()
        assert torch.equal(attention_outputs[2], torch.zeros_like(attention_outputs[2]))
        assert attention_outputs[:2].abs().amin(dim=-1).amax() > 0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_model_cast_to_half_precision_trains(dtype):
    # A model cast as a whole, not under autocast: activations, rotations and position tables all
    # take the cast dtype, while attention logits and masks stay in float32.
    reference = tiny_model(hidden_dropout_prob=0.0)
    model = tiny_model(hidden_dropout_prob=0.0).to(dtype)
    input_ids = torch.randint(3, 40, (2, 64), generator=torch.Generator().manual_seed(5))
    attention_mask = torch.ones(2, 64, dtype=torch.long)
    attention_mask[1, :20] = 0
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    torch.manual_seed(0)
    expected = reference(input_ids, attention_mask=attention_mask, labels=labels).loss
    torch.manual_seed(0)
    outputs = model(input_ids, attention_mask=attention_mask, labels=labels, output_hidden_states=True)
    outputs.loss.backward()
    assert outputs.logits.dtype == dtype
    assert all(states.dtype == dtype for states in outputs.hidden_states)
    assert all(bool(torch.isfinite(states).all()) for states in outputs.hidden_states)
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
    assert abs(outputs.loss.item() - expected.item()) <= 0.02
    lsh = next(layer.attention.self_attention for layer in model.reformer.encoder.layers
               if layer.attention.self_attention.__class__.__name__ == "LSHSelfAttention")
    rotations = lsh.draw_rotations(2, torch.device("cpu"), lsh.query_key.weight.dtype)
    assert rotations.dtype == dtype
    positions = model.reformer.embeddings.position_embeddings(torch.arange(64)[None])
    assert positions.dtype == dtype
