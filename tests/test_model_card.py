"""Model cards written by ``save_pretrained``."""

from pathlib import Path

import pytest
import yaml

import reformer_hf
from reformer_hf.model_card import GENERATED_MARKER, render_model_card

HEADS = {
    "ReformerForCausalLM": "text-generation",
    "ReformerForMaskedLM": "fill-mask",
    "ReformerForSequenceClassification": "text-classification",
    "ReformerForTokenClassification": "token-classification",
    "ReformerForQuestionAnswering": "question-answering",
    "ReformerModel": "feature-extraction",
}


def metadata(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.parametrize("head", list(HEADS))
def test_save_pretrained_writes_a_card_with_hub_metadata(tiny_config, tmp_path, head):
    model = getattr(reformer_hf, head)(tiny_config())
    model.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    fields = metadata(card)
    assert fields["library_name"] == "transformers"
    assert fields["pipeline_tag"] == HEADS[head]
    assert {"reformer", "reformer_hf"} <= set(fields["tags"])
    assert fields["license"] == "apache-2.0"
    for section in ("## Configuration", "## Training data", "## Intended use", "## Known limitations"):
        assert section in card
    assert f"{model.config.max_position_embeddings:,} positions" in card


def test_card_reports_run_information(tiny_config):
    model = reformer_hf.ReformerForCausalLM(tiny_config())
    model.model_card_info = {"datasets": ["my-corpus"], "metrics": {"eval_bits_per_byte": 2.8812},
                             "training_data": "A corpus.", "license": "mit", "limitations": ["Byte level only."]}
    card = render_model_card(model)
    fields = metadata(card)
    assert fields["datasets"] == ["my-corpus"]
    assert fields["license"] == "mit"
    result = fields["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "eval_bits_per_byte", "value": 2.881, "name": "eval_bits_per_byte"}
    assert "A corpus." in card
    assert "- Byte level only." in card


def test_save_pretrained_keeps_foreign_card(tiny_config, tmp_path):
    model = reformer_hf.ReformerForCausalLM(tiny_config())
    (tmp_path / "README.md").write_text("# My own card\n")
    model.save_pretrained(tmp_path)
    assert (tmp_path / "README.md").read_text() == "# My own card\n"
    # A generated card is refreshed on the next save.
    (tmp_path / "README.md").write_text(GENERATED_MARKER + "\nold\n")
    model.save_pretrained(tmp_path)
    assert "## Configuration" in (tmp_path / "README.md").read_text()


def test_template_in_model_cards_folder_matches_the_renderer():
    template = (Path(__file__).parent.parent / "model_cards" / "TEMPLATE.md").read_text()
    rendered = render_model_card(reformer_hf.ReformerForCausalLM(reformer_hf.ReformerConfig()))
    assert template.split("-->\n", 1)[1] == rendered
