"""Push to and load from a local Hugging Face Hub server, with the loads in fresh processes.

Each session runs ``tests/hub_server.py``: it starts the server on 127.0.0.1 and runs the steps below
as subprocesses pointed at it (see ``hub_server.client_environment``). Where ``unshare -n`` works,
the session runs in a new network namespace whose only interface is loopback. Every step also
installs ``hub_server.install_loopback_only_guard``, which rejects and records any other host.
"""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG_KWARGS

import reformer_hf
from reformer_hf import ReformerConfig

logger = logging.getLogger(__name__)

TESTS_DIR = Path(__file__).resolve().parent
HUB_SERVER = TESTS_DIR / "hub_server.py"
PACKAGE_DIR = Path(reformer_hf.__file__).resolve().parent

PLAIN_REPO = "user/tiny-reformer"
REMOTE_CODE_REPO = "user/tiny-reformer-remote"
SAVED_AND_PUSHED_REPO = "user/tiny-reformer-saved"
TRAINED_REPO = "user/trained"
SESSION_TIMEOUT_SECONDS = 600

# Every step starts with this: the loopback guard before any other import, then the outputs folder.
STEP_PRELUDE = """\
import sys
sys.path.insert(0, {tests_dir!r})
import hub_server
hub_server.install_loopback_only_guard()
{block_package}
import json
import pathlib
import torch
torch.set_num_threads(1)
output_dir = pathlib.Path(sys.argv[1])
"""

PUSH_TINY_MODEL = """
from reformer_hf import ReformerByteTokenizer, ReformerConfig, ReformerForCausalLM

torch.manual_seed(0)
config = ReformerConfig.from_pretrained(output_dir / "tiny_config")
model = ReformerForCausalLM(config).eval()
tokenizer = ReformerByteTokenizer()
input_ids = tokenizer(sys.argv[2], return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = model(input_ids=input_ids).logits
torch.save({"input_ids": input_ids, "logits": logits}, output_dir / "reference.pt")

model.push_to_hub(sys.argv[3])
config.push_to_hub(sys.argv[3])
tokenizer.push_to_hub(sys.argv[3])
# The card tests compare the pushed README.md files with what save_pretrained writes locally.
model.save_pretrained(output_dir / "local_save")
model.save_pretrained(output_dir / "saved_and_pushed", push_to_hub=True, repo_id=sys.argv[5])

# register_for_auto_class sets a class attribute, so every later save of these classes in this
# process writes auto_map and copies the code. That is why the plain repository is pushed first.
model.register_for_auto_class("AutoModelForCausalLM")
config.register_for_auto_class()
tokenizer.register_for_auto_class()
model.push_to_hub(sys.argv[4])
config.push_to_hub(sys.argv[4])
tokenizer.push_to_hub(sys.argv[4])
"""

# argv: output folder, text, repository, output file name, "remote_code" or "installed".
LOAD_IN_FRESH_PROCESS = """
trust_remote_code = sys.argv[5] == "remote_code"
try:
    import reformer_hf  # registers the Auto classes when the package is importable
    package_importable = True
except ModuleNotFoundError:
    package_importable = False

from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained(sys.argv[3], trust_remote_code=trust_remote_code).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[3], trust_remote_code=trust_remote_code)
input_ids = tokenizer(sys.argv[2], return_tensors="pt")["input_ids"]
with torch.no_grad():
    logits = model(input_ids=input_ids).logits
torch.save(
    {
        "input_ids": input_ids,
        "logits": logits,
        "package_importable": package_importable,
        "package_modules_loaded": sorted(name for name in sys.modules if name.split(".")[0] == "reformer_hf"),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "tokenizer_class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}",
    },
    output_dir / sys.argv[4],
)
"""

