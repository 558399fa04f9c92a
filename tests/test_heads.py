"""Task heads: masked LM, sequence classification and question answering. Shapes, losses checked
against hand-computed values, input errors, pooling under padding, saving and loading, parameter
names shared with transformers' Reformer heads, and one short training run.

Outputs are compared in evaluation mode with ``hash_seed`` set, so that LSH layers hash the same way
on every call.
"""

import re
import time

import pytest
import torch
import transformers
from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoModelForSequenceClassification

import reformer_hf  # noqa: F401  (registers the Auto classes)
from reformer_hf.heads import ReformerForMaskedLM, ReformerForQuestionAnswering, ReformerForSequenceClassification

# Each position also attends to the chunk after it, as an encoder does.
BIDIRECTIONAL = dict(is_decoder=False, lsh_num_chunks_after=1, local_num_chunks_after=1)


def raises_message(text: str):
    return pytest.raises(ValueError, match=re.escape(text))


def random_ids(*shape: int) -> torch.Tensor:
    """Ids of ordinary tokens: 3 and up, past the special ids 0, 1 and 2."""
    return torch.randint(3, 32, shape)


def guard_embeddings(model) -> list:
    """Return the list that records every call reaching the model's embeddings."""
    embedding_calls = []
    model.base_model.embeddings.register_forward_pre_hook(lambda module, args: embedding_calls.append(module))
    return embedding_calls


def masked_lm(tiny_config, **overrides) -> ReformerForMaskedLM:
    return ReformerForMaskedLM(tiny_config(**{**BIDIRECTIONAL, **overrides})).eval()


def classifier(tiny_config, num_labels: int = 3, **overrides) -> ReformerForSequenceClassification:
    config = tiny_config(**{**BIDIRECTIONAL, "num_labels": num_labels, **overrides})
    return ReformerForSequenceClassification(config).eval()


def question_answering(tiny_config, **overrides) -> ReformerForQuestionAnswering:
    return ReformerForQuestionAnswering(tiny_config(**{**BIDIRECTIONAL, **overrides})).eval()


# ---------------------------------------------------------------------------------------------
# Masked language modelling


def test_masked_lm_output_shapes(tiny_config):
    model = masked_lm(tiny_config)
    with torch.no_grad():
        outputs = model(random_ids(2, 9), output_hidden_states=True)
    assert outputs.logits.shape == (2, 9, 32)
    assert len(outputs.hidden_states) == 2 + 1
    assert outputs.loss is None


def test_masked_lm_loss_matches_cross_entropy(tiny_config):
    model = masked_lm(tiny_config)
    input_ids = random_ids(2, 11)
    labels = torch.full_like(input_ids, -100)
    labels[0, [1, 4, 9]] = random_ids(3)
    labels[1, [0, 10]] = random_ids(2)

    outputs = model(input_ids, labels=labels)

    log_probs = torch.log_softmax(outputs.logits.double(), dim=-1)  # no shift: position t predicts labels[t]
    counted = labels != -100
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    expected = -picked[counted].sum() / counted.sum()
    assert outputs.loss.dtype == torch.float32
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_masked_lm_chunked_head_matches(tiny_config):
    model = masked_lm(tiny_config)
    chunked = masked_lm(tiny_config, lm_head_chunk_size=3)
    chunked.load_state_dict(model.state_dict())
    head_calls = []
    chunked.lm_head.register_forward_hook(lambda module, args, output: head_calls.append(output.shape[1]))
    input_ids = random_ids(2, 10)

    with torch.no_grad():
        logits = model(input_ids).logits
        chunked_logits = chunked(input_ids).logits

    assert head_calls == [3, 3, 3, 1]
    # The slices are smaller matrix products, so the last bit of float32 rounding may differ.
    torch.testing.assert_close(chunked_logits, logits, rtol=0, atol=1e-6)


@pytest.mark.parametrize("head", ["ReformerForMaskedLM", "ReformerForSequenceClassification",
                                  "ReformerForTokenClassification", "ReformerForQuestionAnswering"])
