"""vaelib.threads: when it adapts and when it leaves the thread count alone, how a probe decides, and
that the thread count changes no number the course computes. The timings are faked: no test here
depends on how fast or how busy the machine is."""

import math
import os
import threading

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from vaelib import threads
from vaelib.config import TrainConfig
from vaelib.model import VAE
from vaelib.evaluate import per_image_iwae
from vaelib.exact import converged_log_px
from vaelib.train import train

REGISTER_FIRST_FORWARD = threads._register_first_forward  # before any fixture replaces it
VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "VAELIB_FIT_THREADS", "VAELIB_ADAPT_THREADS")


@pytest.fixture
def fresh(monkeypatch):
    """A fresh adaptation state (the real one put back afterwards), no user variables, torch's count restored."""
    before = torch.get_num_threads()
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "STATE", threads._State())
    hooks = []
    monkeypatch.setattr(threads, "_register_optimizer_hook", lambda: hooks.append(threads._optimizer_hook))
    monkeypatch.setattr(threads, "_register_ipython", lambda: None)
    monkeypatch.setattr(threads, "_register_first_forward", lambda: hooks.append("first forward"))
    yield hooks
    torch.set_num_threads(before)


def fake_times(monkeypatch, per_count: dict):
    """Make each timed repeat take per_count[torch.get_num_threads()] seconds, or inf past its limit."""
    calls = []

    def timed(steps, pieces, limit):
        n = torch.get_num_threads()
        if len(steps) > 1:  # not the one-operation wake-up
            calls.append(n)
        took = per_count[n]
        return (limit, False) if took > limit else (took, True)

    monkeypatch.setattr(threads, "_time_steps", timed)
    return calls


def installed_at(count: int) -> None:
    torch.set_num_threads(count)
    threads.install()


def test_candidates():
    assert threads.candidates(1) == [1]
    assert threads.candidates(2) == [1, 2]
    assert threads.candidates(8) == [1, 4, 8]


@pytest.mark.parametrize("name, value", [("OMP_NUM_THREADS", "2"), ("MKL_NUM_THREADS", "4"),
                                         ("VAELIB_FIT_THREADS", "0"), ("VAELIB_ADAPT_THREADS", "0")])
def test_the_users_variables_turn_it_off(fresh, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    installed_at(2)
    assert not threads.STATE.on and name in threads.STATE.why_off
    assert fresh == []  # no hook registered
    assert threads.check() == 2 and torch.get_num_threads() == 2


def test_one_thread_to_start_with_means_nothing_to_adapt(fresh):
    installed_at(1)  # a one-CPU quota, as vaelib.cpus fits it
    assert not threads.STATE.on and threads.STATE.why_off == "one thread to start with"


def test_install_registers_the_optimiser_hook_once(fresh):
    installed_at(2)
    threads.install()
    assert threads.STATE.on and fresh == [threads._optimizer_hook, "first forward"]


def test_a_probe_keeps_the_faster_count(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.007})  # a quiet machine: two threads faster
    assert threads.check() == 2 and torch.get_num_threads() == 2
    threads.STATE.due = 0.0
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})  # a busy core: two threads crawl
    assert threads.check() == 1 and torch.get_num_threads() == 1
    assert threads.STATE.last == {1: 0.010, 2: 0.020}  # stopped as soon as it passed twice the best


def test_another_count_must_be_more_than_five_percent_faster(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.0098, 2: 0.0100})  # one thread 2 % faster: not enough to switch
    assert threads.check() == 2
    threads.STATE.due = 0.0
    fake_times(monkeypatch, {1: 0.0090, 2: 0.0100})  # 10 % faster: switch
    assert threads.check() == 1


def test_one_thread_is_timed_first_and_the_order_alternates(fresh, monkeypatch):
    installed_at(2)
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.007})
    threads.check()
    assert calls == [1, 2, 2, 2, 1]  # the first piece at two threads untimed (it wakes the pool), then timed


def test_probes_space_out_while_the_answer_holds_and_start_again_when_it_changes(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.007})
    intervals = []
    for _ in range(6):
        threads.STATE.due = 0.0
        threads.check()
        intervals.append(threads.STATE.interval)
    assert intervals == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    threads.STATE.due = 0.0
    threads.check()
    assert threads.STATE.interval == 1.0 and torch.get_num_threads() == 1


def test_no_probe_before_it_is_due(fresh, monkeypatch):
    installed_at(2)
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    threads.check()
    n = len(calls)
    threads.check()
    assert len(calls) == n  # due again only after the interval


def test_the_users_torch_set_num_threads_wins(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    threads.check()
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)  # the user's own call
    threads.STATE.due = 0.0
    assert threads.check() == 2
    assert not threads.STATE.on and "yours is kept" in threads.STATE.why_off
    threads.STATE.due = 0.0
    threads.check()
    assert torch.get_num_threads() == 2


def test_the_users_call_wins_even_when_it_repeats_the_count_in_force(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.040, 2: 0.010})
    threads.check()
    assert torch.get_num_threads() == 2
    torch.set_num_threads(2)  # the user fixes the count vaelib had chosen
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})  # one thread would now look faster
    threads.STATE.due = 0.0
    threads.check()
    assert torch.get_num_threads() == 2 and not threads.STATE.on


