"""Training of a subword tokenizer with SentencePiece, saved as a Hugging Face fast tokenizer.

A subword vocabulary encodes text in fewer tokens than the one token per byte of
``ReformerByteTokenizer``, so the same position capacity covers more text. The SentencePiece library
trains the vocabulary. The ``tokenizers`` library then rebuilds the trained model (Unigram or BPE)
with the same pieces, ids and scores, so that ``AutoTokenizer`` loads it as a fast tokenizer that
encodes every ordinary text to the ids that ``SentencePieceProcessor.encode`` returns.
"""

import io
import os
import random
import re
from collections.abc import Iterable, Iterator, Sequence

import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers import PreTrainedTokenizerFast
from transformers.utils import logging

from .data import load_documents

logger = logging.get_logger(__name__)

MODEL_TYPES = ("unigram", "bpe")
SENTENCEPIECE_MODEL_FILE = "sentencepiece.model"

# The position capacity of the default ReformerConfig (axial_pos_shape 128 x 128).
DEFAULT_MODEL_MAX_LENGTH = 16_384
# SentencePiece's default character coverage.
DEFAULT_CHARACTER_COVERAGE = 0.9995
DEFAULT_INPUT_SENTENCE_SIZE = 1_000_000
# SentencePiece's default max_sentence_length. SentencePiece skips training sentences longer than
# this many UTF-8 bytes, so longer lines are split at spaces first.
MAX_SENTENCE_BYTES = 4_192
# Characters that are always pieces, even when the training lines never contain them. Lines are
# read without their line breaks, and a newline must not become <unk> when byte_fallback is off.
WHITESPACE_CHARACTERS = "\t\n\r"
NUM_BYTE_PIECES = 256
# Score given in the fast tokenizer to pieces that SentencePiece never matches in text, such as
# special tokens and byte pieces. It is far below every learned score, so the Unigram model of
# ``tokenizers`` spells a literal "<0x41>" with text pieces as SentencePiece does. The NOTE in
# train_sentencepiece_tokenizer names the exception.
UNMATCHED_PIECE_SCORE = -1e6


# The special tokens by their transformers attribute name, in id order: pad 0, bos 1, eos 2, unk 3,
# cls 4, sep 5, mask 6. Pad, bos and eos have the ids that ReformerConfig defaults to.
SPECIAL_TOKENS = {
    "pad_token": "<pad>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "cls_token": "<cls>",
    "sep_token": "<sep>",
    "mask_token": "<mask>",
}


