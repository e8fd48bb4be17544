"""Write the student notebooks from the instructor's: exercise solutions become stubs, worked answers go.

    python tools/make_student.py [--out notebooks] [notebooks/solutions/NN_name.py ...]

The instructor's notebooks, notebooks/solutions/NN_name.py (jupytext percent format), are the
source. In the student version, written to notebooks/NN_name.py and .ipynb (what the Binder badge
opens):
- a code cell tagged `solution` keeps each function's decorators, signature and docstring, and its
  body becomes `raise NotImplementedError("Hint: ...")`, the hint taken from the function's
  `# Hint: ...` comment and wrapped to fit the editor; in a class, each method with a `# Hint: ...`
  of its own becomes such a stub, and the other methods (`__init__`, say) stay as they are;
- a cell tagged `answer` (the worked answer to an open exercise) is left out;
- every other cell is the same. Without outputs by default; with --with-outputs (what `make notebooks`
  runs) each cell keeps the output of the executed instructor notebook, so the two versions cannot
  print different numbers, and the check after each stub shows what it prints for the stub.
- a link to the instructor's notebook (the Colab badge) points to the student's.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import re
import textwrap
import tokenize
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
HINT = re.compile(r"#\s*Hint:\s*(.+(?:\n[ \t]*#(?!\s*Hint:)[ \t]+\S.*)*)")  # a hint may go on over comment lines
WIDTH = 88  # the stub's lines fit an editor window beside the notebook


def has_tag(cell, tag: str) -> bool:
    return tag in cell.metadata.get("tags", [])


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and has_tag(cell, "solution")


def hint_text(comment: str) -> str:
    """The hint's words, its comment lines joined: '# Hint: a b\n    # c' -> 'Hint: a b c'."""
    return "Hint: " + " ".join(line.strip().lstrip("#").strip() for line in comment.splitlines())


def raise_line(indent: str, hint: str) -> list[str]:
    """`raise NotImplementedError(...)` with the hint as implicitly joined strings of at most WIDTH columns."""
    pieces = textwrap.wrap(hint, WIDTH - len(indent) - 6, drop_whitespace=False)
    if len(pieces) == 1:
        return [f"{indent}raise NotImplementedError({hint!r})\n"]
    return [f"{indent}raise NotImplementedError(\n", *(f"{indent}    {p!r}\n" for p in pieces), f"{indent})\n"]


def _colon_line(lines: list[str], fn: ast.FunctionDef) -> int:
    """The line (1-based) of the colon that closes the def statement, however many lines it spans."""
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO("".join(lines[fn.lineno - 1:])).readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == ":" and depth == 0:
            return fn.lineno + tok.start[0] - 1
    raise ValueError(f"cannot find the end of the signature of {fn.name}")


def first_line(fn: ast.FunctionDef) -> int:
    """The function's first line (1-based), its decorators included."""
    return fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno


def _stub(lines: list[str], fn: ast.FunctionDef, hint: str) -> list[str]:
    """fn's decorators, signature and docstring, then a raise in place of its body."""
    colon = _colon_line(lines, fn)
    if fn.body[0].lineno == colon:
        raise ValueError(f"{fn.name}: put the body on its own lines, below the signature")
    kept = lines[first_line(fn) - 1:colon]
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        kept += lines[first.lineno - 1:first.end_lineno]  # the docstring
    return kept + raise_line(" " * first.col_offset, hint)


FUNCTION = (ast.FunctionDef, ast.AsyncFunctionDef)


def exercise_functions(source: str) -> list[tuple[ast.FunctionDef, str | None]]:
    """What a solution cell asks for, in order, each with its own hint (None: the cell's): every top-level
    function, and every method of a top-level class whose own lines hold a '# Hint: ...'."""
    lines = source.splitlines(keepends=True)
    own_hint = lambda fn: (HINT.findall("".join(lines[first_line(fn) - 1:fn.end_lineno])) or [None])[0]
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, FUNCTION):
            found.append((node, own_hint(node)))
        elif isinstance(node, ast.ClassDef):
            found += [(m, own_hint(m)) for m in node.body if isinstance(m, FUNCTION) and own_hint(m)]
    return found


