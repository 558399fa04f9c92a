"""CI-sized run of examples/author_identification.py, and tests of its text preparation."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
from datasets import Dataset

from reformer_hf.tokenization import ReformerByteTokenizer

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "examples" / "author_identification.py"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def load_example():
    spec = importlib.util.spec_from_file_location("author_identification", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()
BOOK_PATHS = [SHARED_DATA_DIR / file_name for _, file_name in example.BOOKS]
needs_books = pytest.mark.skipif(
    not all(path.is_file() for path in BOOK_PATHS),
    reason=f"the three book files are not in {SHARED_DATA_DIR}",
)

# A run of about 15 s on 2 CPU cores: a 2-layer model of width 32 trained for 30 steps on
# 128-byte passages of the first 40,000 characters of each book.
TINY_RUN_OPTIONS = [
    "--max-bytes-per-book", "40000",
    "--chunk-length", "128",
    "--hidden-size", "32",
    "--num-attention-heads", "2",
    "--attention-layers", "local", "lsh",
    "--attention-chunk-length", "16",
    "--batch-size", "8",
    "--max-steps", "30",
    "--eval-steps", "15",
    "--max-eval-chunks", "30",
    "--bf16", "false",
    "--quiet",
]
RESULT_KEYS = {
    "accuracy", "baseline", "margin", "balanced_accuracy", "wall_seconds", "authors", "test_passages_per_author",
    "confusion_matrix", "train_passages", "validation_passages", "num_parameters", "bf16", "torch_threads",
    "settings",
}


@pytest.fixture(autouse=True, scope="module")
def datasets_cache(tmp_path_factory):
    """Keep the datasets cache of this module in a temporary directory instead of ~/.cache."""
    original = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = str(tmp_path_factory.mktemp("hf_datasets_cache"))
    yield
    datasets.config.HF_DATASETS_CACHE = original


def test_strip_gutenberg_boilerplate():
    text = (
        "The Project Gutenberg EBook of Something\r\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\n"
        "Chapter 1. It begins.\r\n"
        "End of Project Gutenberg's Something, by Someone\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK SOMETHING ***\r\n"
        "Licence text."
    )
    assert example.strip_gutenberg_boilerplate(text).strip() == "Chapter 1. It begins."
    assert example.strip_gutenberg_boilerplate("No markers here.") == "No markers here."


def test_normalize_text_removes_edition_typography():
    text = "\ufeff\u201cWell,\u201d said _he_,\r\n  \u2018it\u2019s\tdone.\u2019\n\n"
    assert example.normalize_text(text) == "\"Well,\" said he, 'it's done.'"


def test_split_by_position_is_ordered_and_disjoint():
    text = " ".join(f"w{i:03d}" for i in range(200))
    parts = example.split_by_position(text, validation_fraction=0.1, test_fraction=0.15)

    assert " ".join([parts["train"], parts["validation"], parts["test"]]) == text
    assert parts["test"].startswith("w170") or parts["test"].startswith("w171")
    assert len(parts["validation"]) < len(parts["test"]) < len(parts["train"])


def test_balance_classes_oversample():
    dataset = Dataset.from_dict({"label": [0, 0, 0, 0, 0, 1, 1, 2], "row": list(range(8))})
    balanced = example.balance_classes(dataset, "oversample", np.random.default_rng(0))

    assert np.bincount(balanced["label"]).tolist() == [5, 5, 5]
    row_counts = np.bincount(balanced["row"], minlength=8)
    assert row_counts[:5].tolist() == [1, 1, 1, 1, 1]
    assert sorted(row_counts[5:7].tolist()) == [2, 3]
    assert row_counts[7] == 5


def test_balance_classes_downsample():
    dataset = Dataset.from_dict({"label": [0, 0, 0, 0, 0, 1, 1, 2, 2, 2]})
    balanced = example.balance_classes(dataset, "downsample", np.random.default_rng(0))
    capped = example.balance_classes(dataset, "downsample", np.random.default_rng(0), per_class=1)

    assert np.bincount(balanced["label"]).tolist() == [2, 2, 2]
    assert np.bincount(capped["label"]).tolist() == [1, 1, 1]


def test_majority_baseline():
    assert example.majority_baseline(np.array([0, 1, 1, 2, 1])) == pytest.approx(0.6)


def test_classification_metrics():
    metrics = example.classification_metrics(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)

    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert metrics["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_rejects_bad_fractions(capsys):
    with pytest.raises(SystemExit):
        example.parse_args(["--data-dir", ".", "--validation-fraction", "0.5", "--test-fraction", "0.5"])
    assert "--validation-fraction and --test-fraction must be positive with a sum below 1" in capsys.readouterr().err


def test_missing_book_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Data file not found: .*austen_six_novels\.txt"):
        example.load_books(str(tmp_path), max_bytes_per_book=0)


@needs_books
def test_example_runs_end_to_end(tmp_path):
    output_dir = tmp_path / "run"
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(tmp_path / "datasets_cache"),
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, str(EXAMPLE), "--data-dir", str(SHARED_DATA_DIR), "--output-dir", str(output_dir),
               *TINY_RUN_OPTIONS]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]

    results = json.loads((output_dir / "results.json").read_text())
    printed = json.loads(completed.stdout.strip().splitlines()[-1])
    assert printed == results
    assert set(results) == RESULT_KEYS
    assert 0.0 <= results["accuracy"] <= 1.0
    assert results["margin"] == pytest.approx(results["accuracy"] - results["baseline"], abs=2e-4)
    assert results["authors"] == ["Austen", "Dostoevsky", "Melville"]

    # The baseline is the share of the most frequent author among the test passages, which are the
    # full 128-byte passages of the last 15% of each book's first 40,000 characters.
    args = example.parse_args(["--data-dir", str(SHARED_DATA_DIR), *TINY_RUN_OPTIONS])
    texts = example.load_books(str(SHARED_DATA_DIR), args.max_bytes_per_book)
    tokenizer = ReformerByteTokenizer()
    counts = []
    for text in texts:
        test_text = example.split_by_position(text, args.validation_fraction, args.test_fraction)["test"]
        counts.append(len(tokenizer(test_text)["input_ids"]) // args.chunk_length)
    assert results["test_passages_per_author"] == counts
    assert results["baseline"] == pytest.approx(max(counts) / sum(counts), abs=1e-4)
    assert np.asarray(results["confusion_matrix"]).sum(axis=1).tolist() == counts
