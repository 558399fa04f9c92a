"""Tests of reformer_hf.task_data: sequence grouping, document windows and the fine-tuning collators."""

import datasets
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, IterableDataset, Value

from reformer_hf.heads import ReformerForMaskedLM, ReformerForSequenceClassification
from reformer_hf.task_data import (
    DataCollatorForMaskedLM,
    DataCollatorForSequenceClassification,
    DataCollatorForTokenClassification,
    group_into_sequences,
    split_documents,
)
from reformer_hf.tokenization import BYTE_OFFSET, BOS_ID, EOS_ID, PAD_ID, ReformerByteTokenizer


@pytest.fixture(autouse=True, scope="module")
def datasets_cache(tmp_path_factory):
    """Keep the datasets cache of this module in a temporary directory instead of ~/.cache."""
    original = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = str(tmp_path_factory.mktemp("hf_datasets_cache"))
    yield
    datasets.config.HF_DATASETS_CACHE = original


@pytest.fixture(scope="module")
def tokenizer():
    return ReformerByteTokenizer()


@pytest.fixture(scope="module")
def mask_tokenizer():
    tokenizer = ReformerByteTokenizer()
    tokenizer.add_special_tokens({"mask_token": "<mask>"})
    return tokenizer


def byte_ids(text: str) -> list[int]:
    return [byte + BYTE_OFFSET for byte in text.encode("utf-8")]


def streamed(dataset: Dataset) -> IterableDataset:
    """The same rows as a streaming dataset whose features are unknown until it is read."""
    rows = list(dataset)
    return IterableDataset.from_generator(lambda: iter(rows))


# ---------------------------------------------------------------------------------------------
# group_into_sequences


def test_group_cuts_joined_stream():
    documents = Dataset.from_dict({"text": ["abcdefg", "hij", "", None, "klmnop"], "other": [1, 2, 3, 4, 5]})
    grouped = group_into_sequences(documents, ReformerByteTokenizer(), sequence_length=4)

    stream = byte_ids("abcdefg") + [EOS_ID] + byte_ids("hij") + [EOS_ID] + byte_ids("klmnop") + [EOS_ID]
    expected = [stream[i : i + 4] for i in range(0, len(stream) - 3, 4)]
    assert grouped.column_names == ["input_ids", "labels"]
    assert grouped["input_ids"] == expected
    assert grouped["labels"] == expected
    # 19 tokens in rows of 4: the last 3 tokens are dropped.
    assert len(stream) == 19
    assert len(grouped) == 4


def test_group_without_eos_and_labels(tokenizer):
    documents = Dataset.from_dict({"text": ["abc", "defgh"]})
    grouped = group_into_sequences(documents, tokenizer, sequence_length=2, add_eos=False, labels=False)

    assert grouped.column_names == ["input_ids"]
    assert grouped["input_ids"] == [byte_ids("ab"), byte_ids("cd"), byte_ids("ef"), byte_ids("gh")]


def test_group_drops_remainder_per_batch(tokenizer):
    documents = Dataset.from_dict({"text": ["abcde", "fghij", "klmno"]})
    grouped = group_into_sequences(documents, tokenizer, sequence_length=4, add_eos=False, batch_size=2)

    # Batch 1 joins "abcdefghij" and drops "ij". Batch 2 is "klmno" and drops "o".
    assert grouped["input_ids"] == [byte_ids("abcd"), byte_ids("efgh"), byte_ids("klmn")]


def test_group_streaming_matches_map_style(tokenizer):
    texts = [("document %d " % i) * (i % 7 + 1) for i in range(50)]
    documents = Dataset.from_dict({"text": texts, "label": list(range(50))})
    map_style = group_into_sequences(documents, tokenizer, sequence_length=16, batch_size=8)

    for stream in (documents.to_iterable_dataset(num_shards=1), streamed(documents)):
        streaming = group_into_sequences(stream, tokenizer, sequence_length=16, batch_size=8)
        assert isinstance(streaming, IterableDataset)
        rows = list(streaming)
        assert [row["input_ids"] for row in rows] == map_style["input_ids"]
        assert sorted(rows[0]) == ["input_ids", "labels"]


