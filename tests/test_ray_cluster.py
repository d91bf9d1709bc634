"""Searches without weight sharing on a Ray cluster started apart from them with `ray start`, as on
several machines: the children run as tasks of that cluster and give what the same search gives in
process; a cluster that does not answer, or that refuses this process's token, is one line at once.

The head runs as its own process group (2 CPUs, token authentication with a token of its own, its own
temporary directory, no dashboard) for the whole module and is stopped at the end, whatever happened.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import CLI_ENV, ROOT, SHARED_DATA

ray = pytest.importorskip("ray", reason="the optional ray extra is not installed")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray at a time on this machine (setup.cfg)

# strategy -> (space, preset, task, data directory, --set values): a tiny search of a few children
CASES = {
    "nas": ("enas_rnn", "tiny", "ptb", SHARED_DATA / "ptb",
            ["nas.updates=2", "controller.num_aggregate=2", "child_epochs=2", "child_max_steps=3",
             "eval_max_batches=1", "space_options.num_nodes=3"]),
    "pnas": ("pnas", "tiny", "fashion_mnist", SHARED_DATA / "fashion-mnist",
             ["pnas.first_level=3", "pnas.beam=2", "child_max_steps=3", "eval_max_batches=1"]),
}
RAY_VARIABLES = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
HANG_GUARD = 60  # seconds: the point is an answer within a minute, not a measured time
# `ray start` gives the raylet a fixed 30 s to register with the GCS (ray/_private/node.py), which a
# machine busy with the rest of the suite can exceed; a head that timed out is started afresh.
HEAD_STARTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**auth: str) -> dict:
    """The command's environment, its Ray address and authentication exactly as given: the test process
    may hold the developer's own, or what a local Ray instance of another test set (RAY_AUTH_MODE)."""
    env = {k: v for k, v in CLI_ENV.items() if k not in RAY_VARIABLES}
    return {**env, **auth}


