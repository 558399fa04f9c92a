"""Datasets and data collators for fine-tuning: fixed-length LM sequences, windows of long documents,
and batches for sequence classification, token classification and masked language modelling.

``group_into_sequences`` and ``split_documents`` turn a ``datasets.Dataset`` or a streaming
``datasets.IterableDataset`` of documents into token rows with a batched ``map``, so both kinds of
dataset give the same rows. The collators are callables for ``Trainer(data_collator=...)``. They pad
each batch to its longest row and need not pad to a chunk multiple, because ``ReformerModel`` pads
to its chunk lengths itself.
"""

from collections.abc import Sequence

import torch
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, List, Value

from .data import _tokenize_batch

IGNORE_INDEX = -100
PADDING_SIDES = ("right", "left")

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


# ---------------------------------------------------------------------------------------------
# Collators


class _PaddingCollator:
    """Base collator that pads ``input_ids`` with the tokenizer's pad id and builds the ``attention_mask``."""

    def __init__(self, tokenizer, padding_side: str = "right"):
        if tokenizer.pad_token_id is None:
            raise ValueError(
                f"{type(self).__name__} pads with the tokenizer's pad token, but {type(tokenizer).__name__} has "
                f"no pad_token. Set one, for example tokenizer.pad_token = tokenizer.eos_token."
            )
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}.")
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id
        self.padding_side = padding_side

    def _pad_inputs(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        """Return ``input_ids`` and ``attention_mask``, both ``[b, n]`` with n the longest row."""
        if len(examples) == 0:
            raise ValueError(f"{type(self).__name__} got an empty list of examples, but a batch needs at least one.")
        sequences = []
        masks = []
        for index, example in enumerate(examples):
            if "input_ids" not in example:
                raise ValueError(
                    f"Example {index} has no 'input_ids', only {sorted(example)}. Tokenize the dataset first, for "
                    f"example with split_documents or group_into_sequences."
                )
            input_ids = torch.as_tensor(example["input_ids"], dtype=torch.long)
            if input_ids.dim() != 1 or input_ids.numel() == 0:
                raise ValueError(
                    f"Example {index} has input_ids of shape {list(input_ids.shape)}, but each example needs a "
                    f"non-empty 1-D sequence of token ids. Drop empty examples before collating."
                )
            sequences.append(input_ids)
            if example.get("attention_mask") is None:
                masks.append(torch.ones_like(input_ids))
            else:
                masks.append(self._example_mask(example["attention_mask"], input_ids, index))
        return {
            "input_ids": self._pad(sequences, self.pad_token_id),
            "attention_mask": self._pad(masks, 0),
        }

    @staticmethod
    def _example_mask(attention_mask, input_ids: torch.Tensor, index: int) -> torch.Tensor:
        mask = torch.as_tensor(attention_mask, dtype=torch.long)
        if mask.shape != input_ids.shape:
            raise ValueError(
                f"Example {index} has an attention_mask of shape {list(mask.shape)} but input_ids of shape "
                f"{list(input_ids.shape)}. Give both the same length, or leave attention_mask out."
            )
        return mask

    def _pad(self, sequences: list[torch.Tensor], value: int) -> torch.Tensor:
        """Stack 1-D tensors into ``[b, n]``, filling with ``value`` on ``padding_side``."""
        length = max(sequence.shape[0] for sequence in sequences)
        padded = torch.full((len(sequences), length), value, dtype=sequences[0].dtype)
        for row, sequence in enumerate(sequences):
            if self.padding_side == "right":
                padded[row, : sequence.shape[0]] = sequence
            else:
                padded[row, length - sequence.shape[0] :] = sequence
        return padded


class DataCollatorForSequenceClassification(_PaddingCollator):
    """Batch examples for ``ReformerForSequenceClassification``: padded inputs and one label per row.

    Each example is a dict with ``input_ids`` and optionally ``attention_mask`` and a label under
    ``"labels"`` or ``"label"``. Other keys, such as ``document_id`` from ``split_documents``, are
    left out of the batch. By default, integer or bool labels (class ids) become an int64 ``[b]``
    tensor, and every other label (floats for regression, lists of targets for multi-label
    classification) becomes float32, ``[b]`` or ``[b, num_labels]``.

    Args:
        tokenizer: Tokenizer whose ``pad_token_id`` fills the padding.
        padding_side: ``"right"`` or ``"left"``.
        label_dtype: Force the labels' dtype, for example ``torch.float32`` for regression on
            integer targets. None infers it as above.

    Raises:
        ValueError: when the tokenizer has no pad token or ``padding_side`` is invalid. On a call,
            for an empty batch, an example without ``input_ids`` or with empty ones, labels on only
            some examples, or labels of different shapes.
    """

    def __init__(self, tokenizer, padding_side: str = "right", label_dtype: torch.dtype | None = None):
        super().__init__(tokenizer, padding_side)
        self.label_dtype = label_dtype

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = self._pad_inputs(examples)
        labels = [_example_label(example) for example in examples]
        unlabeled = [index for index, label in enumerate(labels) if label is None]
        if unlabeled and len(unlabeled) < len(labels):
            raise ValueError(
                f"Examples {unlabeled} have no label but others do. Give every example a 'labels' (or 'label') "
                f"entry, or none for prediction."
            )
        if not unlabeled:
            batch["labels"] = self._stack_labels(labels)
        return batch

    def _stack_labels(self, labels: list) -> torch.Tensor:
        tensors = [torch.as_tensor(label) for label in labels]
        shapes = {tuple(tensor.shape) for tensor in tensors}
        if len(shapes) > 1:
            raise ValueError(
                f"The labels of one batch must have one shape, got shapes {sorted(shapes)}. Give every example one "
                f"class id, or the same number of multi-label targets."
            )
        dtype = self.label_dtype
        if dtype is None:
            is_class_id = all(tensor.dim() == 0 and not tensor.dtype.is_floating_point for tensor in tensors)
            dtype = torch.long if is_class_id else torch.float32
        return torch.stack([tensor.to(dtype) for tensor in tensors])


def _example_label(example: dict):
    return example["labels"] if example.get("labels") is not None else example.get("label")


class DataCollatorForTokenClassification(_PaddingCollator):
    """Batch examples for token classification: padded inputs and one label per token.

    Each example is a dict with ``input_ids``, optionally ``attention_mask``, and ``labels``, one
    class id per token, where -100 leaves a token out of the loss. The labels are padded with
    ``label_pad_id`` on the same side as the inputs, so padding never counts in the loss. Other
    keys are left out of the batch.

    Args:
        tokenizer: Tokenizer whose ``pad_token_id`` fills the padding.
        padding_side: ``"right"`` or ``"left"``.
        label_pad_id: Label of padding positions; -100 is the ignore index of the cross-entropy.

    Raises:
        ValueError: when the tokenizer has no pad token or ``padding_side`` is invalid. On a call,
            for an empty batch, an example without ``input_ids`` or with empty ones, labels on only
            some examples, or labels whose length differs from the example's input_ids.
    """

    def __init__(self, tokenizer, padding_side: str = "right", label_pad_id: int = IGNORE_INDEX):
        super().__init__(tokenizer, padding_side)
        self.label_pad_id = label_pad_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = self._pad_inputs(examples)
        unlabeled = [index for index, example in enumerate(examples) if example.get("labels") is None]
        if unlabeled and len(unlabeled) < len(examples):
            raise ValueError(
                f"Examples {unlabeled} have no labels but others do. Give every example one label per token, or "
                f"none for prediction."
            )
        if unlabeled:
            return batch

        labels = []
        for index, example in enumerate(examples):
            example_labels = torch.as_tensor(example["labels"], dtype=torch.long)
            num_tokens = len(example["input_ids"])
            if example_labels.shape != (num_tokens,):
                raise ValueError(
                    f"Example {index} has labels of shape {list(example_labels.shape)} for {num_tokens} input_ids. "
                    f"Give one label per token, with -100 for tokens to leave out of the loss."
                )
            labels.append(example_labels)
        batch["labels"] = self._pad(labels, self.label_pad_id)
        return batch


class DataCollatorForMaskedLM(_PaddingCollator):
    """Batch examples for ``ReformerForMaskedLM`` and mask tokens at random as BERT does.

    Each real token that is not a special token (``tokenizer.all_special_ids``: padding, ``<s>``,
    ``</s>``, the mask token and others) is selected with probability ``mlm_probability``. A
    selected token is replaced by the mask token with probability ``mask_replace_prob``, by a random
    token with probability ``random_replace_prob``, and kept otherwise. The random token is drawn
    uniformly from the tokenizer's ids that are not special. The labels hold the original id at
    selected positions and -100 elsewhere, so padding and special tokens never count in the loss.
    Any ``labels`` in the examples are replaced. A batch with no selected token, likely only with a
    few short rows, gives the model a NaN loss, because every label is -100.

    Args:
        tokenizer: Tokenizer with a pad and a mask token. ``ReformerByteTokenizer`` has no mask
            token: add one with ``tokenizer.add_special_tokens({"mask_token": "<mask>"})`` (id 259)
            and build the model with ``vocab_size=len(tokenizer)``.
        mlm_probability: Share of tokens selected for prediction.
        mask_replace_prob: Share of selected tokens replaced by the mask token.
        random_replace_prob: Share of selected tokens replaced by a random token.
        padding_side: ``"right"`` or ``"left"``.
        seed: Seed of a private ``torch.Generator`` for the masking, so that a collator built with
            the same seed masks the same positions. None draws from torch's default generator,
            which ``transformers.set_seed`` seeds.

    NOTE: with ``DataLoader(num_workers > 0)`` each worker process gets a copy of the collator, so
    with a seed every worker draws the same sequence of masks.

    Raises:
        ValueError: when the tokenizer has no pad or mask token, a probability is outside [0, 1],
            ``mask_replace_prob + random_replace_prob`` exceeds 1, or ``padding_side`` is invalid.
            On a call, for an empty batch or an example without ``input_ids`` or with empty ones.
    """

    def __init__(
        self,
        tokenizer,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        padding_side: str = "right",
        seed: int | None = None,
    ):
        super().__init__(tokenizer, padding_side)
        if tokenizer.mask_token_id is None:
            raise ValueError(
                f"DataCollatorForMaskedLM replaces tokens with the mask token, but {type(tokenizer).__name__} has no "
                f"mask_token. Add one with tokenizer.add_special_tokens({{'mask_token': '<mask>'}}) and build the "
                f"model with vocab_size=len(tokenizer)."
            )

        for name, value in (
            ("mlm_probability", mlm_probability),
            ("mask_replace_prob", mask_replace_prob),
            ("random_replace_prob", random_replace_prob),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
        if mask_replace_prob + random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must be at most 1, got {mask_replace_prob} + "
                f"{random_replace_prob} = {mask_replace_prob + random_replace_prob}. The rest of the selected "
                f"tokens are kept unchanged."
            )

        self.mlm_probability = mlm_probability
        self.mask_replace_prob = mask_replace_prob
        self.random_replace_prob = random_replace_prob
        self.mask_token_id = tokenizer.mask_token_id
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        vocabulary = torch.arange(len(tokenizer))
        self.random_token_ids = vocabulary[~torch.isin(vocabulary, self.special_ids)]

        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        batch = self._pad_inputs(examples)
        input_ids = batch["input_ids"]  # [b, n]
        maskable = (batch["attention_mask"] != 0) & ~torch.isin(input_ids, self.special_ids)

        selected = maskable & (self._uniform(input_ids.shape) < self.mlm_probability)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))

        # One draw per position splits the selected tokens into mask, random and unchanged.
        replacement_draw = self._uniform(input_ids.shape)
        to_mask = selected & (replacement_draw < self.mask_replace_prob)
        to_random = (
            selected
            & (replacement_draw >= self.mask_replace_prob)
            & (replacement_draw < self.mask_replace_prob + self.random_replace_prob)
        )

        masked_ids = input_ids.clone()
        masked_ids[to_mask] = self.mask_token_id
        random_idx = torch.randint(
            len(self.random_token_ids), (int(to_random.sum()),), generator=self.generator
        )
        masked_ids[to_random] = self.random_token_ids[random_idx]

        batch["input_ids"] = masked_ids
        batch["labels"] = labels
        return batch

    def _uniform(self, shape: torch.Size) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)


__all__ = [
    "DataCollatorForMaskedLM",
    "DataCollatorForSequenceClassification",
    "DataCollatorForTokenClassification",
    "group_into_sequences",
    "split_documents",
]