def stub_cell(source: str) -> tuple[str, int]:
    """A solution cell's source with each exercise function (exercise_functions) stubbed, and their number."""
    lines = source.splitlines(keepends=True)
    functions = exercise_functions(source)
    if not functions:
        raise ValueError(f"a cell tagged solution defines no function (nor a method with a hint):\n{source}")
    out, done = [], 0  # done: lines of the source already copied or replaced
    for fn, hint in functions:
        hints = [hint] if hint else HINT.findall(source)
        if not hints:
            raise ValueError(f"{fn.name}: the solution cell has no '# Hint: ...' line")
        out += lines[done:first_line(fn) - 1] + _stub(lines, fn, hint_text(hints[0]))
        done = fn.end_lineno
    student = "".join(out + lines[done:])
    return student if source.endswith("\n") else student.removesuffix("\n"), len(functions)


def check_output(nb, stub: str, check: str) -> str:
    """What the check cell prints after the stub: the notebook's imports, the stub, then the check."""
    imports = [n for c in nb.cells if c.cell_type == "code"
               for n in ast.parse(c.source).body if isinstance(n, (ast.Import, ast.ImportFrom))]
    namespace: dict = {}
    exec(compile(ast.Module(imports, type_ignores=[]), "<imports>", "exec"), namespace)
    exec(stub, namespace)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(check, namespace)
    return out.getvalue()


def student_notebook(source: Path, with_outputs: bool = False):
    """The student version of one instructor notebook, and the number of functions stubbed.

    with_outputs: start from the executed instructor notebook (source's .ipynb) and keep its outputs,
    except that each check cell after a stub shows what it prints for the stub ("not implemented yet");
    else no outputs. The cells are the same either way.
    """
    nb, stubs = jupytext.read(source.with_suffix(".ipynb") if with_outputs else source), 0
    nb.cells = [cell for cell in nb.cells if not has_tag(cell, "answer")]
    for cell in nb.cells:
        if cell.cell_type == "markdown":  # a link to the instructor's notebook becomes one to the student's
            cell.source = cell.source.replace("/notebooks/solutions/", "/notebooks/")
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    # each exercise's cell and its check cell run in the student's notebook too: never left unrun
    exercise_cells = {id(c) for i, c in enumerate(code) if is_solution(c) or (i and is_solution(code[i - 1]))}
    for i, cell in enumerate(code):
        if not is_solution(cell):
            continue
        cell.source, n = stub_cell(cell.source)
        stubs += n
        if with_outputs and i + 1 < len(code):
            printed = check_output(nb, cell.source, code[i + 1].source)
            code[i + 1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
            # a later cell that uses the exercise's function or the check's result, or anything made
            # from them in between, would show the instructor's output, not the student's: it is left unrun
            later = [c for c in code[i + 2:] if id(c) not in exercise_cells]
            leave_unrun(later, defined_names(cell.source) | defined_names(code[i + 1].source))
    for cell in code:
        if not with_outputs:
            cell.outputs, cell.execution_count = [], None
        elif is_solution(cell):
            cell.outputs = []
    return nb, stubs


def leave_unrun(cells, names: set[str]) -> None:
    """Clear the outputs of each cell that uses one of `names`, or a name such a cell binds, in order."""
    names = set(names)
    for cell in cells:
        if names & used_names(cell.source):
            cell.outputs, cell.execution_count = [], None
            names |= defined_names(cell.source)


def defined_names(source: str) -> set[str]:
    """Names a cell binds at its top level: functions, classes and assignment targets."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def used_names(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def make_student(sources: list[Path], out: Path, with_outputs: bool = False) -> dict[str, int]:
    """Write the student version of each notebook source into out; return the stubs per notebook."""
    out.mkdir(parents=True, exist_ok=True)
    stubs = {}
    for source in sources:
        nb, stubs[source.stem] = student_notebook(source, with_outputs)
        jupytext.write(nb, out / f"{source.stem}.ipynb")
        jupytext.write(nb, out / f"{source.stem}.py", fmt="py:percent")
    return stubs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks", help="output folder")
    parser.add_argument("sources", nargs="*", type=Path, help="instructor notebooks (default: notebooks/solutions)")
    parser.add_argument("--with-outputs", action="store_true",
                        help="keep the outputs of the executed instructor notebooks (make notebooks)")
    args = parser.parse_args()
    sources = args.sources or sorted(SOLUTIONS.glob("[0-9][0-9]_*.py"))
    for name, n in make_student(sources, args.out, args.with_outputs).items():
        print(f"{args.out / name}.ipynb: {n} exercise function{'s' * (n != 1)} stubbed")


if __name__ == "__main__":
    main()