def test_encoder_heads_switch_a_causal_config_to_bidirectional(tiny_config, head):
    config = tiny_config(is_decoder=True)
    model = getattr(reformer_hf, head)(config)
    assert model.config.is_decoder is False
    assert (model.config.lsh_num_chunks_after, model.config.local_num_chunks_after) == (1, 1)
    # The caller's config is left as it was.
    assert config.is_decoder is True
    assert config.lsh_num_chunks_after == 0
    # A bidirectional config keeps its own look-ahead.
    kept = getattr(reformer_hf, head)(tiny_config(is_decoder=False, lsh_num_chunks_after=2))
    assert (kept.config.lsh_num_chunks_after, kept.config.local_num_chunks_after) == (2, 0)


@pytest.mark.parametrize("auto_class", ["AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM",
                                        "AutoModelForSequenceClassification", "AutoModelForTokenClassification",
                                        "AutoModelForQuestionAnswering"])
def test_default_config_builds_under_every_auto_class(auto_class):
    model = getattr(transformers, auto_class).from_config(reformer_hf.ReformerConfig())
    assert type(model).__module__.startswith("reformer_hf.")


MASKED_LM_LABEL_ERRORS = {
    "shape": (torch.full((2, 3), 5), "labels must have the input's shape [2, 4], got [2, 3]."),
    "float": (torch.full((2, 4), 5.0), "labels must be an integer tensor of token ids, got dtype torch.float32."),
    "outside-vocab": (
        torch.tensor([[5, -100, 5, 5], [5, 5, 32, 5]]),
        "labels contains id 32, outside the vocabulary [0, 32) and not the ignore index -100.",
    ),
    "negative": (
        torch.tensor([[5, -100, -1, 5], [5, 5, 5, 5]]),
        "labels contains id -1, outside the vocabulary [0, 32) and not the ignore index -100.",
    ),
}


@pytest.mark.parametrize("case", list(MASKED_LM_LABEL_ERRORS))
def test_masked_lm_label_error(tiny_config, case):
    model = masked_lm(tiny_config)
    embedding_calls = guard_embeddings(model)
    labels, message = MASKED_LM_LABEL_ERRORS[case]
    with raises_message(message):
        model(torch.full((2, 4), 5), labels=labels)
    assert embedding_calls == []


def test_masked_lm_input_error_before_labels(tiny_config):
    model = masked_lm(tiny_config)
    with raises_message("input_ids contains id 40, outside the vocabulary [0, 32)."):
        model(torch.tensor([[5, 40, 6]]), labels=torch.tensor([[5, 40]]))


def test_masked_lm_tuple_output(tiny_config):
    model = masked_lm(tiny_config)
    input_ids = random_ids(2, 9)
    loss, logits, hidden_states = model(input_ids, labels=input_ids, output_hidden_states=True, return_dict=False)
    as_dict = model(input_ids, labels=input_ids, output_hidden_states=True)
    assert torch.equal(loss, as_dict.loss)
    assert torch.equal(logits, as_dict.logits)
    assert len(hidden_states) == len(as_dict.hidden_states)


def test_masked_lm_output_embeddings(tiny_config):
    model = masked_lm(tiny_config)
    assert model.get_output_embeddings() is model.lm_head
    replacement = torch.nn.Linear(64, 32)
    model.set_output_embeddings(replacement)
    assert model.lm_head is replacement


# ---------------------------------------------------------------------------------------------
# Sequence classification


def test_seq_cls_output_shapes(tiny_config):
    model = classifier(tiny_config, num_labels=3)
    with torch.no_grad():
        outputs = model(random_ids(2, 9), output_hidden_states=True)
    assert outputs.logits.shape == (2, 3)
    assert len(outputs.hidden_states) == 2 + 1
    assert outputs.loss is None


