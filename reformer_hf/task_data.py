"""Datasets for fine-tuning: fixed-length LM sequences and windows of long documents.

``group_into_sequences`` and ``split_documents`` turn a ``datasets.Dataset`` or a streaming
``datasets.IterableDataset`` of documents into token rows with a batched ``map``, so both kinds of
dataset give the same rows. The collators that batch them for the heads live in
``reformer_hf.collators`` and are importable from here too.
"""

from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value

from .collators import (  # noqa: F401  (re-exported for callers of task_data)
    IGNORE_INDEX,
    PADDING_SIDES,
    DataCollatorForMaskedLM,
    DataCollatorForSequenceClassification,
    DataCollatorForTokenClassification,
)
from .data import _tokenize_batch


SEQUENCE_FEATURES = Features({"input_ids": List(Value("int32"))})
CAUSAL_LM_FEATURES = Features({"input_ids": List(Value("int32")), "labels": List(Value("int32"))})


# ---------------------------------------------------------------------------------------------
# Datasets


def group_into_sequences(
    dataset: Dataset | IterableDataset,
    tokenizer,
    sequence_length: int,
    text_column: str = "text",
    add_eos: bool = True,
    labels: bool = True,
    batch_size: int = 1000,
) -> Dataset | IterableDataset:
    """Tokenize documents, join them and cut the token stream into rows of ``sequence_length`` tokens.

    The documents are tokenized without the tokenizer's special tokens, and with ``add_eos`` the
    tokenizer's ``eos_token_id`` follows each document. Documents with no text (empty or None) are
    skipped. The work runs as ``map(batched=True)`` over ``batch_size`` documents at a time, and each
    batch is joined and cut on its own. The last incomplete row of each batch, fewer than
    ``sequence_length`` tokens, is dropped, so every row has exactly ``sequence_length`` tokens and
    no padding. With long documents or the default batch of 1,000 documents the dropped share is
    small. Map-style and streaming datasets give the same rows for the same ``batch_size``.

    Args:
        dataset: Documents, one per row, as a ``Dataset`` or a streaming ``IterableDataset``. Pass
            one split of a ``DatasetDict``.
        tokenizer: A Hugging Face tokenizer, called on batches of texts.
        sequence_length: Number of tokens in each row.
        text_column: Column that contains the text.
        add_eos: Append ``eos_token_id`` after each document, so that the model learns where a
            text ends.
        labels: Add a ``"labels"`` column equal to ``"input_ids"``, for causal language modelling
            (the model shifts the labels itself).
        batch_size: Number of documents joined before cutting.

    Returns:
        A dataset of the same kind with the int32 columns ``"input_ids"`` and, with ``labels``,
        ``"labels"``. Every other column is removed. A streaming dataset is processed lazily, so
        errors about its rows (a missing column when its features are unknown) are raised on
        iteration.

    Raises:
        ValueError: when ``dataset`` is not a ``Dataset`` or ``IterableDataset``, ``text_column``
            is missing or not a string column, ``sequence_length`` or ``batch_size`` is not a
            positive integer, or ``add_eos`` is set for a tokenizer without an end-of-sequence
            token.
    """
    _check_dataset(dataset, "group_into_sequences")
    _check_positive_int("sequence_length", sequence_length)
    _check_positive_int("batch_size", batch_size)
    _check_text_column(dataset, text_column)
    eos_token_id = None
    if add_eos:
        eos_token_id = tokenizer.eos_token_id
        if eos_token_id is None:
            raise ValueError(
                f"add_eos=True needs an end-of-sequence token, but {type(tokenizer).__name__} has no eos_token. "
                f"Pass add_eos=False, or add one with tokenizer.add_special_tokens({{'eos_token': '</s>'}})."
            )

    documents = _select_columns(dataset, [text_column])
    return documents.map(
        _group_batch,
        batched=True,
        batch_size=batch_size,
        remove_columns=[text_column],
        features=CAUSAL_LM_FEATURES if labels else SEQUENCE_FEATURES,
        fn_kwargs={
            "tokenizer": tokenizer,
            "eos_token_id": eos_token_id,
            "sequence_length": sequence_length,
            "text_column": text_column,
            "labels": labels,
        },
    )


def _group_batch(batch: dict, tokenizer, eos_token_id: int | None, sequence_length: int, text_column: str,
                 labels: bool) -> dict:
    texts = [text for text in batch[text_column] if text]
    token_ids = _tokenize_batch({"text": texts}, tokenizer, eos_token_id)["input_ids"] if texts else []
    stream = [token_id for ids in token_ids for token_id in ids]
    num_rows = len(stream) // sequence_length
    rows = [stream[i * sequence_length : (i + 1) * sequence_length] for i in range(num_rows)]
    if labels:
        return {"input_ids": rows, "labels": [list(row) for row in rows]}
    return {"input_ids": rows}


