"""Task heads on ``ReformerModel``: masked language modelling, sequence classification and extractive
question answering.

The parameters carry the names and shapes of transformers' own Reformer heads (``reformer.*``,
``classifier.dense``, ``classifier.out_proj``, ``qa_outputs``), so that checkpoints convert by name.
The one exception is the masked LM head: here it is a single linear layer ``lm_head``, where
transformers (5.25) stores ``lm_head.decoder.weight`` and ``lm_head.decoder.bias``, plus an
``lm_head.bias`` that its forward pass does not read.

Every head reads the final hidden states of ``ReformerModel``, which concatenate the two reversible
streams and so have ``2 * hidden_size`` features. Labels are checked before the forward pass, so a bad
label raises without running the layers.
"""

import copy

import torch
from torch import nn
from transformers.modeling_outputs import (
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import logging

from .configuration import ReformerConfig
from .modeling import ReformerModel, ReformerPreTrainedModel, project_in_chunks

logger = logging.get_logger(__name__)

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
IGNORE_INDEX = -100


def _is_integer(tensor: torch.Tensor) -> bool:
    return not tensor.dtype.is_floating_point and not tensor.dtype.is_complex and tensor.dtype != torch.bool


def _validate_base_inputs(reformer: ReformerModel, base_inputs: dict) -> list[int]:
    """Run ``ReformerModel``'s input checks and return the input's ``[batch_size, length]``."""
    reformer._validate_inputs(**base_inputs)
    input_ids, inputs_embeds = base_inputs["input_ids"], base_inputs["inputs_embeds"]
    return list((input_ids if input_ids is not None else inputs_embeds).shape[:2])


def bidirectional_config(config: ReformerConfig, head: str) -> ReformerConfig:
    """Return ``config`` switched to bidirectional attention, which every encoder head needs.

    A causal config (the default) is copied with ``is_decoder=False``, and its look-ahead, which
    causal attention kept at 0, becomes one chunk, so that ``AutoModelFor...from_config`` builds
    every head from a default config. A config that is already bidirectional is used unchanged.
    """
    if not config.is_decoder:
        return config
    config = copy.deepcopy(config)
    config.is_decoder = False
    if config.lsh_num_chunks_after == 0 and config.local_num_chunks_after == 0:
        config.lsh_num_chunks_after = config.local_num_chunks_after = 1
    logger.info(
        "%s attends in both directions: using is_decoder=False, lsh_num_chunks_after=%d and "
        "local_num_chunks_after=%d.", head, config.lsh_num_chunks_after, config.local_num_chunks_after,
    )
    return config


def classifier_dropout(config: ReformerConfig) -> float:
    """Return the dropout of the classification heads: ``classifier_dropout``, else ``hidden_dropout_prob``."""
    return config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout


def _to_tuple(loss: torch.Tensor | None, outputs: tuple, hidden_states: tuple | None) -> tuple:
    """Lay out ``return_dict=False`` results as the transformers heads do: loss first, if any."""
    result = outputs + ((hidden_states,) if hidden_states is not None else ())
    return ((loss,) + result) if loss is not None else result


# ---------------------------------------------------------------------------------------------
# Masked language modelling


class ReformerForMaskedLM(ReformerPreTrainedModel):
    """Reformer with a head that predicts the token at every position, for masked-token pretraining.

    Attends in both directions: a causal config is switched by ``bidirectional_config``. Each
    position attends only to the chunks in its attention window, so ``lsh_num_chunks_after`` and
    ``local_num_chunks_after`` should be at least 1.
    """

    def __init__(self, config: ReformerConfig):
        config = bidirectional_config(config, "ReformerForMaskedLM")
        super().__init__(config)
        self.reformer = ReformerModel(config)
        self.lm_head = nn.Linear(2 * config.hidden_size, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        """Predict the token at every position; see ``ReformerModel.forward`` for the inputs.

        Args:
            labels: ``[b, n]`` ids of the original tokens at the positions to predict and -100
                elsewhere. Unlike ``ReformerForCausalLM`` the labels are not shifted: the logits at
                position ``t`` predict ``labels[:, t]``.

        Returns:
            ``MaskedLMOutput`` with ``logits`` ``[b, n, vocab_size]`` and, when labels are given,
            ``loss``: the float32 mean cross-entropy over the positions whose label is not -100
            (NaN when every label is -100). With ``return_dict=False``, the tuple
            ``(loss, logits, hidden_states)`` without the entries that are ``None``.

        Raises:
            ValueError: for the input errors of ``ReformerModel.forward``, and for labels of the
                wrong shape or dtype or with ids outside the vocabulary, before the forward pass.
        """
        base_inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, num_hashes=num_hashes)
        if labels is not None:
            # Check the inputs, then the labels, so that a bad label raises before the forward pass.
            self._validate_labels(labels, _validate_base_inputs(self.reformer, base_inputs))

        outputs = self.reformer(
            **base_inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            use_cache=False, return_dict=True,
        )
        logits = project_in_chunks(self.lm_head, outputs.last_hidden_state, self.config.lm_head_chunk_size)

        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]),
                labels.to(logits.device).reshape(-1).long(),
                ignore_index=IGNORE_INDEX,
            )

        if return_dict is False or (return_dict is None and not self.config.return_dict):
            return _to_tuple(loss, (logits,), outputs.hidden_states)
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    def _validate_labels(self, labels: torch.Tensor, input_shape: list[int]) -> None:
        if list(labels.shape) != input_shape:
            raise ValueError(f"labels must have the input's shape {input_shape}, got {list(labels.shape)}.")
        if not _is_integer(labels):
            raise ValueError(f"labels must be an integer tensor of token ids, got dtype {labels.dtype}.")
        vocab_size = self.config.vocab_size
        bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= vocab_size))
        if bool(bad.any()):
            raise ValueError(
                f"labels contains id {int(labels[bad][0])}, outside the vocabulary [0, {vocab_size}) "
                f"and not the ignore index -100."
            )


