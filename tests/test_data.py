"""Tests of reformer_hf.data: corpus loading, the default corpus, and LM block building."""

import bz2
import json
import re
import sysconfig
from pathlib import Path
from xml.sax.saxutils import escape

import datasets
import pydoc_data.topics
import pytest
from datasets import Dataset, DatasetDict

from reformer_hf.data import (
    SKIPPED_STDLIB_DIRS,
    _stdlib_source_paths,
    build_lm_datasets,
    load_documents,
    python_stdlib_documents,
)
from reformer_hf.tokenization import ReformerByteTokenizer

SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
WIKIPEDIA_SAMPLE = SHARED_DATA_DIR / "enwiki-2016-articles-sample.xml.bz2"
BOOK = SHARED_DATA_DIR / "crime_and_punishment.txt"

MEDIAWIKI_NAMESPACE = "http://www.mediawiki.org/xml/export-0.10/"
EOS_ID = 2
BYTE_OFFSET = 3


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


def page_xml(title, text, redirect_to=None, extra_revision_texts=()):
    redirect = f'<redirect title="{escape(redirect_to)}" />' if redirect_to else ""
    revisions = "".join(
        f"<revision><id>{i}</id><text xml:space=\"preserve\">{escape(revision_text)}</text></revision>"
        for i, revision_text in enumerate([*extra_revision_texts, text])
    )
    return f"<page><title>{escape(title)}</title><ns>0</ns><id>1</id>{redirect}{revisions}</page>"


def dump_xml(pages, namespace=MEDIAWIKI_NAMESPACE):
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = "\n".join(page_xml(*page) for page in pages)
    return (
        f'<mediawiki{xmlns} version="0.10" xml:lang="en">\n'
        f"<siteinfo><sitename>Wikipedia</sitename></siteinfo>\n{body}\n</mediawiki>\n"
    )


def write_dump(path, pages, namespace=MEDIAWIKI_NAMESPACE):
    data = dump_xml(pages, namespace).encode("utf-8")
    path.write_bytes(bz2.compress(data) if path.suffix == ".bz2" else data)
    return path


THREE_PAGES = [
    ("Alpha", "Alpha is the first letter.\n\n== History ==\nOld & new <b>."),
    ("Beta (disambiguation)", "#REDIRECT [[Beta]]", "Beta"),
    ("Gamma", "Gamma rays are photons."),
]
THREE_PAGES_DOCUMENTS = [
    "Alpha\n\nAlpha is the first letter.\n\n== History ==\nOld & new <b>.",
    "Gamma\n\nGamma rays are photons.",
]


def texts_of(documents):
    return list(documents["text"])


def byte_ids(text):
    return [byte + BYTE_OFFSET for byte in text.encode("utf-8")]


# Wikipedia dumps


def test_dump_skips_redirect_page(tmp_path):
    documents = load_documents([write_dump(tmp_path / "dump.xml", THREE_PAGES)])

    assert documents.column_names == ["text"]
    assert texts_of(documents) == THREE_PAGES_DOCUMENTS


def test_dump_skips_redirect_text_without_element(tmp_path):
    pages = [
        ("Kept", "Text that mentions #REDIRECT later."),
        ("Lower", "#redirect [[Kept]]"),
        ("Indented", "  #Redirect [[Kept]]"),
    ]
    documents = load_documents([write_dump(tmp_path / "dump.xml", pages)])

    assert texts_of(documents) == ["Kept\n\nText that mentions #REDIRECT later."]


@pytest.mark.parametrize(
    "namespace",
    [
        "http://www.mediawiki.org/xml/export-0.3/",
        "http://www.mediawiki.org/xml/export-0.10/",
        "http://www.mediawiki.org/xml/export-0.11/",
        None,
    ],
)
def test_dump_any_schema_namespace(tmp_path, namespace):
    documents = load_documents([write_dump(tmp_path / "dump.xml", THREE_PAGES, namespace=namespace)])

    assert texts_of(documents) == THREE_PAGES_DOCUMENTS