def test_group_custom_text_column(tokenizer):
    documents = Dataset.from_dict({"body": ["abcd"], "text": [""]})
    grouped = group_into_sequences(documents, tokenizer, sequence_length=5, text_column="body")

    assert grouped["input_ids"] == [byte_ids("abcd") + [EOS_ID]]


@pytest.mark.parametrize("sequence_length", [0, -3, 2.5, True])
def test_group_rejects_bad_sequence_length(tokenizer, sequence_length):
    documents = Dataset.from_dict({"text": ["abc"]})
    with pytest.raises(ValueError, match=r"sequence_length must be a positive integer, got"):
        group_into_sequences(documents, tokenizer, sequence_length=sequence_length)


def test_group_rejects_missing_text_column(tokenizer):
    documents = Dataset.from_dict({"content": ["abc"]})
    with pytest.raises(ValueError, match=r"Column 'text' not found\. The dataset has columns \['content'\]"):
        group_into_sequences(documents, tokenizer, sequence_length=2)


def test_group_rejects_non_string_column(tokenizer):
    documents = Dataset.from_dict({"text": [1, 2]})
    with pytest.raises(ValueError, match=r"Column 'text' has type .*int64.* must contain strings"):
        group_into_sequences(documents, tokenizer, sequence_length=2)


def test_group_streaming_missing_column(tokenizer):
    grouped = group_into_sequences(streamed(Dataset.from_dict({"content": ["abc"]})), tokenizer, sequence_length=2)
    with pytest.raises(ValueError, match=r"Columns \['text'\] not found in a row of the streaming dataset"):
        list(grouped)


def test_group_rejects_dataset_dict(tokenizer):
    splits = DatasetDict({"train": Dataset.from_dict({"text": ["abc"]})})
    with pytest.raises(ValueError, match=r"takes one split, got a DatasetDict with splits \['train'\]"):
        group_into_sequences(splits, tokenizer, sequence_length=2)


def test_group_rejects_list(tokenizer):
    with pytest.raises(ValueError, match=r"takes a datasets.Dataset or datasets.IterableDataset, got list"):
        group_into_sequences(["abc"], tokenizer, sequence_length=2)


def test_group_eos_needs_eos_token(tokenizer):
    class NoEosTokenizer:
        eos_token_id = None

    documents = Dataset.from_dict({"text": ["abc"]})
    with pytest.raises(ValueError, match=r"add_eos=True needs an end-of-sequence token.*Pass add_eos=False"):
        group_into_sequences(documents, NoEosTokenizer(), sequence_length=2)


# ---------------------------------------------------------------------------------------------
# split_documents


def test_split_exact_windows(tokenizer):
    documents = Dataset.from_dict({"text": ["abcdefghij", "xyz"], "label": [1, 0], "extra": ["a", "b"]})
    windows = split_documents(documents, tokenizer, max_length=4)

    assert windows.column_names == ["input_ids", "label", "document_id"]
    assert windows["input_ids"] == [byte_ids("abcd"), byte_ids("efgh"), byte_ids("ij"), byte_ids("xyz")]
    assert windows["label"] == [1, 1, 1, 0]
    assert windows["document_id"] == [0, 0, 0, 1]


def test_split_stride_overlap(tokenizer):
    documents = Dataset.from_dict({"text": ["abcdefghij", "abcdef", "abcd"], "label": [2, 1, 0]})
    windows = split_documents(documents, tokenizer, max_length=4, stride=2)

    # Windows start every max_length - stride = 2 tokens, and none starts after the one reaching the end.
    assert windows["input_ids"] == [
        byte_ids("abcd"), byte_ids("cdef"), byte_ids("efgh"), byte_ids("ghij"),
        byte_ids("abcd"), byte_ids("cdef"),
        byte_ids("abcd"),
    ]
    assert windows["document_id"] == [0, 0, 0, 0, 1, 1, 2]
    assert windows["label"] == [2, 2, 2, 2, 1, 1, 0]


