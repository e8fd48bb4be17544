"""tools/make_student.py: solutions become stubs with wrapped hints, worked answers go, everything else stays,
and the committed student notebooks run with each check saying what is not done yet."""

import ast
import contextlib
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch
from nbclient import NotebookClient

import vaelib.exercises

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))
spec = importlib.util.spec_from_file_location("make_student", ROOT / "tools" / "make_student.py")
make_student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_student)

SYNTHETIC = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tiny exercise

# %%
import torch

from vaelib.exercises import check_kl_normal

# %% tags=["solution"]
# Hint: this line is for the whole cell.
SCALE = 0.5


def my_kl(mu: torch.Tensor, logvar: torch.Tensor,
          mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(mu_p, exp(logvar_p))). Shapes: 4 x (B, L) -> (B,)."""
    # Hint: redo the four steps with p's mean and variance, summed over dim -1.
    per_dim = logvar_p - logvar + (logvar.exp() + (mu - mu_p) ** 2) / logvar_p.exp() - 1
    return SCALE * per_dim.sum(-1)


@torch.no_grad()
def helper(x):
    return x + 1

# %%
check_kl_normal(my_kl)

# %% [markdown] tags=["answer"]
# A worked answer to an open exercise: the student does not see it.

# %% tags=["answer"]
print("the answer")

# %%
print("ran to the end")
'''

STUDENT_CELL = '''# Hint: this line is for the whole cell.
SCALE = 0.5


def my_kl(mu: torch.Tensor, logvar: torch.Tensor,
          mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(mu_p, exp(logvar_p))). Shapes: 4 x (B, L) -> (B,)."""
    raise NotImplementedError("Hint: redo the four steps with p's mean and variance, summed over dim -1.")


