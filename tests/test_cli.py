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


TOKENIZER_CORPUS = (
    "It was a hot evening early in July. A young man came out of the garret in which he lodged and walked "
    "slowly, as though in hesitation, towards the bridge. He had successfully avoided meeting his landlady "
    "on the staircase.\n"
)


@pytest.fixture
def tokenizer_corpus(tmp_path):
    path = tmp_path / "tokenizer_corpus.txt"
    path.write_text(TOKENIZER_CORPUS * 100, encoding="utf-8")
    return path


def test_cli_train_tokenizer_in_process(tokenizer_corpus, tmp_path, capsys):
    from transformers import AutoTokenizer

    output_dir = tmp_path / "tokenizer"
    code = main(["train-tokenizer", "--data-files", str(tokenizer_corpus), "--vocab-size", "300",
                 "--output-dir", str(output_dir), "--model-type", "bpe", "--model-max-length", "4096",
                 "--add-cls-and-sep"])
    printed = capsys.readouterr().out
    assert code == 0
    assert f"Saved a bpe tokenizer with 300 ids to {output_dir}" in printed
    assert ("Special token ids: pad=0 <pad>, bos=1 <s>, eos=2 </s>, unk=3 <unk>, cls=4 <cls>, sep=5 <sep>, "
            "mask=6 <mask>") in printed
    assert "vocab_size=300 and max_position_embeddings=4096" in printed

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.is_fast
    assert len(tokenizer) == 300
    assert tokenizer.model_max_length == 4096
    text = "A young man came out of the garret."
    input_ids = tokenizer(text)["input_ids"]
    assert input_ids[0] == tokenizer.cls_token_id == 4
    assert input_ids[-1] == tokenizer.sep_token_id == 5
    assert tokenizer.decode(input_ids, skip_special_tokens=True) == text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--vocab-size", "100"], "vocab_size=100 is too small: the 7 special tokens, 256 byte pieces"),
        (["--vocab-size", "5000"], "vocab_size=5000 is too large for this corpus: unigram training finds at most"),
        (["--vocab-size", "300", "--character-coverage", "2"], "character_coverage must be in (0, 1], got 2.0."),
    ],
)
def test_cli_train_tokenizer_invalid_input_exits_2(tokenizer_corpus, tmp_path, capsys, options, message):
    code = main(["train-tokenizer", "--data-files", str(tokenizer_corpus), "--output-dir", str(tmp_path / "out"),
                 *options])
    assert code == 2
    assert f"reformer-hf train-tokenizer: error: {message}" in capsys.readouterr().err


def test_cli_train_tokenizer_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    code = main(["train-tokenizer", "--data-files", str(missing), "--vocab-size", "300",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    expected = f"reformer-hf train-tokenizer: error: Training file not found: {str(missing)!r}. Check the path.\n"
    assert capsys.readouterr().err == expected


def test_cli_tokenizer_model_type_usage_error(tokenizer_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train-tokenizer", "--data-files", str(tokenizer_corpus), "--vocab-size", "300",
              "--output-dir", str(tmp_path / "out"), "--model-type", "wordpiece"])
    assert exit_info.value.code == 2
    assert "reformer-hf train-tokenizer: error: argument --model-type: invalid choice: 'wordpiece'" in (
        capsys.readouterr().err
    )


def test_console_script_train_tokenizer(tokenizer_corpus, tmp_path):
    import os

    script = shutil.which("reformer-hf")
    command = [script] if script else [sys.executable, "-m", "reformer_hf.cli"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    output_dir = tmp_path / "tokenizer"
    result = subprocess.run(
        [*command, "train-tokenizer", "--data-files", str(tokenizer_corpus), "--vocab-size", "300",
         "--output-dir", str(output_dir), "--model-type", "bpe"],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "Special token ids: pad=0 <pad>" in result.stdout
    assert (output_dir / "tokenizer.json").is_file()

    failed = subprocess.run(
        [*command, "train-tokenizer", "--data-files", str(tmp_path / "nope.txt"), "--vocab-size", "300",
         "--output-dir", str(output_dir)],
        capture_output=True, text=True, timeout=120, env=environment,
    )
    assert failed.returncode == 2
    assert "reformer-hf train-tokenizer: error: Training file not found:" in failed.stderr


def test_cli_bench_forwards_arguments(tmp_path, capfd):
    # --steps 0 reaches benchmarks/speed.py, which rejects it before measuring anything.
    code = main(["bench", "--steps", "0", "--output-dir", str(tmp_path)])
    assert code == 2
    assert "--steps must be at least 1" in capfd.readouterr().err


def test_cli_bench_missing_script_exits_2(tmp_path, monkeypatch, capsys):
    import reformer_hf.cli

    monkeypatch.setattr(reformer_hf.cli, "SPEED_BENCHMARK", tmp_path / "speed.py")
    assert main(["bench", "--quick"]) == 2
    assert "not found" in capsys.readouterr().err
