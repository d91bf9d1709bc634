"""Where full-NAS children train: in this process, in a pool of local worker processes, or on Ray.

Full NAS without weight sharing (Zoph & Le 2017) trains every sampled child from scratch: a stream
of independent, expensive jobs. The strategy submits jobs and reads outcomes as they finish, never
learning where they ran. A job is a picklable dict {"id", "attempt", "payload"}; the work function
`fn(payload) -> dict` trains one child and returns at least {"metrics": [float per epoch], "seconds"}.

    with make_executor("local", workers=2) as ex:
        ex.submit({"id": 0, "attempt": 0, "payload": {"arch": "0 0 1 ...", ...}})
        for out in ex.results():  # {"id", "attempt", "payload", "result", "error", "seconds", "worker"}
            ...

A failure never stops a search: every submitted job yields exactly one outcome.
- fn raises:                         error "ExceptionType: first line of the message", result None
- a metric is NaN or infinite:       error "non-finite metric: ...", result kept (for inspection)
- MemoryError / CUDA out of memory:  error "out of memory: ...", result None (not retried: it would
                                     run out again)
- the worker process dies (os._exit, segfault, killed by the OOM killer, a lost Ray node): the job is
  run again on a fresh worker with attempt + 1, up to `max_retries` times; then error
  "worker died (twice)" (for the default max_retries=1).
Every outcome also has "seconds" (wall time of that attempt) and "worker" (pid of the local worker
process; "ip:pid" for Ray; None where the worker is unknown).

A stop is not a failure: `results(stop)` ends as soon as `stop()` is true, without an outcome for the
jobs in flight (close() abandons them), and a job run in this process that raises `Stopped` (Ctrl-C or
SIGTERM reached it) ends the results the same way. The reader tells "stopped" from "all done" by the
outcomes it is still missing.
"""
from __future__ import annotations

import importlib
import logging
import math
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from .errors import ConfigError
from .interrupt import Stopped

DEFAULT_FN = "enas.child_training:train_child"
KINDS = ("local", "ray")
POLL_SECONDS = 0.2  # how often a wait for other processes' jobs looks at stop()


# ----------------------------------------------------------------------------- the job, wherever it runs

def resolve_fn(fn: Callable | str) -> Callable:
    """A callable as it is, or "package.module:function" imported (in the process that runs the job)."""
    if callable(fn):
        return fn
    module, _, name = str(fn).partition(":")
    if not module or not name:
        raise ConfigError(f"work function {fn!r} is neither a callable nor 'module:function'")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load work function {fn!r}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError (alias of torch.OutOfMemoryError) is matched by name, so that a
    # worker running plain-Python jobs never has to import torch.
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def _release_accelerator_memory() -> None:
    """After an out-of-memory error, give cached blocks back so the worker's next child can start."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _non_finite(result: dict) -> str | None:
    """The first NaN / inf among the result's numbers: every entry of "metrics" and top-level scalars."""
    metrics = result.get("metrics")
    entries = metrics.items() if isinstance(metrics, dict) else \
        enumerate(metrics) if isinstance(metrics, (list, tuple)) else []
    items = [(f"metrics[{k!r}]", v) for k, v in entries] + [(k, v) for k, v in result.items()]
    for where, value in items:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
            continue
        try:
            value = float(value)
        except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of several elements
            continue
        if not math.isfinite(value):
            return f"non-finite metric: {where} = {value}"
    return None


