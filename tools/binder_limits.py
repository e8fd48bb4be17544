"""Run notebooks under Binder's limits, enforced by the kernel: 2 GiB of memory, no swap, one CPU.

    python tools/binder_limits.py                              # every student notebook, smoke setting
    python tools/binder_limits.py --full                       # full settings (what students run)
    python tools/binder_limits.py notebooks/01_generative_model_elbo.ipynb
    python tools/binder_limits.py --memory 2G --cpus 1 --json binder.json --full notebooks/06_*.ipynb

Each notebook runs in a fresh kernel (nbclient, as tools/notebook_resources.py runs it), with the
environment Binder's ./start exports, VAELIB_PROGRESS=0 and MPLBACKEND=Agg (VAELIB_DATA passes
through, made absolute; the rest of the caller's environment too, OMP_NUM_THREADS included, which
Binder does not set). The runner process and the kernel, with all their children, are put in a
control group of their own, so the limits bind the way Binder's container limit does (the runner,
about 80 MB, stands in for the notebook server that shares the container on Binder):

- cgroup v1 (this project's build machine; needs root): a memory group and a cpu group made inside
  this process's own groups, with memory.limit_in_bytes, memory.memsw.limit_in_bytes (where the
  kernel has swap accounting) and memory.swappiness=0, cpu.cfs_period_us=100000 and
  cpu.cfs_quota_us=cpus x 100000. A shell wrapper writes its own pid into both groups' cgroup.procs
  and then execs the runner. The groups are removed afterwards, also after Ctrl-C or an error.
- elsewhere (cgroup v2 under systemd): ``systemd-run --scope -p MemoryMax= -p MemorySwapMax=0
  -p CPUQuota=``, and the scope's memory.peak, memory.events and cpu.stat are copied out before it
  ends. Not tried on the build machine (no systemd there).
- neither: the tool says so and runs nothing (exit status 2).

Reported per notebook: wall seconds; the kernel's CPU seconds; the group's peak memory
(memory.max_usage_in_bytes, or memory.peak on v2: runner + kernel + the page cache they caused);
the kernel's peak resident set (getrusage of the runner's children: no page cache); how many times
the memory limit was reached (memory.failcnt and memory.memsw.failcnt; the kernel then reclaims
page cache to stay under it, or OOM-kills; on the build machine's kernel, 6.18, both stay 0 even at
an OOM kill, so a group peak equal to the limit is the surer sign) and
how many processes the OOM killer killed (memory.oom_control's oom_kill); how many CPU periods were
throttled and for how long in all (cpu.stat). Verdict: OK when the notebook finished, nothing was
OOM-killed and both peaks stayed at or below 1.5 GiB (a margin under 2 GiB); otherwise the limit
or failure that decided it. Sizes: "2G" is 2 GiB (binary units, as JupyterHub reads them).

The two peaks differ, and neither alone is what a fresh Binder container is charged: the group is
charged only for pages it brings in itself, so shared libraries (torch's, several hundred MB) that
are already in the page cache from earlier runs on this machine count in the kernel's resident set
but not in the group's peak; on Binder the container loads them first and is charged for them. The
group's peak, for its part, counts the runner and page cache that the resident set does not. The
verdict takes the larger of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_resources import start_exports  # noqa: E402

CGROUP_ROOT = Path("/sys/fs/cgroup")
GiB = 2 ** 30
OK_PEAK = 1.5 * GiB
PERIOD_US = 100_000

# tools/notebook_resources.py's runner, made to report its kernel's peak memory and CPU time even
# when the notebook fails or the kernel dies, as one JSON line at the end.
RUNNER = """
import json, resource, sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
error = None
try:
    NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
except BaseException as exc:
    lines = str(exc).strip().splitlines()
    error = type(exc).__name__ + (": " + lines[-1][:200] if lines else "")
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"peak_rss_kib": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime, "error": error}))
"""

# Runs inside the group: join both groups, then become the runner.
V1_WRAPPER = ('echo $$ > "$1" && echo $$ > "$2" || { echo "could not join $1 and $2" >&2; exit 125; }; '
              'shift 2; exec "$@"')
# Runs inside a systemd scope: the runner, then a copy of the scope's counters before the scope ends.
V2_SNAPSHOT = ('dest="$1"; shift; "$@"; rc=$?; cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); '
               'for f in memory.peak memory.events memory.max memory.swap.max cpu.stat cpu.max; do '
               'cat "$cg/$f" > "$dest/$f" 2>/dev/null; done; exit $rc')


class CannotEnforce(RuntimeError):
    """The limits cannot be put in force on this machine."""


# ---------------------------------------------------------------------------------------------------
# Small readers and formatters

def parse_size(text: str) -> int:
    """Bytes in "2G", "2GiB", "1.5G", "512M", "2048m", "100000": binary units, as JupyterHub reads them."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 2G, 1536M, 2147483648)")
    number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * 1024 ** " kmgt".index(unit or " "))
    if size <= 0:
        raise ValueError(f"not a positive size: {text!r}")
    return size