def test_seq_cls_single_label_loss(tiny_config):
    model = classifier(tiny_config, num_labels=3)
    labels = torch.tensor([2, -100, 0, 1])

    outputs = model(random_ids(4, 9), labels=labels)

    log_probs = torch.log_softmax(outputs.logits.double(), dim=-1)
    counted = labels != -100
    expected = -log_probs[counted, labels[counted]].mean()
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_seq_cls_regression_loss(tiny_config):
    model = classifier(tiny_config, num_labels=1)
    labels = torch.tensor([0.5, -1.0, 2.0])

    outputs = model(random_ids(3, 9), labels=labels)

    expected = ((outputs.logits[:, 0].double() - labels.double()) ** 2).mean()
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_seq_cls_multi_label_loss(tiny_config):
    model = classifier(tiny_config, num_labels=3)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.5]])

    outputs = model(random_ids(2, 9), labels=labels)

    logits = outputs.logits.double()
    targets = labels.double()
    expected = -(targets * torch.nn.functional.logsigmoid(logits)
                 + (1 - targets) * torch.nn.functional.logsigmoid(-logits)).mean()
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_seq_cls_explicit_regression(tiny_config):
    model = classifier(tiny_config, num_labels=2, problem_type="regression")
    labels = torch.tensor([[0.5, 1.0], [-1.0, 0.0]])

    outputs = model(random_ids(2, 9), labels=labels)

    expected = ((outputs.logits.double() - labels.double()) ** 2).mean()
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_seq_cls_leaves_problem_type_unset(tiny_config):
    model = classifier(tiny_config, num_labels=3)
    model(random_ids(2, 9), labels=torch.tensor([0, 2]))
    assert model.config.problem_type is None


PADDED_ROWS = {
    "left": (16, list(range(6, 16))),
    "right": (14, list(range(10))),
    "both-sides": (16, list(range(3, 13))),
    "left-with-hole": (16, [4, 5, 6, 8, 9, 10, 11, 12, 13, 15]),
}


@pytest.mark.parametrize("layout", list(PADDED_ROWS))
def test_seq_cls_pools_first_real_token(tiny_config, layout):
    model = classifier(tiny_config, num_labels=3)
    tokens = random_ids(10)
    length, real_slots = PADDED_ROWS[layout]
    padded = random_ids(length)
    padded[real_slots] = tokens
    attention_mask = torch.zeros(2, length, dtype=torch.long)
    attention_mask[0] = 1  # a full row beside the padded one
    attention_mask[1, real_slots] = 1
    input_ids = torch.stack([random_ids(length), padded])

    with torch.no_grad():
        expected = model(tokens[None]).logits[0]
        logits = model(input_ids, attention_mask=attention_mask).logits
        hidden_states = model.reformer(input_ids, attention_mask=attention_mask).last_hidden_state
        at_position_zero = model.classifier(hidden_states[1, 0])

    torch.testing.assert_close(logits[1], expected, rtol=0, atol=1e-5)
    if real_slots[0] != 0:
        assert not torch.allclose(at_position_zero, expected, atol=1e-3), "position 0 is padding here"


def test_seq_cls_mean_pooling(tiny_config):
    model = classifier(tiny_config, num_labels=3)
    input_ids = random_ids(2, 9)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    with torch.no_grad():
        logits = model(input_ids, attention_mask=attention_mask).logits
        hidden = model.reformer(input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = torch.stack([hidden[0].mean(dim=0), hidden[1, :6].mean(dim=0)])
        head = model.classifier
        expected = head.out_proj(torch.tanh(head.dense(pooled)))
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)


def test_seq_cls_head_layers(tiny_config):
    model = classifier(tiny_config, num_labels=3, classifier_pooling="first")
    input_ids = random_ids(2, 9)
    with torch.no_grad():
        logits = model(input_ids).logits
        pooled = model.reformer(input_ids).last_hidden_state[:, 0]
        head = model.classifier
        expected = head.out_proj(torch.tanh(head.dense(pooled)))
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)


def test_seq_cls_classifier_dropout(tiny_config):
    assert classifier(tiny_config, classifier_dropout=0.3).classifier.dropout.p == 0.3
    assert classifier(tiny_config, hidden_dropout_prob=0.2).classifier.dropout.p == 0.2


