import json

import pytest
import torch
from transformers import AutoTokenizer, pipeline

from reformer_hf import ReformerByteTokenizer, ReformerConfig, ReformerForCausalLM
from reformer_hf.tokenization import BOS_ID, BYTE_OFFSET, BYTE_VOCAB_SIZE, EOS_ID, PAD_ID

ROUND_TRIP_TEXTS = [
    "",
    "Hello, world!",
    "hello , world . it 's",  # spaces that clean_up_tokenization would remove
    "Crème brûlée à la façon de Zoë",
    "東京の天気は晴れです。中文字符",
    "Привет, мир. مرحبا بالعالم. नमस्ते",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧",
    "line one\nline two\r\n\ttabbed",
    "nul\x00byte",
    "literal specials <pad><s></s>",
]


@pytest.fixture
def tokenizer() -> ReformerByteTokenizer:
    return ReformerByteTokenizer()


@pytest.fixture(scope="module")
def tiny_model() -> ReformerForCausalLM:
    torch.manual_seed(0)
    config = ReformerConfig(
        hidden_size=32,
        num_attention_heads=2,
        attention_head_size=8,
        feed_forward_size=32,
        attention_layers=["local", "lsh"],
        lsh_chunk_length=8,
        local_chunk_length=8,
        num_buckets=4,
        axial_pos_shape=[16, 16],
        axial_pos_embds_dim=[16, 16],
        hash_seed=0,
    )
    return ReformerForCausalLM(config).eval()


def test_constants_match_config_defaults():
    config = ReformerConfig()
    assert (PAD_ID, BOS_ID, EOS_ID, BYTE_OFFSET, BYTE_VOCAB_SIZE) == (0, 1, 2, 3, 259)
    assert BYTE_VOCAB_SIZE == BYTE_OFFSET + 256
    assert config.vocab_size == BYTE_VOCAB_SIZE
    assert config.pad_token_id == PAD_ID
    assert config.bos_token_id == BOS_ID
    assert config.eos_token_id == EOS_ID


def test_vocab_size_and_length(tokenizer):
    vocab = tokenizer.get_vocab()
    assert tokenizer.vocab_size == 259
    assert len(tokenizer) == 259
    assert len(vocab) == 259
    assert sorted(vocab.values()) == list(range(259))


def test_special_tokens_and_ids(tokenizer):
    assert tokenizer.pad_token == "<pad>"
    assert tokenizer.bos_token == "<s>"
    assert tokenizer.eos_token == "</s>"
    assert tokenizer.pad_token_id == 0
    assert tokenizer.bos_token_id == 1
    assert tokenizer.eos_token_id == 2
    assert tokenizer.unk_token is None
    assert sorted(tokenizer.all_special_ids) == [0, 1, 2]
    assert tokenizer.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "<s>", "</s>"]
    assert tokenizer.convert_tokens_to_ids(["<pad>", "<s>", "</s>"]) == [0, 1, 2]


def test_known_string_ids(tokenizer):
    assert tokenizer("A")["input_ids"] == [65 + 3]
    assert tokenizer("Hi\n")["input_ids"] == [72 + 3, 105 + 3, 10 + 3]
    # "é" is U+00E9, UTF-8 bytes C3 A9.
    assert tokenizer("é")["input_ids"] == [0xC3 + 3, 0xA9 + 3]
    # "😀" is U+1F600, UTF-8 bytes F0 9F 98 80.
    assert tokenizer.encode("😀") == [0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3]
    assert tokenizer("\x00")["input_ids"] == [3]
    assert tokenizer("")["input_ids"] == []


def test_byte_tokens_are_latin1_characters(tokenizer):
    assert tokenizer.tokenize("é") == ["\xc3", "\xa9"]
    assert tokenizer.convert_ids_to_tokens([68, 258]) == ["A", "\xff"]
    assert tokenizer.convert_tokens_to_ids(["A", "\xff"]) == [68, 258]
    assert tokenizer.convert_tokens_to_string(["\xc3", "\xa9", "</s>"]) == "é</s>"


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(tokenizer, text):
    input_ids = tokenizer(text)["input_ids"]
    assert len(input_ids) == len(text.encode("utf-8"))
    assert tokenizer.decode(input_ids) == text
    assert tokenizer.decode(input_ids, skip_special_tokens=True) == text


def test_round_trip_with_bos_and_eos():
    tokenizer = ReformerByteTokenizer(add_bos_token=True, add_eos_token=True)
    text = "Zoë 😀"
    input_ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(input_ids) == "<s>" + text + "</s>"
    assert tokenizer.decode(input_ids, skip_special_tokens=True) == text


