"""Train a tiny Reformer for a few steps, alone or as one rank of a torch.distributed job.

Usage: ddp_train.py OUTPUT_DIR MODE, where MODE is "accelerate", "accelerate-unused",
"accelerate-static", "trainer", "fsdp-layers" or "fsdp-model". A "+dropout" suffix turns dropout
on, which only runs with the same batch split can reproduce. Each process saves its final parameters to
OUTPUT_DIR/state_{world_size}_{rank}.pt. tests/test_distributed.py launches it, alone or under
``accelerate launch`` or ``torch.distributed.run``.
"""

import sys
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs
from datasets import Dataset
from transformers import Trainer, TrainingArguments, set_seed

from reformer_hf import ReformerConfig, ReformerForCausalLM

STEPS, GLOBAL_BATCH, LENGTH = 4, 4, 64
DROPOUT = 0.0


def build_model(dropout: float = 0.0) -> ReformerForCausalLM:
    config = ReformerConfig(
        vocab_size=40, hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh", "local", "lsh"], lsh_chunk_length=8, local_chunk_length=8, num_buckets=4,
        num_hashes=2, axial_pos_shape=[8, 8], axial_pos_embds_dim=[16, 16], hidden_dropout_prob=dropout,
    )
    torch.manual_seed(0)
    return ReformerForCausalLM(config)


def batches() -> torch.Tensor:
    return torch.randint(3, 40, (STEPS, GLOBAL_BATCH, LENGTH), generator=torch.Generator().manual_seed(1))


def run_accelerate(output_dir: Path, mode: str) -> None:
    handlers = []
    if mode == "accelerate-unused":
        handlers.append(DistributedDataParallelKwargs(find_unused_parameters=True))
    elif mode == "accelerate-static":
        handlers.append(DistributedDataParallelKwargs(static_graph=True))
    accelerator = Accelerator(cpu=True, kwargs_handlers=handlers)
    model = build_model(DROPOUT)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)
    world, rank = accelerator.num_processes, accelerator.process_index
    for step, batch in enumerate(batches()):
        # LSH rotations come from the default generator; every process and the single-process
        # reference seed it alike, so they hash with the same rotations. Dropout is off, since
        # its masks would depend on how the batch is split.
        torch.manual_seed(100 + step)
        rows = batch.chunk(world)[rank]
        # The loss is a mean over this rank's rows; DDP averages gradients over the ranks, which
        # equals the mean over the global batch because every rank has as many rows.
        loss = model(rows, labels=rows).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
    save(accelerator.unwrap_model(model), output_dir, world, rank)


def run_fsdp(output_dir: Path, mode: str) -> None:
    """Shard with FSDP2's ``fully_shard``, each layer and then the whole model, or the whole model only.

    accelerate's FSDP support needs GPUs, so this calls torch directly; sharding each
    ``ReformerLayer`` is what accelerate's ``transformer_based_wrap`` policy with
    ``ReformerLayer`` does.
    """
    from torch.distributed.fsdp import fully_shard

    state = PartialState(cpu=True)
    world, rank = state.num_processes, state.process_index
    model = build_model(DROPOUT)
    if mode == "fsdp-layers":
        for layer in model.reformer.encoder.layers:
            fully_shard(layer)
    fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step, batch in enumerate(batches()):
        torch.manual_seed(100 + step)
        rows = batch.chunk(world)[rank]
        loss = model(rows, labels=rows).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    full = {name: tensor.full_tensor() for name, tensor in model.state_dict().items()}
    torch.save(full, output_dir / f"state_{world}_{rank}.pt")


def run_trainer(output_dir: Path) -> None:
    set_seed(0)
    model = build_model()
    rows = batches().reshape(-1, LENGTH)
    dataset = Dataset.from_dict({"input_ids": rows.tolist(), "labels": rows.tolist()})
    # The Trainer gives each rank its own batches of the shuffled order. With GLOBAL_BATCH split over
    # the ranks, every optimizer step therefore uses the rows that a single process would use.
    world = PartialState(cpu=True).num_processes
    arguments = TrainingArguments(
        output_dir=str(output_dir / "trainer"), per_device_train_batch_size=GLOBAL_BATCH // world, max_steps=STEPS, learning_rate=1e-2,
        use_cpu=True, report_to="none", save_strategy="no", logging_steps=1, seed=0, dataloader_drop_last=True,
        ddp_backend="gloo" if world > 1 else None,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset)
    trainer.train()
    world = trainer.args.world_size
    rank = trainer.args.process_index
    save(trainer.model, output_dir, world, rank)


def save(model, output_dir: Path, world: int, rank: int) -> None:
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    torch.save(state, output_dir / f"state_{world}_{rank}.pt")


if __name__ == "__main__":
    target, run_mode = Path(sys.argv[1]), sys.argv[2]
    run_mode, _, suffix = run_mode.partition("+")
    DROPOUT = 0.1 if suffix == "dropout" else 0.0
    if run_mode == "trainer":
        run_trainer(target)
    elif run_mode.startswith("fsdp"):
        run_fsdp(target, run_mode)
    else:
        run_accelerate(target, run_mode)
