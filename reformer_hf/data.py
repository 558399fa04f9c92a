"""Corpora for ``reformer-hf pretrain``: documents in, fixed-length causal LM blocks out.

Three sources give a ``datasets.Dataset`` with one ``"text"`` row per document: local files (plain
text or Wikipedia XML dumps), a ``datasets`` name or directory, and the running Python's own
documentation and standard library, which needs no download. ``build_lm_datasets`` tokenizes the
documents, joins them into one token stream with an end-of-text token after each document, cuts the
stream into a training part and a held-out tail, and cuts each part into blocks of
``sequence_length`` tokens.

File-backed sources are written to the ``datasets`` cache (``HF_DATASETS_CACHE``), so a second run
on the same files reuses the parsed documents and the tokenized blocks.
"""

import bz2
import os
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from xml.etree import ElementTree

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import (
    Dataset,
    DatasetDict,
    Features,
    List,
    Value,
    load_dataset,
    load_dataset_builder,
    load_from_disk,
)
from datasets.exceptions import DatasetGenerationError
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Files with these endings are read as MediaWiki XML exports, and every other file as plain text.
WIKIPEDIA_DUMP_SUFFIXES = (".xml", ".bz2")
# Directories of the standard library that python_stdlib_documents leaves out: third-party code,
# and test suites and IDLE, whose files are mostly fixtures and GUI code rather than library code.
SKIPPED_STDLIB_DIRS = frozenset({"site-packages", "test", "tests", "idlelib"})

TEXT_FEATURES = Features({"text": Value("string")})
TOKEN_FEATURES = Features({"input_ids": List(Value("int32"))})


def load_documents(
    data_files: Sequence[str | os.PathLike] | str | os.PathLike | None = None,
    dataset: str | os.PathLike | None = None,
    text_column: str = "text",
    dataset_split: str = "train",
    wikipedia_raw_xml: bool = False,
) -> Dataset:
    """Load a corpus as a dataset with one ``"text"`` row per document.

    A plain text file is one document, decoded as UTF-8 with invalid bytes replaced by U+FFFD and
    line endings normalized to ``\\n``. A file ending in ``.xml`` or ``.bz2`` (bzip2-compressed) is
    read as a MediaWiki XML export of any schema version. Each page that is not a redirect becomes
    the document ``"<title>\\n\\n<wikitext>"``, taken from the page's last revision. Pages of every
    wiki namespace (articles, talk pages, templates) are kept. Redirects are pages with a
    ``<redirect>`` element or text that starts with ``#REDIRECT`` in any case. Dumps are parsed as a
    stream, so memory stays flat on dumps of any size.

    Documents with no text are dropped from every source.

    Args:
        data_files: Paths of plain text files and Wikipedia dumps, read in the given order. A single
            path is accepted too.
        dataset: A ``datasets`` name, or a local directory. A directory written by
            ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` is loaded with
            ``load_from_disk``. Any other directory or name goes to ``datasets.load_dataset``, which
            reads local directories of .txt, .json, .csv or .parquet files without a network. In a
            directory of .txt files each file is one document.
        text_column: Column of ``dataset`` that contains the text.
        dataset_split: Split to read when ``dataset`` loads as a ``DatasetDict``, as
            ``load_dataset`` results always do. It is ignored for a single ``Dataset`` saved with
            ``save_to_disk``.
        wikipedia_raw_xml: Make each whole decompressed dump one document of raw XML, as in
            enwik8, instead of one document per article. The dump is read into memory, so this
            mode suits enwik8-sized dumps (100 MB), not full Wikipedia exports.

    Returns:
        A ``datasets.Dataset`` with the single string column ``"text"``.

    Raises:
        ValueError: when both or neither of ``data_files`` and ``dataset`` are given, or
            ``wikipedia_raw_xml`` is set together with ``dataset``. Also when a data file is a
            directory, or an XML file is not a MediaWiki dump or is malformed. Also when
            ``text_column`` or ``dataset_split`` is missing from ``dataset``, or the column does
            not contain strings, or ``dataset`` is a file. Also when the corpus has no text.
        FileNotFoundError: when a data file, or a ``dataset`` given as a local path, does not exist.
    """
    if data_files is not None and dataset is not None:
        raise ValueError(
            f"Pass either data_files or dataset, not both (got data_files={data_files!r} and "
            f"dataset={dataset!r})."
        )
    if dataset is not None:
        if wikipedia_raw_xml:
            raise ValueError(
                "wikipedia_raw_xml=True applies only to data_files, but dataset was given. Pass the "
                "dump as data_files, or drop wikipedia_raw_xml."
            )
        return _load_dataset_documents(os.path.expanduser(dataset), text_column, dataset_split)
    if data_files is None or (not isinstance(data_files, (str, os.PathLike)) and len(data_files) == 0):
        raise ValueError(
            "No corpus given. Pass data_files (paths of text files or Wikipedia XML dumps) or dataset "
            "(a datasets name or a local directory)."
        )
    if isinstance(data_files, (str, os.PathLike)):
        data_files = [data_files]
    return _load_file_documents([os.path.expanduser(path) for path in data_files], wikipedia_raw_xml)