def train_sentencepiece_tokenizer(
    files: Sequence[str | os.PathLike] | str | os.PathLike,
    vocab_size: int,
    output_dir: str | os.PathLike,
    *,
    model_type: str = "unigram",
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
    character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
    input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE,
    seed: int = 0,
    byte_fallback: bool = True,
    add_cls_and_sep: bool = False,
    num_threads: int = 16,
) -> PreTrainedTokenizerFast:
    """Train a SentencePiece model on text files and save it as a Hugging Face fast tokenizer.

    The files are read as ``pretrain`` reads them (``reformer_hf.data.load_documents``): plain
    UTF-8 text, or Wikipedia XML dumps (``.xml`` or ``.bz2``) as article text. Each line that is not
    blank is one training sentence, and lines longer than 4,192 UTF-8 bytes are split at spaces.
    Training runs in this process.

    The vocabulary has exactly ``vocab_size`` ids, and the special tokens take the first seven:

    ====  ==========  ===============================================================
    id    token       role
    ====  ==========  ===============================================================
    0     ``<pad>``   padding, the ``pad_token_id`` default of ``ReformerConfig``
    1     ``<s>``     beginning of sequence (``bos_token_id`` default)
    2     ``</s>``    end of sequence (``eos_token_id`` default), appended to each
                      document by ``pretrain``
    3     ``<unk>``   unknown text, produced only with ``byte_fallback=False``
    4     ``<cls>``   start of an encoded pair, the token that
                      ``ReformerForSequenceClassification`` pools
    5     ``<sep>``   end of each text of an encoded pair
    6     ``<mask>``  masked token for ``ReformerForMaskedLM``
    ====  ==========  ===============================================================

    With ``byte_fallback`` the next 256 ids are byte pieces ``<0x00>`` to ``<0xFF>``, so a
    character outside the vocabulary is encoded as its UTF-8 bytes instead of ``<unk>``.

    With ``add_special_tokens=True`` (the default of a tokenizer call) a pair of texts is encoded as
    ``<cls> A <sep> B <sep>``, the input of the classification and question answering heads. A
    single text is encoded without special tokens, as ``ReformerByteTokenizer`` encodes it, because
    the text-generation pipeline of transformers 5.25 encodes prompts with the tokenizer's default,
    and a causal language model should continue the prompt's text, not a ``<sep>``. ``pretrain``
    encodes without special tokens and appends ``</s>`` to each document. Pass
    ``add_cls_and_sep=True`` for a tokenizer that encodes a single text as ``<cls> A <sep>``, for
    classification of single texts.

    The text is not normalized: no Unicode normalization, spaces kept as they are and no space
    added in front of the text. So ``decode(encode(text))`` returns the text, with the exceptions
    listed below.

    Args:
        files: Paths of the training text files, or one path.
        vocab_size: Number of ids, special tokens and byte pieces included.
        output_dir: Folder to write ``tokenizer.json``, ``tokenizer_config.json`` and
            ``sentencepiece.model`` (the trained model, for ``sentencepiece`` users) to. It is
            created if missing, and files of the same names are overwritten.
        model_type: ``"unigram"`` or ``"bpe"``.
        model_max_length: The tokenizer's ``model_max_length``. Set it to the model's
            ``max_position_embeddings``. The default is that of the default ``ReformerConfig``.
        character_coverage: Share of the corpus's characters that get their own piece. The
            rarest characters beyond it are encoded as bytes, or as ``<unk>`` without
            ``byte_fallback``.
        input_sentence_size: Number of lines sampled uniformly from the corpus for training;
            0 trains on every line.
        seed: Seed of that sample. It changes nothing when the corpus has at most
            ``input_sentence_size`` lines.
        byte_fallback: Reserve 256 ids for bytes, so that no text encodes to ``<unk>``.
        add_cls_and_sep: Encode a single text as ``<cls> A <sep>`` too, not only pairs.
        num_threads: Threads of SentencePiece training. The trained vocabulary depends on it: the
            same lines, ``seed`` and ``num_threads`` give the same tokenizer.

    Returns:
        The saved tokenizer, a ``PreTrainedTokenizerFast``, which
        ``AutoTokenizer.from_pretrained(output_dir)`` loads back.

    Raises:
        FileNotFoundError: when a file does not exist.
        ValueError: when an argument is invalid, no file is given, a path is a directory, the
            corpus contains no text, or ``output_dir`` is a file. Also when ``vocab_size`` is too
            small for the special tokens, byte pieces and the corpus's characters, or (Unigram)
            too large for the corpus.

    NOTE: Text that contains a special token's string, such as ``"</s>"``, is encoded to the
    special token's id, as transformers tokenizers do unless ``split_special_tokens=True``. The
    character U+2581 (``"▁"``, SentencePiece's space symbol) decodes as a space. When at least two
    characters of a special token's or byte piece's string (such as ``"<0x41>"``) have no piece of
    their own, a Unigram tokenizer encodes that string in text as the piece itself, where
    SentencePiece encodes its characters.
    """
    paths = _check_arguments(
        files, vocab_size, output_dir, model_type, model_max_length, character_coverage, input_sentence_size,
        seed, byte_fallback, add_cls_and_sep, num_threads,
    )
    lines, num_lines = _sample_lines(_iter_training_lines(paths), input_sentence_size, seed)
    if not lines:
        raise ValueError(
            f"The corpus is empty: the files {paths} contain no text other than whitespace. Pass files that "
            f"contain text."
        )
    logger.info("Training a %s SentencePiece model with %d ids on %d of %d lines.",
                model_type, vocab_size, len(lines), num_lines)

    model_bytes = _train_sentencepiece(lines, vocab_size, model_type, character_coverage, byte_fallback,
                                       num_threads)
    processor = spm.SentencePieceProcessor(model_proto=model_bytes)
    backend = _build_backend_tokenizer(processor, model_type, byte_fallback, add_cls_and_sep)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=model_max_length,
        model_input_names=["input_ids", "attention_mask"],
        # The default clean-up would delete spaces before punctuation when decoding.
        clean_up_tokenization_spaces=False,
        **SPECIAL_TOKENS,
    )

    os.makedirs(output_dir, exist_ok=True)
    tokenizer.save_pretrained(output_dir)
    with open(os.path.join(output_dir, SENTENCEPIECE_MODEL_FILE), "wb") as handle:
        handle.write(model_bytes)
    return tokenizer