# argv: output folder, text, repository.
TRAIN_AND_PUSH = """
from datasets import Dataset
from transformers import Trainer, TrainingArguments, set_seed
from reformer_hf import ReformerByteTokenizer, ReformerConfig, ReformerForCausalLM

set_seed(0)
config = ReformerConfig.from_pretrained(output_dir / "tiny_config")
tokenizer = ReformerByteTokenizer()
texts = [f"Sample {index}: the quick brown fox jumps over the lazy dog." for index in range(8)]
sequences = [tokenizer(text)["input_ids"][:32] for text in texts]
dataset = Dataset.from_dict({"input_ids": sequences, "labels": sequences})

model = ReformerForCausalLM(config)
input_ids = tokenizer(sys.argv[2], return_tensors="pt")["input_ids"]
model.eval()
with torch.no_grad():
    initial_logits = model(input_ids=input_ids).logits

arguments = TrainingArguments(
    output_dir=str(output_dir / "trainer_output"),
    push_to_hub=True,
    hub_model_id=sys.argv[3],
    max_steps=3,
    per_device_train_batch_size=4,
    learning_rate=1e-2,
    report_to="none",
    use_cpu=True,
    save_strategy="steps",
    save_steps=3,
    logging_steps=1,
)
trainer = Trainer(model=model, args=arguments, train_dataset=dataset, processing_class=tokenizer)
trainer.train()
trainer.push_to_hub()

model.eval()
with torch.no_grad():
    logits = model(input_ids=input_ids).logits
torch.save(
    {
        "input_ids": input_ids,
        "logits": logits,
        "initial_logits": initial_logits,
        "global_step": trainer.state.global_step,
    },
    output_dir / "reference.pt",
)
"""

TEXT = "Hello, Reformer! Grüße"


def network_namespace_available() -> tuple[bool, str]:
    """Return whether ``unshare -n`` can create a network namespace here, and why not when it cannot."""
    if shutil.which("unshare") is None:
        return False, "the unshare command is not installed"
    try:
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"unshare -n failed: {error}"
    if probe.returncode != 0:
        return False, f"unshare -n exited with {probe.returncode}: {probe.stderr.strip()}"
    return True, ""


def write_step(work_dir: Path, name: str, body: str, block_package: bool = False) -> Path:
    path = work_dir / f"{name}.py"
    block_line = 'hub_server.block_imports("reformer_hf")' if block_package else ""
    path.write_text(STEP_PRELUDE.format(tests_dir=str(TESTS_DIR), block_package=block_line) + body)
    return path


def run_hub_session(work_dir: Path, steps: list[dict]) -> dict:
    """Run the steps against a fresh local Hub, in a loopback-only network namespace where possible."""
    isolated, reason = network_namespace_available()
    if not isolated:
        logger.warning(
            "Running the Hub session without a network namespace because %s. The server still listens on "
            "127.0.0.1 only, HF_ENDPOINT points at it, and each step rejects other hosts.",
            reason,
        )
    spec_path, report_path = work_dir / "session.json", work_dir / "report.json"
    spec = {
        "storage_dir": str(work_dir / "hub_storage"),
        "hf_home": str(work_dir / "hf_home"),
        "egress_log": str(work_dir / "blocked_hosts.log"),
        "isolated_network": isolated,
        "steps": steps,
    }
    spec_path.write_text(json.dumps(spec, indent=1))
    command = [sys.executable, str(HUB_SERVER), str(spec_path), str(report_path)]
    if isolated:
        command = ["unshare", "-n", *command]

    completed = subprocess.run(command, capture_output=True, text=True, timeout=SESSION_TIMEOUT_SECONDS)
    assert completed.returncode == 0, f"Hub session runner failed:\n{completed.stdout}\n{completed.stderr}"
    report = json.loads(report_path.read_text())
    report["work_dir"] = work_dir
    report["blocked_hosts"] = spec["egress_log"]
    return report


def step_command(work_dir: Path, script: Path, *arguments: str) -> list[str]:
    return [sys.executable, str(script), str(work_dir), *arguments]


@pytest.fixture(scope="module")
def tiny_model_session(tmp_path_factory) -> dict:
    """Push a tiny model, config and tokenizer to two repositories, then load each in a fresh process."""
    work_dir = tmp_path_factory.mktemp("hub_tiny_model")
    ReformerConfig(**{**TINY_CONFIG_KWARGS, "vocab_size": 259}).save_pretrained(work_dir / "tiny_config")
    push = write_step(work_dir, "push", PUSH_TINY_MODEL)
    load = write_step(work_dir, "load", LOAD_IN_FRESH_PROCESS)
    load_without_package = write_step(work_dir, "load_without_package", LOAD_IN_FRESH_PROCESS, block_package=True)
    steps = [
        {
            "name": "push",
            "argv": step_command(work_dir, push, TEXT, PLAIN_REPO, REMOTE_CODE_REPO, SAVED_AND_PUSHED_REPO),
        },
        {"name": "load", "argv": step_command(work_dir, load, TEXT, PLAIN_REPO, "loaded.pt", "installed")},
        {
            "name": "load_remote_code",
            "argv": step_command(
                work_dir, load_without_package, TEXT, REMOTE_CODE_REPO, "loaded_remote_code.pt", "remote_code"
            ),
        },
    ]
    return run_hub_session(work_dir, steps)