@torch.no_grad()
def helper(x):
    raise NotImplementedError('Hint: this line is for the whole cell.')'''


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def printed(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    (folder / "01_tiny.py").write_text(SYNTHETIC)
    stubs = make_student.make_student([folder / "01_tiny.py"], folder / "student")
    return folder, stubs


def test_the_solution_cell_becomes_stubs_with_signature_docstring_and_hint(synthetic):
    folder, stubs = synthetic
    assert stubs == {"01_tiny": 2}
    for student in (folder / "student" / "01_tiny.ipynb", folder / "student" / "01_tiny.py"):
        cells = jupytext.read(student).cells
        assert [c.source for c in cells if make_student.is_solution(c)] == [STUDENT_CELL]


def test_every_other_cell_and_line_is_unchanged_answers_are_left_out_and_outputs_are_empty(synthetic):
    folder, _ = synthetic
    source = jupytext.read(folder / "01_tiny.py")
    student = nbformat.read(folder / "student" / "01_tiny.ipynb", as_version=4)
    kept = [c for c in source.cells if not make_student.has_tag(c, "answer")]
    assert len(kept) == len(source.cells) - 2 == len(student.cells) == 5
    for before, after in zip(kept, student.cells):
        assert (after.cell_type, after.metadata) == (before.cell_type, before.metadata)
        assert after.source == before.source or make_student.is_solution(before)
        assert after.get("outputs", []) == [] and after.get("execution_count") is None
    student_py = (folder / "student" / "01_tiny.py").read_text()
    assert "the answer" not in student_py and "worked answer" not in student_py
    solution = next(c.source for c in source.cells if make_student.is_solution(c))
    answers = SYNTHETIC[SYNTHETIC.index("# %% [markdown] tags=[\"answer\"]"):SYNTHETIC.index("# %%\nprint(\"ran")]
    expected_py = SYNTHETIC.replace(solution, STUDENT_CELL).replace(answers, "")
    body = student_py[student_py.index("# %% [markdown]"):]  # jupytext records its own version in the header
    assert body == expected_py[expected_py.index("# %% [markdown]"):]


def test_a_long_hint_is_wrapped_into_lines_that_fit_and_say_the_same():
    hint = "Hint: " + " ".join(f"word{i}" for i in range(60))
    cut = hint.index(" ", 80)  # the comment goes on over a second line
    source = f"def f(x):\n    # {hint[:cut]}\n    #{hint[cut:]}\n    return x\n"
    stub, _ = make_student.stub_cell(source)
    assert all(len(line) <= make_student.WIDTH for line in stub.splitlines())
    raised = stub[stub.index("raise"):]
    assert eval(raised[len("raise NotImplementedError"):]) == hint  # the strings, joined, are the whole hint


def test_the_student_notebook_runs_to_the_end_and_the_check_says_not_implemented(synthetic):
    folder, _ = synthetic
    nb = execute(folder / "student" / "01_tiny.ipynb")
    check, last = nb.cells[3], nb.cells[4]
    assert printed(check).strip() == ("✗ my_kl: not implemented yet. "
                                      "Hint: redo the four steps with p's mean and variance, summed over dim -1.")
    assert [o.output_type for o in check.outputs] == ["stream"]  # the returned CheckResult displays nothing
    assert printed(last) == "ran to the end\n"


def test_the_solution_notebook_passes_its_check(synthetic):
    folder, _ = synthetic
    jupytext.write(jupytext.read(folder / "01_tiny.py"), folder / "01_tiny.ipynb")
    nb = execute(folder / "01_tiny.ipynb")
    assert printed(nb.cells[3]).startswith("✓ my_kl is correct")


def test_a_solution_cell_without_a_function_or_a_hint_is_refused():
    with pytest.raises(ValueError, match="defines no function"):
        make_student.stub_cell("# Hint: x\nx = 1\n")
    with pytest.raises(ValueError, match="no '# Hint: ...' line"):
        make_student.stub_cell("def f(x):\n    return x\n")
    with pytest.raises(ValueError, match="defines no function"):  # a class with no hinted method asks for nothing
        make_student.stub_cell("class A:\n    def f(self, x):\n        return x\n")


CLASS_CELL = '''class CourseVAE(nn.Module):
    """A VAE."""

    def __init__(self, D=784, L=2):
        super().__init__()
        self.encoder = nn.Linear(D, L)  # Hint-free: __init__ stays

    @torch.no_grad()
    def forward(self, x, generator=None):
        """One pass: logits, mu, logvar."""
        # Hint: the encoder, the heads,
        #       then the decoder.
        h = self.encoder(x)
        return h, h, h

    def encode(self, x):
        return self.encoder(x)
'''

CLASS_STUB = '''class CourseVAE(nn.Module):
    """A VAE."""

    def __init__(self, D=784, L=2):
        super().__init__()
        self.encoder = nn.Linear(D, L)  # Hint-free: __init__ stays

    @torch.no_grad()
    def forward(self, x, generator=None):
        """One pass: logits, mu, logvar."""
        raise NotImplementedError('Hint: the encoder, the heads, then the decoder.')

    def encode(self, x):
        return self.encoder(x)
