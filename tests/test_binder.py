"""The mybinder.org configuration: environment.yml and postBuild, read the way repo2docker reads them.

repo2docker cannot run here (it needs Docker), so these tests check what can be checked without it:
the files parse, environment.yml names exactly what pyproject.toml needs, PyTorch comes from the CPU
index, and postBuild, run in a fresh environment that holds those packages, installs vaelib so that
every notebook's imports succeed.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--index-url=https://download.pytorch.org/whl/cpu"
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}  # conda-forge names that differ from PyPI's


def environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def pip_section() -> list[str]:
    return next(d["pip"] for d in environment()["dependencies"] if isinstance(d, dict))


def environment_requirements() -> dict[str, str]:
    """PyPI name -> version specifier of every package environment.yml installs, python and pip aside."""
    found = {}
    for dep in environment()["dependencies"]:
        if isinstance(dep, str):
            name, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", dep).groups()
            found[canonicalize_name(CONDA_TO_PYPI.get(name, name))] = spec
    for line in pip_section():
        if not line.startswith("-"):
            req = Requirement(line)
            found[canonicalize_name(req.name)] = str(req.specifier)
    return {name: spec for name, spec in found.items() if name not in ("python", "pip")}


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = (project["project"]["dependencies"] + project["project"]["optional-dependencies"]["dev"]
             + project["build-system"]["requires"])
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, lines)}


def test_binder_files_are_where_repo2docker_looks():
    assert (ROOT / "environment.yml").is_file() and (ROOT / "postBuild").is_file()
    for folder in ("binder", ".binder"):
        assert not (ROOT / folder).exists(), (
            f"with a {folder}/ folder repo2docker reads only that folder and ignores the top-level environment.yml")
    assert not (ROOT / "Dockerfile").exists(), "a Dockerfile makes repo2docker ignore every other file"


def test_environment_yml_names_exactly_what_pyproject_needs():
    env, project = environment_requirements(), pyproject_requirements()
    assert env.keys() == project.keys(), (f"only in environment.yml: {sorted(env.keys() - project.keys())}; "
                                          f"only in pyproject.toml: {sorted(project.keys() - env.keys())}")
    for name in ("torch", "torchvision"):
        assert env[name].startswith("=="), f"{name} is pinned on Binder, got {env[name]!r}"
        assert SpecifierSet(project[name]).contains(env[name][2:]), (
            f"{name}{env[name]} breaks pyproject's {project[name]}")
    drifted = {n: (env[n], project[n]) for n in env if n not in ("torch", "torchvision") and env[n] != project[n]}
    assert not drifted, f"version bounds differ (environment.yml, pyproject.toml): {drifted}"


def test_environment_yml_uses_conda_forge_a_supported_python_and_the_makefile_torch_pins():
    env = environment()
    assert env["channels"] == ["conda-forge"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python.split("=")[-1])
    assert env["dependencies"].index("pip") < next(i for i, d in enumerate(env["dependencies"]) if isinstance(d, dict))
    pins = re.search(r"^TORCH_PINS \?= (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert [line for line in pip_section() if not line.startswith("-")] == pins


def test_pytorch_comes_from_the_cpu_index_and_only_pytorch_uses_it():
    # --index-url replaces PyPI for the whole pip section, so PyPI's CUDA build cannot be picked;
    # every other package comes from conda-forge.
    assert [line for line in pip_section() if line.startswith("-")] == [CPU_INDEX]
    assert {Requirement(line).name for line in pip_section() if not line.startswith("-")} == {"torch", "torchvision"}


def test_postbuild_is_an_executable_bash_script_that_installs_vaelib_without_dependencies():
    script = ROOT / "postBuild"
    assert os.access(script, os.X_OK)
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    install = [line for line in lines if "pip install" in line]
    assert install == ["python -m pip install --no-deps --no-build-isolation --editable ."]


def notebook_imports() -> list[str]:
    """Every import statement of every notebook source, once each."""
    statements = []
    for source in sorted((ROOT / "notebooks").glob("**/[0-9][0-9]_*.py")):  # both versions
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and ast.unparse(node) not in statements:
                statements.append(ast.unparse(node))
    return statements


def test_postbuild_in_a_fresh_environment_makes_every_notebook_import_work(tmp_path):
    # The fresh environment: a new venv that sees this project's installed packages (the pip
    # equivalents of environment.yml, checked below) through a .pth file, but not vaelib, whose
    # editable hook is a .pth file that a path added this way does not run.
    repo, venv = tmp_path / "repo", tmp_path / "venv"
    shutil.copytree(ROOT / "vaelib", repo / "vaelib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "environment.yml", "postBuild"):
        shutil.copy2(ROOT / name, repo / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([venv / "bin" / "python", "-c", purelib], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               MPLCONFIGDIR=str(tmp_path / "mpl"))

    def python(code: str) -> subprocess.CompletedProcess:
        return subprocess.run(["python", "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)

    assert "No module named 'vaelib'" in python("import vaelib").stderr  # so the test below means something
    build = subprocess.run(["./postBuild"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr

    wanted = environment_requirements()
    check = "\n".join([
        "import importlib.metadata as md, os, vaelib",
        "from packaging.specifiers import SpecifierSet",
        f"assert os.path.dirname(vaelib.__file__) == {str(repo / 'vaelib')!r}, vaelib.__file__",
        f"for name, spec in {wanted!r}.items():",
        "    assert SpecifierSet(spec).contains(md.version(name)), (name, spec, md.version(name))",
        *notebook_imports(),
        "print('ok')",
    ])
    run = python(check)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def test_start_is_an_executable_bash_script_that_sets_malloc_and_runs_the_server(tmp_path):
    script = ROOT / "start"
    assert os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/bash\n")
    # repo2docker runs `start <server command>`: the command must run, and see the variables
    out = subprocess.run([str(script), sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == 1048576


def test_the_readme_badge_opens_jupyterlab_on_the_first_notebook():
    url = re.search(r"\]\((https://mybinder\.org/v2/gh/[^)\s]+)\)", (ROOT / "README.md").read_text()).group(1)
    first = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))[0]
    assert url.endswith(f"?urlpath=lab/tree/notebooks/{first.name}"), url
    assert re.fullmatch(r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/[\w.-]+\?.+", url), url