@pytest.fixture(scope="module")
def trainer_session(tmp_path_factory) -> dict:
    """Train a tiny model for 3 steps with ``Trainer(push_to_hub=True)``, push it, load it in a fresh process."""
    work_dir = tmp_path_factory.mktemp("hub_trainer")
    ReformerConfig(**{**TINY_CONFIG_KWARGS, "vocab_size": 259}).save_pretrained(work_dir / "tiny_config")
    train = write_step(work_dir, "train", TRAIN_AND_PUSH)
    load = write_step(work_dir, "load", LOAD_IN_FRESH_PROCESS)
    steps = [
        {"name": "train_and_push", "argv": step_command(work_dir, train, TEXT, TRAINED_REPO)},
        {"name": "load", "argv": step_command(work_dir, load, TEXT, TRAINED_REPO, "loaded.pt", "installed")},
    ]
    return run_hub_session(work_dir, steps)


def require_steps(session: dict, *names: str) -> None:
    """Fail with the step's output when a step the test depends on exited with an error."""
    steps = {step["name"]: step for step in session["steps"]}
    for name in names:
        step = steps[name]
        assert step["returncode"] == 0, f"step {name} exited with {step['returncode']}:\n{step['output_tail']}"


def repository_files(session: dict, repo_id: str) -> dict[str, dict]:
    created = list(session["repositories"])
    assert repo_id in created, f"{repo_id} was not created; repositories: {created}"
    return session["repositories"][repo_id]["branches"]["main"]["files"]


def read_repository_file(session: dict, repo_id: str, path: str) -> str:
    return Path(repository_files(session, repo_id)[path]["blob_path"]).read_text(encoding="utf-8")


def load_outputs(session: dict, name: str) -> dict:
    return torch.load(session["work_dir"] / name, weights_only=True)


def card_metadata(card: str) -> str:
    """Return the YAML front matter of a model card, the text between its two ``---`` lines."""
    assert card.startswith("---\n"), f"README.md does not start with YAML front matter:\n{card[:300]}"
    return card.split("---\n")[1]


