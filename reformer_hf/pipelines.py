"""An extractive question-answering pipeline for ``pipeline("question-answering")``.

transformers 5 removed its question-answering pipeline. Extractive QA is what the Reformer's long
context is good at (the answer is a span of a long document), so importing ``reformer_hf`` registers
this pipeline under the task name again. It works with any model that returns ``start_logits`` and
``end_logits`` and a tokenizer that gives character offsets: a fast tokenizer, or
``ReformerByteTokenizer``, whose offsets follow from the UTF-8 bytes.
"""

import torch
from transformers import AutoModelForQuestionAnswering, Pipeline
from transformers import pipelines as transformers_pipelines

from .tokenization import ReformerByteTokenizer


class ExtractiveQuestionAnsweringPipeline(Pipeline):
    """Find the span of ``context`` that answers ``question``.

    Call it with ``question=`` and ``context=`` (strings or lists of strings), or with a dict or a
    list of dicts holding both. Options: ``top_k`` (answers per question, default 1) and
    ``max_answer_len`` (tokens, default 30). Each answer is a dict with ``score`` (the product of
    the start and end probabilities), ``start`` and ``end`` (character offsets into the context)
    and ``answer``. A context longer than the tokenizer's ``model_max_length`` is truncated.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, *args, question=None, context=None, **kwargs):
        if args and (question is not None or context is not None):
            raise ValueError("Pass the inputs either positionally or as question= and context=, not both.")
        if not args:
            if question is None or context is None:
                raise ValueError("Pass both question= and context=.")
            if isinstance(question, str) != isinstance(context, str):
                raise ValueError("question and context must both be strings or both be lists of strings.")
            if isinstance(question, str):
                args = ({"question": question, "context": context},)
            else:
                if len(question) != len(context):
                    raise ValueError(f"Got {len(question)} questions but {len(context)} contexts; pass one of each.")
                args = ([{"question": q, "context": c} for q, c in zip(question, context)],)
        return super().__call__(*args, **kwargs)

    def _sanitize_parameters(self, top_k=None, max_answer_len=None, **kwargs):
        postprocess = {}
        if top_k is not None:
            if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
                raise ValueError(f"top_k must be a positive int, got {top_k!r}.")
            postprocess["top_k"] = top_k
        if max_answer_len is not None:
            if isinstance(max_answer_len, bool) or not isinstance(max_answer_len, int) or max_answer_len < 1:
                raise ValueError(f"max_answer_len must be a positive int, got {max_answer_len!r}.")
            postprocess["max_answer_len"] = max_answer_len
        return {}, {}, postprocess

    def preprocess(self, inputs):
        if not isinstance(inputs, dict) or not {"question", "context"} <= set(inputs):
            raise ValueError(f"Each input must be a dict with 'question' and 'context', got {inputs!r}.")
        question, context = inputs["question"], inputs["context"]
        if not isinstance(question, str) or not isinstance(context, str) or not question or not context:
            raise ValueError("question and context must be non-empty strings.")
        input_ids, offsets = self._encode(question, context)
        return {
            "model_inputs": {"input_ids": torch.tensor([input_ids]), "attention_mask": torch.ones(1, len(input_ids),
                                                                                               dtype=torch.long)},
            "offsets": offsets,
            "context": context,
        }

    def _encode(self, question: str, context: str) -> tuple[list[int], list[tuple[int, int] | None]]:
        """Return the ids of question and context, and each id's character span in the context."""
        tokenizer = self.tokenizer
        limit = tokenizer.model_max_length if tokenizer.model_max_length < 10**9 else None
        if isinstance(tokenizer, ReformerByteTokenizer):
            question_ids = tokenizer(question, add_special_tokens=False)["input_ids"]
            separator = [tokenizer.eos_token_id]
            context_ids, offsets = [], []
            for position, character in enumerate(context):
                character_ids = tokenizer(character, add_special_tokens=False)["input_ids"]
                context_ids += character_ids
                offsets += [(position, position + 1)] * len(character_ids)
            prefix = question_ids + separator
            if limit is not None and len(prefix) + len(context_ids) > limit:
                keep = max(limit - len(prefix), 0)
                context_ids, offsets = context_ids[:keep], offsets[:keep]
            return prefix + context_ids, [None] * len(prefix) + offsets
        if not tokenizer.is_fast:
            raise ValueError(
                f"The question-answering pipeline needs character offsets, which {type(tokenizer).__name__} cannot "
                f"give. Use a fast tokenizer or ReformerByteTokenizer."
            )
        encoding = tokenizer(question, context, return_offsets_mapping=True, truncation="only_second",
                             max_length=limit)
        sequence_ids = encoding.sequence_ids(0)
        offsets = [tuple(span) if sequence == 1 else None
                   for span, sequence in zip(encoding["offset_mapping"], sequence_ids)]
        return encoding["input_ids"], offsets

    def _forward(self, inputs):
        outputs = self.model(**inputs["model_inputs"])
        return {"start_logits": outputs.start_logits[0], "end_logits": outputs.end_logits[0],
                "offsets": inputs["offsets"], "context": inputs["context"]}

    def postprocess(self, outputs, top_k=1, max_answer_len=30):
        offsets, context = outputs["offsets"], outputs["context"]
        in_context = torch.tensor([span is not None for span in offsets])
        if not bool(in_context.any()):
            raise ValueError("The context was truncated away: shorten the question or raise model_max_length.")
        start = outputs["start_logits"].float().masked_fill(~in_context, float("-inf")).softmax(-1)
        end = outputs["end_logits"].float().masked_fill(~in_context, float("-inf")).softmax(-1)
        scores = start[:, None] * end[None, :]  # [start, end]
        length = scores.shape[0]
        band = torch.ones(length, length, dtype=torch.bool).triu().tril(max_answer_len - 1)
        scores = scores.masked_fill(~band, 0.0)
        best = scores.flatten().topk(min(top_k, int(band.sum()))).indices
        answers = []
        for index in best.tolist():
            first, last = divmod(index, length)
            if offsets[first] is None or offsets[last] is None:
                continue
            char_start, char_end = offsets[first][0], offsets[last][1]
            answers.append({"score": scores[first, last].item(), "start": char_start, "end": char_end,
                            "answer": context[char_start:char_end]})
        return answers[0] if top_k == 1 else answers


# transformers lists the task as removed and would refuse it before looking at the registry.
transformers_pipelines.REMOVED_TASKS.pop("question-answering", None)
transformers_pipelines.PIPELINE_REGISTRY.register_pipeline(
    "question-answering",
    pipeline_class=ExtractiveQuestionAnsweringPipeline,
    pt_model=AutoModelForQuestionAnswering,
    type="text",
)
