"""Two processes on the CPU (gloo) search one image supernet with DistributedDataParallel."""
import json
import os
import subprocess
import sys

from conftest import SHARED_DATA


def test_two_processes_keep_one_supernet(tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "enas", "search", "--space", "enas_macro", "--task", "fashion_mnist",
           "--data-dir", str(SHARED_DATA / "fashion-mnist"), "--logdir", str(run), "--preset", "tiny", "--quiet",
           "--set", "shared_steps=4", "--set", "controller.steps=2", "--set", "epochs=2", "--set", "device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((run / "distributed.json").read_text())
    assert info["world_size"] == 2 and len(info["weight_checksums"]) == 2
    assert info["in_sync"], info  # every rank applied the same averaged gradients to the same architecture
    records = [json.loads(x) for x in (run / "archs.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 2 * 4, "only rank 0 trains the controller and logs its rewards"
    assert (run / "checkpoints" / "last.pt").exists() and not list(run.glob("rank*"))
