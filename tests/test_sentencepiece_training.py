"""SentencePiece tokenizer training: the saved fast tokenizer, its ids, and a model that runs on them."""

import json
import re
from pathlib import Path

import pytest
import sentencepiece as spm
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast, pipeline

from reformer_hf import ReformerConfig, ReformerForCausalLM, ReformerForSequenceClassification
from reformer_hf.sentencepiece_training import (
    DEFAULT_MODEL_MAX_LENGTH,
    SENTENCEPIECE_MODEL_FILE,
    SPECIAL_TOKENS,
    _split_long_line,
    train_sentencepiece_tokenizer,
)

BOOK = Path(__file__).resolve().parents[2] / "shared" / "data" / "mobydick.txt"
TRAINING_CHARACTERS = 200_000
VOCAB_SIZE = 500
EXPECTED_SPECIAL_IDS = {
    "pad_token": 0, "bos_token": 1, "eos_token": 2, "unk_token": 3, "cls_token": 4, "sep_token": 5, "mask_token": 6,
}
# Texts outside the training slice: whitespace runs, characters the book lacks, and punctuation
# that transformers' decoding clean-up would change.
EDGE_TEXTS = [
    "  two leading spaces and two trailing  ",
    "double  space, tab\there, and a line break\nhere",
    "windows line end\r\nnext line",
    "hello , world . it 's n't",
    "Crème brûlée — Zoë, 東京, Привет, 😀👍🏽",
    "12345 67890 %^&*{}|~",
]
# SentencePiece matches user-defined symbols such as <mask> anywhere in the text, as transformers
# matches special tokens.
MASK_TEXT = "a<mask>b and a <mask> b"