# ---------------------------------------------------------------------------------------------
# Sequence classification


class ReformerClassificationHead(nn.Module):
    """Dropout, dense layer, tanh, dropout and a projection to ``num_labels`` scores."""

    def __init__(self, config: ReformerConfig):
        super().__init__()
        self.dense = nn.Linear(2 * config.hidden_size, config.hidden_size)
        dropout = classifier_dropout(config)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """Map ``[b, 2 * hidden_size]`` pooled hidden states to ``[b, num_labels]`` logits."""
        hidden_states = self.dropout(pooled)
        hidden_states = torch.tanh(self.dense(hidden_states))
        hidden_states = self.dropout(hidden_states)
        return self.out_proj(hidden_states)


class ReformerForSequenceClassification(ReformerPreTrainedModel):
    """Reformer with a classification or regression head on one pooled vector per row.

    ``config.classifier_pooling`` picks the vector. ``"mean"`` (the default) averages the final
    hidden states of the real tokens, which suits long documents. ``"first"`` takes the first real
    token's, as transformers' Reformer does (position 0 there). Either way padding does not change
    the logits. Attends in both directions (``bidirectional_config``).

    The loss follows ``config.problem_type``. When it is ``None``, every call infers the type as
    transformers' heads do, but without writing it into the config. With ``num_labels == 1`` it is
    ``"regression"`` (MSE). With ``num_labels > 1``, integer labels make it
    ``"single_label_classification"`` (cross-entropy) and other labels
    ``"multi_label_classification"`` (binary cross-entropy on each logit).
    """

    def __init__(self, config: ReformerConfig):
        if config.num_labels < 1:
            raise ValueError(
                f"num_labels must be at least 1, got {config.num_labels}. Build the config with num_labels=N."
            )
        config = bidirectional_config(config, "ReformerForSequenceClassification")
        super().__init__(config)
        self.num_labels = config.num_labels
        self.reformer = ReformerModel(config)
        self.classifier = ReformerClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """Score each row; see ``ReformerModel.forward`` for the inputs.

        Args:
            labels: For single-label classification, ``[b]`` (or ``[b, 1]``) integer class ids in
                ``[0, num_labels)``, or -100 to leave a row out of the loss. For multi-label
                classification, ``[b, num_labels]`` targets in ``[0, 1]``. For regression, ``[b]``
                (or ``[b, 1]``) values when ``num_labels == 1`` and ``[b, num_labels]`` otherwise.

        Returns:
            ``SequenceClassifierOutput`` with ``logits`` ``[b, num_labels]`` and, when labels are
            given, the float32 ``loss`` of the problem type. With ``return_dict=False``, the tuple
            ``(loss, logits, hidden_states)`` without the entries that are ``None``.

        Raises:
            ValueError: for the input errors of ``ReformerModel.forward``, a row without real tokens,
                an unknown ``config.problem_type``, and labels of the wrong shape, dtype or range,
                before the forward pass.
        """
        base_inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, num_hashes=num_hashes)
        batch_size, _ = _validate_base_inputs(self.reformer, base_inputs)
        first_real_idx = self._first_real_idx(attention_mask, batch_size)
        if labels is not None:
            problem_type = self._resolve_problem_type(labels)
            self._validate_labels(labels, problem_type, batch_size)

        outputs = self.reformer(
            **base_inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            use_cache=False, return_dict=True,
        )
        hidden_states = outputs.last_hidden_state  # [b, n, 2 * hidden_size]
        if self.config.classifier_pooling == "mean":
            real = torch.ones(hidden_states.shape[:2], device=hidden_states.device) if attention_mask is None else (
                (attention_mask != 0).to(hidden_states.device, hidden_states.dtype))
            pooled = (hidden_states * real.unsqueeze(-1)).sum(dim=1) / real.sum(dim=1, keepdim=True)
        else:
            rows = torch.arange(batch_size, device=hidden_states.device)
            pooled = hidden_states[rows, first_real_idx.to(hidden_states.device)]  # [b, 2 * hidden_size]
        logits = self.classifier(pooled)  # [b, num_labels]

        loss = None
        if labels is not None:
            loss = self._loss(logits, labels.to(logits.device), problem_type)

        if return_dict is False or (return_dict is None and not self.config.return_dict):
            return _to_tuple(loss, (logits,), outputs.hidden_states)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)

    @staticmethod
    def _first_real_idx(attention_mask: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """Return the ``[b]`` index of the first real token of each row."""
        if attention_mask is None:
            return torch.zeros(batch_size, dtype=torch.long)
        real = attention_mask != 0
        empty_rows = (~real.any(dim=1)).nonzero().flatten().tolist()
        if empty_rows:
            raise ValueError(
                f"attention_mask has no real token in rows {empty_rows}, so there is nothing to classify. "
                f"Remove those rows from the batch."
            )
        # argmax returns the first of several maximal values, here the first 1 of the row.
        return real.to(torch.long).argmax(dim=1)

    def _resolve_problem_type(self, labels: torch.Tensor) -> str:
        problem_type = self.config.problem_type
        if problem_type is not None:
            if problem_type not in PROBLEM_TYPES:
                raise ValueError(
                    f"config.problem_type must be one of {', '.join(repr(p) for p in PROBLEM_TYPES)} or None, "
                    f"got {problem_type!r}."
                )
            return problem_type
        if self.num_labels == 1:
            return "regression"
        # transformers (5.25) counts only int64 and int32 labels as class ids, and so fails on other
        # integer dtypes. Here every integer dtype counts.
        return "single_label_classification" if _is_integer(labels) else "multi_label_classification"

    def _validate_labels(self, labels: torch.Tensor, problem_type: str, batch_size: int) -> None:
        num_labels = self.num_labels
        shape = list(labels.shape)
        one_per_row = shape in ([batch_size], [batch_size, 1])
        if problem_type == "single_label_classification":
            if not _is_integer(labels):
                raise ValueError(
                    f"labels must be integer class ids for single_label_classification, got dtype {labels.dtype}."
                )
            if not one_per_row:
                raise ValueError(f"labels must have shape [batch_size] = [{batch_size}] of class ids, got {shape}.")
            bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= num_labels))
            if bool(bad.any()):
                raise ValueError(
                    f"labels contains class id {int(labels[bad][0])}, outside [0, {num_labels}) (num_labels) "
                    f"and not the ignore index -100."
                )
        elif problem_type == "regression" and num_labels == 1:
            if not one_per_row:
                raise ValueError(f"labels must have shape [batch_size] = [{batch_size}] for regression, got {shape}.")
        elif shape != [batch_size, num_labels]:
            hint = " For single-label classification pass integer class ids." if shape[:1] == [batch_size] else ""
            raise ValueError(
                f"labels must have shape [batch_size, num_labels] = {[batch_size, num_labels]} for {problem_type}, "
                f"got {shape}.{hint}"
            )
        elif problem_type == "multi_label_classification" and bool(((labels < 0) | (labels > 1)).any()):
            raise ValueError("labels for multi_label_classification must be targets in [0, 1], one per class.")

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> torch.Tensor:
        logits = logits.float()
        if problem_type == "regression":
            if self.num_labels == 1:
                return nn.functional.mse_loss(logits.reshape(-1), labels.reshape(-1).float())
            return nn.functional.mse_loss(logits, labels.float())
        if problem_type == "single_label_classification":
            return nn.functional.cross_entropy(logits, labels.reshape(-1).long(), ignore_index=IGNORE_INDEX)
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.float())