def test_split_stride_short_last_window(tokenizer):
    exact = split_documents(Dataset.from_dict({"text": ["abcdefg"]}), tokenizer, max_length=4, stride=1,
                            label_column=None)
    longer = split_documents(Dataset.from_dict({"text": ["abcdefgh"]}), tokenizer, max_length=4, stride=1,
                             label_column=None)

    assert exact["input_ids"] == [byte_ids("abcd"), byte_ids("defg")]
    assert longer["input_ids"] == [byte_ids("abcd"), byte_ids("defg"), byte_ids("gh")]


def test_split_min_length_keeps_full_windows(tokenizer):
    documents = Dataset.from_dict({"text": ["abcdefghij", "xy"], "label": [0, 1]})
    windows = split_documents(documents, tokenizer, max_length=4, min_length=4)

    assert windows["input_ids"] == [byte_ids("abcd"), byte_ids("efgh")]
    assert windows["document_id"] == [0, 0]


def test_split_empty_document_gives_no_window(tokenizer):
    documents = Dataset.from_dict({"text": ["", None, "ab"], "label": [0, 1, 2]})
    windows = split_documents(documents, tokenizer, max_length=4)

    assert windows["input_ids"] == [byte_ids("ab")]
    assert windows["document_id"] == [2]
    assert windows["label"] == [2]


def test_split_keeps_label_feature(tokenizer):
    features = Features({"text": Value("string"), "author": ClassLabel(names=["austen", "melville"])})
    documents = Dataset.from_dict({"text": ["abcdef", "gh"], "author": [1, 0]}, features=features)
    windows = split_documents(documents, tokenizer, max_length=3, label_column="author")

    assert windows.features["author"] == features["author"]
    assert windows["author"] == [1, 1, 0]


def test_split_without_labels(tokenizer):
    windows = split_documents(Dataset.from_dict({"text": ["abcde"]}), tokenizer, max_length=3, label_column=None)

    assert windows.column_names == ["input_ids", "document_id"]
    assert windows["input_ids"] == [byte_ids("abc"), byte_ids("de")]


def test_split_multibyte_text_counts_bytes(tokenizer):
    windows = split_documents(Dataset.from_dict({"text": ["é" * 3], "label": [0]}), tokenizer, max_length=4)

    assert windows["input_ids"] == [byte_ids("é" * 3)[:4], byte_ids("é" * 3)[4:]]


def test_split_streaming_matches_map_style(tokenizer):
    texts = [("passage %d. " % i) * (i % 5 + 1) for i in range(30)]
    documents = Dataset.from_dict({"text": texts, "label": [i % 3 for i in range(30)]})
    map_style = split_documents(documents, tokenizer, max_length=10, stride=3, batch_size=7)

    for stream in (documents.to_iterable_dataset(num_shards=1), streamed(documents)):
        rows = list(split_documents(stream, tokenizer, max_length=10, stride=3, batch_size=7))
        assert [row["input_ids"] for row in rows] == map_style["input_ids"]
        assert [row["label"] for row in rows] == map_style["label"]
        assert [row["document_id"] for row in rows] == map_style["document_id"]


@pytest.mark.parametrize("stride", [4, 5, -1, 1.5])
def test_split_rejects_bad_stride(tokenizer, stride):
    documents = Dataset.from_dict({"text": ["abc"], "label": [0]})
    with pytest.raises(ValueError, match=r"stride must be an integer from 0 to max_length - 1 = 3, got"):
        split_documents(documents, tokenizer, max_length=4, stride=stride)