def test_default_adds_no_special_tokens(tokenizer):
    assert tokenizer.add_bos_token is False
    assert tokenizer.add_eos_token is False
    assert tokenizer("ab", add_special_tokens=True)["input_ids"] == [100, 101]
    assert tokenizer.num_special_tokens_to_add() == 0


def test_add_bos_and_eos_tokens():
    both = ReformerByteTokenizer(add_bos_token=True, add_eos_token=True)
    assert both("ab")["input_ids"] == [1, 100, 101, 2]
    assert both("ab", add_special_tokens=False)["input_ids"] == [100, 101]
    assert both("ab", return_special_tokens_mask=True)["special_tokens_mask"] == [1, 0, 0, 1]
    assert both("a", "b")["input_ids"] == [1, 100, 2, 1, 101, 2]
    assert both.num_special_tokens_to_add(pair=True) == 4
    assert ReformerByteTokenizer(add_bos_token=True)("ab")["input_ids"] == [1, 100, 101]
    assert ReformerByteTokenizer(add_eos_token=True)("ab")["input_ids"] == [100, 101, 2]


def test_truncation_keeps_special_tokens():
    tokenizer = ReformerByteTokenizer(add_bos_token=True, add_eos_token=True)
    assert tokenizer("abcdef", truncation=True, max_length=4)["input_ids"] == [1, 100, 101, 2]


def test_special_token_text_encodes_as_bytes(tokenizer):
    assert tokenizer("</s>")["input_ids"] == [60 + 3, 47 + 3, 115 + 3, 62 + 3]
    assert tokenizer("a</s>", split_special_tokens=False)["input_ids"] == [100, 2]


def test_added_token(tokenizer):
    assert tokenizer.add_tokens(["<mask>"], special_tokens=True) == 1
    assert len(tokenizer) == 260
    assert tokenizer.convert_tokens_to_ids("<mask>") == 259
    assert tokenizer("a<mask>", split_special_tokens=False)["input_ids"] == [100, 259]
    assert tokenizer.decode([100, 259]) == "a<mask>"
    assert tokenizer.decode([100, 259], skip_special_tokens=True) == "a"


def test_batch_padding_right(tokenizer):
    batch = tokenizer(["a", "abc"], padding=True)
    assert batch["input_ids"] == [[100, 0, 0], [100, 101, 102]]
    assert batch["attention_mask"] == [[1, 0, 0], [1, 1, 1]]
    assert "token_type_ids" not in batch


def test_batch_padding_left():
    tokenizer = ReformerByteTokenizer(padding_side="left")
    batch = tokenizer(["a", "abc"], padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == [[0, 0, 100], [100, 101, 102]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1], [1, 1, 1]]
    assert batch["input_ids"].dtype == torch.long


def test_padding_side_per_call(tokenizer):
    batch = tokenizer(["a", "ab"], padding="max_length", max_length=4, padding_side="left")
    assert batch["input_ids"] == [[0, 0, 0, 100], [0, 0, 100, 101]]
    assert batch["attention_mask"] == [[0, 0, 0, 1], [0, 0, 1, 1]]


def test_decode_invalid_utf8(tokenizer):
    assert tokenizer.decode([0xFF + 3]) == "\ufffd"
    # The first byte of "é" without its continuation byte.
    assert tokenizer.decode([0xC3 + 3]) == "\ufffd"
    assert tokenizer.decode([68, 0xFF + 3, 69]) == "A\ufffdB"
    # A lone continuation byte between two valid characters.
    assert tokenizer.decode([68, 0x80 + 3, 0xC3 + 3, 0xA9 + 3]) == "A\ufffdé"


def test_skip_special_tokens(tokenizer):
    input_ids = [1, 68, 69, 2, 0, 0]
    assert tokenizer.decode(input_ids) == "<s>AB</s><pad><pad>"
    assert tokenizer.decode(input_ids, skip_special_tokens=True) == "AB"


def test_batch_decode_tensor(tokenizer):
    input_ids = torch.tensor([[0, 0, 68], [68, 69, 2]])
    assert tokenizer.batch_decode(input_ids, skip_special_tokens=True) == ["A", "AB"]
    assert tokenizer.decode(torch.tensor([68, 69])) == "AB"