def _check_arguments(
    files, vocab_size, output_dir, model_type, model_max_length, character_coverage, input_sentence_size, seed,
    byte_fallback, add_cls_and_sep, num_threads,
) -> list[str]:
    """Raise for the first invalid argument, and return the file paths as strings."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [os.path.expanduser(os.fspath(path)) for path in files]
    if not paths:
        raise ValueError("No training files given. Pass at least one text file in files.")
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"Training file not found: {path!r}. Check the path.")
        if os.path.isdir(path):
            raise ValueError(f"{path!r} is a directory, but files takes text files. Pass the files inside it.")
    if all(os.path.getsize(path) == 0 for path in paths):
        raise ValueError(f"The corpus is empty: the files {paths} contain no text. Pass files that contain text.")

    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}.")
    for name, value, minimum in (("vocab_size", vocab_size, 1), ("model_max_length", model_max_length, 1),
                                 ("input_sentence_size", input_sentence_size, 0), ("num_threads", num_threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive int" if minimum == 1 else "a non-negative int"
            raise ValueError(f"{name} must be {kind}, got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    for name, value in (("byte_fallback", byte_fallback), ("add_cls_and_sep", add_cls_and_sep)):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be True or False, got {value!r}.")
    if isinstance(character_coverage, bool) or not isinstance(character_coverage, (int, float)) or not (
        0 < character_coverage <= 1
    ):
        raise ValueError(
            f"character_coverage must be in (0, 1], got {character_coverage!r}. The default 0.9995 gives "
            f"every character a piece except the rarest 0.05% of the text."
        )

    num_reserved = len(SPECIAL_TOKENS) + len(WHITESPACE_CHARACTERS) + (NUM_BYTE_PIECES * byte_fallback)
    if vocab_size <= num_reserved:
        byte_part = f", {NUM_BYTE_PIECES} byte pieces" if byte_fallback else ""
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the {len(SPECIAL_TOKENS)} special tokens{byte_part} "
            f"and {len(WHITESPACE_CHARACTERS)} whitespace characters take {num_reserved} ids, and the corpus's "
            f"characters need more. Pass a larger vocab_size"
            + (f", or byte_fallback=False to free {NUM_BYTE_PIECES} ids." if byte_fallback else ".")
        )
    if os.path.isfile(output_dir):
        raise ValueError(f"output_dir must be a directory, got the file {os.fspath(output_dir)!r}.")
    return paths


def _iter_training_lines(paths: list[str]) -> Iterator[str]:
    """Yield the lines of every document that contain text, each at most ``MAX_SENTENCE_BYTES`` long."""
    documents = load_documents(data_files=paths)
    for batch in documents.iter(batch_size=16):
        for text in batch["text"]:
            for line in text.split("\n"):
                if line.strip():
                    yield from _split_long_line(line, MAX_SENTENCE_BYTES)


def _split_long_line(line: str, max_bytes: int) -> Iterator[str]:
    """Split a line into parts of at most ``max_bytes`` UTF-8 bytes, before a space where possible.

    Each part after the first starts with the space it was split at, as the words inside the line do.
    """
    while len(line.encode("utf-8")) > max_bytes:
        # Decoding the first max_bytes bytes drops a character cut in half at the end.
        head = line.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
        cut = head.rfind(" ")
        if cut <= 0:
            cut = len(head)
        yield line[:cut]
        line = line[cut:]
    if line:
        yield line


def _sample_lines(lines: Iterable[str], sample_size: int, seed: int) -> tuple[list[str], int]:
    """Draw ``sample_size`` lines uniformly by reservoir sampling, and count all lines.

    Returns the sample and the number of lines. A ``sample_size`` of 0 keeps every line. The
    sample is drawn here rather than by SentencePiece's ``input_sentence_size``, because in
    sentencepiece 0.2.3 ``set_random_generator_seed`` changed that sample only before the first
    training of a process.
    """
    generator = random.Random(seed)
    sample: list[str] = []
    num_lines = 0
    for line in lines:
        if sample_size == 0 or num_lines < sample_size:
            sample.append(line)
        else:
            slot = generator.randrange(num_lines + 1)
            if slot < sample_size:
                sample[slot] = line
        num_lines += 1
    return sample, num_lines


def _train_sentencepiece(
    lines: list[str], vocab_size: int, model_type: str, character_coverage: float, byte_fallback: bool,
    num_threads: int,
) -> bytes:
    """Train a SentencePiece model on the lines and return its serialized ``ModelProto``."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            model_type=model_type,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            byte_fallback=byte_fallback,
            pad_id=0, pad_piece=SPECIAL_TOKENS["pad_token"],
            bos_id=1, bos_piece=SPECIAL_TOKENS["bos_token"],
            eos_id=2, eos_piece=SPECIAL_TOKENS["eos_token"],
            unk_id=3, unk_piece=SPECIAL_TOKENS["unk_token"],
            # User-defined symbols get the next ids, 4 to 6, and are matched whole in text, as a
            # transformers tokenizer matches its special tokens.
            user_defined_symbols=[SPECIAL_TOKENS[name] for name in ("cls_token", "sep_token", "mask_token")],
            required_chars=WHITESPACE_CHARACTERS,
            # No normalization, so that decoding returns the text: no NFKC, runs of spaces kept,
            # and no space added in front of the text, which decoding would have to strip again.
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            input_sentence_size=0,
            max_sentence_length=MAX_SENTENCE_BYTES,
            num_threads=num_threads,
            minloglevel=2,
        )
    except RuntimeError as error:
        vocab_size_error = _vocab_size_error(str(error), vocab_size, model_type, character_coverage)
        if vocab_size_error is None:
            raise
        raise vocab_size_error from error
    return model.getvalue()