def _load_file_documents(paths: list[str], wikipedia_raw_xml: bool) -> Dataset:
    for path in paths:
        _check_data_file(path)
    # A tuple, because datasets would treat a list in gen_kwargs as shards to split between processes.
    file_signatures = tuple(_file_signature(path) for path in paths)
    gen_kwargs = {"file_signatures": file_signatures, "wikipedia_raw_xml": wikipedia_raw_xml}
    try:
        return Dataset.from_generator(_generate_file_documents, features=TEXT_FEATURES, gen_kwargs=gen_kwargs)
    except DatasetGenerationError as error:
        # datasets wraps every error raised inside the generator. Errors about the input files are
        # ValueErrors of this module, so they are raised as they are.
        if isinstance(error.__cause__, ValueError):
            raise error.__cause__ from None
        raise
    except ValueError:
        # datasets 5.2 raises a ValueError about an instruction with no data when the generator
        # yields nothing. Reading the files again distinguishes that case from other errors.
        if next(_generate_file_documents(**gen_kwargs), None) is None:
            raise ValueError(
                f"The corpus is empty: the data files {paths} contain no text (empty files or Wikipedia "
                f"dumps with only redirects). Pass files that contain text."
            ) from None
        raise


def _check_data_file(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Data file not found: {path!r}. Check the path, or pass dataset for a datasets name."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"{path!r} is a directory, but data_files takes files. Pass the files inside it, or load the "
            f"directory with dataset={path!r}."
        )
    if _is_wikipedia_dump(path):
        _check_mediawiki_root(path)


def _is_wikipedia_dump(path: str) -> bool:
    return path.lower().endswith(WIKIPEDIA_DUMP_SUFFIXES)


def _open_binary(path: str):
    return bz2.open(path, "rb") if path.lower().endswith(".bz2") else open(path, "rb")


def _local_name(tag: str) -> str:
    """Strip the ``{namespace}`` prefix that ElementTree puts on tags of a namespaced document."""
    return tag.rpartition("}")[2]


def _check_mediawiki_root(path: str) -> None:
    """Raise a ValueError unless the file's root element is ``<mediawiki>``, of any namespace."""
    compression = "bzip2-compressed " if path.lower().endswith(".bz2") else ""
    try:
        with _open_binary(path) as stream:
            _, root = next(ElementTree.iterparse(stream, events=("start",)))
    except (ElementTree.ParseError, OSError, EOFError, StopIteration) as error:
        raise ValueError(
            f"{path!r} is not a MediaWiki XML dump: reading it as {compression}XML failed "
            f"({error or 'no elements'}). Files ending in .xml or .bz2 are read as Wikipedia dumps, so "
            f"rename a plain text file to another ending."
        ) from error
    if _local_name(root.tag) != "mediawiki":
        raise ValueError(
            f"{path!r} is not a MediaWiki XML dump: its root element is <{_local_name(root.tag)}>, expected "
            f"<mediawiki>. Pass a Wikipedia export such as pages-articles.xml.bz2, or rename a plain text "
            f"file so that it does not end in .xml or .bz2."
        )


def _file_signature(path: str) -> tuple[str, int, int]:
    """Return the absolute path, size and modification time of a file.

    Source generators take signatures instead of bare paths because datasets keys its cache on the
    generator's arguments, so an edited file is read again instead of coming from the cache.
    """
    status = os.stat(path)
    return os.path.abspath(path), status.st_size, status.st_mtime_ns


