"""The reformer-hf command line, called in-process and as an installed console script."""

import json
import shutil
import subprocess
import sys

import pytest

from reformer_hf.cli import build_parser, main

TINY = [
    "--hidden-size", "32", "--num-attention-heads", "2", "--attention-head-size", "16",
    "--feed-forward-size", "64", "--attention-layers", "local,lsh", "--lsh-chunk-length", "16",
    "--local-chunk-length", "16", "--sequence-length", "128", "--bf16", "false", "--sample-length", "10",
]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("It was a hot evening early in July. " * 400, encoding="utf-8")
    return path


def test_cli_pretrain_runs_and_reports(text_file, tmp_path, capsys):
    output_dir = tmp_path / "out"
    code = main(["pretrain", "--data-files", str(text_file), "--output-dir", str(output_dir), *TINY,
                 "--max-steps", "6", "--eval-steps", "3", "--learning-rate", "3e-3"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Held-out bits per byte:" in printed
    assert "Generated sample:" in printed
    assert (output_dir / "config.json").exists()
    assert json.loads((output_dir / "config.json").read_text())["model_type"] == "reformer_hf"


def test_cli_overrides_reach_settings():
    args = build_parser().parse_args(["pretrain", "--attention-layers", "lsh,local,full", "--num-buckets", "8,8",
                                      "--reversible", "false", "--axial-pos-shape", "auto"])
    assert args.attention_layers == ["lsh", "local", "full"]
    assert args.num_buckets == [8, 8]
    assert args.reversible is False
    assert args.axial_pos_shape == []


def test_cli_missing_data_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    code = main(["pretrain", "--data-files", str(missing), "--output-dir", str(tmp_path / "out"), *TINY])
    assert code == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_invalid_config_exits_2(text_file, tmp_path, capsys):
    code = main(["pretrain", "--data-files", str(text_file), "--output-dir", str(tmp_path / "out"), *TINY,
                 "--num-buckets", "7"])
    assert code == 2
    assert "num_buckets must be an even int" in capsys.readouterr().err


def test_cli_bad_list_value_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["pretrain", "--axial-pos-shape", "64,x"])
    assert exit_info.value.code == 2
    assert "invalid list '64,x'" in capsys.readouterr().err


def test_cli_data_options_are_exclusive(text_file, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["pretrain", "--data-files", str(text_file), "--dataset", "some/name"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_console_script_help():
    script = shutil.which("reformer-hf")
    command = [script] if script else [sys.executable, "-m", "reformer_hf.cli"]
    result = subprocess.run([*command, "pretrain", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "--data-files" in result.stdout
    assert "--sequence-length" in result.stdout


def test_cli_pretrain_on_saved_dataset(tmp_path, capsys):
    from datasets import Dataset

    dataset_dir = tmp_path / "saved"
    Dataset.from_dict({"body": ["Rodion Romanovitch went out. " * 60, "He walked on the bridge. " * 60]}).save_to_disk(
        str(dataset_dir)
    )
    code = main(["pretrain", "--dataset", str(dataset_dir), "--text-column", "body",
                 "--output-dir", str(tmp_path / "out"), *TINY, "--max-steps", "2", "--eval-steps", "2"])
    assert code == 0
    assert "Held-out bits per byte:" in capsys.readouterr().out


def test_cli_pretrain_on_wikipedia_dump(tmp_path, capsys):
    from pathlib import Path

    dump = Path(__file__).resolve().parents[2] / "shared" / "data" / "enwiki-2016-articles-sample.xml.bz2"
    if not dump.exists():
        pytest.skip(f"{dump} is missing; it ships in the shared data folder beside the repository")
    code = main(["pretrain", "--data-files", str(dump), "--output-dir", str(tmp_path / "out"), *TINY,
                 "--max-steps", "2", "--eval-steps", "2", "--max-eval-sequences", "4"])
    assert code == 0
    assert "Held-out bits per byte:" in capsys.readouterr().out


def test_every_setting_has_help():
    import dataclasses

    from reformer_hf.cli import SETTING_HELP
    from reformer_hf.training import PretrainSettings

    assert sorted(SETTING_HELP) == sorted(field.name for field in dataclasses.fields(PretrainSettings))
