"""The notebooks: every .py has its .ipynb with the same cells, and `make check` runs them all.

The notebooks themselves run under nbval (`make check` passes them to pytest with --nbval-lax).
"""

import json
import re
import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))
IPYNBS = sorted(NOTEBOOKS.glob("*.ipynb"))


def cells(path: Path) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]


def test_there_are_notebooks_and_each_is_a_pair():
    assert len(SOURCES) >= 5
    assert {p.stem for p in SOURCES} == {p.stem for p in IPYNBS}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_holds_the_same_cells_as_its_py(source):
    mismatched = [i for i, (a, b) in enumerate(zip(cells(source), cells(source.with_suffix(".ipynb")))) if a != b]
    assert not mismatched and len(cells(source)) == len(cells(source.with_suffix(".ipynb"))), (
        f"{source.name} and its .ipynb differ (first cell {mismatched[:1]}): run `make sync`")


def test_make_check_runs_every_notebook():
    dry_run = subprocess.run(["make", "-n", "--always-make", "check"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    command = next(line for line in dry_run.splitlines() if "pytest" in line)
    assert "--nbval" in command
    missing = [nb.name for nb in IPYNBS if f"notebooks/{nb.name}" not in command.split()]
    assert not missing, f"`make check` does not run {missing}"


@pytest.mark.parametrize("notebook", IPYNBS, ids=lambda p: p.stem)
def test_committed_notebook_is_executed_with_figures(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c["execution_count"] for c in code), f"{notebook.name} is not executed: run `make notebooks`"
    outputs = [o for c in code for o in c["outputs"]]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{notebook.name} has no figure"
    assert not any(o.get("output_type") == "error" for o in outputs)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_reads_no_path_relative_to_the_current_directory(source):
    text = source.read_text()
    assert not re.search(r"""["'](\.\./|\./|data/|runs/)""", text), f"{source.name} uses a relative path"
    assert "import *" not in text


@pytest.mark.parametrize("notebook", IPYNBS, ids=lambda p: p.stem)
def test_some_cells_are_compared_by_nbval_and_their_committed_output_is_there(notebook):
    """Cells marked NBVAL_CHECK_OUTPUT must reproduce their committed output under `make check`;
    a marked cell committed without output would compare against nothing."""
    checked = [c for c in json.loads(notebook.read_text())["cells"]
               if c["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked, f"{notebook.name} has no cell marked # NBVAL_CHECK_OUTPUT"
    assert all(c["outputs"] for c in checked), f"a checked cell of {notebook.name} has no committed output"