def test_off_stops_adapting_and_keeps_the_count(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    threads.off()
    threads.STATE.due = 0.0
    threads.check()
    assert torch.get_num_threads() == 2 and not threads.STATE.on


def test_a_probe_interrupted_leaves_the_count_it_found(fresh, monkeypatch):
    installed_at(2)

    def interrupted(steps, pieces, limit):
        if torch.get_num_threads() == 1:
            raise KeyboardInterrupt
        return 0.01, True

    monkeypatch.setattr(threads, "_time_steps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        threads.check()
    assert torch.get_num_threads() == 2 and threads.STATE.applied == 2


def test_nothing_happens_outside_the_main_thread(fresh, monkeypatch):
    installed_at(2)
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    worker = threading.Thread(target=threads.check)
    worker.start()
    worker.join()
    assert calls == []


def test_a_failing_probe_turns_adapting_off_without_raising(fresh, monkeypatch):
    installed_at(2)

    def broken(*args):
        raise RuntimeError("no clock")

    monkeypatch.setattr(threads, "_time_steps", broken)
    assert threads.check() == torch.get_num_threads()
    assert not threads.STATE.on and "probe failed" in threads.STATE.why_off


def test_the_optimiser_hook_probes_when_due_and_only_for_a_model_on_the_cpu(fresh, monkeypatch):
    installed_at(2)
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    threads._optimizer_hook(optimizer, (), {})
    assert calls and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "_on_cpu", lambda optimizer: False)
    threads.STATE.due, n = 0.0, len(calls)
    threads._optimizer_hook(optimizer, (), {})
    assert len(calls) == n


def test_time_steps_stops_past_its_limit():
    ran = []
    steps = [lambda: ran.append(1)] * 10
    took, finished = threads._time_steps(steps, 2, -1.0)
    assert not finished and took >= 0 and ran == [1]  # stopped after the first operation
    took, finished = threads._time_steps(steps, 2, math.inf)
    assert finished and 0 <= took < 1 and len(ran) == 21


def test_the_probe_work_is_a_real_step_of_the_course_model_and_draws_no_random_numbers():
    state = torch.random.get_rng_state()
    steps = threads._work_steps()
    for step in steps:
        step()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(steps) > 20


def test_a_real_probe_runs(fresh):
    installed_at(2)
    threads.check()
    assert threads.STATE.probes == 1 and torch.get_num_threads() in (1, 2)
    assert threads.status()["probes"] == 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs two CPUs")
def test_the_thread_count_changes_no_number(sample_data, monkeypatch):
    """Training, the IWAE estimate and the exact quadrature give the same bits at one thread, at two, and
    switching between them at every step, as vaelib.threads may (on this machine; other libraries and CPUs
    may round otherwise)."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads.STATE, "on", False)  # no probes of its own during this test
    results = {}
    try:
        for label in ("1", "2", "switching"):
            torch.set_num_threads(1 if label == "1" else 2)
            hook = None
            if label == "switching":
                flip = iter(range(10**6))
                hook = register_optimizer_step_pre_hook(
                    lambda *args: torch.set_num_threads(1 + next(flip) % 2))
            try:
                torch.manual_seed(0)
                model = VAE()
                history = train(model, sample_data, TrainConfig(steps=20, progress=False))
            finally:
                if hook is not None:
                    hook.remove()
            weights = torch.cat([p.detach().flatten() for p in model.parameters()])
            exact = converged_log_px(model, sample_data.test_x[:4])[0]
            results[label] = (weights, history.test_neg_elbo, per_image_iwae(model, sample_data.test_x[:20], 32), exact)
    finally:
        torch.set_num_threads(before)
    for label in ("2", "switching"):
        assert torch.equal(results[label][0], results["1"][0]), label
        assert results[label][1] == results["1"][1], label
        assert torch.equal(results[label][2], results["1"][2]), label
        assert torch.equal(results[label][3], results["1"][3]), label


def test_more_threads_must_be_fifteen_percent_faster_to_take_over(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    assert threads.check() == 1
    threads.STATE.due = 0.0
    fake_times(monkeypatch, {1: 0.010, 2: 0.0090})  # two threads 11 % faster: stay at one
    assert threads.check() == 1
    threads.STATE.due = 0.0
    fake_times(monkeypatch, {1: 0.010, 2: 0.0080})  # 25 % faster: back to two
    assert threads.check() == 2


def test_a_costly_probe_waits_longer_for_the_next(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    clock = iter(100 + 0.1 * k for k in range(1000))  # every reading of the clock 0.1 s later
    readings = []
    monkeypatch.setattr(threads.time, "perf_counter", lambda: readings.append(next(clock)) or readings[-1])
    threads.check()
    assert len(readings) == 3  # check's test of `due`, the probe's start, its end
    assert threads.STATE.due == pytest.approx(readings[2] + threads.COST_RATIO * (readings[2] - readings[1]))


def test_the_first_forward_hook_probes_once_then_goes(fresh, monkeypatch):
    installed_at(2)
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    from torch.nn.modules import module
    before = dict(module._global_forward_pre_hooks)
    REGISTER_FIRST_FORWARD()
    layer = torch.nn.Linear(3, 1)
    layer(torch.zeros(1, 3))
    assert calls and torch.get_num_threads() == 1  # probed at the first call
    assert module._global_forward_pre_hooks == before  # and gone


def test_a_switch_up_is_timed_twice(fresh, monkeypatch):
    installed_at(2)
    fake_times(monkeypatch, {1: 0.010, 2: 0.040})
    threads.check()
    threads.STATE.due = 0.0
    calls = fake_times(monkeypatch, {1: 0.010, 2: 0.007})
    assert threads.check() == 2
    assert calls == [1, 2, 2, 2, 1, 1, 2, 2, 1]  # a second round before going back to two threads