@pytest.mark.parametrize("file_name", ["dump.xml.bz2", "dump.bz2", "DUMP.XML"])
def test_dump_compressed_and_plain_endings(tmp_path, file_name):
    documents = load_documents([write_dump(tmp_path / file_name, THREE_PAGES)])

    assert texts_of(documents) == THREE_PAGES_DOCUMENTS


def test_dump_uses_last_revision(tmp_path):
    pages = [("Delta", "current text", None, ["first draft", "second draft"])]
    documents = load_documents([write_dump(tmp_path / "history.xml", pages)])

    assert texts_of(documents) == ["Delta\n\ncurrent text"]


def test_dump_raw_xml_is_one_document(tmp_path):
    path = write_dump(tmp_path / "dump.xml.bz2", THREE_PAGES)
    documents = load_documents([path], wikipedia_raw_xml=True)

    assert documents.num_rows == 1
    assert documents[0]["text"] == dump_xml(THREE_PAGES)


def test_files_keep_given_order(tmp_path):
    first = tmp_path / "z_first.txt"
    first.write_text("first file\n", encoding="utf-8")
    dump = write_dump(tmp_path / "a_dump.xml", THREE_PAGES)
    last = tmp_path / "m_last.md"
    last.write_text("last file", encoding="utf-8")

    documents = load_documents([first, dump, str(last)])

    assert texts_of(documents) == ["first file\n", *THREE_PAGES_DOCUMENTS, "last file"]


# Plain text files


