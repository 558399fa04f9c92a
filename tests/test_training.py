"""End-to-end pretraining with the real transformers Trainer on a real book."""

import math
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

import reformer_hf
from reformer_hf.training import PRESETS, axial_shape_for, build_config, pretrain, resolve_settings

BOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "crime_and_punishment.txt"

TINY_MODEL = {
    "hidden_size": 64,
    "num_attention_heads": 2,
    "attention_head_size": 32,
    "feed_forward_size": 128,
    "attention_layers": ["local", "lsh"],
    "lsh_chunk_length": 32,
    "local_chunk_length": 32,
    "sequence_length": 256,
    "per_device_batch_size": 4,
    "bf16": "false",
    "sample_length": 20,
}


@pytest.fixture
def book_excerpt(tmp_path):
    if not BOOK.exists():
        pytest.skip(f"{BOOK} is missing; it ships in the shared data folder beside the repository")
    # About 80 KB of the novel, past the Project Gutenberg header.
    path = tmp_path / "excerpt.txt"
    path.write_text(BOOK.read_text(encoding="utf-8")[20_000:100_000], encoding="utf-8")
    return path


def test_pretrain_evaluation_loss_falls(book_excerpt, tmp_path):
    settings = resolve_settings(
        "cpu-demo",
        {**TINY_MODEL, "max_steps": 60, "warmup_steps": 5, "learning_rate": 3e-3, "eval_steps": 30, "logging_steps": 10},
    )
    metrics = pretrain(settings, output_dir=str(tmp_path / "run"), data_files=[str(book_excerpt)])

    history = metrics["eval_history"]
    assert [step for step, _ in history] == [0, 30, 60]
    initial_bits, final_bits = history[0][1], metrics["eval_bits_per_byte"]
    assert initial_bits > 7.5  # near log2(259) before training
    assert final_bits < initial_bits - 3.0
    assert metrics["eval_bits_per_byte"] == pytest.approx(metrics["eval_loss"] / math.log(2), abs=1e-3)
    assert isinstance(metrics["sample"], str)
    assert len(metrics["sample"]) > 0


def test_pretrain_output_loads_with_auto_classes(book_excerpt, tmp_path):
    output_dir = tmp_path / "run"
    settings = resolve_settings("cpu-demo", {**TINY_MODEL, "max_steps": 4, "eval_steps": 4, "save_steps": 2})
    pretrain(settings, output_dir=str(output_dir), data_files=[str(book_excerpt)])

    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert isinstance(model, reformer_hf.ReformerForCausalLM)
    assert isinstance(tokenizer, reformer_hf.ReformerByteTokenizer)
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    assert (output_dir / "model.safetensors").exists()
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    card = (output_dir / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card
    assert "  - excerpt.txt" in card
    assert "type: eval_bits_per_byte" in card
    assert "4 steps of 4 sequence(s)" in card

    prompt = tokenizer(["The room was"], return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert generated.shape == (1, prompt["input_ids"].shape[1] + 8)
    assert tokenizer.decode(generated[0]).startswith("The room was")


def test_pretrain_default_corpus_is_stdlib(tmp_path):
    settings = resolve_settings(
        "cpu-demo", {**TINY_MODEL, "max_steps": 2, "eval_steps": 2, "max_corpus_bytes": 200_000}
    )
    metrics = pretrain(settings, output_dir=str(tmp_path / "run"))
    assert math.isfinite(metrics["eval_bits_per_byte"])


def test_pretrain_is_reproducible(book_excerpt, tmp_path):
    overrides = {**TINY_MODEL, "max_steps": 3, "eval_steps": 3, "hidden_dropout_prob": 0.1}
    first = pretrain(resolve_settings("cpu-demo", overrides), str(tmp_path / "a"), data_files=[str(book_excerpt)])
    second = pretrain(resolve_settings("cpu-demo", overrides), str(tmp_path / "b"), data_files=[str(book_excerpt)])
    assert first["eval_loss"] == second["eval_loss"]
    assert first["train_loss"] == second["train_loss"]


def test_resolve_settings_unknown_preset():
    with pytest.raises(ValueError, match=r"Unknown preset 'gpu-huge'\. Choose one of cpu-demo, enwik8\."):
        resolve_settings("gpu-huge", {})


def test_resolve_settings_unknown_setting():
    with pytest.raises(ValueError, match=r"Unknown settings \['hidden_sise'\]"):
        resolve_settings("cpu-demo", {"hidden_sise": 3})


def test_presets_build_valid_configs():
    for name in PRESETS:
        config = build_config(resolve_settings(name, {}))
        assert config.max_position_embeddings >= resolve_settings(name, {}).sequence_length


def test_enwik8_preset_matches_paper_scale():
    settings = resolve_settings("enwik8", {})
    config = build_config(settings)
    assert config.num_hidden_layers == 12
    assert settings.sequence_length == 65536
    assert config.max_position_embeddings == 65536


def test_axial_shape_covers_any_length():
    for length in (1, 100, 4096, 5000, 65536):
        rows, columns = axial_shape_for(length)
        assert rows * columns >= length


def test_build_config_rejects_short_axial_shape():
    settings = resolve_settings("cpu-demo", {"sequence_length": 8192, "axial_pos_shape": [64, 64]})
    with pytest.raises(ValueError, match=r"holds 4096 positions, fewer than sequence_length = 8192"):
        build_config(settings)


def test_pretrain_rejects_bad_bf16_setting(book_excerpt, tmp_path):
    settings = resolve_settings("cpu-demo", {**TINY_MODEL, "bf16": "maybe"})
    with pytest.raises(ValueError, match=r"bf16 must be 'auto', 'true' or 'false', got 'maybe'\."):
        pretrain(settings, str(tmp_path / "run"), data_files=[str(book_excerpt)])
    assert not (tmp_path / "run").exists()
