"""PyTorch's thread count adapted, while the course runs, to the load the machine is under.

Why. PyTorch's CPU operations split their work over an OpenMP pool (GNU libgomp in the pip wheels
for x86 Linux) and end every parallel operation at a barrier. A thread that has nothing to do
waits for the next operation by spinning (libgomp: GOMP_SPINCOUNT, 300,000 spins when
OMP_WAIT_POLICY is unset) before it sleeps. The course's model is small: a training step is some
hundred parallel operations of a few microseconds each, so the second thread spins almost all the
time. On a quiet machine that is what makes two threads 1.4 times faster than one. When another
process keeps a core busy, the scheduler shares that core between it and the spinning thread, the
barrier at the end of each operation waits for a thread that is off the CPU, and training runs 3 to
8 times slower than on one thread (benchmarks/README.md, "Threads beside other work: bench_busy.py").
Waiting passively (OMP_WAIT_POLICY=PASSIVE) avoids the collapse but pays a wake-up on every operation,
half the quiet speed; and both variables are read once, when libgomp is loaded by ``import torch``,
which a notebook does before it imports vaelib. No static setting wins both cases.

What. ``torch.set_num_threads`` works at any time, so vaelib measures instead of guessing. Now and
then :func:`check` times a small fixed piece of work shaped like one training step of the course's
model at batch 100 (its matrix products and element-wise passes; no random numbers, no autograd) at
one thread and at the count vaelib started with (and half of it, on more than 3 cores), interleaved,
and keeps the fastest. One thread is timed first: it never waits for another thread, so it is the
yardstick, and a count that takes twice as long is stopped at once, which keeps a probe cheap
where more threads crawl. Fewer threads take over when 5% faster; more threads only when 15% faster
in two rounds, since a wrong switch up costs far more than a wrong switch down. A probe takes about
5 ms of work on two quiet cores. Probes follow each other after 1, 2, 4, then every 8 seconds while
the answer holds (back to 1 s when it changes), and never sooner than 50 times the last probe's own
duration, so they cost at most about 2% of the time however busy the machine.

Where. :func:`check` returns at once unless a probe is due. vaelib calls it at the first call of any
``nn.Module`` (then that hook removes itself), from every optimiser step in the process (a global step
pre-hook of ``torch.optim``, so a training loop written in a notebook is covered too), before every
cell in IPython or Jupyter, and from the loops of the IWAE estimate (vaelib.elbo.iwae_bound) and the
exact quadrature (vaelib.exact.Tiling.tile_log_mass). It acts in the main thread only: OpenMP's
thread count belongs to the thread that sets it. :func:`status` says what it did.

Yours wins. Nothing adapts when OMP_NUM_THREADS or MKL_NUM_THREADS is set, when VAELIB_FIT_THREADS=0
or VAELIB_ADAPT_THREADS=0, when vaelib started with one thread (a one-CPU quota, see vaelib.cpus), after
:func:`off`, or once your code calls ``torch.set_num_threads`` (vaelib wraps it to notice, even when
you set the count already in force): from then on vaelib leaves the count alone for the rest of the
process. A probe interrupted (Ctrl-C) leaves the count it found.

Numbers. vaelib's training and IWAE estimate give the same bits at one thread, at two and switching
between them (tests/test_threads.py, on this project's machine); so does the exact quadrature of the
course's model, while that of a learned prior may differ by about 1e-5 nats. Your own code may not: a sum over a whole large tensor, say, is split differently between threads and rounds
differently. Where the last bits must repeat from run to run, fix the count (OMP_NUM_THREADS=1, or
:func:`off`); `make notebooks` and `make check` do.
"""

from __future__ import annotations

import math
import os
import threading
import time

import torch