def _generate_file_documents(
    file_signatures: tuple[tuple[str, int, int], ...], wikipedia_raw_xml: bool
) -> Iterator[dict]:
    for path, _, _ in file_signatures:
        if not _is_wikipedia_dump(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts = [handle.read()]
        elif wikipedia_raw_xml:
            with _open_binary(path) as stream:
                texts = [stream.read().decode("utf-8", errors="replace")]
        else:
            texts = _iter_wikipedia_articles(path)
        for text in texts:
            if text:
                yield {"text": text}


def _iter_wikipedia_articles(path: str) -> Iterator[str]:
    """Yield ``"title\\n\\nwikitext"`` for each page of a MediaWiki dump that is not a redirect."""
    with _open_binary(path) as stream:
        root = None
        try:
            for event, element in ElementTree.iterparse(stream, events=("start", "end")):
                if root is None:
                    root = element
                if event != "end" or _local_name(element.tag) != "page":
                    continue
                title, text, is_redirect = _read_page(element)
                # Finished pages stay attached to the root until cleared, which would hold the
                # whole dump in memory.
                root.clear()
                if is_redirect or text.lstrip()[: len("#redirect")].lower() == "#redirect":
                    continue
                yield f"{title}\n\n{text}"
        except (ElementTree.ParseError, OSError, EOFError) as error:
            raise ValueError(
                f"The Wikipedia dump {path!r} is truncated or malformed ({error}). Download it again, "
                f"and check that the download is complete."
            ) from error


def _read_page(page: ElementTree.Element) -> tuple[str, str, bool]:
    """Return the title, the text of the last revision, and whether the page is a redirect."""
    title, text, is_redirect = "", "", False
    for child in page:
        name = _local_name(child.tag)
        if name == "title":
            title = child.text or ""
        elif name == "redirect":
            is_redirect = True
        elif name == "revision":
            for field in child:
                if _local_name(field.tag) == "text":
                    text = field.text or ""
    return title, text, is_redirect


def _load_dataset_documents(dataset: str, text_column: str, dataset_split: str) -> Dataset:
    loaded = _load_dataset_or_dict(dataset)
    if isinstance(loaded, DatasetDict):
        if dataset_split not in loaded:
            raise ValueError(
                f"Split {dataset_split!r} not found in dataset {dataset!r}. Its splits are {sorted(loaded)}. "
                f"Set dataset_split (--dataset-split) to one of them."
            )
        loaded = loaded[dataset_split]
    elif dataset_split != "train":
        raise ValueError(
            f"Dataset {dataset!r} is a single split, so dataset_split={dataset_split!r} (--dataset-split) cannot "
            f"select from it. Leave dataset_split at its default 'train', or save the splits as a DatasetDict."
        )

    if text_column not in loaded.column_names:
        raise ValueError(
            f"Column {text_column!r} not found in dataset {dataset!r}. Its columns are {loaded.column_names}. "
            f"Set text_column (--text-column) to the column that contains the text."
        )
    feature = loaded.features[text_column]
    if not (isinstance(feature, Value) and feature.dtype in ("string", "large_string")):
        raise ValueError(
            f"Column {text_column!r} of dataset {dataset!r} has type {feature}, but the text column must "
            f"contain strings. Set text_column (--text-column) to a string column."
        )

    documents = loaded.select_columns([text_column])
    if text_column != "text":
        documents = documents.rename_column(text_column, "text")
    documents = documents.filter(_has_text, batched=True, input_columns=["text"], desc="Dropping empty documents")
    if documents.num_rows == 0:
        raise ValueError(
            f"The corpus is empty: column {text_column!r} of dataset {dataset!r} contains no text. Pass a "
            f"dataset, split or column that contains text."
        )
    return documents


def _load_dataset_or_dict(dataset: str) -> Dataset | DatasetDict:
    if os.path.isdir(dataset):
        if os.path.isfile(os.path.join(dataset, "state.json")) or os.path.isfile(
            os.path.join(dataset, "dataset_dict.json")
        ):
            return load_from_disk(dataset)
        if load_dataset_builder(dataset).name == "text":
            # The text loader's default is one row per line, which would put an end-of-text token
            # after every line. One row per file matches how data_files reads text files.
            return load_dataset(dataset, sample_by="document", encoding_errors="replace")
        return _load_dataset_by_name(dataset)
    if os.path.isfile(dataset):
        raise ValueError(
            f"dataset must be a directory or a datasets name, got the file {dataset!r}. Pass single files "
            f"as data_files (--data-files)."
        )
    if dataset.startswith(("/", "./", "../")):
        raise FileNotFoundError(
            f"Dataset directory not found: {dataset!r}. Pass an existing directory or a datasets name."
        )
    return _load_dataset_by_name(dataset)


def _load_dataset_by_name(dataset: str) -> Dataset | DatasetDict:
    """Call ``load_dataset`` and turn its failures into one ``ValueError`` that suggests what to try."""
    try:
        return load_dataset(dataset)
    except (ConnectionError, FileNotFoundError, ValueError, OSError) as error:
        raise ValueError(
            f"Could not load dataset {dataset!r}: {error}. Pass a directory written by save_to_disk, a "
            f"directory of .txt, .json, .csv or .parquet files, or a dataset name already in the local "
            f"datasets cache (the Hub may be unreachable)."
        ) from error


def _has_text(texts: list[str | None]) -> list[bool]:
    return [bool(text) for text in texts]


def python_stdlib_documents(max_bytes: int | None = None) -> Dataset:
    """Collect the running Python's reference text and standard library sources as a corpus.

    The corpus exists wherever Python is installed, so training needs no download and nothing is
    committed. It is, in this order: each topic of the English reference text in ``pydoc_data``
    (``pydoc_data.topics.topics``, sorted by topic name), then every ``.py`` file under
    ``sysconfig.get_paths()["stdlib"]``, sorted by relative path. The files leave out directories
    named site-packages, test, tests and idlelib, and files that are not valid UTF-8. Each topic
    and each file is one document. The result is the same for the same Python installation.

    Args:
        max_bytes: Stop after this many UTF-8 bytes of text. The last document is cut at a character
            boundary to fit, so the total is at most ``max_bytes``. None takes everything.

    Returns:
        A ``datasets.Dataset`` with the single string column ``"text"``.

    Raises:
        ValueError: when ``max_bytes`` is not None or a positive integer.
        FileNotFoundError: when the interpreter has neither ``pydoc_data`` nor standard library sources.
    """
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
        raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}.")

    topics = _pydoc_topics()
    stdlib_dir = sysconfig.get_paths()["stdlib"]
    source_paths = _stdlib_source_paths(stdlib_dir)
    if not topics and not source_paths:
        raise FileNotFoundError(
            f"Python {sys.version.split()[0]} has neither pydoc_data nor .py sources under {stdlib_dir!r}, "
            f"so there is no default corpus. Pass data_files or dataset instead."
        )
    source_signatures = tuple(_file_signature(path) for path in source_paths)
    # Tuples, because datasets would treat lists in gen_kwargs as shards to split between processes.
    return Dataset.from_generator(
        _generate_stdlib_documents,
        features=TEXT_FEATURES,
        gen_kwargs={"topics": tuple(topics), "source_signatures": source_signatures, "max_bytes": max_bytes},
    )


