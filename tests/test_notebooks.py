"""The notebooks as files: pairs in step, student versions in step with the instructor's, committed outputs
that a reader can trust, and `make check` running them all.

The notebooks themselves run under nbval (`make check` passes every .ipynb to pytest with --nbval-lax).
"""

import json
import re
import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDENT, SOLUTIONS = ROOT / "notebooks", ROOT / "notebooks" / "solutions"
SOURCES = sorted(SOLUTIONS.glob("[0-9][0-9]_*.py"))  # the instructor's notebooks, the source of everything
PAIRS = sorted(STUDENT.glob("[0-9][0-9]_*.py")) + SOURCES
IPYNBS = sorted(STUDENT.glob("[0-9][0-9]_*.ipynb")) + sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}  # ipykernel's own
FULL_MNIST = "using full MNIST: 60,000 train / 10,000 test images"


def name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def cells(nb) -> list[tuple[str, str, list]]:
    return [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in nb.cells]


def outputs_text(notebook: Path) -> str:
    return "\n".join(json.dumps(c.get("outputs", [])) for c in json.loads(notebook.read_text())["cells"])


def test_every_instructor_notebook_has_a_student_version_and_every_file_a_pair():
    assert len(SOURCES) >= 7
    assert [p.name for p in sorted(STUDENT.glob("[0-9][0-9]_*.py"))] == [p.name for p in SOURCES]
    assert {p.with_suffix("") for p in PAIRS} == {p.with_suffix("") for p in IPYNBS}


@pytest.mark.parametrize("source", PAIRS, ids=name)
def test_ipynb_holds_the_same_cells_and_kernel_as_its_py(source):
    """The same cells; and the same kernelspec, ipykernel's own, so that JupyterLab does not rewrite the
    notebook (and a student's next `git pull` does not conflict) merely because it was opened."""
    py, ipynb = jupytext.read(source), jupytext.read(source.with_suffix(".ipynb"))
    mismatched = [i for i, (a, b) in enumerate(zip(cells(py), cells(ipynb))) if a != b]
    assert not mismatched and len(py.cells) == len(ipynb.cells), (
        f"{name(source)} and its .ipynb differ (first cell {mismatched[:1]}): run `make sync`")
    assert py.metadata["kernelspec"] == ipynb.metadata["kernelspec"] == KERNELSPEC


@pytest.mark.parametrize("source", SOURCES, ids=name)
def test_the_student_notebook_is_the_instructors_with_its_exercises_open(source):
    """notebooks/NN.py is what tools/make_student.py makes of notebooks/solutions/NN.py, cell for cell."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_student", ROOT / "tools" / "make_student.py")
    make_student = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_student)
    expected, _ = make_student.student_notebook(source)
    assert cells(jupytext.read(STUDENT / source.name)) == cells(expected), (
        f"notebooks/{source.name} is not in step with notebooks/solutions/{source.name}: run `make notebooks`")


def test_make_check_runs_every_notebook_of_both_versions():
    dry_run = subprocess.run(["make", "-n", "--always-make", "check"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    command = next(line for line in dry_run.replace("\\\n", " ").splitlines() if "pytest" in line)
    assert "--nbval" in command
    missing = [name(nb) for nb in IPYNBS if str(nb.relative_to(ROOT)) not in command.split()]
    assert not missing, f"`make check` does not run {missing}"


@pytest.mark.parametrize("notebook", IPYNBS, ids=name)
def test_committed_notebook_is_executed_on_full_mnist_with_figures(notebook):
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    # a student notebook leaves unrun (no output) only the cells that use an exercise's answer (make_student)
    assert all(c["execution_count"] or ("solutions" not in str(notebook) and not c["outputs"]) for c in code), (
        f"{name(notebook)} is not executed: run `make notebooks`")
    assert code[0]["execution_count"], f"{name(notebook)} is not executed: run `make notebooks`"
    outputs = [o for c in code for o in c["outputs"]]
    unrun = [c for c in code if not c["execution_count"]]  # a student notebook's figures may all need the exercise
    assert any("image/png" in o.get("data", {}) for o in outputs) or unrun, f"{name(notebook)} has no figure"
    assert not any(o.get("output_type") == "error" for o in outputs)
    if "data = load_mnist(" in notebook.with_suffix(".py").read_text():
        assert FULL_MNIST in outputs_text(notebook), f"{name(notebook)} was not run on full MNIST"


@pytest.mark.parametrize("notebook", IPYNBS, ids=name)
def test_committed_outputs_show_no_machine_paths_network_errors_or_frozen_progress_bars(notebook):
    text = outputs_text(notebook)
    for pattern in [r"/(work|root|home|tmp|Users)/", r"URLError|Name or service not known|Traceback",
                    r"widget-view\+json|\|\s*0/\d+ \[", r"vaelib: using the offline sample"]:
        assert not re.search(pattern, text), f"{name(notebook)}: outputs match {pattern!r}"


@pytest.mark.parametrize("source", PAIRS, ids=name)
def test_the_notebook_reads_no_relative_path_and_marks_compared_cells_with_tags(source):
    text = source.read_text()
    assert not re.search(r"""["'](\.\./|\./|data/|runs/)""", text), f"{name(source)} uses a relative path"
    assert "import *" not in text
    assert "NBVAL_" not in text, "mark cells for nbval with the tag nbval-check-output, not a comment"
    tagged = [c for c in jupytext.read(source).cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert tagged, f"{name(source)} has no cell tagged nbval-check-output"


@pytest.mark.parametrize("notebook", IPYNBS, ids=name)
def test_compared_cells_have_their_committed_output(notebook):
    """A cell tagged nbval-check-output must reproduce its committed output under `make check`; one
    committed without output would compare against nothing."""
    checked = [c for c in json.loads(notebook.read_text())["cells"]
               if "nbval-check-output" in c["metadata"].get("tags", [])]
    assert checked and all(c["outputs"] for c in checked), f"a compared cell of {name(notebook)} has no output"


@pytest.mark.parametrize("source", SOURCES, ids=name)
def test_every_notebook_ends_with_a_summary_and_exercises(source):
    headings = [c.source.splitlines()[0] for c in jupytext.read(source).cells
                if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert headings[-2:] == ["## Summary", "## Exercises"], headings[-3:]