FIRST_INTERVAL = 1.0  # seconds from one probe to the next, while the answer changes
LONGEST_INTERVAL = 8.0  # the interval doubles up to this while the answer stays the same
HYSTERESIS = 0.05  # fewer threads must be this much faster than the count in force to replace it
HYSTERESIS_UP = 0.15  # and more threads this much: a wrong switch up costs far more than a wrong switch down
REPEATS = 2  # timed repeats of the work per candidate, interleaved
WORK_PER_REPEAT = 1  # pieces of work per timed repeat (a piece is 1 to 1.5 ms on two quiet cores)
COST_RATIO = 50  # the next probe waits at least this many times the last probe's duration (overhead <= 2 %)
HISTORY = 50  # probes kept in STATE.history, for status()
ABORT_FACTOR = 2.0  # a count is dropped from a probe once it has taken this many times the best so far


class _State:
    """The adaptation's state in this process (one, for the main thread)."""

    def __init__(self):
        self.installed = False
        self.on = False  # adapting now
        self.why_off = "not installed"
        self.most = 1  # the thread count vaelib started with (after vaelib.cpus.fit_threads)
        self.applied = None  # the count this module last put in force
        self.due = 0.0  # time.perf_counter() at which the next probe may run
        self.interval = FIRST_INTERVAL
        self.probes = 0
        self.last = None  # the last probe: {threads: seconds per repeat}
        self.history = []  # the last HISTORY probes: (seconds since install, {threads: seconds}, choice)
        self.started = time.perf_counter()
        self.main = threading.main_thread().ident


STATE = _State()
_WORK = None
_SET_THREADS = torch.set_num_threads  # PyTorch's own, which this module calls; torch.set_num_threads is wrapped


def _set_by_user(count: int) -> None:
    """torch.set_num_threads while vaelib adapts: the caller's count is kept, and vaelib stops adapting."""
    _SET_THREADS(count)
    if STATE.on and threading.get_ident() == STATE.main:
        STATE.on, STATE.why_off = False, f"torch.set_num_threads({count}) was called: yours is kept"
        STATE.applied = count


def off(reason: str = "vaelib.threads.off() was called") -> None:
    """Stop adapting for the rest of the process; the thread count in force stays."""
    STATE.on, STATE.why_off = False, reason