def _pydoc_topics() -> list[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        # Some Linux distributions package pydoc_data separately from the interpreter.
        logger.warning("pydoc_data is not installed, so the default corpus has only standard library sources.")
        return []
    return [topics[name] for name in sorted(topics)]


def _stdlib_source_paths(stdlib_dir: str) -> list[str]:
    relative_paths = []
    for directory, subdirectories, file_names in os.walk(stdlib_dir):
        subdirectories[:] = [name for name in subdirectories if name not in SKIPPED_STDLIB_DIRS]
        relative_dir = os.path.relpath(directory, stdlib_dir)
        relative_paths.extend(
            os.path.normpath(os.path.join(relative_dir, name)) for name in file_names if name.endswith(".py")
        )
    # Sorting the "/"-separated form keeps the order the same on every platform.
    relative_paths.sort(key=lambda path: path.replace(os.sep, "/"))
    return [os.path.join(stdlib_dir, path) for path in relative_paths]


def _generate_stdlib_documents(
    topics: tuple[str, ...], source_signatures: tuple[tuple[str, int, int], ...], max_bytes: int | None
) -> Iterator[dict]:
    remaining_bytes = max_bytes
    for text in _iter_stdlib_texts(topics, [path for path, _, _ in source_signatures]):
        if remaining_bytes is not None:
            data = text.encode("utf-8")
            if len(data) >= remaining_bytes:
                # errors="ignore" drops a character whose bytes the cut splits.
                text = data[:remaining_bytes].decode("utf-8", errors="ignore")
                if text:
                    yield {"text": text}
                return
            remaining_bytes -= len(data)
        if text:
            yield {"text": text}


def _iter_stdlib_texts(topics: tuple[str, ...], source_paths: list[str]) -> Iterator[str]:
    yield from topics
    for path in source_paths:
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield text


def build_lm_datasets(
    documents: Dataset,
    tokenizer,
    sequence_length: int,
    validation_fraction: float = 0.05,
    num_proc: int | None = None,
) -> DatasetDict:
    """Tokenize documents and cut them into training and held-out blocks of equal length.

    The documents are tokenized without the tokenizer's special tokens, and ``eos_token_id`` is
    appended to each document when the tokenizer has one. Joined in order, they form one token
    stream. The last ``validation_fraction`` of the stream, rounded to whole blocks, is the
    validation split. It has at least one block, and at least one block is left for training. The
    held-out text is therefore a tail the model never trains on, even when the corpus is a single
    book. The stream is cut into the two parts before grouping, so no block spans both. Each part
    is cut into consecutive blocks of exactly ``sequence_length`` tokens. The validation part is a
    whole number of blocks, and the training part drops its last incomplete block, which is fewer
    than ``sequence_length`` tokens just before the validation part.

    Args:
        documents: A dataset with a ``"text"`` column, one row per document, as returned by
            ``load_documents`` or ``python_stdlib_documents``.
        tokenizer: A Hugging Face tokenizer, called on batches of texts.
        sequence_length: Number of tokens in each block.
        validation_fraction: Share of the token stream to hold out, between 0 and 1 exclusive.
        num_proc: Number of worker processes for ``Dataset.map``. None works in this process.

    Returns:
        A ``DatasetDict`` with splits ``"train"`` and ``"validation"``, whose rows are
        ``{"input_ids": list of sequence_length ints}`` in stream order.

    Raises:
        ValueError: when ``documents`` has no ``"text"`` column or no rows, ``sequence_length``
            is not a positive integer, ``validation_fraction`` is not between 0 and 1, or the
            corpus has fewer than ``2 * sequence_length`` tokens.
    """
    if "text" not in documents.column_names:
        raise ValueError(
            f"documents must have a 'text' column, got columns {documents.column_names}. Load them with "
            f"load_documents, or rename the text column to 'text'."
        )
    if documents.num_rows == 0:
        raise ValueError(
            "documents has no rows, so there is no text to cut into blocks. Pass a corpus from "
            "load_documents or python_stdlib_documents."
        )
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 1:
        raise ValueError(f"sequence_length must be a positive integer, got {sequence_length!r}.")
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)) or not (
        0 < validation_fraction < 1
    ):
        raise ValueError(
            f"validation_fraction must be between 0 and 1 exclusive, got {validation_fraction!r}. The "
            f"default 0.05 holds out the last 5% of the token stream."
        )

    tokens, document_starts = _tokenize_documents(documents, tokenizer, num_proc)
    num_tokens = int(document_starts[-1])

    num_train_blocks, num_validation_blocks = _split_block_counts(num_tokens, sequence_length, validation_fraction)
    validation_start = num_tokens - num_validation_blocks * sequence_length
    logger.info(
        "Token stream of %d tokens: %d training blocks, %d validation blocks of %d tokens, %d tokens dropped.",
        num_tokens, num_train_blocks, num_validation_blocks, sequence_length,
        validation_start - num_train_blocks * sequence_length,
    )

    splits = {}
    for split, stream_start, num_blocks in (
        ("train", 0, num_train_blocks),
        ("validation", validation_start, num_validation_blocks),
    ):
        blocks = tokens.map(
            _cut_blocks,
            batched=True,
            with_indices=True,
            remove_columns=tokens.column_names,
            features=TOKEN_FEATURES,
            fn_kwargs={
                "tokens": tokens,
                "document_starts": document_starts,
                "stream_start": stream_start,
                "num_blocks": num_blocks,
                "sequence_length": sequence_length,
            },
            num_proc=num_proc,
            desc=f"Cutting {split} blocks",
        )
        splits[split] = blocks.with_format(None)
    return DatasetDict(splits)