# Each case: config overrides, the forward inputs and the message.
SEQ_CLS_ERRORS = {
    "class-id-too-large": (
        dict(num_labels=3), dict(labels=torch.tensor([0, 3])),
        "labels contains class id 3, outside [0, 3) (num_labels) and not the ignore index -100.",
    ),
    "class-id-negative": (
        dict(num_labels=3), dict(labels=torch.tensor([-1, 0])),
        "labels contains class id -1, outside [0, 3) (num_labels)",
    ),
    "class-ids-shape": (
        dict(num_labels=3), dict(labels=torch.tensor([0, 1, 2])),
        "labels must have shape [batch_size] = [2] of class ids, got [3].",
    ),
    "float-class-ids": (
        dict(num_labels=3), dict(labels=torch.tensor([0.0, 1.0])),
        "labels must have shape [batch_size, num_labels] = [2, 3] for multi_label_classification, got [2]. "
        "For single-label classification pass integer class ids.",
    ),
    "explicit-single-label-float": (
        dict(num_labels=3, problem_type="single_label_classification"), dict(labels=torch.tensor([0.0, 1.0])),
        "labels must be integer class ids for single_label_classification, got dtype torch.float32.",
    ),
    "multi-label-range": (
        dict(num_labels=3), dict(labels=torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])),
        "labels for multi_label_classification must be targets in [0, 1], one per class.",
    ),
    "regression-shape": (
        dict(num_labels=1), dict(labels=torch.zeros(2, 2)),
        "labels must have shape [batch_size] = [2] for regression, got [2, 2].",
    ),
    "unknown-problem-type": (
        dict(num_labels=3, problem_type="ranking"), dict(labels=torch.tensor([0, 1])),
        "config.problem_type must be one of 'regression', 'single_label_classification', "
        "'multi_label_classification' or None, got 'ranking'.",
    ),
    "row-without-real-tokens": (
        dict(num_labels=3), dict(attention_mask=torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]])),
        "attention_mask has no real token in rows [1], so there is nothing to classify.",
    ),
}


@pytest.mark.parametrize("case", list(SEQ_CLS_ERRORS))
def test_seq_cls_input_error(tiny_config, case):
    overrides, inputs, message = SEQ_CLS_ERRORS[case]
    model = classifier(tiny_config, **overrides)
    embedding_calls = guard_embeddings(model)
    with raises_message(message):
        model(torch.full((2, 4), 5), **inputs)
    assert embedding_calls == []


def test_seq_cls_rejects_zero_labels(tiny_config):
    with raises_message("num_labels must be at least 1, got 0."):
        classifier(tiny_config, num_labels=0)