def format_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 2 ** 20:.0f} MiB"


def read_text(path: Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def read_keyed(path: Path) -> dict[str, int]:
    """Files of "name value" lines: cpu.stat, memory.oom_control, memory.events, memory.stat."""
    values = {}
    for line in (read_text(path) or "").splitlines():
        fields = line.split()
        if len(fields) == 2:
            try:
                values[fields[0]] = int(fields[1])
            except ValueError:
                pass
    return values


def max_or_none(*values: int | None) -> int | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def swap_total_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    kib = read_keyed_colon(meminfo).get("SwapTotal")
    return None if kib is None else kib * 1024


def read_keyed_colon(path: Path) -> dict[str, int]:
    values = {}
    for line in (read_text(path) or "").splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name.strip()] = int(fields[0])
    return values


# ---------------------------------------------------------------------------------------------------
# The counters of a finished run

def v1_stats(memory_dir: Path, cpu_dir: Path) -> dict:
    """The counters of a cgroup v1 memory group and cpu group."""
    oom = read_keyed(memory_dir / "memory.oom_control")
    cpu = read_keyed(cpu_dir / "cpu.stat")
    quota, period = read_int(cpu_dir / "cpu.cfs_quota_us"), read_int(cpu_dir / "cpu.cfs_period_us")
    throttled_ns = cpu.get("throttled_time")
    return {
        "group_peak_bytes": read_int(memory_dir / "memory.max_usage_in_bytes"),
        "group_peak_with_swap_bytes": read_int(memory_dir / "memory.memsw.max_usage_in_bytes"),
        "memory_limit_bytes": read_int(memory_dir / "memory.limit_in_bytes"),
        "memory_with_swap_limit_bytes": read_int(memory_dir / "memory.memsw.limit_in_bytes"),
        "swappiness": read_int(memory_dir / "memory.swappiness"),
        # Charges refused at the limit (the kernel then reclaims, or OOM-kills): with swap accounting the
        # memory+swap limit, equal to the memory limit, is the one reached, so its counter is read too.
        "limit_hits": max_or_none(read_int(memory_dir / "memory.failcnt"),
                                  read_int(memory_dir / "memory.memsw.failcnt")),
        "oom_kills": oom.get("oom_kill"),
        "cpu_quota": quota / period if quota and period and quota > 0 else None,
        "cpu_periods": cpu.get("nr_periods"),
        "throttled_count": cpu.get("nr_throttled"),
        "throttled_seconds": None if throttled_ns is None else throttled_ns / 1e9,
    }


def v2_stats(directory: Path) -> dict:
    """The same counters from cgroup v2 files (copied out of a systemd scope before it ended)."""
    events = read_keyed(directory / "memory.events")
    cpu = read_keyed(directory / "cpu.stat")
    cpu_max = (read_text(directory / "cpu.max") or "").split()
    quota = None
    if len(cpu_max) == 2 and cpu_max[0] != "max":
        quota = int(cpu_max[0]) / int(cpu_max[1])
    throttled_us = cpu.get("throttled_usec")
    memory_max = read_text(directory / "memory.max")
    swap_max = read_text(directory / "memory.swap.max")
    return {
        "group_peak_bytes": read_int(directory / "memory.peak"),
        "group_peak_with_swap_bytes": None,
        "memory_limit_bytes": (read_int(directory / "memory.max")
                               if memory_max and memory_max.strip() != "max" else None),
        "swap_limit_bytes": read_int(directory / "memory.swap.max") if swap_max and swap_max.strip() != "max" else None,
        "limit_hits": events.get("max"),
        "oom_kills": events.get("oom_kill"),
        "cpu_quota": quota,
        "cpu_periods": cpu.get("nr_periods"),
        "throttled_count": cpu.get("nr_throttled"),
        "throttled_seconds": None if throttled_us is None else throttled_us / 1e6,
    }