def _tokenize_documents(documents: Dataset, tokenizer, num_proc: int | None) -> tuple[Dataset, np.ndarray]:
    """Tokenize each document and find where each one starts in the joined token stream.

    Returns:
        The tokenized documents, one ``"input_ids"`` row each in Arrow format, and an array whose
        entry i is the stream position of document i's first token. Its last entry is the length
        of the whole stream.
    """
    tokenized = documents.map(
        _tokenize_batch,
        batched=True,
        remove_columns=documents.column_names,
        features=TOKEN_FEATURES,
        fn_kwargs={"tokenizer": tokenizer, "eos_token_id": tokenizer.eos_token_id},
        num_proc=num_proc,
        desc="Tokenizing documents",
    )
    tokens = tokenized.with_format("arrow")
    # The lengths come from the Arrow list offsets, so no token is read here.
    document_lengths = pc.list_value_length(tokens["input_ids"]).to_numpy()
    document_starts = np.concatenate([[0], np.cumsum(document_lengths, dtype=np.int64)])
    return tokens, document_starts


def _tokenize_batch(batch: dict, tokenizer, eos_token_id: int | None) -> dict:
    # NOTE: each document is tokenized in one call into Python lists, so one huge document costs
    # memory in proportion. With ReformerByteTokenizer a 24 MB document peaked at about 0.9 GB
    # (peak resident memory, Python 3.11 on x86-64), so raw enwik8 (100 MB) needs an estimated 4 GB.
    # verbose=False silences the warning about texts longer than the tokenizer's model_max_length,
    # which does not apply because the stream is cut into blocks afterwards.
    encoded = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False, verbose=False)
    input_ids = encoded["input_ids"]
    if eos_token_id is not None:
        input_ids = [ids + [eos_token_id] for ids in input_ids]
    return {"input_ids": input_ids}


