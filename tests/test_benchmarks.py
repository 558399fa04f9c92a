"""The benchmark scripts, run as a user runs them, in their tiny ``--quick`` mode.

Only the outputs' presence, shape and finiteness are checked. Timings depend on the machine, so no
test asserts on them beyond being finite and positive.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VARIANT_NAMES = {"default", "same_bucket_only", "duplicate_correction", "both"}
MODE_NAMES = {"bidirectional", "causal_strict", "causal_chunk_window"}


@pytest.fixture(scope="module")
def lsh_variants_output(tmp_path_factory):
    """Run ``benchmarks/lsh_variants.py --quick`` once and return its output folder."""
    pytest.importorskip("matplotlib", reason="the benchmark plots need matplotlib (extra 'benchmarks')")
    output_dir = tmp_path_factory.mktemp("lsh_variants")
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "lsh_variants.py"), "--quick", "--output-dir", str(output_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return output_dir


def test_lsh_variants_writes_outputs(lsh_variants_output):
    for name in ("lsh_variants.json", "lsh_variants.md", "lsh_variants.png"):
        path = lsh_variants_output / name
        assert path.exists(), f"{name} missing"
        assert path.stat().st_size > 0, f"{name} empty"


def test_lsh_variants_json_complete_and_finite(lsh_variants_output):
    report = json.loads((lsh_variants_output / "lsh_variants.json").read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert report["machine"]["torch"]
    assert set(report["variants"]) == VARIANT_NAMES

    summary = report["summary"]
    assert {entry["variant"] for entry in summary} == VARIANT_NAMES
    assert {entry["mode"] for entry in summary} == MODE_NAMES
    assert {entry["input"] for entry in summary} == {"clustered", "isotropic"}
    expected_cases = len(VARIANT_NAMES) * len(MODE_NAMES) * 2 * len(report["settings"]["hash_rounds"])
    assert len(summary) == expected_cases
    for entry in summary:
        for metric in ("relative_error", "coverage", "keys_per_query", "relative_error_change_vs_default"):
            assert math.isfinite(entry[metric]["mean"]), (entry, metric)
            assert math.isfinite(entry[metric]["std"]), (entry, metric)
        assert 0.0 <= entry["coverage"]["mean"] <= 1.0 + 1e-9, entry
        # The layer's outputs must match the outputs rebuilt from the key sets behind the coverage.
        assert entry["max_abs_diff_vs_rebuilt"] < 1e-3, entry

    assert {timing["variant"] for timing in report["timing"]} == VARIANT_NAMES
    for timing in report["timing"]:
        assert math.isfinite(timing["ratio_to_default"]), timing
        assert timing["ratio_to_default"] > 0, timing


def test_lsh_variants_markdown_names_variants(lsh_variants_output):
    table = (lsh_variants_output / "lsh_variants.md").read_text(encoding="utf-8")
    for name in VARIANT_NAMES | MODE_NAMES:
        assert f"| {name} |" in table, f"{name} missing from the markdown table"