def split_documents(
    dataset: Dataset | IterableDataset,
    tokenizer,
    max_length: int,
    stride: int = 0,
    text_column: str = "text",
    label_column: str | None = "label",
    min_length: int = 1,
    batch_size: int = 1000,
) -> Dataset | IterableDataset:
    """Split each document into windows of at most ``max_length`` tokens, for classifying long documents.

    Each document is tokenized without special tokens. Its windows start at token 0,
    ``max_length - stride``, ``2 * (max_length - stride)``, and so on, so consecutive windows share
    ``stride`` tokens. The last window ends at the document's last token and may be shorter than
    ``max_length``. No window starts after the one that reaches the end, so with ``stride`` every
    window contains tokens that the previous one does not. Windows shorter than ``min_length``
    tokens are dropped, and a document with no text gives no window.

    Args:
        dataset: Documents, one per row, as a ``Dataset`` or a streaming ``IterableDataset``.
        tokenizer: A Hugging Face tokenizer, called on batches of texts.
        max_length: Maximum number of tokens of a window.
        stride: Number of tokens that consecutive windows of a document share, from 0 to
            ``max_length - 1``.
        text_column: Column that contains the text.
        label_column: Column copied unchanged into every window of the document, or None for
            unlabelled documents.
        min_length: Minimum number of tokens of a window. Set it to ``max_length`` to keep only
            full windows.
        batch_size: Number of documents tokenized together.

    Returns:
        A dataset of the same kind with one row per window and the columns ``"input_ids"``
        (int32), ``label_column`` (its type is kept) and ``"document_id"``. The document id is the
        document's row index in ``dataset``. It groups the windows of one document again, for
        example to combine their predictions. Every other column is removed.

    Raises:
        ValueError: when ``dataset`` is not a ``Dataset`` or ``IterableDataset``, or
            ``text_column`` or ``label_column`` is missing, or the text column does not contain
            strings, or ``label_column`` is ``"document_id"``. Also when ``max_length``,
            ``min_length`` or ``batch_size`` is not a positive integer, ``stride`` is not between
            0 and ``max_length - 1``, or ``min_length`` exceeds ``max_length``.
    """
    _check_dataset(dataset, "split_documents")
    _check_positive_int("max_length", max_length)
    _check_positive_int("min_length", min_length)
    _check_positive_int("batch_size", batch_size)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride < max_length:
        raise ValueError(
            f"stride must be an integer from 0 to max_length - 1 = {max_length - 1}, got {stride!r}: consecutive "
            f"windows share stride tokens, so each window must add at least one new token. Use a smaller stride "
            f"or a larger max_length."
        )
    if min_length > max_length:
        raise ValueError(
            f"min_length={min_length} exceeds max_length={max_length}, so every window would be dropped. Set "
            f"min_length to at most max_length."
        )
    _check_text_column(dataset, text_column)
    columns = [text_column]
    if label_column is not None:
        if label_column == "document_id":
            raise ValueError(
                "label_column must not be 'document_id', because split_documents adds that column itself. Rename "
                "the label column first."
            )
        _check_column(dataset, label_column, "label_column")
        columns.append(label_column)

    features = None
    if dataset.features is not None:
        features = Features({"input_ids": List(Value("int32"))})
        if label_column is not None:
            features[label_column] = dataset.features[label_column]
        features["document_id"] = Value("int64")

    documents = _select_columns(dataset, columns)
    return documents.map(
        _split_batch,
        batched=True,
        batch_size=batch_size,
        with_indices=True,
        remove_columns=columns,
        features=features,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "stride": stride,
            "min_length": min_length,
            "text_column": text_column,
            "label_column": label_column,
        },
    )


def _split_batch(batch: dict, indices: list[int], tokenizer, max_length: int, stride: int, min_length: int,
                 text_column: str, label_column: str | None) -> dict:
    texts = [text or "" for text in batch[text_column]]
    token_ids = _tokenize_batch({"text": texts}, tokenizer, None)["input_ids"]
    step = max_length - stride
    output = {"input_ids": [], "document_id": []}
    if label_column is not None:
        output[label_column] = []

    for row, (document_id, ids) in enumerate(zip(indices, token_ids)):
        for start in range(0, len(ids), step):
            window = ids[start : start + max_length]
            if len(window) >= min_length:
                output["input_ids"].append(window)
                output["document_id"].append(document_id)
                if label_column is not None:
                    output[label_column].append(batch[label_column][row])
            if start + max_length >= len(ids):
                break
    return output


def _check_dataset(dataset, function_name: str) -> None:
    if isinstance(dataset, (DatasetDict, IterableDatasetDict)):
        raise ValueError(
            f"{function_name} takes one split, got a {type(dataset).__name__} with splits {sorted(dataset)}. Pass "
            f"one split, for example dataset['train'], or call it once per split."
        )
    if not isinstance(dataset, (Dataset, IterableDataset)):
        raise ValueError(
            f"{function_name} takes a datasets.Dataset or datasets.IterableDataset, got {type(dataset).__name__}. "
            f"Build one with Dataset.from_dict({{'text': texts}}) or datasets.load_dataset."
        )


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _check_column(dataset: Dataset | IterableDataset, column: str, argument: str) -> None:
    """Raise a ValueError when ``column`` is missing. Streaming datasets without known features pass."""
    if dataset.column_names is not None and column not in dataset.column_names:
        raise ValueError(
            f"Column {column!r} not found. The dataset has columns {dataset.column_names}. Set {argument} to one "
            f"of them."
        )


def _check_text_column(dataset: Dataset | IterableDataset, text_column: str) -> None:
    _check_column(dataset, text_column, "text_column")
    if dataset.features is None:
        return
    feature = dataset.features[text_column]
    if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(
            f"Column {text_column!r} has type {feature}, but the text column must contain strings. Set text_column "
            f"to a string column."
        )


def _select_columns(dataset: Dataset | IterableDataset, columns: list[str]) -> Dataset | IterableDataset:
    """Keep only ``columns``. A streaming dataset without known features checks them on each row."""
    if dataset.column_names is None:
        # The features of a streaming dataset built from a generator are known only once it is
        # read, so the check runs lazily, before select_columns would fail with a bare KeyError.
        dataset = dataset.map(_require_columns, fn_kwargs={"columns": columns})
    return dataset.select_columns(columns)


def _require_columns(example: dict, columns: list[str]) -> dict:
    missing = [column for column in columns if column not in example]
    if missing:
        raise ValueError(
            f"Columns {missing} not found in a row of the streaming dataset, whose columns are {sorted(example)}. "
            f"Set text_column and label_column to columns of the dataset."
        )
    return {}