# ---------------------------------------------------------------------------------------------
# Token classification


class ReformerForTokenClassification(ReformerPreTrainedModel):
    """Reformer with a head that assigns one of ``num_labels`` classes to every position.

    Dropout (``classifier_dropout``, else ``hidden_dropout_prob``) and one linear layer on the
    ``2 * hidden_size`` final hidden states. Attends in both directions (``bidirectional_config``).
    """

    def __init__(self, config: ReformerConfig):
        if config.num_labels < 1:
            raise ValueError(
                f"num_labels must be at least 1, got {config.num_labels}. Build the config with num_labels=N."
            )
        config = bidirectional_config(config, "ReformerForTokenClassification")
        super().__init__(config)
        self.num_labels = config.num_labels
        self.reformer = ReformerModel(config)
        dropout = classifier_dropout(config)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
    ) -> TokenClassifierOutput | tuple:
        """Classify every position; see ``ReformerModel.forward`` for the inputs.

        Args:
            labels: ``[b, n]`` class ids in ``[0, num_labels)``, or -100 at positions left out of
                the loss (padding, and sub-word pieces after a word's first).

        Returns:
            ``TokenClassifierOutput`` with ``logits`` ``[b, n, num_labels]`` and, when labels are
            given, the float32 mean cross-entropy over the labelled positions. With
            ``return_dict=False``, the tuple ``(loss, logits, hidden_states)`` without ``None``s.

        Raises:
            ValueError: for the input errors of ``ReformerModel.forward`` and for labels of the wrong
                shape, dtype or range, before the forward pass.
        """
        base_inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, num_hashes=num_hashes)
        if labels is not None:
            input_shape = _validate_base_inputs(self.reformer, base_inputs)
            if list(labels.shape) != input_shape:
                raise ValueError(f"labels must have the input's shape {input_shape}, got {list(labels.shape)}.")
            if not _is_integer(labels):
                raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}.")
            bad = (labels != IGNORE_INDEX) & ((labels < 0) | (labels >= self.num_labels))
            if bool(bad.any()):
                raise ValueError(
                    f"labels contains class id {int(labels[bad][0])}, outside [0, {self.num_labels}) (num_labels) "
                    f"and not the ignore index -100."
                )
        outputs = self.reformer(
            **base_inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            use_cache=False, return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # [b, n, num_labels]
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits.float().reshape(-1, self.num_labels), labels.to(logits.device).reshape(-1).long(),
                ignore_index=IGNORE_INDEX,
            )
        if return_dict is False or (return_dict is None and not self.config.return_dict):
            return _to_tuple(loss, (logits,), outputs.hidden_states)
        return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


