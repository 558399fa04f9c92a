"""The benchmark scripts, run as a user runs them, in their tiny ``--quick`` mode.

Only the outputs' presence, shape and finiteness are checked. Timings depend on the machine, so no
test asserts on them beyond being finite and positive.
"""

import importlib.util
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


SPEED_IMPLEMENTATIONS = {"reformer_hf", "transformers", "reformer_pytorch", "full_attention"}
SPEED_DTYPES = {"float32", "bfloat16"}
SPEED_STATUSES = {"ok", "timeout", "oom", "error"}
# The quick run gives reformer_hf 2 hash rounds, so its local layer scores 2 chunks of 64 keys and
# its LSH layer 2 rounds x 2 chunks of 128 keys.
SPEED_OVERRIDE_KEYS_PER_QUERY = [128, 512]
REFORMER_PYTORCH_MISSING = importlib.util.find_spec("reformer_pytorch") is None


def run_speed(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "speed.py"), *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def speed_output(tmp_path_factory):
    """Run ``benchmarks/speed.py --quick`` once and return its output folder.

    The run has one length, both dtypes and a reformer_hf override, to keep the test short.
    """
    pytest.importorskip("matplotlib", reason="the benchmark plots need matplotlib (extra 'benchmarks')")
    output_dir = tmp_path_factory.mktemp("speed")
    completed = run_speed(
        "--quick", "--lengths", "256", "--dtypes", "float32", "bfloat16", "--reformer-hf-option", "num_hashes=2",
        "--output-dir", str(output_dir),
    )
    assert completed.returncode == 0, completed.stderr
    return output_dir


def load_speed_points(output_dir: Path) -> dict:
    report = json.loads((output_dir / "speed.json").read_text(encoding="utf-8"))
    return {(point["implementation"], point["length"], point["dtype"]): point for point in report["points"]}


def test_speed_json_has_every_point(speed_output):
    report = json.loads((speed_output / "speed.json").read_text(encoding="utf-8"))
    assert report["quick"] is True
    assert report["machine"]["torch"] and report["machine"]["cpu_model"]
    assert "FLOPs per training token" in report["flop_formula"]
    for peak in report["matmul_peak"]:
        for dtype in ("float32", "bfloat16"):
            gflops = peak[f"{dtype}_gflops_per_second"]
            assert math.isfinite(gflops), (dtype, peak)
            assert gflops > 0, (dtype, peak)

    lengths = report["settings"]["lengths"]
    points = load_speed_points(speed_output)
    expected = {(name, length, dtype) for name in SPEED_IMPLEMENTATIONS for length in lengths for dtype in SPEED_DTYPES}
    assert set(points) == expected
    for key, point in points.items():
        assert point["status"] in SPEED_STATUSES, point
        if point["status"] != "ok":
            assert point["message"], point
            continue
        for field in ("training_step_seconds", "inference_seconds", "training_tokens_per_second",
                      "inference_tokens_per_second", "training_gflops_per_second", "inference_gflops_per_second",
                      "training_fraction_of_peak", "inference_fraction_of_peak"):
            assert math.isfinite(point[field]), (key, field, point[field])
            assert point[field] > 0, (key, field, point[field])
        assert math.isfinite(point["final_loss"]), point
        assert point["peak_rss_bytes"] > 0, point
        assert point["rss_after_build_bytes"] > 0, point
        assert point["rss_growth_bytes"] >= 0, point
        assert "cuda_peak_bytes" not in point, point

    assert (speed_output / "speed.png").stat().st_size > 0


def test_speed_bfloat16_points_run(speed_output):
    points = load_speed_points(speed_output)
    for implementation in SPEED_IMPLEMENTATIONS - {"reformer_pytorch"}:
        point = points[(implementation, 256, "bfloat16")]
        assert point["status"] == "ok", point
        # The loss at initialisation is near ln(256) = 5.55 in either precision.
        assert 4.5 < point["final_loss"] < 6.5, point


def test_speed_records_reformer_hf_option(speed_output):
    report = json.loads((speed_output / "speed.json").read_text(encoding="utf-8"))
    assert report["settings"]["reformer_hf_options"] == {"num_hashes": 2}
    for dtype in SPEED_DTYPES:
        point = load_speed_points(speed_output)[("reformer_hf", 256, dtype)]
        assert point["status"] == "ok", point
        assert point["reformer_hf_options"] == {"num_hashes": 2}
        # The FLOP count follows the built config, so it shows that the override reached ReformerConfig.
        assert point["keys_per_query"] == SPEED_OVERRIDE_KEYS_PER_QUERY, point
    transformers_point = load_speed_points(speed_output)[("transformers", 256, "float32")]
    assert "reformer_hf_options" not in transformers_point


