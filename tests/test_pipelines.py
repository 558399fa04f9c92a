"""transformers pipelines on saved reformer_hf models and their tokenizers."""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, pipeline

import reformer_hf
from reformer_hf import ReformerByteTokenizer, ReformerConfig


def small_config(**overrides) -> ReformerConfig:
    settings = dict(
        hidden_size=32, num_attention_heads=2, attention_head_size=16, feed_forward_size=48,
        attention_layers=["local", "lsh"], lsh_chunk_length=8, local_chunk_length=8, num_buckets=4,
        axial_pos_shape=[16, 16], axial_pos_embds_dim=[16, 16], hash_seed=0, hidden_dropout_prob=0.0,
    )
    settings.update(overrides)
    return ReformerConfig(**settings)


def saved(model, tokenizer, directory):
    torch.manual_seed(0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def test_text_generation(tmp_path):
    model = reformer_hf.ReformerForCausalLM(small_config())
    generator = pipeline("text-generation", model=saved(model, ReformerByteTokenizer(model_max_length=256), tmp_path))
    output = generator("Hello", max_new_tokens=6, do_sample=False)
    expected = model.eval().generate(torch.tensor([[ord(c) + 3 for c in "Hello"]]), max_new_tokens=6, do_sample=False)
    assert output[0]["generated_text"] == ReformerByteTokenizer().decode(expected[0])


def test_text_classification(tmp_path):
    model = reformer_hf.ReformerForSequenceClassification(small_config(num_labels=3)).eval()
    classify = pipeline("text-classification", model=saved(model, ReformerByteTokenizer(model_max_length=256), tmp_path))
    result = classify("A long document.", top_k=None)
    with torch.no_grad():
        probabilities = model(torch.tensor([[b + 3 for b in "A long document.".encode()]])).logits.softmax(-1)[0]
    assert {entry["label"]: round(entry["score"], 5) for entry in result} == {
        f"LABEL_{index}": round(value, 5) for index, value in enumerate(probabilities.tolist())
    }


def test_token_classification(tmp_path):
    model = reformer_hf.ReformerForTokenClassification(small_config(num_labels=3)).eval()
    tag = pipeline("token-classification", model=saved(model, ReformerByteTokenizer(model_max_length=256), tmp_path),
                   ignore_labels=[])
    result = tag("Tag me")
    with torch.no_grad():
        predicted = model(torch.tensor([[b + 3 for b in b"Tag me"]])).logits.argmax(-1)[0].tolist()
    assert [entry["word"] for entry in result] == list("Tag me")
    assert [entry["entity"] for entry in result] == [f"LABEL_{index}" for index in predicted]


def test_fill_mask(tmp_path):
    tokenizer = ReformerByteTokenizer(model_max_length=256, split_special_tokens=False)
    tokenizer.add_special_tokens({"mask_token": "<mask>"})
    model = reformer_hf.ReformerForMaskedLM(small_config())
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    assert model.config.vocab_size == 260
    fill = pipeline("fill-mask", model=saved(model, tokenizer, tmp_path))
    result = fill("Hel<mask>o", top_k=3)
    model.eval()
    with torch.no_grad():
        ids = tokenizer("Hel<mask>o", return_tensors="pt")["input_ids"]
        assert ids[0, 3].item() == tokenizer.mask_token_id == 259
        best = model(ids).logits[0, 3].softmax(-1).topk(3)
    assert [entry["token"] for entry in result] == best.indices.tolist()


def test_question_answering_picks_the_best_span(tmp_path):
    model = reformer_hf.ReformerForQuestionAnswering(small_config()).eval()
    answer = pipeline("question-answering", model=saved(model, ReformerByteTokenizer(model_max_length=256), tmp_path))
    assert isinstance(answer, reformer_hf.ExtractiveQuestionAnsweringPipeline)
    question, context = "Who?", "Anna went home early, tired."
    result = answer(question=question, context=context, max_answer_len=5)
    # Brute force over the model's own logits: question bytes, </s>, then one id per context byte.
    ids = torch.tensor([[b + 3 for b in question.encode()] + [2] + [b + 3 for b in context.encode()]])
    with torch.no_grad():
        output = model(ids)
    first_context = len(question) + 1
    start = output.start_logits[0, first_context:].softmax(-1)
    end = output.end_logits[0, first_context:].softmax(-1)
    candidates = [(start[i] * end[j], i, j) for i in range(len(context)) for j in range(i, min(i + 5, len(context)))]
    score, i, j = max(candidates)
    assert (result["start"], result["end"], result["answer"]) == (i, j + 1, context[i:j + 1])
    assert result["score"] == pytest.approx(score.item(), rel=1e-5)
    assert len(answer(question=question, context=context, top_k=3)) == 3
    assert len(answer([{"question": question, "context": context}] * 2)) == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"question": "Who?"}, "Pass both question= and context=."),
    ({"question": "Who?", "context": ["a", "b"]}, "question and context must both be strings or both be lists"),
    ({"question": "Who?", "context": "Anna.", "top_k": 0}, "top_k must be a positive int, got 0."),
    ({"question": "", "context": "Anna."}, "question and context must be non-empty strings."),
])
def test_question_answering_bad_inputs(tmp_path, kwargs, message):
    model = reformer_hf.ReformerForQuestionAnswering(small_config())
    answer = pipeline("question-answering", model=saved(model, ReformerByteTokenizer(model_max_length=256), tmp_path))
    with pytest.raises(ValueError, match=message.replace("?", r"\?").replace(".", r"\.")):
        answer(**kwargs)


BOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "mobydick.txt"


@pytest.fixture(scope="module")
def sentencepiece_folder(tmp_path_factory):
    if not BOOK.is_file():
        pytest.skip(f"{BOOK} is missing: the shared data folder is not beside the repository")
    corpus = tmp_path_factory.mktemp("corpus") / "start.txt"
    corpus.write_bytes(BOOK.read_bytes()[:150_000])
    folder = tmp_path_factory.mktemp("tokenizer")
    reformer_hf.train_sentencepiece_tokenizer([corpus], 400, folder, model_max_length=256, num_threads=1)
    return folder


def test_fast_tokenizer_fill_mask_and_question_answering(sentencepiece_folder, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(sentencepiece_folder)
    assert tokenizer.is_fast and tokenizer.mask_token_id is not None

    masked = reformer_hf.ReformerForMaskedLM(small_config(vocab_size=len(tokenizer))).eval()
    fill = pipeline("fill-mask", model=saved(masked, tokenizer, tmp_path / "mlm"))
    result = fill(f"Call me {tokenizer.mask_token}.", top_k=2)
    assert len(result) == 2 and all(0 <= entry["token"] < len(tokenizer) for entry in result)

    qa_model = reformer_hf.ReformerForQuestionAnswering(small_config(vocab_size=len(tokenizer))).eval()
    answer = pipeline("question-answering", model=saved(qa_model, tokenizer, tmp_path / "qa"))
    context = "Call me Ishmael. Some years ago I went to sea."
    result = answer(question="Who am I?", context=context, max_answer_len=4)
    # The answer must be a slice of the context that starts and ends at token offsets.
    assert result["answer"]
    assert context[result["start"]:result["end"]] == result["answer"]
    encoding = tokenizer("Who am I?", context, return_offsets_mapping=True)
    context_spans = [tuple(span) for span, sequence in zip(encoding["offset_mapping"], encoding.sequence_ids())
                     if sequence == 1]
    assert result["start"] in {start for start, _ in context_spans}
    assert result["end"] in {end for _, end in context_spans}