def _vocab_size_error(
    message: str, vocab_size: int, model_type: str, character_coverage: float
) -> ValueError | None:
    """Turn SentencePiece's errors about the vocabulary size into a ``ValueError`` that names the fix.

    Matches the messages of SentencePiece 0.2 and returns ``None`` for any other message.
    """
    too_small = re.search(r"Vocabulary size is smaller than required_chars\. \d+ vs (\d+)", message)
    if too_small:
        return ValueError(
            f"vocab_size={vocab_size} is too small: the special tokens, byte pieces and the characters that cover "
            f"{character_coverage:.2%} of the corpus need {too_small.group(1)} ids. Pass vocab_size of at least "
            f"{too_small.group(1)}, or a lower character_coverage."
        )
    too_large = re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)", message)
    if too_large:
        return ValueError(
            f"vocab_size={vocab_size} is too large for this corpus: {model_type} training finds at most "
            f"{too_large.group(1)} pieces in it. Pass vocab_size of at most {too_large.group(1)}, or more text."
        )
    return None


def _build_backend_tokenizer(
    processor: spm.SentencePieceProcessor, model_type: str, byte_fallback: bool, add_cls_and_sep: bool
) -> Tokenizer:
    """Rebuild a trained SentencePiece model as a ``tokenizers.Tokenizer`` with the same ids."""
    special_tokens = list(SPECIAL_TOKENS.values())
    pieces = [processor.id_to_piece(piece_id) for piece_id in range(processor.get_piece_size())]
    # Pieces that SentencePiece matches in text: learned pieces and characters. Special tokens are
    # matched by the tokenizer's added-token pass instead, and byte pieces only replace unknown text.
    text_ids = {
        piece_id for piece_id, piece in enumerate(pieces)
        if piece not in special_tokens and not processor.is_byte(piece_id) and not processor.is_control(piece_id)
        and not processor.is_unknown(piece_id) and not processor.is_unused(piece_id)
    }
    unk_id = processor.piece_to_id(SPECIAL_TOKENS["unk_token"])

    if model_type == "unigram":
        vocab = [
            (piece, processor.get_score(piece_id) if piece_id in text_ids else UNMATCHED_PIECE_SCORE)
            for piece_id, piece in enumerate(pieces)
        ]
        model = models.Unigram(vocab, unk_id=unk_id, byte_fallback=byte_fallback)
    else:
        merges = _bpe_merges(processor, pieces, text_ids)
        model = models.BPE(
            {piece: piece_id for piece_id, piece in enumerate(pieces)}, merges,
            unk_token=SPECIAL_TOKENS["unk_token"], fuse_unk=True, byte_fallback=byte_fallback,
        )

    backend = Tokenizer(model)
    # Under the settings of _train_sentencepiece, SentencePiece changes the text only by writing
    # each space as "▁".
    backend.normalizer = normalizers.Replace(" ", "▁")
    steps = [decoders.Replace("▁", " ")] + ([decoders.ByteFallback()] if byte_fallback else []) + [decoders.Fuse()]
    backend.decoder = decoders.Sequence(steps)
    # The special tokens keep their ids from the vocabulary. Adding them makes the tokenizer match
    # them whole in text and lets decoding skip them.
    backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special_tokens])
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}" if add_cls_and_sep else "$A",
        pair=f"{cls} $A {sep} $B {sep}",
        special_tokens=[(cls, processor.piece_to_id(cls)), (sep, processor.piece_to_id(sep))],
    )
    return backend


def _bpe_merges(processor: spm.SentencePieceProcessor, pieces: list[str], text_ids: set[int]) -> list[tuple[str, str]]:
    """Return BPE merges that reproduce SentencePiece's BPE encoding.

    SentencePiece merges the adjacent pair whose joined piece has the highest score. So every split
    of a learned piece into two learned pieces becomes a merge, ranked by the joined piece's score
    (then its id, then the left part's id for a stable order).
    """
    text_pieces = {pieces[piece_id]: piece_id for piece_id in text_ids}
    ranked = []
    for piece, piece_id in text_pieces.items():
        for split in range(1, len(piece)):
            left, right = piece[:split], piece[split:]
            if left in text_pieces and right in text_pieces:
                ranked.append((-processor.get_score(piece_id), piece_id, text_pieces[left], left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]


__all__ = [
    "DEFAULT_CHARACTER_COVERAGE",
    "DEFAULT_INPUT_SENTENCE_SIZE",
    "DEFAULT_MODEL_MAX_LENGTH",
    "MODEL_TYPES",
    "SENTENCEPIECE_MODEL_FILE",
    "SPECIAL_TOKENS",
    "train_sentencepiece_tokenizer",
]
