"""Write the student versions of the notebooks: every exercise solution replaced by a stub.

    python tools/make_student.py [--out build/student] [notebooks/NN_name.py ...]

A solution is a code cell tagged `solution` that defines one or more functions, each with a
`# Hint: ...` comment (CONTRIBUTING.md). In the student version each function keeps its
decorators, signature and docstring, and its body becomes `raise NotImplementedError("Hint: ...")`;
every other cell is left as it is, and there are no outputs. For each notebook source NN_name.py
(jupytext percent format) it writes NN_name.ipynb and NN_name.py into the output folder.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import tokenize
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
HINT = re.compile(r"#\s*Hint:\s*(.+)")


def is_solution(cell) -> bool:
    return cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])


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


def _stub(lines: list[str], fn: ast.FunctionDef, hint: str) -> list[str]:
    """fn's decorators, signature and docstring, then a raise in place of its body."""
    start = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
    colon = _colon_line(lines, fn)
    if fn.body[0].lineno == colon:
        raise ValueError(f"{fn.name}: put the body on its own lines, below the signature")
    kept = lines[start - 1:colon]
    first = fn.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        kept += lines[first.lineno - 1:first.end_lineno]  # the docstring
    return kept + [" " * first.col_offset + f"raise NotImplementedError({hint!r})\n"]


def stub_cell(source: str) -> tuple[str, int]:
    """A solution cell's source with each top-level function stubbed, and the number of functions."""
    lines = source.splitlines(keepends=True)
    functions = [n for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not functions:
        raise ValueError(f"a cell tagged solution defines no function:\n{source}")
    out, done = [], 0  # done: lines of the source already copied or replaced
    for fn in functions:
        start = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
        hints = HINT.findall("".join(lines[start - 1:fn.end_lineno])) or HINT.findall(source)
        if not hints:
            raise ValueError(f"{fn.name}: the solution cell has no '# Hint: ...' line")
        out += lines[done:start - 1] + _stub(lines, fn, "Hint: " + hints[0].strip())
        done = fn.end_lineno
    student = "".join(out + lines[done:])
    return student if source.endswith("\n") else student.removesuffix("\n"), len(functions)


def make_student(sources: list[Path], out: Path) -> dict[str, int]:
    """Write the student version of each notebook source into out; return the stubs per notebook."""
    out.mkdir(parents=True, exist_ok=True)
    stubs = {}
    for source in sources:
        nb = jupytext.read(source)
        stubs[source.stem] = 0
        for cell in filter(is_solution, nb.cells):
            cell.source, n = stub_cell(cell.source)
            stubs[source.stem] += n
        jupytext.write(nb, out / f"{source.stem}.ipynb")
        jupytext.write(nb, out / f"{source.stem}.py", fmt="py:percent")
    return stubs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student", help="output folder")
    parser.add_argument("sources", nargs="*", type=Path, help="notebook sources (default: notebooks/NN_*.py)")
    args = parser.parse_args()
    sources = args.sources or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    for name, n in make_student(sources, args.out).items():
        print(f"{args.out / name}.ipynb: {n} exercise function{'s' * (n != 1)} stubbed")


if __name__ == "__main__":
    main()