# ---------------------------------------------------------------------------------------------------
# The two ways of enforcing the limits

def v1_mount(controller: str, cgroup_root: Path = CGROUP_ROOT,
             mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the cgroup v1 hierarchy holding `controller` is mounted (cpu may share one with cpuacct)."""
    for line in (read_text(mountinfo) or "").splitlines():
        fields = line.split()
        if "-" in fields:
            dash = fields.index("-")
            if fields[dash + 1:dash + 2] == ["cgroup"] and controller in fields[-1].split(","):
                point = Path(fields[4])
                if cgroup_root == CGROUP_ROOT or point.is_relative_to(cgroup_root):
                    return point
    candidate = cgroup_root / controller
    return candidate if (candidate / "cgroup.procs").exists() else None


def own_group(controller: str, proc_cgroup: Path = Path("/proc/self/cgroup")) -> str:
    """This process's group in the v1 hierarchy of `controller`, as /proc/self/cgroup names it ("/" if unknown)."""
    for line in (read_text(proc_cgroup) or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) == 3 and controller in parts[1].split(","):
            return parts[2] or "/"
    return "/"


class V1Groups:
    """A cgroup v1 memory group and cpu group, made for one run and removed after it (needs root)."""

    mechanism = "cgroup v1"

    def __init__(self, memory_bytes: int, cpus: float, cgroup_root: Path = CGROUP_ROOT):
        self.memory_bytes, self.cpus = memory_bytes, cpus
        memory_mount, cpu_mount = v1_mount("memory", cgroup_root), v1_mount("cpu", cgroup_root)
        if memory_mount is None or cpu_mount is None:
            raise CannotEnforce(f"no cgroup v1 memory and cpu hierarchies under {cgroup_root}")
        name = f"vaelib-binder-{os.getpid()}"
        self.memory = self._parent(memory_mount, "memory") / name
        self.cpu = self._parent(cpu_mount, "cpu") / name
        self.made: list[Path] = []

    @staticmethod
    def _parent(mount: Path, controller: str) -> Path:
        """This process's own group when it can be written in (limits above it still bind), else the root."""
        own = mount / own_group(controller).lstrip("/")
        return own if own.is_dir() and os.access(own, os.W_OK) else mount

    def __enter__(self):
        try:
            for group in (self.memory, self.cpu):
                group.mkdir()
                self.made.append(group)
            self._write(self.memory / "memory.limit_in_bytes", self.memory_bytes)
            if (self.memory / "memory.memsw.limit_in_bytes").exists():
                self._write(self.memory / "memory.memsw.limit_in_bytes", self.memory_bytes)
            self._write(self.memory / "memory.swappiness", 0)
            self._write(self.cpu / "cpu.cfs_period_us", PERIOD_US)
            self._write(self.cpu / "cpu.cfs_quota_us", max(1000, round(self.cpus * PERIOD_US)))
        except OSError as error:
            self.remove()
            raise CannotEnforce(f"cannot make or set up cgroup v1 groups ({error}); run as root") from error
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    @staticmethod
    def _write(path: Path, value) -> None:
        path.write_text(f"{value}\n")

    def wrap(self, command: list[str]) -> list[str]:
        return ["/bin/sh", "-c", V1_WRAPPER, "sh", str(self.memory / "cgroup.procs"),
                str(self.cpu / "cgroup.procs"), *command]

    def stats(self) -> dict:
        return v1_stats(self.memory, self.cpu)

    def remove(self) -> None:
        """Kill whatever is left in the groups (a kernel whose runner died), then remove them."""
        for group in reversed(self.made):
            for _ in range(100):
                pids = [int(p) for p in (read_text(group / "cgroup.procs") or "").split()]
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                print(f"warning: could not remove {group}", file=sys.stderr)
        self.made = []


class SystemdScope:
    """cgroup v2 limits through a transient systemd scope, for machines without writable v1 groups."""

    mechanism = "systemd-run scope"

    def __init__(self, memory_bytes: int, cpus: float, systemd_run: str | None = None):
        self.memory_bytes, self.cpus = memory_bytes, cpus
        self.systemd_run = systemd_run or shutil.which("systemd-run")
        if not self.systemd_run or not Path("/run/systemd/system").is_dir():
            raise CannotEnforce("systemd-run is not available (systemd is not running here)")
        self.snapshot: Path | None = None

    def __enter__(self):
        import tempfile

        self.snapshot = Path(tempfile.mkdtemp(prefix="vaelib-binder-"))
        return self

    def __exit__(self, *exc):
        if self.snapshot:
            shutil.rmtree(self.snapshot, ignore_errors=True)
        return False

    def wrap(self, command: list[str]) -> list[str]:
        user = [] if os.geteuid() == 0 else ["--user"]
        return [self.systemd_run, *user, "--scope", "--quiet", "-p", f"MemoryMax={self.memory_bytes}",
                "-p", "MemorySwapMax=0", "-p", f"CPUQuota={round(self.cpus * 100)}%",
                "/bin/sh", "-c", V2_SNAPSHOT, "sh", str(self.snapshot), *command]

    def stats(self) -> dict:
        stats = v2_stats(self.snapshot)
        if stats["memory_limit_bytes"] is None:
            raise CannotEnforce("systemd-run ran, but its scope's limits could not be read back; "
                                "they may not have been applied (is the memory controller delegated?)")
        return stats


def enforcer(memory_bytes: int, cpus: float, cgroup_root: Path = CGROUP_ROOT, systemd_run: str | None = None):
    """The first way of enforcing the limits that works here: cgroup v1 groups, else a systemd scope."""
    reasons = []
    try:
        limits = V1Groups(memory_bytes, cpus, cgroup_root)
        with limits:  # a trial: make the groups, set them, remove them
            pass
        return lambda: V1Groups(memory_bytes, cpus, cgroup_root)
    except CannotEnforce as error:
        reasons.append(str(error))
    try:
        SystemdScope(memory_bytes, cpus, systemd_run)
        return lambda: SystemdScope(memory_bytes, cpus, systemd_run)
    except CannotEnforce as error:
        reasons.append(str(error))
    raise CannotEnforce("; ".join(reasons))


# ---------------------------------------------------------------------------------------------------
# Running and reporting

def verdict(result: dict, ok_peak: float = OK_PEAK) -> str:
    if result.get("oom_kills"):
        return f"memory: OOM kill ({result['oom_kills']}) at the {format_bytes(result.get('memory_limit_bytes'))} limit"
    if result.get("killed_by_signal"):
        return f"killed by signal {result['killed_by_signal']}"
    if result.get("error"):
        if "DeadKernel" in result["error"]:
            return "kernel died: " + result["error"][:80]
        return "failed: " + result["error"][:80]
    peaks = [p for p in (result.get("group_peak_bytes"), result.get("peak_rss_bytes")) if p is not None]
    peak = max(peaks) if peaks else None
    if peak is not None and peak > ok_peak:
        return f"memory: peak {format_bytes(peak)} > {format_bytes(ok_peak)}"
    return "OK"


def run_notebook(notebook: Path, env: dict, limits) -> dict:
    """One notebook in a fresh runner and kernel inside `limits`; its measurements."""
    command = [sys.executable, "-c", RUNNER, str(notebook), str(notebook.parent)]
    with limits:
        started = time.perf_counter()
        out = subprocess.run(limits.wrap(command), env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if out.returncode == 125 and "could not join" in out.stderr:
            raise CannotEnforce(out.stderr.strip())
        stats = limits.stats()
    runner = {}
    for line in reversed(out.stdout.strip().splitlines()):
        try:
            runner = json.loads(line)
            break
        except ValueError:
            continue
    result = {"notebook": notebook.name, "seconds": round(seconds, 1),
              "kernel_cpu_seconds": None if "cpu_seconds" not in runner else round(runner["cpu_seconds"], 1),
              "peak_rss_bytes": None if "peak_rss_kib" not in runner else runner["peak_rss_kib"] * 1024,
              **stats, "returncode": out.returncode,
              "error": runner.get("error")
              or (None if runner else (out.stderr.strip().splitlines() or ["no output"])[-1][:200])}
    if out.returncode < 0:
        result["killed_by_signal"] = -out.returncode
    elif out.returncode > 128 and not runner:
        result["killed_by_signal"] = out.returncode - 128
    if result["throttled_seconds"] is not None:
        result["throttled_seconds"] = round(result["throttled_seconds"], 1)
    result["verdict"] = verdict(result)
    return result


def table(results: list[dict]) -> str:
    """The results as a markdown table."""
    rows = ["| notebook | seconds | kernel CPU s | peak (group) | peak RSS (kernel) | limit hits | throttled | "
            "OOM kills | verdict |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        throttled = "n/a" if r.get("throttled_count") is None else (
            f"{r['throttled_count']} x, {r['throttled_seconds']:.1f} s")
        rows.append(f"| {r['notebook']} | {r['seconds']:.1f} | "
                    f"{'n/a' if r.get('kernel_cpu_seconds') is None else format(r['kernel_cpu_seconds'], '.1f')} | "
                    f"{format_bytes(r.get('group_peak_bytes'))} | {format_bytes(r.get('peak_rss_bytes'))} | "
                    f"{'n/a' if r.get('limit_hits') is None else r['limit_hits']} | {throttled} | "
                    f"{'n/a' if r.get('oom_kills') is None else r['oom_kills']} | {r['verdict']} |")
    return "\n".join(rows)


def kernel_torch_version() -> str:
    """The PyTorch version of the interpreter that runs the kernels (a CPU build on Binder)."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def binder_env(full: bool, base: dict | None = None) -> dict:
    """The caller's environment with what Binder's ./start exports, the notebooks' settings and VAELIB_DATA absolute."""
    env = {**(os.environ if base is None else base), "VAELIB_SMOKE": "0" if full else "1",
           "MPLBACKEND": "Agg", "VAELIB_PROGRESS": "0", **start_exports()}
    if env.get("VAELIB_DATA"):
        env["VAELIB_DATA"] = str(Path(env["VAELIB_DATA"]).expanduser().resolve())
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true",
                        help="full settings (VAELIB_SMOKE=0) instead of the smoke setting")
    parser.add_argument("--memory", default="2G", help="memory limit, swap included (default 2G = 2 GiB)")
    parser.add_argument("--cpus", type=float, default=1.0, help="CPU quota in CPUs (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--cgroup-root", type=Path, default=CGROUP_ROOT, help=argparse.SUPPRESS)
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="default: every student notebook, notebooks/[0-9][0-9]_*.ipynb")
    args = parser.parse_args(argv)
    try:
        memory = parse_size(args.memory)
    except ValueError as error:
        parser.error(str(error))
    if not args.cpus > 0:
        parser.error("--cpus must be positive")
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    try:
        make_limits = enforcer(memory, args.cpus, args.cgroup_root)
    except CannotEnforce as error:
        print(f"binder_limits: cannot enforce Binder's limits on this machine: {error}. "
              "Nothing was run; tools/notebook_resources.py measures without limits.", file=sys.stderr)
        return 2

    env = binder_env(args.full)
    # A fresh student's runs/: nothing trained on this machine before is loaded (the models committed in
    # vaelib/pretrained are, as on Binder); notebook 4 saves the course model there for notebooks 5 to 7.
    fresh_runs = tempfile.TemporaryDirectory(prefix="vaelib-binder-runs-")
    env["VAELIB_RUNS"] = fresh_runs.name
    swap = swap_total_bytes()
    mechanism = make_limits().mechanism
    threads = {k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS") if k in env}
    print(f"limits: memory {format_bytes(memory)} with no swap, {args.cpus:g} CPU "
          f"(quota {round(args.cpus * PERIOD_US)} per {PERIOD_US} us), by {mechanism}; swap on this machine: "
          f"{'none' if not swap else format_bytes(swap)}; setting: {'full' if args.full else 'smoke'}"
          f"{'; ' + str(threads) if threads else ''}", flush=True)

    results = []
    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the groups' removal

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for notebook in notebooks:
            result = run_notebook(notebook, env, make_limits())
            results.append(result)
            print(json.dumps(result), flush=True)
    except CannotEnforce as error:
        print(f"binder_limits: cannot enforce Binder's limits on this machine: {error}", file=sys.stderr)
        if results:
            print(table(results))
        return 2
    except KeyboardInterrupt:
        print("binder_limits: interrupted; the run's processes were stopped and its groups removed", file=sys.stderr)
        if results:
            print(table(results))
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        fresh_runs.cleanup()
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({
            "command": " ".join(["python", "tools/binder_limits.py", *(argv if argv is not None else sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "memory_limit_bytes": memory, "cpus": args.cpus,
            "mechanism": mechanism, "swap_total_bytes": swap, "setting": "full" if args.full else "smoke",
            "python": sys.executable.replace(str(ROOT), ".").replace(str(Path.home()), "~"),
            "torch": kernel_torch_version(), "runs": "a fresh, empty runs/ folder (VAELIB_RUNS)",
            "results": results}, indent=2) + "\n")
    return 0 if all(r["verdict"] == "OK" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