def candidates(most: int) -> list[int]:
    """The thread counts a probe compares: 1, half of the start count and the start count."""
    return sorted({1, max(1, most // 2), most})


def user_setting() -> str | None:
    """Why the user's setting forbids adapting, or None. Environment only; see STATE.why_off for the rest."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(name, "").strip():
            return f"{name} is set"
    for name in ("VAELIB_FIT_THREADS", "VAELIB_ADAPT_THREADS"):
        if os.environ.get(name, "").strip() == "0":
            return f"{name}=0"
    return None


def install() -> None:
    """Start adapting (vaelib's import calls this once, after vaelib.cpus.fit_threads). Never raises."""
    if STATE.installed:
        return
    STATE.installed = True
    try:
        reason = user_setting()
        STATE.most = torch.get_num_threads()
        STATE.applied = STATE.most
        if reason is None and STATE.most < 2:
            reason = "one thread to start with"
        if reason is not None:
            STATE.why_off = reason
            return
        STATE.on, STATE.why_off, STATE.due = True, None, 0.0
        torch.set_num_threads = _set_by_user
        _register_optimizer_hook()
        _register_first_forward()
        _register_ipython()
    except Exception as error:  # an optimisation, never worth failing an import over
        STATE.on, STATE.why_off = False, f"could not install: {error!r}"


def check() -> int:
    """Probe now if a probe is due, and put the faster thread count in force; return the count in force.

    Cheap when no probe is due (a clock read). Does nothing outside the main thread, or when adapting
    is off (see the module's docstring).
    """
    if not STATE.on or time.perf_counter() < STATE.due or threading.get_ident() != STATE.main:
        return STATE.applied if STATE.applied is not None else torch.get_num_threads()
    try:
        return _probe()
    except Exception as error:
        STATE.on, STATE.why_off = False, f"probe failed: {error!r}"
        return torch.get_num_threads()


def status() -> dict:
    """What the adaptation is doing: on, why not, the start count, the count in force, the last probe."""
    return {"adapting": STATE.on, "why_not": STATE.why_off, "start_threads": STATE.most,
            "threads": torch.get_num_threads(), "probes": STATE.probes, "last_probe": STATE.last,
            "history": list(STATE.history),
            "next_probe_in_s": max(0.0, STATE.due - time.perf_counter()) if STATE.on else None}


def _optimizer_hook(optimizer, args, kwargs) -> None:
    if STATE.on and time.perf_counter() >= STATE.due and _on_cpu(optimizer):
        check()


def _on_cpu(optimizer) -> bool:
    """Whether the optimiser's parameters are on the CPU (on a GPU the CPU's threads hardly matter)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            return param.device.type == "cpu"
    return False


def _register_optimizer_hook() -> None:
    """Probe (when due) before every optimiser step in the process, vaelib's or a notebook's own loop."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    register_optimizer_step_pre_hook(_optimizer_hook)


def _register_first_forward() -> None:
    """Probe at the first call of any nn.Module, before the first forward pass of a training run or an evaluation
    runs at a thread count that may crawl; the hook removes itself after that first probe (a global forward
    hook costs every module call a few microseconds)."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    def first_forward(module, args):
        check()
        if STATE.probes or not STATE.on:
            handle.remove()

    handle = register_module_forward_pre_hook(first_forward)


def _register_ipython() -> None:
    """Probe (when due) before each cell of an IPython or Jupyter session, so that a cell's own loop starts
    with a fresh answer."""
    try:
        from IPython import get_ipython
    except Exception:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "events"):
        shell.events.register("pre_run_cell", _cell_hook)


def _cell_hook(*_args) -> None:
    check()


def _probe() -> int:
    current = torch.get_num_threads()
    if current != STATE.applied:
        # Someone else set the thread count (torch.set_num_threads in the user's code): theirs wins.
        STATE.on, STATE.why_off = False, f"the thread count was set elsewhere ({STATE.applied} -> {current})"
        return current
    started = time.perf_counter()
    try:
        seconds = _timed(candidates(STATE.most), current)
    except BaseException:  # Ctrl-C or an error inside a probe: the count in force stays what it was
        _SET_THREADS(current)
        raise
    best = min(seconds, key=seconds.get)
    margin = HYSTERESIS_UP if best > current else HYSTERESIS
    choice = best if seconds[best] * (1 + margin) < seconds[current] else current
    _SET_THREADS(choice)
    same = choice == STATE.applied and STATE.probes
    STATE.interval = min(2 * STATE.interval, LONGEST_INTERVAL) if same else FIRST_INTERVAL
    now = time.perf_counter()
    STATE.applied, STATE.probes = choice, STATE.probes + 1
    STATE.last = {n: round(s, 6) for n, s in seconds.items()}
    STATE.history = STATE.history[-(HISTORY - 1):] + [(round(now - STATE.started, 2), STATE.last, choice)]
    STATE.due = now + max(STATE.interval, COST_RATIO * (now - started))
    return choice


def _timed(counts: list[int], current: int) -> dict:
    """Mean seconds per repeat at each count; when more threads than `current` look faster, every count is
    timed again before they may take over."""
    times, dropped = {n: [] for n in counts}, set()
    _time_counts(counts, times, dropped)
    if min(counts, key=lambda n: sum(times[n]) / len(times[n])) > current:
        dropped.clear()
        _time_counts(counts, times, dropped)
    return {n: sum(t) / len(t) for n, t in times.items()}


def _time_counts(counts: list[int], times: dict, dropped: set) -> None:
    """REPEATS timed repeats of the work at each count, appended to times[count]. One thread first, the yardstick:
    it never waits for another thread, so it cannot crawl; then the order alternates. A repeat that passes
    ABORT_FACTOR times the best repeat of another count is stopped there, counted at the time it had taken,
    and its count is not timed again in this probe (a count that crawls costs little)."""
    steps = _work_steps()
    for repeat in range(REPEATS):
        for n in (counts if repeat % 2 == 0 else counts[::-1]):
            if n in dropped:
                continue
            _SET_THREADS(n)
            others = [min(times[m]) for m in counts if m != n and times[m]]
            limit = ABORT_FACTOR * min(others) if others else math.inf
            if n > 1:
                # Untimed: the first piece at n wakes the pool's threads (after one thread they sleep), and
                # the libraries' per-thread buffers; each later repeat needs one parallel operation to wake it.
                took, finished = _time_steps(steps, 1, limit) if not times[n] else _time_steps(steps[:1], 1, limit)
                if not finished:
                    times[n].append(took)
                    dropped.add(n)
                    continue
            took, finished = _time_steps(steps, WORK_PER_REPEAT, limit)
            times[n].append(took)
            if not finished:
                dropped.add(n)


def _time_steps(steps, pieces: int, limit: float) -> tuple[float, bool]:
    """Seconds to run `pieces` pieces of work, and True; or, as soon as they pass `limit` seconds (checked
    between operations), the seconds so far and False."""
    started = time.perf_counter()
    for _ in range(pieces):
        for step in steps:
            step()
            took = time.perf_counter() - started
            if took > limit:
                return took, False
    return time.perf_counter() - started, True


def _work_steps() -> list:
    """One piece of work shaped like a training step of the course's model (784-256-128-2 and back, batch
    100), as a list of operations: the forward products, the element-wise terms of the Bernoulli
    log-likelihood over 100 x 784 pixels, and the backward products; no autograd, no random numbers, the
    same buffers every time."""
    global _WORK
    if _WORK is not None:
        return _WORK

    def filled(rows, cols, scale=0.05):  # fixed values: no generator is touched
        return torch.linspace(-scale, scale, rows * cols, dtype=torch.float32).reshape(rows, cols)

    # ordinary float32 CPU tensors, wherever the first probe runs (a default device or dtype set by the user)
    with torch.inference_mode(False), torch.no_grad(), torch.device("cpu"):
        B, widths = 100, [784, 256, 128, 4, 2, 128, 256, 784]
        weights = [filled(a, b) for a, b in zip(widths, widths[1:]) if (a, b) != (4, 2)]
        biases = [torch.zeros(w.shape[1], dtype=torch.float32) for w in weights]
        acts = [torch.linspace(0, 1, B * 784, dtype=torch.float32).reshape(B, 784)]
        acts += [torch.empty(B, w.shape[1], dtype=torch.float32) for w in weights]
        grads = [torch.empty(B, w.shape[1], dtype=torch.float32) for w in weights]
        wgrads = [torch.empty_like(w) for w in weights]
        pixels = torch.empty(B, 784, dtype=torch.float32)
    steps = [lambda: torch.mul(acts[0], 1.0, out=pixels)]  # one cheap parallel operation (the wake-up)
    for i, (w, b) in enumerate(zip(weights, biases)):
        source = acts[i] if i != 3 else acts[3][:, :2]  # the decoder starts from z, 2 of the 4 encoder outputs
        steps.append(lambda i=i, w=w, b=b, source=source: torch.addmm(b, source, w, out=acts[i + 1]))
        if i != len(weights) - 1 and i != 2:
            steps.append(lambda i=i: acts[i + 1].relu_())
    logits, x = acts[-1], acts[0]
    steps += [lambda: torch.abs(logits, out=pixels).neg_().exp_().add_(1).log_().sum(),
              lambda: torch.sigmoid(logits, out=grads[-1]).sub_(x)]
    for i in range(len(weights) - 1, -1, -1):
        source = acts[i] if i != 3 else acts[3][:, :2]
        steps.append(lambda i=i, source=source: torch.mm(source.t(), grads[i], out=wgrads[i]))
        if i > 0:
            into = grads[i - 1] if i != 3 else grads[2][:, :2]
            if i == 3:
                steps.append(lambda: grads[2].zero_())
            steps.append(lambda i=i, into=into: torch.mm(grads[i], weights[i].t(), out=into))
    _WORK = steps
    return steps