def test_save_and_load(tmp_path):
    tokenizer = ReformerByteTokenizer(add_eos_token=True, padding_side="left")
    saved_files = tokenizer.save_pretrained(tmp_path)
    assert saved_files == (str(tmp_path / "tokenizer_config.json"),)
    assert tokenizer.save_vocabulary(str(tmp_path)) == ()

    saved_config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert saved_config["tokenizer_class"] == "ReformerByteTokenizer"
    assert saved_config["add_bos_token"] is False
    assert saved_config["add_eos_token"] is True
    assert saved_config["padding_side"] == "left"

    loaded = ReformerByteTokenizer.from_pretrained(tmp_path)
    assert loaded.add_bos_token is False
    assert loaded.add_eos_token is True
    assert loaded.padding_side == "left"
    assert loaded.split_special_tokens is True
    assert len(loaded) == 259
    assert loaded("é")["input_ids"] == [0xC3 + 3, 0xA9 + 3, 2]


def test_save_and_load_added_token(tmp_path):
    tokenizer = ReformerByteTokenizer()
    tokenizer.add_tokens(["<mask>"], special_tokens=True)
    saved_files = tokenizer.save_pretrained(tmp_path)
    assert saved_files == (str(tmp_path / "tokenizer_config.json"), str(tmp_path / "added_tokens.json"))

    loaded = ReformerByteTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == 260
    assert loaded.convert_tokens_to_ids("<mask>") == 259
    assert loaded.decode([259, 100]) == "<mask>a"


def test_option_change_after_init_is_saved(tmp_path):
    tokenizer = ReformerByteTokenizer()
    tokenizer.add_bos_token = True
    tokenizer.save_pretrained(tmp_path)
    loaded = ReformerByteTokenizer.from_pretrained(tmp_path)
    assert loaded.add_bos_token is True
    assert loaded("a")["input_ids"] == [1, 100]


def test_auto_tokenizer_from_tokenizer_dir(tmp_path):
    ReformerByteTokenizer(add_bos_token=True).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is ReformerByteTokenizer
    assert loaded("a")["input_ids"] == [1, 100]


def test_auto_tokenizer_from_model_dir(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    ReformerByteTokenizer(padding_side="left").save_pretrained(tmp_path)
    model_config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    assert model_config["model_type"] == "reformer_hf"

    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is ReformerByteTokenizer
    assert loaded.padding_side == "left"


def test_text_generation_pipeline(tiny_model, tokenizer):
    generator = pipeline("text-generation", model=tiny_model, tokenizer=tokenizer)
    outputs = generator("Hello", max_new_tokens=4, do_sample=False)
    generated_text = outputs[0]["generated_text"]
    assert isinstance(generated_text, str)
    assert generated_text.startswith("Hello")
    assert len(generated_text) > len("Hello")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bos_token": "<bos>"}, "bos_token must be '<s>'.*got '<bos>'"),
        ({"eos_token": "<eos>"}, "eos_token must be '</s>'.*got '<eos>'"),
        ({"pad_token": "[PAD]"}, r"pad_token must be '<pad>'.*got '\[PAD\]'"),
        ({"unk_token": "<unk>"}, "has no unk_token.*got unk_token='<unk>'"),
        ({"add_bos_token": "yes"}, "add_bos_token must be True or False, got 'yes'"),
        ({"add_eos_token": 1}, "add_eos_token must be True or False, got 1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReformerByteTokenizer(**kwargs)


def test_decode_id_outside_vocabulary(tokenizer):
    with pytest.raises(ValueError, match=r"Token id 259 is outside the vocabulary of 259 ids \(0 to 258\)"):
        tokenizer.decode([68, 259])
    with pytest.raises(ValueError, match="Token id -100 is outside.*replace the ignore index -100 with the pad id 0"):
        tokenizer.decode([68, -100])
    with pytest.raises(ValueError, match="Token id 300 is outside"):
        tokenizer.convert_ids_to_tokens([300])


def test_unknown_token_string(tokenizer):
    with pytest.raises(ValueError, match="'ab' is not a token of ReformerByteTokenizer"):
        tokenizer.convert_tokens_to_ids(["ab"])
    with pytest.raises(ValueError, match="'€' is not a token of ReformerByteTokenizer"):
        tokenizer.convert_tokens_to_string(["€"])


def test_lone_surrogate(tokenizer):
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at index 2"):
        tokenizer("ab\ud800")


def test_save_errors(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="does not support push_to_hub=True"):
        tokenizer.save_pretrained(tmp_path, push_to_hub=True)
    file_path = tmp_path / "not_a_dir"
    file_path.write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="save_directory must be a directory, got the file"):
        tokenizer.save_pretrained(file_path)
