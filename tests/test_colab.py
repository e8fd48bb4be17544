"""The Colab install cell: one cell, first in every notebook, that installs vaelib on Colab and nowhere else.

On Colab (`google.colab` imported) without vaelib, the cell runs `pip install --no-deps $VAELIB_SOURCE`
(default: the course's GitHub repository). Here it runs for real, without network: in a throwaway
virtual environment of the base interpreter, with a fake `google.colab` module and VAELIB_SOURCE set to
a copy of this checkout; then vaelib, its data and its pretrained models must be installed there.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import jupytext
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = (sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))
             + sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")))
# Runs the cell as a notebook would, after pretending to be Colab when told to ("colab").
RUNNER = """\
import sys, types
if sys.argv[1] == "colab":
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    google.__path__, google.colab = [], colab
    sys.modules.update({"google": google, "google.colab": colab})
cell = open(sys.argv[2], encoding="utf-8").read()
exec(compile(cell, "the Colab install cell", "exec"), {"__name__": "__main__"})
"""
# What a package build needs from the checkout (copied, so that the build writes nothing here).
SOURCE = ("pyproject.toml", "README.md", "vaelib")
# Folders of vaelib that hold data, not code: everything in them must be installed.
DATA_FOLDERS = ("data", "pretrained")


def first_code_cell(path: Path) -> str:
    return next(cell.source for cell in jupytext.read(path).cells if cell.cell_type == "code")


def install_cell() -> str:
    return first_code_cell(NOTEBOOKS[0])


def run_cell(python, tmp_path: Path, colab: bool, source, env: dict | None = None) -> subprocess.CompletedProcess:
    """The install cell run by `python`, as on Colab or not, with $VAELIB_SOURCE = source."""
    (tmp_path / "cell.py").write_text(install_cell(), encoding="utf-8")
    (tmp_path / "runner.py").write_text(RUNNER, encoding="utf-8")
    return subprocess.run([str(python), str(tmp_path / "runner.py"), "colab" if colab else "elsewhere",
                           str(tmp_path / "cell.py")], env={**(env or os.environ), "VAELIB_SOURCE": str(source)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_every_notebook_opens_with_the_same_install_cell():
    solutions = [p for p in NOTEBOOKS if p.parent.name == "solutions"]
    assert solutions and len(solutions) < len(NOTEBOOKS), "no instructor or no student notebooks found"
    cell = install_cell()
    assert "google.colab" in cell and "VAELIB_SOURCE" in cell and '"pip", "install"' in cell, cell
    different = [str(p.relative_to(ROOT)) for p in NOTEBOOKS if first_code_cell(p) != cell]
    assert not different, f"the first code cell differs from {NOTEBOOKS[0].relative_to(ROOT)}'s in {different}"


def test_elsewhere_the_cell_installs_nothing(tmp_path):
    """Not on Colab; and on Colab with vaelib already there. A pip run would fail: the source does not exist."""
    missing = tmp_path / "no-such-source"
    for colab in (False, True):
        result = run_cell(sys.executable, tmp_path, colab, missing)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (colab, result.stderr)


def test_on_colab_the_cell_installs_vaelib_with_its_data(tmp_path):
    venv = tmp_path / "colab"
    python = make_venv(venv)
    site = Path(ask(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))
    for name in ("pip", "setuptools"):
        copy_distribution(name, site)
    found = json.loads(ask(python, "import importlib.util, json, setuptools; print(json.dumps("
                                   "[importlib.util.find_spec('vaelib') is None, setuptools.__version__]))"))
    assert found[0], f"{python} can import vaelib before the cell has run"
    # Without build isolation the build uses this setuptools: it must meet pyproject's requirement, and
    # build a wheel by itself (from 70.1; before, bdist_wheel came from the `wheel` package).
    setuptools = Version(found[1])
    assert setuptools in build_requirement("setuptools").specifier and setuptools >= Version("70.1"), setuptools

    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",  # "0": no isolation
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_CACHE_DIR=str(tmp_path / "pip-cache"), PYTHONNOUSERSITE="1")

    failed = run_cell(python, tmp_path, True, tmp_path / "no-such-source", env)  # here the cell does run pip
    assert failed.returncode != 0 and "CalledProcessError" in failed.stderr and "no-such-source" in failed.stderr
    assert not (site / "vaelib").exists(), failed.stderr
    result = run_cell(python, tmp_path, True, source, env)
    assert result.returncode == 0, result.stdout + result.stderr

    origin = Path(ask(python, "import importlib.util; print(importlib.util.find_spec('vaelib').origin)"))
    assert origin.resolve() == (site / "vaelib" / "__init__.py").resolve(), origin
    for folder in DATA_FOLDERS:
        assert files(site / "vaelib" / folder) == files(ROOT / "vaelib" / folder), folder
    assert {p.name for p in (site / "vaelib" / "data").iterdir()} >= {"MD5SUMS", "t10k-images-idx3-ubyte.gz"}

    # With Colab's own packages (here: the course environment's, after the install), vaelib imports from
    # the new environment and reads its offline sample there (each file checked against its MD5).
    (site / "course-packages.pth").write_text("\n".join(dict.fromkeys(
        sysconfig.get_paths()[k] for k in ("purelib", "platlib"))) + "\n")
    loaded = json.loads(ask(python, "import json, vaelib; d = vaelib.load_mnist('sample', verbose=False); "
                                    "print(json.dumps([vaelib.__file__, len(d.train_x) + len(d.test_x)]))", env))
    assert Path(loaded[0]).resolve() == (site / "vaelib" / "__init__.py").resolve() and loaded[1] == 10_000, loaded


def make_venv(venv: Path) -> Path:
    """A virtual environment of the base interpreter (the one the course's .venv was made from): no pip,
    no setuptools, no vaelib; the test copies in what it needs."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert base.exists(), f"no base interpreter at {base}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def copy_distribution(name: str, site: Path) -> None:
    """Copy an installed distribution of the course environment (its files as RECORD lists them) to `site`.
    The base interpreter's own setuptools cannot serve: Python 3.11 bundles 65.5, which builds wheels only
    with the `wheel` package, and a fresh Python has none; the course environment has a recent one (torch
    requires setuptools >= 77)."""
    dist = importlib.metadata.distribution(name)
    root = Path(dist.locate_file("")).resolve()
    assert dist.files, f"{name} lists no files"
    for file in dist.files:
        path = Path(dist.locate_file(file)).resolve()
        if "__pycache__" in path.parts or not path.is_relative_to(root) or not path.is_file():
            continue
        (site / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, site / path.relative_to(root))


def build_requirement(name: str) -> Requirement:
    import tomllib

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    return next(r for r in map(Requirement, requires) if r.name == name)


def ask(python: Path, code: str, env: dict | None = None) -> str:
    """What `python -c code` prints, run outside the checkout (`-c` puts the working folder on sys.path)."""
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=python.parents[2], env=env or {k: v for k, v in os.environ.items()
                                                               if not k.startswith("PYTHON")})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def files(folder: Path) -> list[str]:
    """Every file under `folder`, relative to it (none when the folder does not exist)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)