def _set_threads(threads: int) -> None:
    """Size the math libraries' thread pools: OpenMP / MKL read the environment when torch loads,
    and torch is told directly if it is already loaded."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def outcome(job: dict, result=None, error=None, seconds: float = 0.0, worker=None) -> dict:
    return {"id": job["id"], "attempt": job["attempt"], "payload": job["payload"], "result": result,
            "error": error, "seconds": seconds, "worker": worker}


def run_job(fn: Callable | str, job: dict, threads: int = 0, worker=None) -> dict:
    """Run one job and describe what happened; raises nothing but KeyboardInterrupt and Stopped."""
    start = time.perf_counter()
    result, error = None, None
    try:
        work = resolve_fn(fn)
        if threads:
            _set_threads(threads)
        result = work(job["payload"])
        if not isinstance(result, dict):
            raise TypeError(f"the work function returned {type(result).__name__}, expected a dict")
        error = _non_finite(result)
    except (Exception, SystemExit) as exc:  # SystemExit too: a child calling sys.exit() is a failed child
        result = None
        if _is_out_of_memory(exc):
            _release_accelerator_memory()
            error = "out of memory: " + _one_line(exc)
        else:
            error = _one_line(exc)
    return outcome(job, result, error, time.perf_counter() - start, os.getpid() if worker is None else worker)


def _died(max_retries: int) -> str:
    times = max_retries + 1
    return "worker died " + {1: "(once)", 2: "(twice)"}.get(times, f"({times} times)")


def _check_job(job: dict) -> dict:
    if not isinstance(job, dict) or "id" not in job or "payload" not in job:
        raise TypeError(f"a job is a dict with 'id' and 'payload', got {job!r:.100}")
    return {"id": job["id"], "attempt": int(job.get("attempt", 0)), "payload": job["payload"]}


def _never() -> bool:
    return False


class Executor:
    """submit(job); results(stop) yields outcomes in the order they finish, until every job submitted so
    far (including jobs submitted while iterating) has produced exactly one, or until stop() is true;
    close()."""

    def submit(self, job: dict) -> None:
        raise NotImplementedError

    def results(self, stop: Callable[[], bool] = _never) -> Iterator[dict]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# ----------------------------------------------------------------------------- in this process

class InProcessExecutor(Executor):
    """One job at a time, in order, in this process: no isolation (a job that kills its process
    kills the search), no start-up cost; for debugging and for a single device."""

    def __init__(self, fn: Callable | str):
        self.fn = fn
        self._queue: deque[dict] = deque()

    def submit(self, job: dict) -> None:
        self._queue.append(_check_job(job))

    def results(self, stop: Callable[[], bool] = _never) -> Iterator[dict]:
        while self._queue and not stop():
            try:
                out = run_job(self.fn, self._queue[0])
            except Stopped:  # cut short on request: no outcome, and the job stays queued
                return
            self._queue.popleft()
            yield out

    def close(self) -> None:
        self._queue.clear()


# ----------------------------------------------------------------------------- a pool of local processes
# Each worker process owns one slot of a shared array, [ticket of the job it runs, pid, terminated].
# A worker that dies takes the whole ProcessPoolExecutor down: every pending future fails with
# BrokenProcessPool and the pool terminates (SIGTERM) the surviving workers. The survivors' SIGTERM
# handler marks their slot "terminated", so after the pool has shut down the slots that still name a
# job and are not marked are the workers that died by themselves: only their jobs count the death
# (attempt + 1); the bystanders are run again with the same attempt. If no slot can be blamed (a job
# sent SIGTERM to itself, a worker died while starting) every job in flight counts the death, so a
# search always makes progress.

_IDLE = -1
_SLOT: int | None = None
_STATUS = None
_THREADS = 0


def _init_pool_worker(counter, status, threads: int, gpus: tuple[str, ...]) -> None:
    global _SLOT, _STATUS, _THREADS
    with counter.get_lock():
        _SLOT, counter.value = counter.value, counter.value + 1
    _STATUS, _THREADS = status, threads
    if gpus:  # one device per worker, round robin, before anything initialises CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[_SLOT % len(gpus)]
    _set_threads(threads)
    status[3 * _SLOT + 1] = os.getpid()
    signal.signal(signal.SIGTERM, _on_terminate)
    # Ctrl-C reaches the whole process group; the driver decides (finish the step, checkpoint, close),
    # so a child is not cut short and reported as failed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_terminate(signum, frame) -> None:
    _STATUS[3 * _SLOT + 2] = 1
    os._exit(128 + signum)


def _pool_run(fn, job: dict, ticket: int) -> dict:
    _STATUS[3 * _SLOT] = ticket
    try:
        return run_job(fn, job, _THREADS)
    finally:
        _STATUS[3 * _SLOT] = _IDLE


def _worker_ready() -> int:
    return os.getpid()


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LocalPoolExecutor(Executor):
    """`workers` spawned processes (one per GPU or CPU slot), at most `workers` jobs in flight."""

    def __init__(self, fn: Callable | str, workers: int, num_gpus: float = 0, max_retries: int = 1):
        self.fn, self.workers, self.max_retries = fn, workers, max_retries
        self.threads = max(1, _available_cores() // workers)
        self.gpus = _visible_gpus() if num_gpus else ()
        self._ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch / CUDA threads exist
        self._queue: deque[dict] = deque()
        self._running: dict = {}  # future -> (job, ticket, start time)
        self._finished: deque[dict] = deque()  # outcomes not yet read
        self._tickets = 0
        self._pool: ProcessPoolExecutor | None = None
        self._status = None

    def _start_pool(self) -> ProcessPoolExecutor:
        self._status = self._ctx.RawArray("q", [_IDLE, 0, 0] * self.workers)
        counter = self._ctx.Value("i", 0)
        pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx, initializer=_init_pool_worker,
                                   initargs=(counter, self._status, self.threads, self.gpus))
        # Start every worker now and wait until they are up. The pool spawns a worker per submit, and
        # (CPython 3.11) one spawned while the pool's manager thread is already waiting is not watched
        # until the next result arrives: its death could go unnoticed while the others train. Children
        # are also timed without the start-up cost this way.
        ready = [pool.submit(_worker_ready) for _ in range(self.workers)]
        wait(ready)
        failed = [f.exception() for f in ready if f.exception() is not None]
        if failed:
            pool.shutdown(wait=True)
            raise RuntimeError(f"the worker processes did not start: {_one_line(failed[0])}")
        return pool

    def submit(self, job: dict) -> None:
        self._queue.append(_check_job(job))

    def _fill(self) -> None:
        while self._queue and len(self._running) < self.workers:
            if self._pool is None:
                self._pool = self._start_pool()
            job = self._queue.popleft()
            self._tickets += 1
            future = self._pool.submit(_pool_run, self.fn, job, self._tickets)
            self._running[future] = (job, self._tickets, time.perf_counter())

    def results(self, stop: Callable[[], bool] = _never) -> Iterator[dict]:
        while (self._finished or self._queue or self._running) and not stop():
            if not self._finished:
                try:
                    self._fill()
                except RuntimeError:
                    if stop():  # the signal that asked to stop also reached the workers starting up
                        return
                    raise
                done, _ = wait(list(self._running), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                # Checked before looking at what finished: a SIGTERM sent to the whole process group
                # (Slurm, `timeout`) kills the workers too, and those deaths are not the jobs' failures.
                if stop():
                    return
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    self._finished.extend(self._recover())
                else:
                    self._finished.extend(self._collect(f) for f in done)
            if self._finished:  # kept here until read: a reader may stop and come back later
                yield self._finished.popleft()

    def _collect(self, future) -> dict:
        job, _, start = self._running.pop(future)
        exc = future.exception()
        if exc is None:
            return future.result()
        return outcome(job, None, _one_line(exc), time.perf_counter() - start)  # e.g. unpicklable result

    def _recover(self) -> list[dict]:
        """A worker died: wait for the pool to finish breaking, blame, requeue, start a new pool later."""
        self._pool.shutdown(wait=True)  # every future is settled and every worker has exited after this
        self._pool = None
        slots = [tuple(self._status[3 * s:3 * s + 3]) for s in range(self.workers)]
        culprits = {ticket for ticket, _, terminated in slots if ticket != _IDLE and not terminated}
        pid_of = {ticket: pid for ticket, pid, _ in slots if ticket != _IDLE}
        finished, retry = [], []
        for future in list(self._running):
            if not isinstance(future.exception(), BrokenProcessPool):
                finished.append(self._collect(future))
                continue
            job, ticket, start = self._running.pop(future)
            if culprits and ticket not in culprits:
                retry.append(job)  # a bystander: same attempt
            elif job["attempt"] < self.max_retries:
                retry.append({**job, "attempt": job["attempt"] + 1})
            else:
                finished.append(outcome(job, None, _died(self.max_retries), time.perf_counter() - start,
                                        pid_of.get(ticket)))
        self._queue.extendleft(reversed(retry))  # run again first, in their original order
        return finished

    def close(self) -> None:
        self._queue.clear()
        if self._pool is not None:
            if self._running:  # unfinished children are abandoned, not awaited (e.g. after Ctrl-C)
                _terminate_workers(self._pool)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._running.clear()
        self._finished.clear()


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _visible_gpus() -> tuple[str, ...]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        gpus = tuple(g.strip() for g in listed.split(",") if g.strip())
    else:
        import torch
        gpus = tuple(str(i) for i in range(torch.cuda.device_count()))
    if not gpus:
        raise ConfigError("num_gpus > 0 but no CUDA device is visible")
    return gpus


# ----------------------------------------------------------------------------- Ray

def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError('the "ray" executor needs Ray: pip install "enas[ray]"') from exc
    return ray


PROBE_SECONDS = 5  # how long a cluster's address may take to accept a connection
# Where a cluster's token comes from, as Ray looks for it: the one line that reports a refused token says so.
TOKEN_PLACES = ("the cluster's token (`ray get-auth-token` on its head prints it) in RAY_AUTH_TOKEN, in the file "
                "RAY_AUTH_TOKEN_PATH names, or in ~/.ray/auth_token")


def check_cluster(address: str) -> None:
    """ConfigError unless the Ray cluster at `address` answers and lets this process in. Asked before a
    search writes anything: Ray itself retries a silent address for minutes, printing a warning every few
    seconds, and meets a token it refuses with a screen of them. "auto" is left to Ray, which finds the
    cluster of this machine (or says at once that there is none)."""
    client = address.startswith("ray://")  # Ray Client's server, not the cluster's GCS
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # a form Ray reads its own way
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
        start = "start its head" + ("" if client else f" with `ray start --head --port {port}`")
        raise ConfigError(f"no Ray cluster answers at {address} ({why}); {start}, or set ray_address to a "
                          f"running cluster's HOST:PORT") from None
    if client:  # ray.init asks the rest
        return
    ray = _import_ray()
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray laid out otherwise: ray.init will tell
        return
    try:
        with _quiet_stderr():
            _check_token()
            GcsClient(address=address)  # what `ray health-check` asks: the cluster's id, with this token
    except Exception as exc:  # noqa: BLE001 (whatever kept this process out becomes the one line)
        raise _connection_error(ray, address, exc) from None


def _check_token() -> None:
    """AuthenticationError when RAY_AUTH_MODE=token but no token is found: Ray's client aborts the
    process in that case, where ray.init raises."""
    try:
        from ray._private.authentication.authentication_token_setup import ensure_token_if_auth_enabled
    except ImportError:  # a Ray without token authentication
        return
    ensure_token_if_auth_enabled(None, create_token_if_missing=False)


def _connection_error(ray, address: str, exc: BaseException) -> ConfigError:
    """One line for a cluster that kept this process out. Ray's own error chains a traceback of the last
    attempt inside its message, so a refused token is found by name as well as by type."""
    refused = getattr(ray.exceptions, "AuthenticationError", ())
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    if any(isinstance(e, refused) or "InvalidAuthToken" in str(e) or "AuthenticationError" in str(e)
           for e in chain):
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            return ConfigError(f"the Ray cluster at {address} requires token authentication: run with "
                               f"RAY_AUTH_MODE=token and {TOKEN_PLACES}")
        return ConfigError(f"the Ray cluster at {address} refused this process's authentication token or "
                           f"found none (RAY_AUTH_MODE=token): give it {TOKEN_PLACES}")
    root = chain[-1]
    lines = str(root).strip().splitlines()
    why = lines[-1].strip() if "Traceback" in str(root) else _one_line(root)  # the error the traceback ends in
    return ConfigError(f"cannot connect to the Ray cluster at {address}: {why}")


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's core writes its connection warnings to file descriptor 2 itself, past Python's logging;
    while connecting they go nowhere, and a failure is reported in one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _ray_run(fn, job: dict, threads: int) -> dict:
    import ray
    return run_job(fn, job, threads, worker=f"{ray.util.get_node_ip_address()}:{os.getpid()}")


class RayExecutor(Executor):
    """Children as Ray tasks of `num_cpus` / `num_gpus` each; Ray schedules them on whatever the
    instance has. address=None starts a local instance of workers x num_cpus CPUs (or reuses the
    one already running in this process); "host:port" (the head's GCS), "auto" or "ray://host:port"
    joins a cluster started with `ray start` (`workers` is then ignored: the cluster's resources
    decide); a cluster that does not answer or refuses this process's token is a ConfigError of one
    line. The package must be installed on every node. Worker output goes to Ray's session logs, not
    to this terminal."""

    def __init__(self, fn: Callable | str, workers: int = 1, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None, max_retries: int = 1):
        ray = self._ray = _import_ray()
        self.fn, self.max_retries = fn, max_retries
        self._started = False
        if not ray.is_initialized():
            options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            if address is None:  # "local": a new instance even where RAY_ADDRESS names a cluster
                ray.init(address="local", num_cpus=max(1, math.ceil(workers * num_cpus)), **options)
            else:
                check_cluster(address)
                try:
                    with _quiet_stderr():
                        ray.init(address=address, **options)
                except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
                    raise _connection_error(ray, address, exc) from None
            self._started = True
        # Ray's own retries are off: a retried task would not say it was retried, and the attempt
        # count is part of the outcome.
        self._task = ray.remote(_ray_run).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)
        self.threads = max(1, int(num_cpus))
        self._running: dict = {}  # ObjectRef -> (job, start time)

    def submit(self, job: dict) -> None:
        self._launch(_check_job(job))

    def _launch(self, job: dict) -> None:
        self._running[self._task.remote(self.fn, job, self.threads)] = (job, time.perf_counter())

    def results(self, stop: Callable[[], bool] = _never) -> Iterator[dict]:
        ray = self._ray
        while self._running and not stop():
            ready, _ = ray.wait(list(self._running), num_returns=1, timeout=POLL_SECONDS)
            if stop():
                return
            for ref in ready:
                job, start = self._running.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 (every failure becomes an outcome)
                    out = self._failure(job, exc, time.perf_counter() - start)
                if out is not None:
                    yield out

    def _failure(self, job: dict, exc: Exception, seconds: float) -> dict | None:
        """The outcome of a task that did not return, or None when it runs again."""
        if self._worker_died(exc):
            if job["attempt"] < self.max_retries:
                self._launch({**job, "attempt": job["attempt"] + 1})
                return None
            return outcome(job, None, _died(self.max_retries), seconds)
        if isinstance(exc, self._ray.exceptions.OutOfMemoryError):  # Ray's memory monitor killed it
            return outcome(job, None, "out of memory: " + _one_line(exc), seconds)
        return outcome(job, None, _one_line(exc), seconds)

    def _worker_died(self, exc: Exception) -> bool:
        dead = (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.NodeDiedError)
        if isinstance(exc, self._ray.exceptions.RayTaskError):
            return isinstance(getattr(exc, "cause", None), dead)
        return isinstance(exc, dead)

    def close(self) -> None:
        for ref in list(self._running):
            self._ray.cancel(ref, force=True)
        self._running.clear()
        if self._started:  # a local instance is stopped; a cluster is only disconnected from
            self._ray.shutdown()
            self._started = False


# ----------------------------------------------------------------------------- the one entry point

def check_executor(kind: str = "local", workers: int = 1, num_cpus: float = 1, num_gpus: float = 0,
                   max_retries: int = 1, address: str | None = None) -> None:
    """ConfigError unless make_executor can start an executor of this kind; starts nothing (a search
    checks this before it writes anything). A Ray cluster's address is asked whether it answers."""
    if kind not in KINDS:
        raise ConfigError(f"unknown executor {kind!r}; choose one of {', '.join(KINDS)}")
    if not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"workers must be a whole number >= 0, got {workers!r}")
    if not num_cpus > 0 or not num_gpus >= 0 or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"invalid resources: num_cpus={num_cpus!r} (> 0), num_gpus={num_gpus!r} (>= 0), "
                          f"max_retries={max_retries!r} (whole, >= 0)")
    if kind == "ray":
        _import_ray()
        if address is not None:
            check_cluster(address)


def make_executor(kind: str = "local", workers: int = 1, fn: Callable | str | None = None,
                  num_cpus: float = 1, num_gpus: float = 0, address: str | None = None,
                  max_retries: int = 1) -> Executor:
    """Where children train: "local" (workers <= 1: in this process; more: a pool of processes) or
    "ray" (needs `pip install "enas[ray]"`). fn: a module-level callable or "module:function";
    default "enas.child_training:train_child". max_retries: runs after a worker death."""
    check_executor(kind, workers, num_cpus, num_gpus, max_retries)  # the cluster is asked when it is joined
    fn = DEFAULT_FN if fn is None else fn
    resolve_fn(fn)  # a typo in the work function is a configuration error, found before any job runs
    if kind == "local" and workers <= 1:
        return InProcessExecutor(fn)
    try:
        pickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"the work function must be importable by other processes (a module-level "
                          f"function or 'module:function'): {_one_line(exc)}") from exc
    if kind == "local":
        return LocalPoolExecutor(fn, workers, num_gpus=num_gpus, max_retries=max_retries)
    return RayExecutor(fn, workers, num_cpus=num_cpus, num_gpus=num_gpus, address=address,
                       max_retries=max_retries)
