"""How `make check` runs the notebooks beside the tests, in parallel (pytest-xdist, ``-n N --dist loadscope
--no-loadscope-reorder``). At the top level so that it applies to notebooks/ as well as tests/.

- Each notebook's cells run in order in one kernel, so all the cells of a notebook are one unit of work,
  sent to one worker (a scheduler of our own, below: xdist's ``xdist_group`` marks do not group nbval's
  cells under pytest 9.2, which no longer reads the node id that xdist 3.8 rewrites).
- Notebooks 5 and 6 load the model notebook 4 saved (runs/course-smoke in the smoke setting), so 04, 05
  and 06 of one version form one group, run in that order; and each version keeps its models in a folder
  of its own ($VAELIB_RUNS, else runs/, then check-student or check-instructor), so that the two notebook 4s,
  which may run at the same moment, never write the same file.
- The groups are handed out longest first (each notebook's committed full-run time, from
  benchmarks/results/notebook_times.json, as the estimate), then the tests one by one, so that no long
  notebook starts last.

Without xdist the same order and folders apply, one after the other.
"""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
COURSE_CHAIN = ("04", "05", "06")  # notebook 4 saves the course model that 5 and 6 load
BASE_RUNS = os.environ.get("VAELIB_RUNS")  # as the session found it


def notebook_of(item) -> tuple[str, str] | None:
    """(version, number) of a notebook cell that nbval collected, else None."""
    path = Path(str(item.fspath))
    if path.suffix != ".ipynb":
        return None
    return ("instructor" if path.parent.name == "solutions" else "student"), path.name[:2]


def group_of(version: str, number: str) -> str:
    return f"{version}-{'course' if number in COURSE_CHAIN else number}"


def estimated_seconds() -> dict[str, float]:
    """Each notebook number's committed full-run time: the best guess at its share of the smoke run."""
    try:
        seconds = json.loads((ROOT / "benchmarks" / "results" / "notebook_times.json").read_text())["seconds"]
        return {name[:2]: float(value) for name, value in seconds.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def pytest_collection_modifyitems(config, items):
    """The notebooks first, longest group first, each group's notebooks in their own order; then the tests."""
    estimate, groups = estimated_seconds(), {}
    for item in items:
        where = notebook_of(item)
        if where is not None and item.name == "Cell 0":
            group = group_of(*where)
            groups[group] = groups.get(group, 0.0) + estimate.get(where[1], 0.0)

    def order(item):
        where = notebook_of(item)
        if where is None:
            return (1, 0.0, "")  # the tests after the notebooks, in their own order (the sort is stable)
        group = group_of(*where)
        return (0, -groups.get(group, 0.0), group)

    items.sort(key=order)


def scope_of(nodeid: str) -> str:
    """xdist's unit of work for a test id: a notebook's group, or the test itself."""
    path = nodeid.split("::", 1)[0]
    if not path.endswith(".ipynb"):
        return nodeid
    version = "instructor" if Path(path).parent.name == "solutions" else "student"
    return group_of(version, Path(path).name[:2])


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # optional: a plain `pytest` without xdist runs too
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookGroups(LoadScopeScheduling):
        """LoadScopeScheduling with our units: each notebook group whole, each test alone."""

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return NotebookGroups(config, log)


@pytest.hookimpl(tryfirst=True)  # before the notebook's kernel starts, with its first cell
def pytest_runtest_setup(item):
    """A notebook's kernel gets its version's folder for trained models; every other test $VAELIB_RUNS as it was."""
    where = notebook_of(item)
    if where is not None:  # runs/ is where vaelib.config.runs_dir() puts them in a checkout
        os.environ["VAELIB_RUNS"] = str(Path(BASE_RUNS or ROOT / "runs") / f"check-{where[0]}")
    elif BASE_RUNS is None:
        os.environ.pop("VAELIB_RUNS", None)
    else:
        os.environ["VAELIB_RUNS"] = BASE_RUNS
