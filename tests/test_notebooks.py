"""Notebooks in notebooks/: valid, executed, free of error outputs, and syntactically valid Python.

The notebooks are not executed here because one run trains a model for a minute or more. Execute a
changed notebook top to bottom before committing it, for example with
``jupyter nbconvert --to notebook --execute --inplace notebooks/NAME.ipynb``.
"""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="checking notebooks needs nbformat (pip install nbformat)")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOK_PATHS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
# Outputs are stored in the repository, so a notebook that prints a large table or an image bloats
# every clone.
MAX_NOTEBOOK_BYTES = 500_000
# IPython magics (%time) and shell escapes (!pip) are not Python syntax.
IPYTHON_LINE = re.compile(r"^(\s*)[%!]")


def read_notebook(path: Path):
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def python_source(source: str) -> str:
    """Replace IPython magic and shell lines with ``pass``, keeping indentation and line numbers."""
    return "\n".join(IPYTHON_LINE.sub(r"\1pass  # ", line) for line in source.splitlines())


def test_notebook_dir_has_notebooks():
    assert NOTEBOOK_PATHS, f"no .ipynb files found in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_notebook_is_valid_nbformat(path):
    notebook = read_notebook(path)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_notebook_is_small(path):
    size = path.stat().st_size
    assert size <= MAX_NOTEBOOK_BYTES, f"{path.name} is {size:,} bytes; clear or shorten its largest outputs"


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_notebook_has_no_error_outputs(path):
    for index, cell in enumerate(code_cells(read_notebook(path))):
        for output in cell.outputs:
            assert output.output_type != "error", (
                f"{path.name} code cell {index} has an error output: {output.ename}: {output.evalue}"
            )
            if output.output_type == "stream":
                assert "Traceback (most recent call last)" not in output.text, (
                    f"{path.name} code cell {index} printed a traceback"
                )


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_notebook_ran_top_to_bottom(path):
    # A committed notebook contains the outputs of one run of every code cell, in order.
    cells = [cell for cell in code_cells(read_notebook(path)) if cell.source.strip()]
    execution_counts = [cell.execution_count for cell in cells]
    assert execution_counts == list(range(1, len(cells) + 1)), (
        f"{path.name} execution counts are {execution_counts}; restart the kernel and run all cells"
    )


@pytest.mark.parametrize("path", NOTEBOOK_PATHS, ids=lambda path: path.name)
def test_notebook_code_cells_compile(path):
    for index, cell in enumerate(code_cells(read_notebook(path))):
        compile(python_source(cell.source), f"{path.name}, code cell {index}", "exec")


def test_python_source_replaces_magics():
    source = "%time x = 1\nif True:\n    !ls\ny = 2"
    assert python_source(source) == "pass  # time x = 1\nif True:\n    pass  # ls\ny = 2"
    compile(python_source(source), "example", "exec")
