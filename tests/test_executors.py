"""Executors for full NAS: every job gets exactly one outcome, as it finishes, whatever goes wrong.

The same tests run in process, on a local pool of 2 spawned workers and on a local Ray instance of
2 CPUs (each started once per module). The work functions are in tests/executor_jobs.py, passed by
name so that worker processes import them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from enas.errors import ConfigError
from enas.executors import InProcessExecutor, LocalPoolExecutor, make_executor

TESTS = str(Path(__file__).resolve().parent)
FN = "executor_jobs:work"
pytestmark = pytest.mark.xdist_group("ray")  # one local Ray instance at a time (setup.cfg)


@pytest.fixture(scope="module")
def in_process():
    with make_executor("local", workers=1, fn=FN) as ex:
        yield ex


@pytest.fixture(scope="module")
def pool():
    # spawned workers start with this process's sys.path, where pytest has put tests/
    with make_executor("local", workers=2, fn=FN) as ex:
        yield ex


@pytest.fixture(scope="module")
def ray_local():
    pytest.importorskip("ray", reason="the optional ray extra is not installed")
    with pytest.MonkeyPatch.context() as mp:
        # Ray's workers are not children of this process: they find executor_jobs through PYTHONPATH
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")])))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")  # no network
        with make_executor("ray", workers=2, num_cpus=1, fn=FN) as ex:
            yield ex


@pytest.fixture(scope="module", params=["in_process", "pool", "ray_local"])
def executor(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="module", params=["pool", "ray_local"])
def isolated(request):
    """Executors whose jobs run in other processes, concurrently."""
    return request.getfixturevalue(request.param)


def run(ex, payloads, first_id=0) -> dict[int, dict]:
    for i, payload in enumerate(payloads, start=first_id):
        ex.submit({"id": i, "attempt": 0, "payload": payload})
    outcomes = list(ex.results())
    ids = [o["id"] for o in outcomes]
    assert sorted(ids) == list(range(first_id, first_id + len(payloads))), ids  # each exactly once
    return {o["id"]: o for o in outcomes}


def test_every_job_gets_one_outcome(executor):
    outs = run(executor, [{"x": i} for i in range(5)])
    for i, out in outs.items():
        assert out["error"] is None and out["attempt"] == 0 and out["payload"] == {"x": i}
        assert out["result"]["metrics"] == [float(i * i)]
        assert out["seconds"] >= 0.0
    workers = {o["worker"] for o in outs.values()}
    if isinstance(executor, InProcessExecutor):
        assert workers == {os.getpid()}
    else:
        assert None not in workers and os.getpid() not in workers
        assert all(str(o["result"]["pid"]) in str(o["worker"]) for o in outs.values())


def test_jobs_submitted_while_reading_results_are_run(executor):
    executor.submit({"id": 0, "attempt": 0, "payload": {"x": 1}})
    seen = []
    for out in executor.results():
        seen.append(out["id"])
        if out["id"] < 2:
            executor.submit({"id": out["id"] + 1, "attempt": 0, "payload": {"x": 1}})
    assert seen == [0, 1, 2]
    assert list(executor.results()) == []


def test_a_reader_may_stop_and_come_back(executor):
    for i in range(4):
        executor.submit({"id": i, "attempt": 0, "payload": {"x": i}})
    first = next(iter(executor.results()))
    rest = list(executor.results())
    assert sorted(o["id"] for o in [first, *rest]) == [0, 1, 2, 3]


def test_failures_are_outcomes_and_do_not_stop_the_others(executor):
    outs = run(executor, [{"kind": "raise"}, {"x": 3}, {"kind": "nan"}, {"kind": "memory"}, {"x": 4}])
    assert outs[0]["error"] == "ValueError: bad child" and outs[0]["result"] is None
    assert outs[2]["error"].startswith("non-finite metric: metrics[1] = nan")
    assert outs[2]["result"]["metrics"][0] == 2.0  # kept for inspection
    assert outs[3]["error"] == "out of memory: MemoryError: cannot allocate 1 TiB"
    assert outs[1]["result"]["metrics"] == [9.0] and outs[4]["result"]["metrics"] == [16.0]
    assert outs[1]["error"] is None and outs[4]["error"] is None


def test_in_process_runs_jobs_in_submission_order(in_process):
    for i in (3, 1, 2):
        in_process.submit({"id": i, "attempt": 0, "payload": {"x": i}})
    assert [o["id"] for o in in_process.results()] == [3, 1, 2]


def test_results_come_as_they_finish(isolated, tmp_path):
    # Job 0 is held until the test has seen job 1's outcome: reading results in submission order
    # would leave job 0 waiting (and report released=False after its timeout).
    release = tmp_path / "release"
    held = {"kind": "wait", "release": str(release), "timeout": 20}
    isolated.submit({"id": 0, "attempt": 0, "payload": held})
    isolated.submit({"id": 1, "attempt": 0, "payload": {"x": 2}})
    order = []
    for out in isolated.results():
        order.append(out["id"])
        if out["id"] == 1:
            release.touch()
    assert order == [1, 0]


def test_a_worker_death_is_retried_once_on_a_fresh_worker(isolated, tmp_path):
    outs = run(isolated, [{"x": 1}, {"kind": "die_once", "dir": str(tmp_path), "name": "a"}, {"x": 2}])
    assert (tmp_path / "died-a").exists()  # it did die once
    assert outs[1]["error"] is None and outs[1]["attempt"] == 1
    assert outs[0]["attempt"] == 0 and outs[2]["attempt"] == 0
    assert outs[0]["error"] is None and outs[2]["error"] is None


def test_a_worker_that_always_dies_gives_up_after_one_retry(isolated, tmp_path):
    # job 1 is in flight beside the dying job: a bystander is run again without counting the death
    bystander = {"kind": "wait", "release": str(tmp_path / "never"), "timeout": 0.3}
    outs = run(isolated, [{"kind": "die"}, bystander])
    assert outs[0]["error"] == "worker died (twice)" and outs[0]["attempt"] == 1 and outs[0]["result"] is None
    assert outs[1]["error"] is None and outs[1]["attempt"] == 0
    later = run(isolated, [{"x": 5}, {"x": 6}], first_id=10)  # the executor keeps working
    assert [later[i]["result"]["metrics"] for i in (10, 11)] == [[25.0], [36.0]]


def test_pool_workers_share_the_cores(pool):
    out = run(pool, [{"kind": "threads"}])[0]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert out["result"]["omp"] == str(max(1, cores // 2))
    assert isinstance(pool, LocalPoolExecutor) and pool.workers == 2


def test_configuration_errors_are_one_line():
    with pytest.raises(ConfigError, match="unknown executor 'slurm'"):
        make_executor("slurm", fn=FN)
    with pytest.raises(ConfigError, match="cannot load work function"):
        make_executor("local", fn="executor_jobs:no_such_function")
    with pytest.raises(ConfigError, match="importable"):
        make_executor("local", workers=2, fn=lambda payload: {})
    with pytest.raises(ConfigError, match="workers"):
        make_executor("local", workers=-1, fn=FN)


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "enas\[ray\]"'):
        make_executor("ray", workers=2, fn=FN)