# ---------------------------------------------------------------------------------------------
# Extractive question answering


class ReformerForQuestionAnswering(ReformerPreTrainedModel):
    """Reformer with a head that scores every position as the start and as the end of an answer span.

    Requires ``config.num_labels=2``: ``qa_outputs`` maps each position to a start and an end score.
    """

    def __init__(self, config: ReformerConfig):
        if config.num_labels != 2:
            raise ValueError(
                f"ReformerForQuestionAnswering needs one start and one end score per position, but the config "
                f"has num_labels={config.num_labels}. Build the config with num_labels=2."
            )
        config = bidirectional_config(config, "ReformerForQuestionAnswering")
        super().__init__(config)
        self.num_labels = config.num_labels
        self.reformer = ReformerModel(config)
        self.qa_outputs = nn.Linear(2 * config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        num_hashes: int | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        """Score the start and end of the answer at every position; see ``ReformerModel.forward``.

        Args:
            start_positions, end_positions: ``[b]`` (or ``[b, 1]``) positions of the answer's first
                and last token, indices into the input as given, padding included. Pass both or
                neither. As in transformers, a position of ``n`` or more leaves that row's term out
                of the loss. NOTE: a negative position is clamped to 0 and so counts as position 0,
                also as in transformers; it is not ignored.

        Returns:
            ``QuestionAnsweringModelOutput`` with ``start_logits`` and ``end_logits``, each
            ``[b, n]``, and, when positions are given, ``loss``: the float32 mean of the start and
            end cross-entropies. Logits at padding positions are not masked. With
            ``return_dict=False``, the tuple ``(loss, start_logits, end_logits, hidden_states)``
            without the entries that are ``None``.

        Raises:
            ValueError: for the input errors of ``ReformerModel.forward``, only one of the two
                position tensors, or positions of the wrong shape or dtype, before the forward pass.
        """
        base_inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           inputs_embeds=inputs_embeds, num_hashes=num_hashes)
        if (start_positions is None) != (end_positions is None):
            provided_name = "start_positions" if start_positions is not None else "end_positions"
            raise ValueError(
                f"Pass both start_positions and end_positions to compute the loss, got only {provided_name}."
            )
        if start_positions is not None:
            batch_size, _ = _validate_base_inputs(self.reformer, base_inputs)
            start_positions = self._validate_positions("start_positions", start_positions, batch_size)
            end_positions = self._validate_positions("end_positions", end_positions, batch_size)

        outputs = self.reformer(
            **base_inputs, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            use_cache=False, return_dict=True,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)  # [b, n, 2]
        start_logits, end_logits = (part.squeeze(-1).contiguous() for part in logits.split(1, dim=-1))  # [b, n]

        loss = None
        if start_positions is not None:
            # Positions at or past the end become the ignore index n.
            length = start_logits.shape[1]
            start_positions = start_positions.to(logits.device).clamp(0, length)
            end_positions = end_positions.to(logits.device).clamp(0, length)
            start_loss = nn.functional.cross_entropy(start_logits.float(), start_positions, ignore_index=length)
            end_loss = nn.functional.cross_entropy(end_logits.float(), end_positions, ignore_index=length)
            loss = (start_loss + end_loss) / 2

        if return_dict is False or (return_dict is None and not self.config.return_dict):
            return _to_tuple(loss, (start_logits, end_logits), outputs.hidden_states)
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, hidden_states=outputs.hidden_states
        )

    @staticmethod
    def _validate_positions(name: str, positions: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Check one position tensor and return it as ``[b]`` int64."""
        if not _is_integer(positions):
            raise ValueError(f"{name} must be an integer tensor of token positions, got dtype {positions.dtype}.")
        if list(positions.shape) not in ([batch_size], [batch_size, 1]):
            raise ValueError(
                f"{name} must have shape [batch_size] = [{batch_size}], one position per row, "
                f"got {list(positions.shape)}."
            )
        return positions.reshape(-1).long()


__all__ = [
    "ReformerClassificationHead",
    "ReformerForMaskedLM",
    "ReformerForQuestionAnswering",
    "ReformerForSequenceClassification",
    "ReformerForTokenClassification",
    "bidirectional_config",
]