def test_split_rejects_bad_lengths(tokenizer):
    documents = Dataset.from_dict({"text": ["abc"], "label": [0]})
    with pytest.raises(ValueError, match=r"max_length must be a positive integer, got 0"):
        split_documents(documents, tokenizer, max_length=0)
    with pytest.raises(ValueError, match=r"min_length must be a positive integer, got 0"):
        split_documents(documents, tokenizer, max_length=4, min_length=0)
    with pytest.raises(ValueError, match=r"min_length=5 exceeds max_length=4"):
        split_documents(documents, tokenizer, max_length=4, min_length=5)


def test_split_rejects_missing_label_column(tokenizer):
    documents = Dataset.from_dict({"text": ["abc"], "labels": [0]})
    with pytest.raises(ValueError, match=r"Column 'label' not found.*Set label_column to one of them"):
        split_documents(documents, tokenizer, max_length=4)


def test_split_rejects_document_id_label(tokenizer):
    documents = Dataset.from_dict({"text": ["abc"], "document_id": [0]})
    with pytest.raises(ValueError, match=r"label_column must not be 'document_id'"):
        split_documents(documents, tokenizer, max_length=4, label_column="document_id")


# ---------------------------------------------------------------------------------------------
# Sequence classification collator


def test_classification_collator_pads_right(tokenizer):
    collator = DataCollatorForSequenceClassification(tokenizer)
    batch = collator([
        {"input_ids": [5, 6, 7], "label": 2, "document_id": 9},
        {"input_ids": [8], "label": 0, "document_id": 9},
    ])

    assert sorted(batch) == ["attention_mask", "input_ids", "labels"]
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [2, 0]
    assert batch["input_ids"].dtype == torch.long
    assert batch["labels"].dtype == torch.long