@pytest.fixture(scope="module")
def book_text() -> str:
    if not BOOK.exists():
        pytest.skip(f"{BOOK} is missing; it ships in the shared data folder beside the repository")
    return BOOK.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def corpus_file(book_text, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "mobydick_start.txt"
    path.write_text(book_text[:TRAINING_CHARACTERS], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def held_out_paragraphs(book_text) -> list[str]:
    """Paragraphs from a part of the book that the tokenizers were not trained on."""
    later_text = book_text[600_000:700_000]
    return [paragraph for paragraph in later_text.split("\n\n") if paragraph.strip()]


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def trained_dir(request, corpus_file, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp(f"tokenizer_{request.param}")
    train_sentencepiece_tokenizer([corpus_file], VOCAB_SIZE, output_dir, model_type=request.param)
    return output_dir


@pytest.fixture(scope="module")
def unigram_dir(corpus_file, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("tokenizer_unigram_for_models")
    train_sentencepiece_tokenizer(corpus_file, VOCAB_SIZE, output_dir)
    return output_dir


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def load_processor(tokenizer_dir: Path) -> spm.SentencePieceProcessor:
    return spm.SentencePieceProcessor(model_file=str(tokenizer_dir / SENTENCEPIECE_MODEL_FILE))


def test_auto_tokenizer_loads_fast_tokenizer(trained_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert tokenizer.is_fast
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.vocab_size == VOCAB_SIZE
    assert sorted(tokenizer.get_vocab().values()) == list(range(VOCAB_SIZE))
    assert (trained_dir / "tokenizer.json").is_file()
    assert (trained_dir / SENTENCEPIECE_MODEL_FILE).is_file()


def test_special_token_ids(trained_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    ids = {}
    for name, token in SPECIAL_TOKENS.items():
        assert getattr(tokenizer, name) == token
        ids[name] = getattr(tokenizer, name + "_id")
        assert ids[name] < VOCAB_SIZE
    assert ids == EXPECTED_SPECIAL_IDS
    assert len(set(ids.values())) == len(ids)
    assert sorted(tokenizer.all_special_ids) == sorted(ids.values())


def test_special_ids_match_config_defaults(trained_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    config = ReformerConfig()
    assert tokenizer.pad_token_id == config.pad_token_id
    assert tokenizer.bos_token_id == config.bos_token_id
    assert tokenizer.eos_token_id == config.eos_token_id


def test_special_ids_match_sentencepiece(trained_dir):
    processor = load_processor(trained_dir)
    assert processor.get_piece_size() == VOCAB_SIZE
    assert (processor.pad_id(), processor.bos_id(), processor.eos_id(), processor.unk_id()) == (0, 1, 2, 3)
    for name in ("cls_token", "sep_token", "mask_token"):
        assert processor.piece_to_id(SPECIAL_TOKENS[name]) == EXPECTED_SPECIAL_IDS[name]


def test_whitespace_characters_have_pieces(trained_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    for character in "\n\t\r":
        assert tokenizer(character, add_special_tokens=False)["input_ids"] == [tokenizer.convert_tokens_to_ids(character)]


def test_ids_match_sentencepiece(trained_dir, held_out_paragraphs):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    processor = load_processor(trained_dir)
    for text in held_out_paragraphs + EDGE_TEXTS + [MASK_TEXT]:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == processor.encode(text), text


def test_ids_match_sentencepiece_on_long_text(trained_dir, book_text):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    processor = load_processor(trained_dir)
    text = book_text[700_000:760_000]
    input_ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    assert input_ids == processor.encode(text)
    assert tokenizer.decode(input_ids) == text


def test_round_trip_book_text(trained_dir, held_out_paragraphs):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    processor = load_processor(trained_dir)
    for text in held_out_paragraphs + EDGE_TEXTS:
        input_ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(input_ids, skip_special_tokens=True) == text
        plain_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(plain_ids) == text
        assert processor.decode(plain_ids) == text


def test_unseen_characters_become_bytes(trained_dir):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    tokens = tokenizer.tokenize("東")
    # "東" is U+6771, UTF-8 bytes E6 9D B1.
    assert tokens == ["<0xE6>", "<0x9D>", "<0xB1>"]
    assert tokenizer.unk_token_id not in tokenizer("東京 😀", add_special_tokens=False)["input_ids"]


def test_encoding_is_deterministic(trained_dir, held_out_paragraphs):
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    reloaded = AutoTokenizer.from_pretrained(trained_dir)
    first = tokenizer(held_out_paragraphs)["input_ids"]
    assert tokenizer(held_out_paragraphs)["input_ids"] == first
    assert reloaded(held_out_paragraphs)["input_ids"] == first


def test_training_is_reproducible(corpus_file, unigram_dir, tmp_path):
    train_sentencepiece_tokenizer(corpus_file, VOCAB_SIZE, tmp_path)
    assert (tmp_path / SENTENCEPIECE_MODEL_FILE).read_bytes() == (unigram_dir / SENTENCEPIECE_MODEL_FILE).read_bytes()
    assert (tmp_path / "tokenizer.json").read_text(encoding="utf-8") == (
        unigram_dir / "tokenizer.json"
    ).read_text(encoding="utf-8")


def test_seed_selects_sample(corpus_file, tmp_path):
    vocabularies = {}
    for name, seed in (("seed_0", 0), ("seed_0_again", 0), ("seed_1", 1)):
        train_sentencepiece_tokenizer(corpus_file, 400, tmp_path / name, model_type="bpe",
                                      input_sentence_size=1_000, seed=seed)
        vocabularies[name] = AutoTokenizer.from_pretrained(tmp_path / name).get_vocab()
    assert vocabularies["seed_0"] == vocabularies["seed_0_again"]
    assert vocabularies["seed_0"] != vocabularies["seed_1"]


def test_model_max_length_default(unigram_dir):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    assert DEFAULT_MODEL_MAX_LENGTH == ReformerConfig().max_position_embeddings
    assert tokenizer.model_max_length == DEFAULT_MODEL_MAX_LENGTH
    saved_config = json.loads((unigram_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved_config["model_max_length"] == DEFAULT_MODEL_MAX_LENGTH


def test_single_text_has_no_special_tokens(unigram_dir):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    plain_ids = tokenizer("Call me Ishmael.", add_special_tokens=False)["input_ids"]
    single = tokenizer("Call me Ishmael.", return_special_tokens_mask=True)
    assert single["input_ids"] == plain_ids
    assert single["special_tokens_mask"] == [0] * len(plain_ids)
    assert "token_type_ids" not in single
    assert tokenizer.num_special_tokens_to_add(pair=False) == 0


def test_pair_has_cls_and_sep(unigram_dir):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    cls_id, sep_id = EXPECTED_SPECIAL_IDS["cls_token"], EXPECTED_SPECIAL_IDS["sep_token"]
    first = tokenizer("Call me Ishmael.", add_special_tokens=False)["input_ids"]
    second = tokenizer("Some years ago", add_special_tokens=False)["input_ids"]

    pair = tokenizer("Call me Ishmael.", "Some years ago", return_special_tokens_mask=True)
    assert pair["input_ids"] == [cls_id] + first + [sep_id] + second + [sep_id]
    assert pair["special_tokens_mask"] == [1] + [0] * len(first) + [1] + [0] * len(second) + [1]
    assert "token_type_ids" not in pair
    assert tokenizer.num_special_tokens_to_add(pair=True) == 3


def test_add_cls_and_sep_with_max_length(corpus_file, tmp_path):
    train_sentencepiece_tokenizer(corpus_file, VOCAB_SIZE, tmp_path, model_type="bpe", model_max_length=64,
                                  add_cls_and_sep=True)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.model_max_length == 64
    cls_id, sep_id = EXPECTED_SPECIAL_IDS["cls_token"], EXPECTED_SPECIAL_IDS["sep_token"]
    plain_ids = tokenizer("Call me Ishmael.", add_special_tokens=False)["input_ids"]
    assert tokenizer("Call me Ishmael.")["input_ids"] == [cls_id] + plain_ids + [sep_id]

    input_ids = tokenizer("Call me Ishmael. " * 40, truncation=True)["input_ids"]
    assert len(input_ids) == 64
    assert input_ids[0] == cls_id
    assert input_ids[-1] == sep_id


def test_mask_token_in_text(unigram_dir):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    input_ids = tokenizer("The <mask> whale", add_special_tokens=False)["input_ids"]
    assert input_ids.count(EXPECTED_SPECIAL_IDS["mask_token"]) == 1
    assert tokenizer.decode(input_ids) == "The <mask> whale"
    assert tokenizer.decode(input_ids, skip_special_tokens=True) == "The  whale"


def test_markup_text_matches_sentencepiece(corpus_file, tmp_path):
    # A second file gives "<", "/", ">" and "x" pieces of their own, so the strings of the special
    # tokens and byte pieces can be spelled with text pieces.
    markup = write_text(tmp_path / "markup.txt", "<p>a <b>bold</b> word, 0x41 and 0xFF</p>\n" * 200)
    train_sentencepiece_tokenizer([corpus_file, markup], VOCAB_SIZE, tmp_path / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    processor = load_processor(tmp_path / "tokenizer")
    text = "literal </s> <pad> <unk> and <0x41> <0xFF> in text"

    input_ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert input_ids == processor.encode(text)
    assert tokenizer.decode(input_ids) == text
    assert tokenizer(text, add_special_tokens=False)["input_ids"].count(EXPECTED_SPECIAL_IDS["eos_token"]) == 1


def test_without_byte_fallback(corpus_file, tmp_path, held_out_paragraphs):
    train_sentencepiece_tokenizer(corpus_file, 300, tmp_path, byte_fallback=False)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    processor = load_processor(tmp_path)
    assert len(tokenizer) == 300
    assert "<0x41>" not in tokenizer.get_vocab()
    assert tokenizer("東", add_special_tokens=False)["input_ids"] == [EXPECTED_SPECIAL_IDS["unk_token"]]
    for text in held_out_paragraphs + EDGE_TEXTS + [MASK_TEXT]:
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == processor.encode(text), text


def test_long_line_without_breaks(book_text, tmp_path):
    # One 100,000-character line: SentencePiece would skip it whole, so it must be split first.
    corpus = tmp_path / "one_line.txt"
    corpus.write_text(book_text[:100_000].replace("\n", " "), encoding="utf-8")
    train_sentencepiece_tokenizer(corpus, 1_000, tmp_path / "tokenizer", model_type="bpe")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    text = "Call me Ishmael. Some years ago, never mind how long precisely"
    input_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert "▁the" in tokenizer.get_vocab()
    assert len(input_ids) < len(text) / 2
    assert tokenizer.decode(input_ids) == text


@pytest.mark.parametrize("line", ["word " * 2_000, "é" * 5_000, "a" * 4_192, "ab " + "é" * 4_000])
def test_split_long_line(line):
    parts = list(_split_long_line(line, 4_192))
    assert "".join(parts) == line
    for part in parts:
        assert 0 < len(part.encode("utf-8")) <= 4_192


def test_causal_lm_runs_on_tokenizer_output(unigram_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    model = ReformerForCausalLM(tiny_config(vocab_size=len(tokenizer))).eval()
    batch = tokenizer(["Call me Ishmael.", "Some years ago, never mind how long"], padding=True,
                      add_special_tokens=False, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)

    outputs = model(**batch, labels=labels)
    assert outputs.logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(outputs.loss)


def test_auto_tokenizer_from_model_dir(unigram_dir, tiny_config, tmp_path):
    # The model's config.json names the reformer_hf model type, whose registered tokenizer is
    # ReformerByteTokenizer. The tokenizer_class saved in tokenizer_config.json must win.
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    ReformerForCausalLM(tiny_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.is_fast
    assert len(loaded) == VOCAB_SIZE
    assert loaded("Call me Ishmael.")["input_ids"] == tokenizer("Call me Ishmael.")["input_ids"]


def test_text_generation_prompt_keeps_its_ids(unigram_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    model = ReformerForCausalLM(tiny_config(vocab_size=len(tokenizer))).eval()
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    prompt_ids = tokenizer("Call me", add_special_tokens=False)["input_ids"]

    outputs = generator("Call me", max_new_tokens=3, do_sample=False, return_tensors=True)
    generated_ids = list(outputs[0]["generated_token_ids"])
    assert generated_ids[: len(prompt_ids)] == prompt_ids
    assert len(generated_ids) == len(prompt_ids) + 3


def test_resize_for_added_token(unigram_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    model = ReformerForCausalLM(tiny_config(vocab_size=len(tokenizer))).eval()
    assert tokenizer.add_special_tokens({"additional_special_tokens": ["<new>"]}) == 1
    new_id = tokenizer.convert_tokens_to_ids("<new>")
    assert new_id == VOCAB_SIZE

    model.resize_token_embeddings(len(tokenizer))
    assert model.config.vocab_size == VOCAB_SIZE + 1
    assert model.get_input_embeddings().weight.shape == (VOCAB_SIZE + 1, model.config.hidden_size)
    assert model.get_output_embeddings().weight.shape == (VOCAB_SIZE + 1, 2 * model.config.hidden_size)
    assert model.get_output_embeddings().bias.shape == (VOCAB_SIZE + 1,)

    batch = tokenizer("Call me <new> Ishmael.", add_special_tokens=False, return_tensors="pt")
    assert new_id in batch["input_ids"][0].tolist()
    outputs = model(**batch, labels=batch["input_ids"])
    assert outputs.logits.shape[-1] == VOCAB_SIZE + 1
    assert torch.isfinite(outputs.logits).all()
    assert torch.isfinite(outputs.loss)


def test_id_outside_vocabulary_raises(unigram_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    model = ReformerForCausalLM(tiny_config(vocab_size=len(tokenizer))).eval()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<new>"]})
    batch = tokenizer("Call me <new> Ishmael.", add_special_tokens=False, return_tensors="pt")
    message = (
        f"input_ids contains id {VOCAB_SIZE}, outside the vocabulary [0, {VOCAB_SIZE}). "
        f"Check that the tokenizer matches this model's vocab_size."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        model(**batch)


def test_classification_head_on_pairs(unigram_dir, tiny_config):
    tokenizer = AutoTokenizer.from_pretrained(unigram_dir)
    config = tiny_config(vocab_size=len(tokenizer), is_decoder=False, num_labels=2,
                         lsh_num_chunks_after=1, local_num_chunks_after=1)
    model = ReformerForSequenceClassification(config).eval()
    batch = tokenizer(["Who is the captain?", "What is hunted?"], ["Ahab is the captain.", "The whale."],
                      padding=True, return_tensors="pt")
    assert (batch["input_ids"][:, 0] == EXPECTED_SPECIAL_IDS["cls_token"]).all()

    outputs = model(**batch, labels=torch.tensor([0, 1]))
    assert outputs.logits.shape == (2, 2)
    assert torch.isfinite(outputs.loss)


def test_missing_file_raises(tmp_path):
    missing = tmp_path / "nope.txt"
    message = f"Training file not found: {str(missing)!r}. Check the path."
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        train_sentencepiece_tokenizer([missing], VOCAB_SIZE, tmp_path / "out")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"vocab_size": 100}, "vocab_size=100 is too small: the 7 special tokens, 256 byte pieces and 3 whitespace "
         "characters take 266 ids, and the corpus's characters need more. Pass a larger vocab_size, or "
         "byte_fallback=False to free 256 ids."),
        ({"vocab_size": 10, "byte_fallback": False}, "vocab_size=10 is too small: the 7 special tokens and 3 "
         "whitespace characters take 10 ids, and the corpus's characters need more. Pass a larger vocab_size."),
        ({"vocab_size": 0}, "vocab_size must be a positive int, got 0."),
        ({"vocab_size": 500.0}, "vocab_size must be a positive int, got 500.0."),
        ({"model_type": "wordpiece"}, "model_type must be one of ('unigram', 'bpe'), got 'wordpiece'."),
        ({"model_max_length": 0}, "model_max_length must be a positive int, got 0."),
        ({"model_max_length": True}, "model_max_length must be a positive int, got True."),
        ({"input_sentence_size": -1}, "input_sentence_size must be a non-negative int, got -1."),
        ({"num_threads": 0}, "num_threads must be a positive int, got 0."),
        ({"seed": "0"}, "seed must be an int, got '0'."),
        ({"byte_fallback": "yes"}, "byte_fallback must be True or False, got 'yes'."),
        ({"add_cls_and_sep": 1}, "add_cls_and_sep must be True or False, got 1."),
        ({"character_coverage": 0}, "character_coverage must be in (0, 1], got 0. The default 0.9995 gives every "
         "character a piece except the rarest 0.05% of the text."),
        ({"character_coverage": 1.5}, "character_coverage must be in (0, 1], got 1.5."),
    ],
)
def test_invalid_arguments(tmp_path, arguments, message):
    corpus = write_text(tmp_path / "corpus.txt", "Call me Ishmael.\n")
    arguments = {"vocab_size": VOCAB_SIZE, **arguments}
    vocab_size = arguments.pop("vocab_size")
    with pytest.raises(ValueError, match=re.escape(message)):
        train_sentencepiece_tokenizer([corpus], vocab_size, tmp_path / "out", **arguments)


def test_invalid_paths_raise(tmp_path):
    corpus = write_text(tmp_path / "corpus.txt", "Call me Ishmael.\n")
    with pytest.raises(ValueError, match=re.escape("No training files given. Pass at least one text file in files.")):
        train_sentencepiece_tokenizer([], VOCAB_SIZE, tmp_path / "out")
    directory_message = f"{str(tmp_path)!r} is a directory, but files takes text files. Pass the files inside it."
    with pytest.raises(ValueError, match=re.escape(directory_message)):
        train_sentencepiece_tokenizer([tmp_path], VOCAB_SIZE, tmp_path / "out")
    file_message = f"output_dir must be a directory, got the file {str(corpus)!r}."
    with pytest.raises(ValueError, match=re.escape(file_message)):
        train_sentencepiece_tokenizer([corpus], VOCAB_SIZE, corpus)


def test_empty_corpus_raises(tmp_path):
    empty = write_text(tmp_path / "empty.txt", "")
    message = f"The corpus is empty: the files {[str(empty)]} contain no text. Pass files that contain text."
    with pytest.raises(ValueError, match=re.escape(message)):
        train_sentencepiece_tokenizer([empty], VOCAB_SIZE, tmp_path / "out")

    blank = write_text(tmp_path / "blank.txt", "  \n\n\t\n")
    message = (
        f"The corpus is empty: the files {[str(empty), str(blank)]} contain no text other than whitespace. "
        f"Pass files that contain text."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        train_sentencepiece_tokenizer([empty, blank], VOCAB_SIZE, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_vocab_size_too_small_for_characters(corpus_file, tmp_path):
    pattern = (
        r"vocab_size=300 is too small: the special tokens, byte pieces and the characters that cover 99\.95% of "
        r"the corpus need (\d+) ids\. Pass vocab_size of at least \1, or a lower character_coverage\."
    )
    with pytest.raises(ValueError, match=pattern) as error_info:
        train_sentencepiece_tokenizer([corpus_file], 300, tmp_path)
    needed = int(re.search(r"need (\d+) ids", str(error_info.value)).group(1))
    # 7 special tokens and 256 byte pieces, plus the book's characters.
    assert 7 + 256 + 26 < needed < 300 + 100


def test_vocab_size_too_large_for_corpus(tmp_path):
    corpus = write_text(tmp_path / "corpus.txt", "It was a hot evening early in July.\n" * 50)
    pattern = (
        r"vocab_size=600 is too large for this corpus: unigram training finds at most (\d+) pieces in it\. "
        r"Pass vocab_size of at most \1, or more text\."
    )
    with pytest.raises(ValueError, match=pattern):
        train_sentencepiece_tokenizer([corpus], 600, tmp_path / "out")
