"""Data collators for fine-tuning the heads: sequence classification, token classification and
masked language modelling.

Each collator is a callable for ``Trainer(data_collator=...)``. It pads each batch to its longest
row with the tokenizer's pad id and builds the ``attention_mask``. It does not pad to a chunk
multiple: ``ReformerModel`` pads to its chunk lengths itself.
"""

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100
PADDING_SIDES = ("right", "left")


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