def toy_presence_batch(batch_size: int, length: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids 6 to 31. Rows labelled 1 get the id 5 at one random position."""
    input_ids = torch.randint(6, 32, (batch_size, length))
    labels = torch.randint(0, 2, (batch_size,))
    rows = labels.nonzero().flatten()
    input_ids[rows, torch.randint(0, length, (len(rows),))] = 5
    return input_ids, labels


def test_seq_cls_learns_token_presence(tiny_config):
    # The first token must attend to the whole row: LSH chunks of 16 with one chunk before and after
    # cover all 32 positions. On one CPU thread of the development machine, 150 Adam steps took
    # about 2.3 s and reached 97-99% accuracy for torch seeds 0 to 3.
    model = ReformerForSequenceClassification(
        tiny_config(**BIDIRECTIONAL, lsh_chunk_length=16, num_labels=2, classifier_pooling="first")
    ).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    started = time.perf_counter()
    for _ in range(150):
        input_ids, labels = toy_presence_batch(32)
        loss = model(input_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - started

    model.eval()
    input_ids, labels = toy_presence_batch(512)
    with torch.no_grad():
        accuracy = (model(input_ids).logits.argmax(dim=-1) == labels).float().mean().item()
    assert accuracy > 0.85, f"accuracy {accuracy:.3f} after {seconds:.1f} s of training; chance is 0.5"


# ---------------------------------------------------------------------------------------------
# Question answering


def hand_span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    """Mean of the start and end cross-entropies over positions inside the row, in float64."""

    def cross_entropy(logits, positions):
        log_probs = torch.log_softmax(logits.double(), dim=-1)
        counted = positions < logits.shape[1]
        return -log_probs[counted, positions[counted]].mean()

    return (cross_entropy(start_logits, start_positions) + cross_entropy(end_logits, end_positions)) / 2


def test_qa_output_shapes(tiny_config):
    model = question_answering(tiny_config)
    with torch.no_grad():
        outputs = model(random_ids(2, 9))
    assert outputs.start_logits.shape == (2, 9)
    assert outputs.end_logits.shape == (2, 9)
    assert outputs.loss is None


def test_qa_loss_matches_cross_entropy(tiny_config):
    model = question_answering(tiny_config)
    start_positions = torch.tensor([2, 0, 5])
    end_positions = torch.tensor([4, 8, 5])

    outputs = model(random_ids(3, 9), start_positions=start_positions, end_positions=end_positions)

    expected = hand_span_loss(outputs.start_logits, outputs.end_logits, start_positions, end_positions)
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_qa_ignores_out_of_range_positions(tiny_config):
    model = question_answering(tiny_config)
    start_positions = torch.tensor([2, 9, 5])  # 9 and 40 are past the 9 positions
    end_positions = torch.tensor([4, 8, 40])

    outputs = model(random_ids(3, 9), start_positions=start_positions, end_positions=end_positions)

    expected = hand_span_loss(outputs.start_logits, outputs.end_logits, start_positions, end_positions)
    torch.testing.assert_close(outputs.loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_qa_negative_position_counts_as_zero(tiny_config):
    model = question_answering(tiny_config)
    input_ids = random_ids(1, 9)
    with torch.no_grad():
        negative = model(input_ids, start_positions=torch.tensor([-3]), end_positions=torch.tensor([4])).loss
        zero = model(input_ids, start_positions=torch.tensor([0]), end_positions=torch.tensor([4])).loss
    assert torch.equal(negative, zero)


def test_qa_tuple_output(tiny_config):
    model = question_answering(tiny_config)
    input_ids = random_ids(2, 9)
    positions = dict(start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([3, 4]))
    loss, start_logits, end_logits = model(input_ids, **positions, return_dict=False)
    as_dict = model(input_ids, **positions)
    assert torch.equal(loss, as_dict.loss)
    assert torch.equal(start_logits, as_dict.start_logits)
    assert torch.equal(end_logits, as_dict.end_logits)


def test_qa_rejects_other_num_labels(tiny_config):
    with raises_message(
        "ReformerForQuestionAnswering needs one start and one end score per position, but the config has "
        "num_labels=3. Build the config with num_labels=2."
    ):
        ReformerForQuestionAnswering(tiny_config(num_labels=3))


QA_POSITION_ERRORS = {
    "start-only": (
        dict(start_positions=torch.tensor([1, 2])),
        "Pass both start_positions and end_positions to compute the loss, got only start_positions.",
    ),
    "end-only": (
        dict(end_positions=torch.tensor([1, 2])),
        "Pass both start_positions and end_positions to compute the loss, got only end_positions.",
    ),
    "float-positions": (
        dict(start_positions=torch.tensor([1.0, 2.0]), end_positions=torch.tensor([1, 2])),
        "start_positions must be an integer tensor of token positions, got dtype torch.float32.",
    ),
    "positions-shape": (
        dict(start_positions=torch.tensor([1, 2]), end_positions=torch.tensor([1, 2, 3])),
        "end_positions must have shape [batch_size] = [2], one position per row, got [3].",
    ),
}


@pytest.mark.parametrize("case", list(QA_POSITION_ERRORS))
def test_qa_position_error(tiny_config, case):
    model = question_answering(tiny_config)
    embedding_calls = guard_embeddings(model)
    inputs, message = QA_POSITION_ERRORS[case]
    with raises_message(message):
        model(torch.full((2, 4), 5), **inputs)
    assert embedding_calls == []


# ---------------------------------------------------------------------------------------------
# All heads: shared arguments, saving and loading, parameter names


HEADS = {
    "masked-lm": (masked_lm, AutoModelForMaskedLM, "logits"),
    "seq-cls": (classifier, AutoModelForSequenceClassification, "logits"),
    "qa": (question_answering, AutoModelForQuestionAnswering, "start_logits"),
}


@pytest.mark.parametrize("head", list(HEADS))
def test_head_accepts_use_cache(tiny_config, head):
    build, _, output_name = HEADS[head]
    model = build(tiny_config)
    input_ids = random_ids(2, 10)
    with torch.no_grad():
        plain = getattr(model(input_ids), output_name)
        with_flag = getattr(model(input_ids, use_cache=False), output_name)
    assert torch.equal(plain, with_flag)


@pytest.mark.parametrize("head", list(HEADS))
def test_head_rejects_output_attentions(tiny_config, head):
    build, _, _ = HEADS[head]
    model = build(tiny_config)
    with pytest.raises(ValueError, match=r"output_attentions=True is not supported"):
        model(random_ids(1, 8), output_attentions=True)


@pytest.mark.parametrize("head", list(HEADS))
def test_head_auto_round_trip(tiny_config, tmp_path, head):
    build, auto_class, output_name = HEADS[head]
    model = build(tiny_config, attention_layers=["lsh", "local", "full"], num_hashes=2)
    model.save_pretrained(tmp_path)

    loaded, loading_info = auto_class.from_pretrained(tmp_path, output_loading_info=True)
    loaded.eval()
    input_ids = random_ids(2, 13)

    assert type(loaded) is type(model)
    assert not loading_info["missing_keys"]
    assert not loading_info["unexpected_keys"]
    assert not loading_info["mismatched_keys"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(getattr(loaded(input_ids), output_name), getattr(model(input_ids), output_name))


def transformers_head_shapes(model_class, num_labels: int) -> dict[str, tuple]:
    """Shapes of the head parameters (those outside ``reformer.``) of a transformers Reformer model."""
    config = transformers.ReformerConfig(
        vocab_size=32,
        hidden_size=32,
        num_attention_heads=2,
        attention_head_size=8,
        feed_forward_size=64,
        attn_layers=["lsh", "local"],
        axial_pos_shape=[8, 8],
        axial_pos_embds_dim=[16, 16],
        max_position_embeddings=64,
        num_buckets=4,
        lsh_attn_chunk_length=4,
        local_attn_chunk_length=4,
        is_decoder=False,
        num_labels=num_labels,
    )
    state_dict = model_class(config).state_dict()
    return {name: tuple(tensor.shape) for name, tensor in state_dict.items() if not name.startswith("reformer.")}


def head_shapes(model) -> dict[str, tuple]:
    state_dict = model.state_dict()
    return {name: tuple(tensor.shape) for name, tensor in state_dict.items() if not name.startswith("reformer.")}


def test_head_names_match_transformers(tiny_config):
    seq_cls = classifier(tiny_config, num_labels=3)
    qa = question_answering(tiny_config)
    assert head_shapes(seq_cls) == transformers_head_shapes(transformers.ReformerForSequenceClassification, 3)
    assert head_shapes(qa) == transformers_head_shapes(transformers.ReformerForQuestionAnswering, 2)


def test_masked_lm_head_maps_to_transformers(tiny_config):
    # transformers (5.25) names the layer lm_head.decoder and also stores an lm_head.bias of the
    # same shape, which its forward pass does not read.
    expected = transformers_head_shapes(transformers.ReformerForMaskedLM, 2)
    assert head_shapes(masked_lm(tiny_config)) == {
        "lm_head.weight": expected["lm_head.decoder.weight"],
        "lm_head.bias": expected["lm_head.decoder.bias"],
    }
    assert expected["lm_head.bias"] == expected["lm_head.decoder.bias"]


# ---------------------------------------------------------------------------------------------
# Token classification


def test_token_classification_loss_and_shapes(tiny_config):
    model = reformer_hf.ReformerForTokenClassification(tiny_config(num_labels=4, hidden_dropout_prob=0.0))
    input_ids = random_ids(2, 11)
    labels = torch.randint(0, 4, (2, 11))
    labels[0, :3] = -100
    output = model(input_ids, labels=labels)
    assert output.logits.shape == (2, 11, 4)
    kept = labels != -100
    expected = torch.nn.functional.cross_entropy(output.logits[kept], labels[kept])
    torch.testing.assert_close(output.loss, expected)
    assert model(input_ids, return_dict=False)[0].shape == (2, 11, 4)


@pytest.mark.parametrize("labels, message", [
    (torch.zeros(2, 10, dtype=torch.long), "labels must have the input's shape [2, 11], got [2, 10]."),
    (torch.zeros(2, 11), "labels must be an integer tensor of class ids, got dtype torch.float32."),
    (torch.full((2, 11), 4), "labels contains class id 4, outside [0, 4) (num_labels) and not the ignore index -100."),
])
def test_token_classification_label_errors(tiny_config, labels, message):
    model = reformer_hf.ReformerForTokenClassification(tiny_config(num_labels=4))
    with raises_message(message):
        model(random_ids(2, 11), labels=labels)


def test_token_classification_auto_round_trip(tiny_config, tmp_path):
    model = reformer_hf.ReformerForTokenClassification(tiny_config(num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    input_ids = random_ids(2, 9)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids).logits, model(input_ids).logits)