def test_text_file_is_one_document(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Chapter 1\n\nIt was a dark night.\n\nChapter 2\n", encoding="utf-8")

    documents = load_documents(str(path))

    assert texts_of(documents) == ["Chapter 1\n\nIt was a dark night.\n\nChapter 2\n"]


def test_text_file_invalid_utf8_replaced(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café ".encode("latin-1") + "naïve".encode("utf-8"))

    documents = load_documents([path])

    assert texts_of(documents) == ["caf\ufffd naïve"]


def test_text_file_newlines_normalized(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes(b"line one\r\nline two\r\n")

    assert texts_of(load_documents([path])) == ["line one\nline two\n"]


def test_empty_text_file_dropped(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    full = tmp_path / "full.txt"
    full.write_text("some text", encoding="utf-8")

    assert texts_of(load_documents([empty, full])) == ["some text"]


# The dataset argument


def test_dataset_saved_dataset(tmp_path):
    Dataset.from_dict({"text": ["one", "", "two"], "id": [1, 2, 3]}).save_to_disk(tmp_path / "saved")

    documents = load_documents(dataset=str(tmp_path / "saved"))

    assert documents.column_names == ["text"]
    assert texts_of(documents) == ["one", "two"]


def test_dataset_saved_dict_split_and_column(tmp_path):
    DatasetDict(
        {
            "train": Dataset.from_dict({"body": ["train text", None], "title": ["t1", "t2"]}),
            "test": Dataset.from_dict({"body": ["test text"], "title": ["t3"]}),
        }
    ).save_to_disk(tmp_path / "saved_dict")

    train = load_documents(dataset=tmp_path / "saved_dict", text_column="body")
    test = load_documents(dataset=tmp_path / "saved_dict", text_column="body", dataset_split="test")
    titles = load_documents(dataset=tmp_path / "saved_dict", text_column="title")

    assert train.column_names == ["text"]
    assert texts_of(train) == ["train text"]
    assert texts_of(test) == ["test text"]
    assert texts_of(titles) == ["t1", "t2"]


def test_dataset_txt_directory_per_file(tmp_path):
    directory = tmp_path / "texts"
    directory.mkdir()
    (directory / "a.txt").write_text("first line\nsecond line\n", encoding="utf-8")
    (directory / "b.txt").write_text("other file\n", encoding="utf-8")

    documents = load_documents(dataset=str(directory))

    assert sorted(texts_of(documents)) == ["first line\nsecond line\n", "other file\n"]


def test_dataset_json_directory_column(tmp_path):
    directory = tmp_path / "json"
    directory.mkdir()
    rows = [{"content": "json one", "n": 1}, {"content": "json two", "n": 2}]
    (directory / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")

    documents = load_documents(dataset=str(directory), text_column="content")

    assert texts_of(documents) == ["json one", "json two"]


# Error messages


def test_error_both_sources(tmp_path):
    with pytest.raises(ValueError, match="Pass either data_files or dataset, not both"):
        load_documents(data_files=["a.txt"], dataset="corpus")


@pytest.mark.parametrize("data_files", [None, []])
def test_error_no_source(data_files):
    with pytest.raises(ValueError, match=r"No corpus given\. Pass data_files .* or dataset"):
        load_documents(data_files=data_files)


def test_error_missing_file(tmp_path):
    missing = str(tmp_path / "missing.txt")

    with pytest.raises(FileNotFoundError, match=re.escape(f"Data file not found: {missing!r}")):
        load_documents([missing])


def test_error_directory_as_data_file(tmp_path):
    directory = str(tmp_path)

    with pytest.raises(ValueError) as error:
        load_documents([directory])
    assert f"{directory!r} is a directory, but data_files takes files" in str(error.value)
    assert f"dataset={directory!r}" in str(error.value)


def test_error_missing_column(tmp_path):
    Dataset.from_dict({"body": ["x"], "id": [1]}).save_to_disk(tmp_path / "saved")

    with pytest.raises(ValueError) as error:
        load_documents(dataset=str(tmp_path / "saved"), text_column="content")
    assert "Column 'content' not found" in str(error.value)
    assert "Its columns are ['body', 'id']" in str(error.value)
    assert "--text-column" in str(error.value)


def test_error_column_not_text(tmp_path):
    Dataset.from_dict({"text": ["x"], "id": [1]}).save_to_disk(tmp_path / "saved")

    with pytest.raises(ValueError, match="Column 'id' .* has type Value\\('int64'\\).* must contain strings"):
        load_documents(dataset=str(tmp_path / "saved"), text_column="id")


def test_error_missing_split(tmp_path):
    splits = {"train": Dataset.from_dict({"text": ["a"]}), "test": Dataset.from_dict({"text": ["b"]})}
    DatasetDict(splits).save_to_disk(tmp_path / "saved")

    with pytest.raises(ValueError) as error:
        load_documents(dataset=str(tmp_path / "saved"), dataset_split="validation")
    assert "Split 'validation' not found" in str(error.value)
    assert "Its splits are ['test', 'train']" in str(error.value)
    assert "--dataset-split" in str(error.value)


def test_error_missing_dataset_directory(tmp_path):
    missing = str(tmp_path / "no_such_dir")

    with pytest.raises(FileNotFoundError, match=re.escape(f"Dataset directory not found: {missing!r}")):
        load_documents(dataset=missing)


def test_error_file_as_dataset(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("text", encoding="utf-8")

    with pytest.raises(ValueError) as error:
        load_documents(dataset=str(path))
    assert f"dataset must be a directory or a datasets name, got the file {str(path)!r}" in str(error.value)
    assert "--data-files" in str(error.value)


def test_error_raw_xml_with_dataset(tmp_path):
    with pytest.raises(ValueError, match="wikipedia_raw_xml=True applies only to data_files"):
        load_documents(dataset=str(tmp_path), wikipedia_raw_xml=True)


def test_error_empty_corpus_only_redirects(tmp_path):
    path = write_dump(tmp_path / "redirects.xml", [("A", "#REDIRECT [[B]]", "B")])

    with pytest.raises(ValueError, match="The corpus is empty: the data files .*redirects.xml"):
        load_documents([path])


def test_error_empty_corpus_dataset(tmp_path):
    Dataset.from_dict({"text": ["", None]}).save_to_disk(tmp_path / "saved")

    with pytest.raises(ValueError, match="The corpus is empty: column 'text' of dataset .* contains no text"):
        load_documents(dataset=str(tmp_path / "saved"))


def test_error_xml_not_mediawiki(tmp_path):
    path = tmp_path / "page.xml"
    path.write_text("<html><body>hello</body></html>", encoding="utf-8")

    with pytest.raises(ValueError) as error:
        load_documents([path])
    assert f"{str(path)!r} is not a MediaWiki XML dump" in str(error.value)
    assert "its root element is <html>, expected <mediawiki>" in str(error.value)


@pytest.mark.parametrize(
    "file_name, content",
    [("notes.xml", b"just some notes, not XML"), ("notes.bz2", b"not bzip2 data"), ("empty.xml", b"")],
)
def test_error_unreadable_xml(tmp_path, file_name, content):
    path = tmp_path / file_name
    path.write_bytes(content)

    message = f"{str(path)!r} is not a MediaWiki XML dump: reading it as "
    with pytest.raises(ValueError, match=re.escape(message)):
        load_documents([path])


def test_error_truncated_dump(tmp_path):
    data = dump_xml(THREE_PAGES).encode("utf-8")
    path = tmp_path / "truncated.xml.bz2"
    path.write_bytes(bz2.compress(data[: len(data) // 2]))

    with pytest.raises(ValueError, match=re.escape(f"The Wikipedia dump {str(path)!r} is truncated or malformed")):
        load_documents([path])


# The default corpus


def test_stdlib_corpus_starts_with_topics():
    documents = python_stdlib_documents()
    topics = pydoc_data.topics.topics
    num_topics = len(topics)

    assert documents.column_names == ["text"]
    assert documents.num_rows > num_topics
    assert texts_of(documents.select(range(num_topics))) == [topics[name] for name in sorted(topics)]
    # The first source after the topics is a Python module, not reference text.
    assert documents[num_topics]["text"] not in topics.values()


def test_stdlib_corpus_max_bytes():
    max_bytes = 500_000
    documents = python_stdlib_documents(max_bytes=max_bytes)
    num_bytes = sum(len(text.encode("utf-8")) for text in documents["text"])
    everything = python_stdlib_documents()

    # Cutting inside a character of up to 4 bytes loses at most 3 bytes.
    assert max_bytes - 3 <= num_bytes <= max_bytes
    assert documents.num_rows < everything.num_rows
    # The cut corpus is a prefix of the full one, the last document shortened.
    assert texts_of(documents)[:-1] == texts_of(everything.select(range(documents.num_rows - 1)))
    assert everything[documents.num_rows - 1]["text"].startswith(documents[-1]["text"])


def test_stdlib_corpus_deterministic(tmp_path, monkeypatch):
    first = python_stdlib_documents(max_bytes=2_000_000)
    # A second cache directory makes the second call read the files again.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    second = python_stdlib_documents(max_bytes=2_000_000)

    assert second.cache_files[0]["filename"] != first.cache_files[0]["filename"]
    assert texts_of(first) == texts_of(second)


def test_stdlib_source_paths_skip_dirs():
    stdlib_dir = sysconfig.get_paths()["stdlib"]
    paths = _stdlib_source_paths(stdlib_dir)
    relative_parts = [Path(path).relative_to(stdlib_dir).parts for path in paths]

    assert len(paths) > 100
    assert all(path.endswith(".py") for path in paths)
    assert not any(SKIPPED_STDLIB_DIRS & set(parts[:-1]) for parts in relative_parts)
    assert relative_parts == sorted(relative_parts, key=lambda parts: "/".join(parts))


@pytest.mark.parametrize("max_bytes", [0, -5, 1.5, True])
def test_error_stdlib_max_bytes(max_bytes):
    message = f"max_bytes must be a positive integer or None, got {max_bytes!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        python_stdlib_documents(max_bytes=max_bytes)


# LM blocks


def expected_stream(texts, eos_id=EOS_ID):
    stream = []
    for text in texts:
        stream += byte_ids(text) + ([eos_id] if eos_id is not None else [])
    return stream


def joined(split):
    return [token_id for row in split["input_ids"] for token_id in row]


def test_blocks_eos_after_each_document(tokenizer):
    documents = Dataset.from_dict({"text": ["ab", "cd"]})

    blocks = build_lm_datasets(documents, tokenizer, sequence_length=3, validation_fraction=0.5)

    assert list(blocks) == ["train", "validation"]
    assert blocks["train"]["input_ids"][:] == [[ord("a") + 3, ord("b") + 3, EOS_ID]]
    assert blocks["validation"]["input_ids"][:] == [[ord("c") + 3, ord("d") + 3, EOS_ID]]


def test_blocks_split_contiguous_stream(tokenizer):
    # More documents than one map batch (1,000 rows), so blocks also span batch boundaries.
    texts = [f"doc {i}: " + "xyzé"[: i % 4 + 1] * (i % 23) for i in range(2_500)]
    documents = Dataset.from_dict({"text": texts})
    stream = expected_stream(texts)
    sequence_length = 64

    blocks = build_lm_datasets(documents, tokenizer, sequence_length, validation_fraction=0.1)
    train, validation = joined(blocks["train"]), joined(blocks["validation"])

    num_blocks = len(stream) // sequence_length
    num_validation_blocks = round(0.1 * num_blocks)
    assert blocks["train"].column_names == ["input_ids"]
    assert {len(row) for row in blocks["train"]["input_ids"]} == {sequence_length}
    assert {len(row) for row in blocks["validation"]["input_ids"]} == {sequence_length}
    assert blocks["validation"].num_rows == num_validation_blocks
    assert blocks["train"].num_rows == num_blocks - num_validation_blocks
    # Training is the start of the stream, validation its end, and they do not overlap.
    assert train == stream[: len(train)]
    assert validation == stream[len(stream) - len(validation) :]
    assert len(train) + len(validation) <= len(stream)
    assert len(stream) - len(train) - len(validation) < sequence_length


def test_blocks_single_document_tail_held_out(tokenizer):
    text = "".join(f"sentence {i} of one long book. " for i in range(400))
    documents = Dataset.from_dict({"text": [text]})
    stream = expected_stream([text])

    blocks = build_lm_datasets(documents, tokenizer, sequence_length=128, validation_fraction=0.2)

    assert blocks["validation"].num_rows == round(0.2 * (len(stream) // 128))
    assert joined(blocks["validation"]) == stream[-128 * blocks["validation"].num_rows :]
    assert joined(blocks["train"]) == stream[: 128 * blocks["train"].num_rows]


def test_blocks_at_least_one_each_side(tokenizer):
    documents = Dataset.from_dict({"text": ["x" * 29]})  # 30 tokens with the eos

    tiny_fraction = build_lm_datasets(documents, tokenizer, sequence_length=10, validation_fraction=0.01)
    large_fraction = build_lm_datasets(documents, tokenizer, sequence_length=10, validation_fraction=0.99)

    assert (tiny_fraction["train"].num_rows, tiny_fraction["validation"].num_rows) == (2, 1)
    assert (large_fraction["train"].num_rows, large_fraction["validation"].num_rows) == (1, 2)


class NoEosTokenizer:
    """Stand-in for a tokenizer without an end-of-text token: one id per byte."""

    eos_token_id = None

    def __call__(self, texts, **kwargs):
        return {"input_ids": [list(text.encode("utf-8")) for text in texts]}


def test_blocks_without_eos_token():
    documents = Dataset.from_dict({"text": ["abc", "def"]})

    blocks = build_lm_datasets(documents, NoEosTokenizer(), sequence_length=3, validation_fraction=0.5)

    assert blocks["train"]["input_ids"][:] == [list(b"abc")]
    assert blocks["validation"]["input_ids"][:] == [list(b"def")]


def test_blocks_num_proc_matches_one_process(tokenizer):
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(300)]
    documents = Dataset.from_dict({"text": texts})

    # Without the cache the second call computes its blocks instead of reading the first's.
    datasets.disable_caching()
    try:
        one_process = build_lm_datasets(documents, tokenizer, sequence_length=50)
        two_processes = build_lm_datasets(documents, tokenizer, sequence_length=50, num_proc=2)
    finally:
        datasets.enable_caching()

    for split in ("train", "validation"):
        assert two_processes[split]["input_ids"][:] == one_process[split]["input_ids"][:]


def test_error_corpus_too_short(tokenizer):
    documents = Dataset.from_dict({"text": ["short text"]})  # 11 tokens with the eos

    with pytest.raises(ValueError) as error:
        build_lm_datasets(documents, tokenizer, sequence_length=8)
    assert "The corpus has 11 tokens, but sequence_length=8 needs at least 16" in str(error.value)
    assert "shorter --sequence-length or add more text" in str(error.value)


@pytest.mark.parametrize("sequence_length", [0, -1, 2.0, True])
def test_error_bad_sequence_length(tokenizer, sequence_length):
    documents = Dataset.from_dict({"text": ["abc"]})

    message = f"sequence_length must be a positive integer, got {sequence_length!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        build_lm_datasets(documents, tokenizer, sequence_length)


@pytest.mark.parametrize("validation_fraction", [0, 1, -0.1, 1.5])
def test_error_bad_validation_fraction(tokenizer, validation_fraction):
    documents = Dataset.from_dict({"text": ["abc"]})

    with pytest.raises(ValueError, match="validation_fraction must be between 0 and 1 exclusive"):
        build_lm_datasets(documents, tokenizer, 2, validation_fraction=validation_fraction)


def test_error_documents_without_text_column(tokenizer):
    documents = Dataset.from_dict({"body": ["abc"]})

    with pytest.raises(ValueError, match=re.escape("documents must have a 'text' column, got columns ['body']")):
        build_lm_datasets(documents, tokenizer, 2)


def test_error_documents_empty(tokenizer):
    documents = Dataset.from_dict({"text": []}, features=datasets.Features({"text": datasets.Value("string")}))

    with pytest.raises(ValueError, match="documents has no rows, so there is no text to cut into blocks"):
        build_lm_datasets(documents, tokenizer, 2)


@pytest.mark.parametrize("validation_fraction", ["0.1", None, True])
def test_error_validation_fraction_type(tokenizer, validation_fraction):
    documents = Dataset.from_dict({"text": ["abc"]})

    with pytest.raises(ValueError, match="validation_fraction must be between 0 and 1 exclusive"):
        build_lm_datasets(documents, tokenizer, 2, validation_fraction=validation_fraction)


# Real data


def require(path):
    if not path.is_file():
        pytest.skip(f"{path} not found; the real-data tests read the shared data directory next to the repository.")


def test_real_wikipedia_sample_articles():
    require(WIKIPEDIA_SAMPLE)

    documents = load_documents([WIKIPEDIA_SAMPLE])
    titles = [text.split("\n\n", 1)[0] for text in documents["text"]]

    # The sample contains 206 pages, 100 of them redirects.
    assert documents.num_rows == 106
    assert titles[:3] == ["Anarchism", "Autism", "Albedo"]
    assert "AccessibleComputing" not in titles
    assert not any(text.split("\n\n", 1)[1].lstrip().upper().startswith("#REDIRECT") for text in documents["text"])


def test_real_wikipedia_sample_raw_xml():
    require(WIKIPEDIA_SAMPLE)

    documents = load_documents([WIKIPEDIA_SAMPLE], wikipedia_raw_xml=True)

    assert documents.num_rows == 1
    assert len(documents[0]["text"].encode("utf-8")) == 6_089_746
    assert documents[0]["text"].startswith('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"')


def test_real_book_blocks(tokenizer):
    require(BOOK)
    sequence_length = 4_096

    documents = load_documents([BOOK])
    blocks = build_lm_datasets(documents, tokenizer, sequence_length)
    stream = expected_stream(texts_of(documents))

    num_blocks = len(stream) // sequence_length
    assert documents.num_rows == 1
    assert blocks["validation"].num_rows == round(0.05 * num_blocks)
    assert blocks["train"].num_rows == num_blocks - blocks["validation"].num_rows
    # The held-out blocks are the end of the book, up to its final eos.
    assert joined(blocks["validation"]) == stream[-sequence_length * blocks["validation"].num_rows :]
    assert blocks["train"][0]["input_ids"] == stream[:sequence_length]


def test_dataset_split_on_single_split_rejected(tmp_path):
    directory = tmp_path / "single"
    Dataset.from_dict({"text": ["one document"]}).save_to_disk(str(directory))
    with pytest.raises(ValueError, match=r"is a single split, so dataset_split='validation' \(--dataset-split\) cannot"):
        load_documents(dataset=str(directory), dataset_split="validation")


def test_unloadable_dataset_name_is_value_error(monkeypatch):
    # Offline mode keeps the lookup on this machine: the name is resolved against the local cache only.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"Could not load dataset 'no-such-user/no-such-dataset'"):
        load_documents(dataset="no-such-user/no-such-dataset")
