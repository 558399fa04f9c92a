"""Plain DistributedDataParallel over reversible layers: two CPU processes, gloo on loopback.

``tests/scripts/ddp_train.py`` trains a tiny model with accelerate's ``Accelerator`` or the
``Trainer``. ``torch.distributed.run`` starts two ranks on 127.0.0.1; the ranks must end with
identical parameters, equal to a single process trained on the same global batches.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(arguments: list[str], output_dir: Path) -> None:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, *arguments], cwd=output_dir, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def launch_two_ranks(mode: str, output_dir: Path) -> None:
    run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(SCRIPT), str(output_dir), mode], output_dir)


def load(output_dir: Path, world: int, rank: int) -> dict:
    return torch.load(output_dir / f"state_{world}_{rank}.pt")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("single")
    run([str(SCRIPT), str(output_dir), "accelerate"], output_dir)
    return load(output_dir, 1, 0)


@pytest.mark.parametrize("mode", ["accelerate", "accelerate-unused", "accelerate-static"])
def test_ddp_two_ranks_match_single_process(mode, single_process, tmp_path):
    # "accelerate-unused" and "accelerate-static" wrap the model with find_unused_parameters=True
    # and static_graph=True, which DDP users reach for when reversible layers break elsewhere.
    launch_two_ranks(mode, tmp_path)
    rank0, rank1 = load(tmp_path, 2, 0), load(tmp_path, 2, 1)
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), f"{name} differs between the ranks"
    assert rank0.keys() == single_process.keys()
    for name, tensor in rank0.items():
        # Four AdamW steps at learning rate 1e-2; gradients differ from the single process only by
        # the order of the sums.
        torch.testing.assert_close(tensor, single_process[name], atol=2e-5, rtol=0, msg=name)


def test_trainer_two_ranks_stay_in_step(tmp_path):
    launch_two_ranks("trainer", tmp_path)
    rank0, rank1 = load(tmp_path, 2, 0), load(tmp_path, 2, 1)
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), f"{name} differs between the ranks"
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from ddp_train import build_model
    finally:
        sys.path.pop(0)
    initial = build_model().state_dict()
    changed = sum(not torch.equal(tensor, rank0[name]) for name, tensor in initial.items())
    assert changed > 0.9 * len(rank0), "training left most parameters unchanged"