class Cluster:
    def __init__(self, temp: Path, token: Path):
        self.temp, self.token = temp, token
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        # the worktree's enas on the cluster's workers, as on a node where the package is installed
        python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**_env(**self.auth), "PYTHONPATH": python_path}
        # Every port given: another Ray on this machine keeps its defaults, and the raylet waits for no
        # agent to write the port it chose to a file (it gives up within half a minute, which a busy
        # machine's agents can take to start).
        flags = ("--ray-client-server-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
                 "--runtime-env-agent-port", "--metrics-export-port")
        ports = [(flag, str(_free_port())) for flag in flags]
        command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--num-cpus", "2",
                   "--port", str(self.port), *[a for pair in ports for a in pair], "--include-dashboard=false",
                   "--disable-usage-stats", "--temp-dir", str(temp)]
        temp.mkdir()
        self.log = temp / "head.log"
        with open(self.log, "w") as log:
            # a session of its own: every process of the head, workers included, is stopped together
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def started(self, timeout: float = 180) -> bool:
        """Whether the head says it runs before it exits or the timeout passes."""
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True

    def stop(self) -> None:
        """SIGKILL to the whole group: on SIGTERM the head takes half a minute to stop, and nothing of it
        (the temporary directory aside) outlives the test."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _group_alive(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)  # the others are reaped by whoever adopted them

    def worker_pids(self) -> set[int]:
        """Pids of the cluster's worker processes, from the names of their log files
        (logs/worker-WORKER_ID-JOB_ID-PID.out)."""
        logs = self.temp.glob("session_*/logs/**/worker-*.out")  # logs/old/ once a worker has exited
        return {int(m.group(1)) for p in logs if (m := re.search(r"-(\d+)\.out$", p.name))}


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    temp = tmp_path_factory.mktemp("ray")
    # Ray's unix sockets live under the temporary directory (SESSION/sockets/...), a path of at most 107
    # bytes; a session's name takes about 60 of them
    made = len(str(temp)) > 38
    if made:
        temp = Path(tempfile.mkdtemp(prefix="ray-"))
    token = temp / "token"
    token.write_text(secrets.token_hex(32))
    head = None
    try:
        for attempt in range(HEAD_STARTS):
            head = Cluster(temp / str(attempt), token)  # fresh ports and session directory
            if head.started():
                break
            head.stop()
        else:
            pytest.fail(f"the Ray head did not start in {HEAD_STARTS} tries (exit status {head.process.poll()}):\n"
                        f"{head.log.read_text()[-3000:]}")
        yield head
    finally:
        if head is not None:
            head.stop()
        if made:
            shutil.rmtree(temp, ignore_errors=True)


def _search(strategy: str, run: Path, *more: str) -> list[str]:
    space, preset, task, data, values = CASES[strategy]
    args = ["search", "--strategy", strategy, "--space", space, "--task", task, "--preset", preset,
            "--data-dir", str(data), "--logdir", str(run), "--device", "cpu"]
    return args + [a for v in [*values, *more] for a in ("--set", v)]


def _cli(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "enas", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _results(run: Path) -> tuple[list[dict], dict]:
    """Every child of archs.jsonl (in child order, timing aside) and arch.json."""
    rows = [json.loads(line) for line in (run / "archs.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds", None)
    rows.sort(key=lambda r: (r.get("child", -1), r.get("step", -1)))  # Ray's children finish in any order
    return rows, json.loads((run / "arch.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(CASES))
def test_children_run_on_the_cluster_and_give_what_a_local_run_gives(strategy, cluster, tmp_path):
    on_cluster = _cli(_search(strategy, tmp_path / "cluster", "executor=ray", f"ray_address={cluster.address}"),
                      _env(**cluster.auth))
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    assert f"children train on the ray executor (Ray at {cluster.address})" in on_cluster.stderr
    # Each child's line names its worker "ip:pid"; the cluster keeps a log file per worker process it
    # started, named with its pid. A Ray instance the search had started itself would have its workers'
    # logs in its own session directory, not under this cluster's temporary directory.
    workers = [int(pid) for pid in re.findall(r"worker \S+:(\d+)", on_cluster.stderr)]
    rows, _ = _results(tmp_path / "cluster")
    children = [r for r in rows if r.get("phase") == "child"]
    assert len(workers) == len(children) > 0 and all(r["error"] is None for r in children), on_cluster.stderr[-3000:]
    assert set(workers) <= cluster.worker_pids(), (workers, sorted(cluster.worker_pids()))
    assert os.getpid() not in workers

    local = _cli(_search(strategy, tmp_path / "local", "executor=local"), _env())
    assert local.returncode == 0, local.stderr[-3000:]
    assert _results(tmp_path / "cluster") == _results(tmp_path / "local")


@pytest.mark.parametrize("strategy", list(CASES))
def test_a_stopped_head_is_one_line_at_once(strategy, tmp_path):
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there, as after `ray stop`
    run = tmp_path / "run"
    start = time.monotonic()
    done = _cli(_search(strategy, run, "executor=ray", f"ray_address={address}"), _env(), timeout=300)
    seconds = time.monotonic() - start
    assert done.returncode == 2 and done.stderr.splitlines() == [done.stderr.strip()], done.stderr[-3000:]
    assert done.stderr.startswith(f"error: no Ray cluster answers at {address} (connection refused)"), done.stderr
    assert seconds < HANG_GUARD
    assert not run.exists(), "a refused command leaves nothing"


@pytest.mark.parametrize("auth, says", [
    ({}, "requires token authentication: run with RAY_AUTH_MODE=token"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 64}, "refused this process's authentication token"),
], ids=["no-token", "wrong-token"])
def test_a_refused_token_is_one_line_at_once(auth, says, cluster, tmp_path):
    if not hasattr(ray.exceptions, "AuthenticationError"):
        pytest.skip("this Ray has no token authentication")
    run = tmp_path / "run"
    start = time.monotonic()
    strategy = next(iter(CASES))
    done = _cli(_search(strategy, run, "executor=ray", f"ray_address={cluster.address}"), _env(**auth), timeout=300)
    seconds = time.monotonic() - start
    assert done.returncode == 2 and done.stderr.splitlines() == [done.stderr.strip()], done.stderr[-3000:]
    assert done.stderr.startswith(f"error: the Ray cluster at {cluster.address} {says}"), done.stderr
    assert "RAY_AUTH_TOKEN" in done.stderr and "ray get-auth-token" in done.stderr
    assert seconds < HANG_GUARD
    assert not run.exists(), "a refused command leaves nothing"
