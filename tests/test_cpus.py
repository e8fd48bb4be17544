"""vaelib.cpus: usable CPUs from fake /proc and /sys trees, and fit_threads' respect for the user's setting.

The affinity mask is faked at 8 CPUs in every tree test, so that a quota that is not read (or read
from the wrong group) shows as 8 instead of the expected count, on any machine.
"""

import os

import pytest
import torch

from vaelib import cpus

V1_MOUNTS = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_GROUPS = "4:memory:/elsewhere\n2:cpu,cpuacct:/batch/job7\n0::/\n"
V2_MOUNTS = "30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
V2_GROUPS = "0::/system.slice/course.service/kernel\n"


@pytest.fixture
def eight_cpus(monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)


@pytest.fixture
def torch_threads():
    """Put torch's thread count back as it was, whatever a test did to it."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def tree(root, groups, mounts, files):
    """A fake file system under root: /proc/self/cgroup, /proc/self/mountinfo and cgroup files."""
    for path, text in {"proc/self/cgroup": groups, "proc/self/mountinfo": mounts, **files}.items():
        if text is None:
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def v1(root, quota, period="100000\n", at="batch/job7"):
    """cgroup v1: no quota at the hierarchy's root and its parent, the given one in the process's group."""
    cpu = "sys/fs/cgroup/cpu,cpuacct"
    files = {f"{cpu}/cpu.cfs_quota_us": "-1\n", f"{cpu}/cpu.cfs_period_us": "100000\n",
             f"{cpu}/batch/cpu.cfs_quota_us": "-1\n", f"{cpu}/batch/cpu.cfs_period_us": "100000\n",
             f"{cpu}/{at}/cpu.cfs_quota_us": quota, f"{cpu}/{at}/cpu.cfs_period_us": period}
    return tree(root, V1_GROUPS, V1_MOUNTS, files)


def test_v1_nested_group_one_cpu(tmp_path, eight_cpus):
    # The root of the hierarchy says -1 (what loky reads); the process's own group says one CPU.
    assert cpus.usable_cpus(v1(tmp_path, "100000\n")) == 1


def test_v1_quota_rounds_up(tmp_path, eight_cpus):
    assert cpus.cgroup_cpu_limit(v1(tmp_path, "150000\n")) == pytest.approx(1.5)
    assert cpus.usable_cpus(tmp_path) == 2


def test_v1_no_quota_is_the_affinity_count(tmp_path, eight_cpus):
    assert cpus.usable_cpus(v1(tmp_path, "-1\n")) == 8


def test_v1_parent_limit_binds(tmp_path, eight_cpus):
    # The group itself has no quota; its parent has three CPUs.
    v1(tmp_path, "-1\n")
    (tmp_path / "sys/fs/cgroup/cpu,cpuacct/batch/cpu.cfs_quota_us").write_text("300000\n")
    assert cpus.usable_cpus(tmp_path) == 3


def test_v2_max_is_no_limit(tmp_path, eight_cpus):
    base = "sys/fs/cgroup/system.slice/course.service"
    tree(tmp_path, V2_GROUPS, V2_MOUNTS, {f"{base}/kernel/cpu.max": "max 100000\n",
                                          f"{base}/cpu.max": "max 100000\n"})
    assert cpus.usable_cpus(tmp_path) == 8


def test_v2_parent_half_cpu_gives_one(tmp_path, eight_cpus):
    base = "sys/fs/cgroup/system.slice/course.service"
    tree(tmp_path, V2_GROUPS, V2_MOUNTS, {f"{base}/kernel/cpu.max": "max 100000\n",
                                          f"{base}/cpu.max": "50000 100000\n",
                                          "sys/fs/cgroup/system.slice/cpu.max": "400000 100000\n"})
    assert cpus.cgroup_cpu_limit(tmp_path) == pytest.approx(0.5)
    assert cpus.usable_cpus(tmp_path) == 1


def test_v2_container_sees_its_group_at_the_mount_root(tmp_path, eight_cpus):
    # Without a cgroup namespace: /proc/self/cgroup names the full path, the mount shows it at its root.
    mounts = "30 23 0:27 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw\n"
    tree(tmp_path, "0::/docker/abc\n", mounts, {"sys/fs/cgroup/cpu.max": "200000 100000\n"})
    assert cpus.usable_cpus(tmp_path) == 2


def test_v1_without_mountinfo_uses_the_usual_mount_point(tmp_path, eight_cpus):
    tree(tmp_path, "3:cpu,cpuacct:/job\n", None, {"sys/fs/cgroup/cpu/job/cpu.cfs_quota_us": "200000\n",
                                                   "sys/fs/cgroup/cpu/job/cpu.cfs_period_us": "100000\n"})
    assert cpus.usable_cpus(tmp_path) == 2


@pytest.mark.parametrize("case", ["no proc", "no cgroup files", "garbage", "unreadable"])
def test_missing_or_bad_files_mean_no_limit(tmp_path, eight_cpus, case):
    if case == "no cgroup files":
        tree(tmp_path, V1_GROUPS + V2_GROUPS, V1_MOUNTS, {})
    elif case == "garbage":
        tree(tmp_path, V1_GROUPS + "nonsense\n", V1_MOUNTS + "bad line\n",
             {"sys/fs/cgroup/cpu,cpuacct/batch/job7/cpu.cfs_quota_us": "lots\n",
              "sys/fs/cgroup/cpu,cpuacct/batch/job7/cpu.cfs_period_us": "\n",
              "sys/fs/cgroup/unified/cpu.max": "\n"})
    elif case == "unreadable":
        # A directory where the quota file should be: reading it fails with an OSError.
        v1(tmp_path, "100000\n")
        quota = tmp_path / "sys/fs/cgroup/cpu,cpuacct/batch/job7/cpu.cfs_quota_us"
        quota.unlink()
        quota.mkdir()
    assert cpus.cgroup_cpu_limit(tmp_path) is None
    assert cpus.usable_cpus(tmp_path) == 8


def test_affinity_narrower_than_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert cpus.usable_cpus(v1(tmp_path, "400000\n")) == 1


def test_this_machine_counts_at_least_one_and_at_most_its_affinity():
    n = cpus.usable_cpus()
    assert 1 <= n <= (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())


def test_fit_threads_lowers_torch_to_the_usable_cpus(monkeypatch, torch_threads):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(2)
    monkeypatch.setattr(cpus, "usable_cpus", lambda root="/": 1)
    assert cpus.fit_threads() == 1
    assert torch.get_num_threads() == 1


def test_fit_threads_never_raises_the_count(monkeypatch, torch_threads):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(1)
    monkeypatch.setattr(cpus, "usable_cpus", lambda root="/": 4)
    assert cpus.fit_threads() == 1


@pytest.mark.parametrize("name, value", [("OMP_NUM_THREADS", "2"), ("MKL_NUM_THREADS", "2"),
                                         ("VAELIB_FIT_THREADS", "0")])
def test_fit_threads_leaves_the_users_setting(monkeypatch, torch_threads, name, value):
    for other in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, value)
    torch.set_num_threads(2)
    monkeypatch.setattr(cpus, "usable_cpus", lambda root="/": 1)
    assert cpus.fit_threads() == 2
    assert torch.get_num_threads() == 2


def test_fit_threads_never_raises(monkeypatch, torch_threads):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS"):
        monkeypatch.delenv(name, raising=False)

    def broken(root="/"):
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(cpus, "usable_cpus", broken)
    assert cpus.fit_threads() == torch.get_num_threads()