def test_classification_collator_pads_left(tokenizer):
    collator = DataCollatorForSequenceClassification(tokenizer, padding_side="left")
    batch = collator([{"input_ids": [5, 6, 7], "labels": 1}, {"input_ids": [8], "labels": 0}])

    assert batch["input_ids"].tolist() == [[5, 6, 7], [PAD_ID, PAD_ID, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_classification_collator_label_dtypes(tokenizer):
    collator = DataCollatorForSequenceClassification(tokenizer)
    examples = [{"input_ids": [5]}, {"input_ids": [6, 7]}]

    regression = collator([{**examples[0], "label": 0.5}, {**examples[1], "label": 2.0}])
    assert regression["labels"].dtype == torch.float32
    assert regression["labels"].tolist() == [0.5, 2.0]

    multi_label = collator([{**examples[0], "labels": [1, 0, 1]}, {**examples[1], "labels": [0, 0, 1]}])
    assert multi_label["labels"].dtype == torch.float32
    assert multi_label["labels"].shape == (2, 3)

    forced = DataCollatorForSequenceClassification(tokenizer, label_dtype=torch.float32)
    assert forced([{**examples[0], "label": 1}, {**examples[1], "label": 3}])["labels"].dtype == torch.float32


def test_classification_collator_without_labels(tokenizer):
    batch = DataCollatorForSequenceClassification(tokenizer)([{"input_ids": [5]}, {"input_ids": [6, 7]}])

    assert sorted(batch) == ["attention_mask", "input_ids"]


def test_classification_collator_keeps_given_mask(tokenizer):
    collator = DataCollatorForSequenceClassification(tokenizer)
    batch = collator([
        {"input_ids": [5, 6], "attention_mask": [1, 0], "label": 0},
        {"input_ids": [7, 8, 9], "label": 1},
    ])

    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]


def test_classification_collator_on_windows(tokenizer):
    documents = Dataset.from_dict({"text": ["abcdefghij", "xyz"], "label": [1, 0]})
    windows = split_documents(documents, tokenizer, max_length=4)
    batch = DataCollatorForSequenceClassification(tokenizer)(list(windows))

    assert batch["input_ids"].shape == (4, 4)
    assert batch["attention_mask"].sum(dim=1).tolist() == [4, 4, 2, 3]
    assert batch["labels"].tolist() == [1, 1, 1, 0]


def test_classification_collator_feeds_model(tokenizer, tiny_config):
    config = tiny_config(vocab_size=259, is_decoder=False, lsh_num_chunks_after=1, local_num_chunks_after=1,
                         num_labels=3)
    model = ReformerForSequenceClassification(config).eval()
    examples = [{"input_ids": byte_ids("a long passage"), "label": 2}, {"input_ids": byte_ids("short"), "label": 0}]
    batch = DataCollatorForSequenceClassification(tokenizer)(examples)

    output = model(**batch)
    alone = model(**DataCollatorForSequenceClassification(tokenizer)(examples[1:]))
    assert output.logits.shape == (2, 3)
    assert bool(torch.isfinite(output.loss))
    # Right padding leaves the logits of the shorter row unchanged.
    assert torch.allclose(output.logits[1], alone.logits[0], atol=1e-5)


def test_classification_collator_errors(tokenizer):
    collator = DataCollatorForSequenceClassification(tokenizer)
    with pytest.raises(ValueError, match=r"got an empty list of examples"):
        collator([])
    with pytest.raises(ValueError, match=r"Example 1 has no 'input_ids', only \['text'\]"):
        collator([{"input_ids": [5]}, {"text": "abc"}])
    with pytest.raises(ValueError, match=r"Example 0 has input_ids of shape \[0\].*non-empty 1-D sequence"):
        collator([{"input_ids": []}])
    with pytest.raises(ValueError, match=r"Examples \[1\] have no label but others do"):
        collator([{"input_ids": [5], "label": 1}, {"input_ids": [6]}])
    with pytest.raises(ValueError, match=r"labels of one batch must have one shape"):
        collator([{"input_ids": [5], "labels": [1, 0]}, {"input_ids": [6], "labels": 1}])
    with pytest.raises(ValueError, match=r"Example 0 has an attention_mask of shape \[1\] but input_ids of shape"):
        collator([{"input_ids": [5, 6], "attention_mask": [1]}])


def test_collators_need_pad_token():
    class NoPadTokenizer:
        pad_token_id = None

    for collator_class in (DataCollatorForSequenceClassification, DataCollatorForTokenClassification):
        with pytest.raises(ValueError, match=r"has no pad_token\. Set one, for example tokenizer.pad_token"):
            collator_class(NoPadTokenizer())


def test_collators_reject_bad_padding_side(tokenizer):
    with pytest.raises(ValueError, match=r"padding_side must be 'right' or 'left', got 'middle'"):
        DataCollatorForSequenceClassification(tokenizer, padding_side="middle")


# ---------------------------------------------------------------------------------------------
# Token classification collator


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_token_collator_pads_labels(tokenizer, padding_side):
    collator = DataCollatorForTokenClassification(tokenizer, padding_side=padding_side)
    batch = collator([
        {"input_ids": torch.tensor([5, 6, 7]), "labels": [1, -100, 2]},
        {"input_ids": [8], "labels": [3]},
    ])

    if padding_side == "right":
        assert batch["input_ids"].tolist() == [[5, 6, 7], [8, PAD_ID, PAD_ID]]
        assert batch["labels"].tolist() == [[1, -100, 2], [3, -100, -100]]
        assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    else:
        assert batch["input_ids"].tolist() == [[5, 6, 7], [PAD_ID, PAD_ID, 8]]
        assert batch["labels"].tolist() == [[1, -100, 2], [-100, -100, 3]]
        assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["labels"].dtype == torch.long
    assert batch["labels"].shape == batch["input_ids"].shape


def test_token_collator_label_length_mismatch(tokenizer):
    collator = DataCollatorForTokenClassification(tokenizer)
    with pytest.raises(ValueError, match=r"Example 1 has labels of shape \[1\] for 2 input_ids"):
        collator([{"input_ids": [5], "labels": [0]}, {"input_ids": [6, 7], "labels": [1]}])
    with pytest.raises(ValueError, match=r"Examples \[0\] have no labels but others do"):
        collator([{"input_ids": [5]}, {"input_ids": [6, 7], "labels": [1, 1]}])


def test_token_collator_without_labels(tokenizer):
    batch = DataCollatorForTokenClassification(tokenizer)([{"input_ids": [5, 6]}, {"input_ids": [7]}])

    assert sorted(batch) == ["attention_mask", "input_ids"]
    assert batch["input_ids"].shape == (2, 2)


# ---------------------------------------------------------------------------------------------
# Masked LM collator


def mlm_examples(num_rows: int, length: int) -> list[dict]:
    """Rows of random byte tokens framed by <s> and </s>, of lengths from length - 49 to length."""
    generator = torch.Generator().manual_seed(1)
    examples = []
    for row in range(num_rows):
        num_bytes = length - 2 - row % 50
        byte_tokens = torch.randint(BYTE_OFFSET, BYTE_OFFSET + 256, (num_bytes,), generator=generator)
        examples.append({"input_ids": [BOS_ID, *byte_tokens.tolist(), EOS_ID]})
    return examples


def test_mlm_masking_statistics(mask_tokenizer):
    examples = mlm_examples(num_rows=200, length=512)
    collator = DataCollatorForMaskedLM(mask_tokenizer, seed=0)
    batch = collator(examples)

    original = collator._pad_inputs(examples)["input_ids"]
    real = batch["attention_mask"] == 1
    maskable = real & (original != BOS_ID) & (original != EOS_ID)
    selected = batch["labels"] != -100
    num_selected = int(selected.sum())

    # About 97,000 maskable tokens: 15% selected with a standard deviation of 0.11 percentage points.
    assert abs(num_selected / int(maskable.sum()) - 0.15) < 0.01
    assert torch.equal(batch["labels"][selected], original[selected])

    masked = selected & (batch["input_ids"] == mask_tokenizer.mask_token_id)
    unchanged = selected & (batch["input_ids"] == original)
    replaced = selected & ~masked & ~unchanged
    assert abs(int(masked.sum()) / num_selected - 0.8) < 0.02
    # A random replacement draws the original byte 1 time in 256, which counts as unchanged.
    assert abs(int(replaced.sum()) / num_selected - 0.1 * 255 / 256) < 0.02
    assert abs(int(unchanged.sum()) / num_selected - (0.1 + 0.1 / 256)) < 0.02


def test_mlm_never_masks_special_or_padding(mask_tokenizer):
    examples = mlm_examples(num_rows=100, length=128)
    examples.append({"input_ids": [BOS_ID, EOS_ID, PAD_ID, mask_tokenizer.mask_token_id, EOS_ID]})
    batch = DataCollatorForMaskedLM(mask_tokenizer, mlm_probability=1.0, seed=0)(examples)

    original = DataCollatorForMaskedLM(mask_tokenizer)._pad_inputs(examples)["input_ids"]
    special = (original < BYTE_OFFSET) | (original == mask_tokenizer.mask_token_id)
    padding = batch["attention_mask"] == 0
    assert bool(padding.any())
    assert bool((batch["labels"][special | padding] == -100).all())
    assert torch.equal(batch["input_ids"][special | padding], original[special | padding])
    # With mlm_probability=1 every token that is neither special nor padding is selected.
    assert bool((batch["labels"][~special & ~padding] != -100).all())


def test_mlm_random_tokens_are_not_special(mask_tokenizer):
    examples = mlm_examples(num_rows=50, length=256)
    collator = DataCollatorForMaskedLM(
        mask_tokenizer, mlm_probability=1.0, mask_replace_prob=0.0, random_replace_prob=1.0, seed=3
    )
    batch = collator(examples)

    replaced = batch["input_ids"][batch["labels"] != -100]
    assert bool(((replaced >= BYTE_OFFSET) & (replaced < BYTE_OFFSET + 256)).all())
    # About 11,500 draws of 256 byte ids, so every byte appears.
    assert replaced.unique().numel() == 256


def test_mlm_seed_repeats_masks(mask_tokenizer):
    examples = mlm_examples(num_rows=8, length=64)
    first = DataCollatorForMaskedLM(mask_tokenizer, seed=7)(examples)
    second = DataCollatorForMaskedLM(mask_tokenizer, seed=7)(examples)
    other = DataCollatorForMaskedLM(mask_tokenizer, seed=8)(examples)

    assert torch.equal(first["input_ids"], second["input_ids"])
    assert torch.equal(first["labels"], second["labels"])
    assert not torch.equal(first["labels"], other["labels"])


def test_mlm_seed_advances_between_batches(mask_tokenizer):
    examples = mlm_examples(num_rows=8, length=64)
    collator = DataCollatorForMaskedLM(mask_tokenizer, seed=7)

    assert not torch.equal(collator(examples)["labels"], collator(examples)["labels"])


def test_mlm_without_seed_follows_torch_seed(mask_tokenizer):
    examples = mlm_examples(num_rows=8, length=64)
    collator = DataCollatorForMaskedLM(mask_tokenizer)
    torch.manual_seed(11)
    first = collator(examples)
    torch.manual_seed(11)
    second = collator(examples)

    assert torch.equal(first["labels"], second["labels"])


def test_mlm_left_padding(mask_tokenizer):
    batch = DataCollatorForMaskedLM(mask_tokenizer, padding_side="left", seed=0)(
        [{"input_ids": [5, 6, 7, 8]}, {"input_ids": [9, 10]}]
    )

    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert batch["input_ids"][1, :2].tolist() == [PAD_ID, PAD_ID]
    assert batch["labels"][1, :2].tolist() == [-100, -100]


def test_mlm_replaces_given_labels(mask_tokenizer):
    examples = [{"input_ids": [5, 6, 7, 8], "labels": [5, 6, 7, 8]}]
    batch = DataCollatorForMaskedLM(mask_tokenizer, mlm_probability=0.0, seed=0)(examples)

    assert batch["labels"].tolist() == [[-100, -100, -100, -100]]
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8]]