'''


def test_a_method_with_a_hint_becomes_a_stub_and_the_other_methods_of_its_class_stay():
    assert make_student.stub_cell(CLASS_CELL) == (CLASS_STUB, 1)
    namespace = {}
    exec("import torch\nfrom torch import nn\n" + CLASS_STUB, namespace)
    model = namespace["CourseVAE"](D=3)  # __init__ still builds the layers
    assert model.encode(torch.ones(1, 3)).shape == (1, 2)
    with pytest.raises(NotImplementedError, match="Hint: the encoder"):
        model(torch.ones(1, 3))


def test_a_cell_with_a_class_and_a_function_stubs_both():
    source = CLASS_CELL + "\n\ndef my_step(model):\n    # Hint: one line.\n    return model\n"
    stub, n = make_student.stub_cell(source)
    assert n == 2 and stub == CLASS_STUB + "\n\ndef my_step(model):\n    raise NotImplementedError('Hint: one line.')\n"


def solution_functions(source: Path) -> list[str]:
    cells = [c for c in jupytext.read(source).cells if make_student.is_solution(c)]
    return [fn.name for c in cells for fn, _ in make_student.exercise_functions(c.source)]


def test_make_student_stubs_every_solution_function_of_every_notebook(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "make_student.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{s.stem}{ext}" for s in SOURCES for ext in (".ipynb", ".py"))
    expected = sum(len(solution_functions(s)) for s in SOURCES)
    assert expected >= 1, "no notebook has a cell tagged solution"
    stubbed = sum(int(n) for n in re.findall(r": (\d+) exercise", out))
    in_files = sum(len(re.findall(r"""raise NotImplementedError\(\s*['"]Hint: """, c.source)) for s in SOURCES
                   for c in jupytext.read(tmp_path / f"{s.stem}.ipynb").cells if make_student.is_solution(c))
    assert stubbed == in_files == expected


def exercises():
    """(notebook, solution cell, the cell after it, the earlier exercises' (solution, check) pairs) for every
    solution cell in notebooks/: a later exercise may use what an earlier one's check cell defined."""
    for source in SOURCES:
        cells = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
        earlier = []
        for i, cell in enumerate(cells):
            if make_student.is_solution(cell):
                check = cells[i + 1].source if i + 1 < len(cells) else ""
                yield pytest.param(source, cell.source, check, list(earlier), id=f"{source.stem}-{i}")
                earlier.append((cell.source, check))


def run_check(source: Path, solution: str, check: str, earlier=()) -> str:
    """Run a notebook's imports, its earlier exercises (solved) with their checks, then a solution (or stub) cell
    and its check cell; return what the last check printed."""
    imports = [n for c in jupytext.read(source).cells if c.cell_type == "code"
               for n in ast.parse(c.source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    namespace = {}
    exec(compile(ast.Module(imports, type_ignores=[]), str(source), "exec"), namespace)
    with contextlib.redirect_stdout(io.StringIO()):
        for before in earlier:
            exec("\n".join(before), namespace)
    exec(solution, namespace)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(check, namespace)
    return out.getvalue()


@pytest.mark.parametrize("source, solution, check, earlier", list(exercises()))
def test_each_notebook_solution_passes_its_check_and_its_stub_fails_it(source, solution, check, earlier):
    checkers = re.findall(r"\b(check_\w+)\(", check)
    assert checkers and all(hasattr(vaelib.exercises, c) for c in checkers), (
        f"the cell after a solution in {source.name} must call a checker from vaelib.exercises")
    assert run_check(source, solution, check, earlier).startswith("✓ ")
    stub, _ = make_student.stub_cell(solution)
    assert re.match(r"✗ \w+: not implemented yet\. Hint: ", run_check(source, stub, check, earlier))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_committed_student_notebook_ran_and_each_check_said_not_implemented(source):
    """The committed student notebook ran to the end (make notebooks; nbval reruns it in make check), and
    the check after each stubbed exercise printed that it is not done yet, with the hint."""
    student = nbformat.read(ROOT / "notebooks" / f"{source.stem}.ipynb", as_version=4)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert code[0].execution_count  # made from the executed instructor notebook (make notebooks)
    unrun = [c for c in code if not c.execution_count]
    assert all(not c.outputs for c in unrun)  # cells that depend on an exercise are left unrun, not shown solved
    for i, cell in enumerate(code):
        if make_student.is_solution(cell):
            assert re.match(r"✗ \w+: not implemented yet\. Hint: ", printed(code[i + 1])), printed(code[i + 1])


def test_a_cell_made_from_an_exercise_through_other_cells_is_left_unrun_too():
    """Outputs that depend on the student's function, directly or through names bound in between, are not shown."""
    cells = [nbformat.v4.new_code_cell(source, execution_count=n, outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text=str(n))]) for n, source in enumerate(
        ["model = Model()", "losses = train(model)", "print(losses[-1])", "print(data.shape)", "x = 1"], 1)]
    make_student.leave_unrun(cells, {"Model"})
    assert [bool(c.outputs) for c in cells] == [False, False, False, True, True]
    assert [c.execution_count for c in cells] == [None, None, None, 4, 5]