def _split_block_counts(num_tokens: int, sequence_length: int, validation_fraction: float) -> tuple[int, int]:
    """Return the numbers of training and validation blocks for a stream of ``num_tokens``."""
    num_blocks = num_tokens // sequence_length
    if num_blocks < 2:
        raise ValueError(
            f"The corpus has {num_tokens} tokens, but sequence_length={sequence_length} needs at least "
            f"{2 * sequence_length}: one training block and one validation block. Use a shorter "
            f"--sequence-length or add more text."
        )
    num_validation_blocks = min(max(1, round(validation_fraction * num_blocks)), num_blocks - 1)
    num_train_blocks = (num_tokens - num_validation_blocks * sequence_length) // sequence_length
    return num_train_blocks, num_validation_blocks


def _cut_blocks(
    batch: pa.Table,
    indices: list[int],
    tokens: Dataset,
    document_starts: np.ndarray,
    stream_start: int,
    num_blocks: int,
    sequence_length: int,
) -> pa.Table:
    """Cut the blocks of one split that start inside this batch of documents.

    Block k of the split covers stream positions ``stream_start + k * sequence_length`` onward. A
    block that starts in this batch can end in a later document, which is read from ``tokens``.
    Assigning each block to the batch where it starts makes every block appear exactly once,
    whatever the batch size or number of processes.
    """
    batch_begin = int(document_starts[indices[0]])
    batch_end = int(document_starts[indices[-1] + 1])
    # Ceiling divisions: the first and one past the last block starting in [batch_begin, batch_end).
    first_block = max(0, -((stream_start - batch_begin) // sequence_length))
    end_block = min(num_blocks, -((stream_start - batch_end) // sequence_length))
    if end_block <= first_block:
        return pa.table({"input_ids": pa.array([], type=pa.list_(pa.int32()))})

    begin = stream_start + first_block * sequence_length
    end = stream_start + end_block * sequence_length
    first_document = int(np.searchsorted(document_starts, begin, side="right")) - 1
    end_document = int(np.searchsorted(document_starts, end, side="left"))
    values = tokens[first_document:end_document].column("input_ids").combine_chunks().flatten()
    values = values.slice(begin - int(document_starts[first_document]), end - begin)
    offsets = pa.array(np.arange(0, end - begin + 1, sequence_length), type=pa.int32())
    return pa.table({"input_ids": pa.ListArray.from_arrays(offsets, values)})


__all__ = ["build_lm_datasets", "load_documents", "python_stdlib_documents"]