def test_mlm_collator_feeds_masked_lm(mask_tokenizer, tiny_config):
    config = tiny_config(vocab_size=len(mask_tokenizer), is_decoder=False, lsh_num_chunks_after=1,
                         local_num_chunks_after=1)
    model = ReformerForMaskedLM(config)
    batch = DataCollatorForMaskedLM(mask_tokenizer, mlm_probability=0.5, seed=0)(mlm_examples(num_rows=2, length=60))

    output = model(**batch)
    assert output.logits.shape == (*batch["input_ids"].shape, len(mask_tokenizer))
    assert bool(torch.isfinite(output.loss))
    output.loss.backward()


def test_mlm_needs_mask_token(tokenizer):
    with pytest.raises(ValueError, match=r"ReformerByteTokenizer has no mask_token\. Add one with"):
        DataCollatorForMaskedLM(tokenizer)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mlm_probability": 1.5}, r"mlm_probability must be a probability in \[0, 1\], got 1.5"),
        ({"mask_replace_prob": -0.1}, r"mask_replace_prob must be a probability in \[0, 1\], got -0.1"),
        ({"random_replace_prob": "0.1"}, r"random_replace_prob must be a probability in \[0, 1\], got '0.1'"),
        ({"mask_replace_prob": 0.8, "random_replace_prob": 0.3}, r"must be at most 1, got 0.8 \+ 0.3"),
    ],
)
def test_mlm_rejects_bad_probabilities(mask_tokenizer, options, message):
    with pytest.raises(ValueError, match=message):
        DataCollatorForMaskedLM(mask_tokenizer, **options)