@pytest.mark.skipif(REFORMER_PYTORCH_MISSING, reason="reformer_pytorch is not installed (pip install reformer-pytorch)")
def test_speed_reformer_pytorch_points_run(speed_output):
    points = load_speed_points(speed_output)
    for dtype in SPEED_DTYPES:
        point = points[("reformer_pytorch", 256, dtype)]
        assert point["status"] == "ok", point
        # Both of its layers are LSH, each scoring 1 round x 2 chunks of 128 keys.
        assert point["keys_per_query"] == [256, 256], point
        assert point["non_embedding_parameters"] < point["parameters"], point
        assert 4.5 < point["final_loss"] < 6.5, point


def test_speed_reformer_hf_option_unknown_key(tmp_path):
    completed = run_speed(
        "--quick", "--implementations", "reformer_hf", "--lengths", "256", "--reformer-hf-option", "num_hashs=2",
        "--output-dir", str(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    (point,) = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))["points"]
    assert point["status"] == "error", point
    assert "'num_hashs'" in point["message"]
    assert "Did you mean 'num_hashes'" in point["message"]


def test_speed_rejects_option_without_value(tmp_path):
    completed = run_speed("--reformer-hf-option", "num_hashes", "--output-dir", str(tmp_path), timeout=60)
    assert completed.returncode == 2
    assert "expected KEY=VALUE" in completed.stderr


def test_speed_rejects_cuda_without_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available, so --device cuda is valid here")
    completed = run_speed("--device", "cuda", "--output-dir", str(tmp_path), timeout=60)
    assert completed.returncode == 2
    assert "--device cuda needs a CUDA GPU" in completed.stderr


def test_speed_records_timed_out_point(tmp_path):
    completed = run_speed(
        "--quick", "--implementations", "full_attention", "--lengths", "256", "--timeout", "0.01",
        "--output-dir", str(tmp_path),
    )
    assert completed.returncode == 0, completed.stderr
    (point,) = json.loads((tmp_path / "speed.json").read_text(encoding="utf-8"))["points"]
    assert point["status"] == "timeout"
    assert "timeout" in point["message"]


def test_speed_rejects_zero_steps(tmp_path):
    completed = run_speed("--steps", "0", "--output-dir", str(tmp_path), timeout=60)
    assert completed.returncode == 2
    assert "--steps must be at least 1" in completed.stderr


def test_generation_benchmark_quick_run(tmp_path):
    # Checks that the harness works: every point is recorded with finite, positive rates.
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "generation.py"), "--quick", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads((tmp_path / "generation.json").read_text())
    assert {point["implementation"] for point in result["points"]} == {"reformer_hf", "transformers"}
    for point in result["points"]:
        assert point["status"] == "ok", point
        assert math.isfinite(point["new_tokens_per_second"])
        assert point["new_tokens_per_second"] > 0
        assert point["prefill_seconds"] > 0


@pytest.fixture(scope="module")
def targets_output(tmp_path_factory):
    """Run ``benchmarks/targets.py --quick`` once and return its output folder."""
    pytest.importorskip("matplotlib", reason="the benchmark plots need matplotlib (extra 'benchmarks')")
    output_dir = tmp_path_factory.mktemp("targets")
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "targets.py"), "--quick", "--output-dir", str(output_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert completed.returncode == 0, completed.stderr
    return output_dir


def test_targets_quick_run_measures_every_phase(targets_output):
    report = json.loads((targets_output / "targets.json").read_text(encoding="utf-8"))
    assert report["quick"] is True
    phases = {point["phase"] for point in report["points"]}
    assert phases == {"length", "short", "bfloat16", "threads", "depth", "hashes", "huge"}
    failed = [(p["phase"], p["implementation"], p.get("message")) for p in report["points"] if p["status"] != "ok"]
    assert not failed, failed
    implementations = {p["implementation"] for p in report["points"] if p["phase"] == "length"}
    assert implementations == {"reformer_hf", "transformers", "reformer_pytorch", "full_attention"}
    tracked = [p for p in report["points"] if p.get("training_live_tensor_peak_bytes")]
    assert tracked and all(0 < p["training_live_tensor_peak_bytes"] < p["peak_rss_bytes"] for p in tracked)
    profiled = [p for p in report["points"] if p.get("training_profile")]
    assert profiled and all(p["training_profile"]["operations"] for p in profiled)
    assert {g["status"] for g in report["generation"]["points"]} == {"ok"}


def test_targets_page_lists_all_eight_targets(targets_output):
    page = (targets_output / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert "--quick: tiny sizes, not a measurement" in page
    target_lines = [line for line in page.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    assert {line[2] for line in target_lines} == set("12345678")
    assert not [line for line in target_lines if "not measured" in line]
    for name in ("targets_length.png", "targets_depth.png"):
        assert (targets_output / name).stat().st_size > 0


def test_targets_report_only_rewrites_the_page(targets_output, tmp_path):
    page = tmp_path / "page.md"
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "targets.py"), "--quick", "--report-only",
         "--output-dir", str(targets_output), "--page", str(page)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert page.read_text(encoding="utf-8") == (targets_output / "BENCHMARKS.md").read_text(encoding="utf-8")


def test_targets_report_only_without_results(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "targets.py"), "--report-only", "--output-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"{tmp_path / 'targets.json'} does not exist. Run without --report-only first."
