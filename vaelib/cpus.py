"""How many CPUs this process may really use, and PyTorch's thread count fitted to it.

PyTorch starts one intra-op thread per CPU it sees (``os.cpu_count()``), not per CPU the process
may use. Under a cgroup CPU quota (a container, Binder, a batch job, ``systemd-run -p CPUQuota=``)
or a narrower affinity mask, those threads wait for each other at the end of every parallel
operation while the quota holds some of them off the CPU, and training crawls
(benchmarks/README.md, "Threads under a CPU quota"). vaelib therefore calls :func:`fit_threads`
once, when it is imported.

Why a module of our own: checked in December 2026 against the libraries that could do this.

- joblib/loky ``cpu_count()`` (``loky/backend/context.py``, ``_cpu_count_cgroup``) reads only the
  fixed paths ``/sys/fs/cgroup/cpu.max`` and ``/sys/fs/cgroup/cpu/cpu.cfs_quota_us``: the root of
  the hierarchy. That is right inside a container with its own cgroup namespace, where the
  container's group is the mount's root, and wrong for a process placed in a nested group (a
  systemd unit or scope, a job scheduler's group, a cgroup v1 host without cgroup namespaces): the
  root says "no limit" while the process's own group has one. It is also not a vaelib dependency.
- ``os.process_cpu_count()`` (Python 3.13) counts the affinity mask only, no cgroup quota
  (CPython issue 120078 asks for that); vaelib supports Python 3.10 and later anyway.
- psutil has ``Process().cpu_affinity()`` and ``cpu_count()``, and no cgroup quota at all.

So :func:`usable_cpus` takes the affinity mask and the CPU quota of the process's OWN cgroup, read
through /proc/self/cgroup and /proc/self/mountinfo, and of every parent group up to the mount's
root (a parent's limit binds its children too), for cgroup v1 and v2. A missing or unreadable file
means "no limit from there", never an exception.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch

# Where cgroups are usually mounted, for when /proc/self/mountinfo cannot be read.
V2_FALLBACK = "/sys/fs/cgroup"
V1_CPU_FALLBACKS = ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpuacct,cpu")


def usable_cpus(root: str | os.PathLike = "/") -> int:
    """The CPUs this process may use: min(affinity mask, cgroup CPU quota rounded up), at least 1.

    ``root`` is where the file system starts (tests point it at a fake /proc and /sys tree).
    """
    count = affinity_count()
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, max(1, math.ceil(limit - 1e-9)))
    return max(1, count)


def affinity_count() -> int:
    """The CPUs in this process's affinity mask (os.cpu_count() where there is no such call)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cgroup_cpu_limit(root: str | os.PathLike = "/") -> float | None:
    """The smallest CPU quota (in CPUs: quota / period) over this process's cgroups and their parents.

    None when no cgroup sets one, or nothing can be read. Both hierarchies are looked at: on a
    hybrid host the cpu controller is in v1 and v2 holds no cpu.max, or the other way round.
    """
    root = Path(root)
    groups = _read(root / "proc/self/cgroup")
    if groups is None:
        return None
    mounts = _mounts(root)
    limits = []
    for line in groups.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            found = [m for m in mounts if m[2] == "cgroup2"]
            candidates = [(mount, point) for mount, point, _, _ in found] or [("/", V2_FALLBACK)]
            limits += [_walk(root, point, mount, path, _v2_limit) for mount, point in candidates]
        elif "cpu" in controllers.split(","):
            found = [m for m in mounts if m[2] == "cgroup" and "cpu" in m[3]]
            candidates = [(mount, point) for mount, point, _, _ in found] or [("/", p) for p in V1_CPU_FALLBACKS]
            limits += [_walk(root, point, mount, path, _v1_limit) for mount, point in candidates]
    return min((limit for limit in limits if limit is not None), default=None)


def fit_threads() -> int:
    """Lower torch's intra-op threads to :func:`usable_cpus` when it started more; return the count in force.

    Leaves torch alone when the user set OMP_NUM_THREADS or MKL_NUM_THREADS, or VAELIB_FIT_THREADS=0 (which
    benchmarks/bench_quota.py sets to measure what the fit gains). Never raises: thread fitting is an
    optimisation, not worth failing an import over.
    """
    user_set = any(os.environ.get(name, "").strip() for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"))
    if user_set or os.environ.get("VAELIB_FIT_THREADS", "").strip() == "0":
        return torch.get_num_threads()
    try:
        wanted = usable_cpus()
        if wanted < torch.get_num_threads():
            torch.set_num_threads(wanted)
    except Exception:
        pass  # torch keeps the count it chose
    return torch.get_num_threads()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _mounts(root: Path) -> list[tuple[str, str, str, set[str]]]:
    """The cgroup mounts of /proc/self/mountinfo: (root inside the hierarchy, mount point, fstype, options)."""
    text = _read(root / "proc/self/mountinfo")
    mounts = []
    for line in (text or "").splitlines():
        fields = line.split()
        dash = fields.index("-") if "-" in fields else -1  # the separator before fstype, source, options
        if dash < 5 or len(fields) < dash + 3 or fields[dash + 1] not in ("cgroup", "cgroup2"):
            continue
        options = set(fields[dash + 3].split(",")) if len(fields) > dash + 3 else set()
        mounts.append((_unescape(fields[3]), _unescape(fields[4]), fields[dash + 1], options))
    return mounts


def _walk(root: Path, mount_point: str, mount_root: str, path: str, read_limit) -> float | None:
    """The smallest limit from the process's group up to the mount's root; None when none is set.

    ``path`` is the group as /proc/self/cgroup names it, from the hierarchy's root; the mount shows
    the hierarchy from ``mount_root`` on (a container sees its own group at the mount point).
    """
    relative, inside = path, mount_root.rstrip("/")
    if inside and (path == inside or path.startswith(inside + "/")):
        relative = path[len(inside):]
    if ".." in relative.split("/"):  # a group outside this cgroup namespace's root: not visible from here
        return None
    parts = [p for p in relative.split("/") if p and p != "."]
    base = root / mount_point.lstrip("/")
    limits = [read_limit(base.joinpath(*parts[:depth])) for depth in range(len(parts) + 1)]
    return min((limit for limit in limits if limit is not None), default=None)


def _v2_limit(directory: Path) -> float | None:
    """cgroup v2 cpu.max: "max 100000" is no limit, "50000 100000" is half a CPU."""
    fields = (_read(directory / "cpu.max") or "").split()
    try:
        quota = int(fields[0])  # ValueError for "max"
        period = int(fields[1]) if len(fields) > 1 else 100000
    except (ValueError, IndexError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(directory: Path) -> float | None:
    """cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us; a quota of -1 is no limit."""
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    try:
        quota, period = int(quota), int(period)
    except (TypeError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