def relative_import_closure(module_file: Path) -> set[str]:
    """Return the files of the package that ``module_file`` imports relatively, directly or not, itself included."""
    pending, found = [module_file.name], set()
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        for line in (PACKAGE_DIR / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("from .") and not line.startswith("from . "):
                pending.append(line.split()[1].lstrip(".") + ".py")
    return found


def test_push_then_load_with_auto_classes(tiny_model_session):
    require_steps(tiny_model_session, "push", "load")
    files = repository_files(tiny_model_session, PLAIN_REPO)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        assert name in files
    config = json.loads(read_repository_file(tiny_model_session, PLAIN_REPO, "config.json"))
    assert config["model_type"] == "reformer_hf"
    assert "auto_map" not in config
    assert not any(name.endswith(".py") for name in files)

    reference = load_outputs(tiny_model_session, "reference.pt")
    loaded = load_outputs(tiny_model_session, "loaded.pt")
    assert loaded["model_class"] == "reformer_hf.modeling.ReformerForCausalLM"
    assert loaded["tokenizer_class"] == "reformer_hf.tokenization.ReformerByteTokenizer"
    assert torch.equal(loaded["input_ids"], reference["input_ids"])
    assert torch.equal(loaded["logits"], reference["logits"])


def test_remote_code_loads_without_package(tiny_model_session):
    require_steps(tiny_model_session, "push", "load_remote_code")
    files = repository_files(tiny_model_session, REMOTE_CODE_REPO)
    config = json.loads(read_repository_file(tiny_model_session, REMOTE_CODE_REPO, "config.json"))
    assert config["auto_map"] == {
        "AutoConfig": "configuration.ReformerConfig",
        "AutoModelForCausalLM": "modeling.ReformerForCausalLM",
    }
    tokenizer_config = json.loads(read_repository_file(tiny_model_session, REMOTE_CODE_REPO, "tokenizer_config.json"))
    assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization.ReformerByteTokenizer"
    needed_code = relative_import_closure(PACKAGE_DIR / "modeling.py") | {"tokenization.py"}
    assert needed_code <= set(files), f"code files missing from the repository: {sorted(needed_code - set(files))}"

    reference = load_outputs(tiny_model_session, "reference.pt")
    loaded = load_outputs(tiny_model_session, "loaded_remote_code.pt")
    assert loaded["package_importable"] is False
    assert loaded["package_modules_loaded"] == []
    assert loaded["model_class"].startswith("transformers_modules.")
    assert loaded["model_class"].endswith(".modeling.ReformerForCausalLM")
    assert loaded["tokenizer_class"].endswith(".tokenization.ReformerByteTokenizer")
    assert torch.equal(loaded["input_ids"], reference["input_ids"])
    assert torch.equal(loaded["logits"], reference["logits"])


def test_trainer_pushes_loadable_model(trainer_session):
    require_steps(trainer_session, "train_and_push", "load")
    files = repository_files(trainer_session, TRAINED_REPO)
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "README.md"):
        assert name in files
    assert not any(name.startswith("checkpoint-") for name in files)

    reference = load_outputs(trainer_session, "reference.pt")
    assert reference["global_step"] == 3
    # The pushed weights are the trained ones, not the initial ones.
    assert not torch.allclose(reference["logits"], reference["initial_logits"])
    loaded = load_outputs(trainer_session, "loaded.pt")
    assert loaded["model_class"] == "reformer_hf.modeling.ReformerForCausalLM"
    assert torch.equal(loaded["input_ids"], reference["input_ids"])
    assert torch.equal(loaded["logits"], reference["logits"])


def test_trainer_push_uploads_model_card(trainer_session):
    require_steps(trainer_session, "train_and_push")
    card = read_repository_file(trainer_session, TRAINED_REPO, "README.md")
    assert "library_name: transformers" in card_metadata(card)
    assert TRAINED_REPO.split("/")[1] in card


def test_push_to_hub_uploads_model_card(tiny_model_session):
    require_steps(tiny_model_session, "push")
    files = repository_files(tiny_model_session, PLAIN_REPO)
    if "README.md" not in files:
        pytest.xfail("model.push_to_hub uploaded no README.md model card")
    card = read_repository_file(tiny_model_session, PLAIN_REPO, "README.md")
    assert "library_name: transformers" in card_metadata(card)


@pytest.mark.parametrize("repo_id", [PLAIN_REPO, SAVED_AND_PUSHED_REPO], ids=["push_to_hub", "save_pretrained"])
def test_pushed_card_is_save_pretrained_card(tiny_model_session, repo_id):
    require_steps(tiny_model_session, "push")
    local_card_path = tiny_model_session["work_dir"] / "local_save" / "README.md"
    if not local_card_path.exists():
        pytest.xfail("save_pretrained writes no README.md model card yet")
    local_card = local_card_path.read_text(encoding="utf-8")
    pushed_card = read_repository_file(tiny_model_session, repo_id, "README.md")
    # transformers' push_to_hub may add tags to the metadata, so only the card's body must match.
    local_body = local_card.split("---\n", 2)[-1].strip()
    assert local_body in pushed_card


@pytest.mark.parametrize("session_name", ["tiny_model_session", "trainer_session"])
def test_hub_session_stays_on_loopback(session_name, request):
    session = request.getfixturevalue(session_name)
    blocked_hosts = Path(session["blocked_hosts"])
    assert not blocked_hosts.exists(), f"steps tried to reach other hosts:\n{blocked_hosts.read_text()}"
    if session["isolated_network"]:
        assert session["interfaces"] == ["lo"]
    else:
        logger.warning("The Hub session ran without a network namespace; see the earlier warning for why.")
    assert session["endpoint"].startswith("http://127.0.0.1:")

    server_errors = [entry for entry in session["requests"] if entry[2] >= 500]
    assert server_errors == []
    # A 404 without an X-Error-Code means the client called an endpoint the local Hub lacks.
    unknown_endpoints = [entry for entry in session["requests"] if entry[2] == 404 and entry[3] is None]
    assert unknown_endpoints == []
