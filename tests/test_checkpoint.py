"""Atomic checkpoints, clear errors for bad files, exact random-state round trips."""
import random

import numpy as np
import pytest
import torch

from enas import checkpoint
from enas.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from enas.errors import CheckpointError


def test_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {"step": 7, "arch": "0 0 1 1", "model": model.state_dict(), "opt": opt.state_dict(),
             "rng": rng_state()}
    save_checkpoint(tmp_path / "ck" / "last.pt", state)
    back = load_checkpoint(tmp_path / "ck" / "last.pt")
    assert back["step"] == 7 and back["arch"] == "0 0 1 1"
    assert torch.equal(back["model"]["weight"], model.weight.detach())
    assert back["opt"]["state"][0]["exp_avg"].shape == (2, 3)
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["last.pt"]


def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(4)})

    def broken_save(obj, f, *a, **kw):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(4)})
    monkeypatch.undo()
    old = load_checkpoint(path)
    assert old["step"] == 1 and torch.equal(old["w"], torch.ones(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file(tmp_path, damage):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"w": torch.randn(100, 100)})
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 9, "empty": b""}
    path.write_bytes(damaged[damage])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_only_plain_data(tmp_path):
    # refused at save time, naming the entry ...
    with pytest.raises(TypeError, match=r"state\['a'\]\[1\] is a numpy.ndarray"):
        save_checkpoint(tmp_path / "x.pt", {"a": [1, np.zeros(2)]})
    assert not list(tmp_path.iterdir())
    # ... and a file with arbitrary objects written elsewhere is refused at load time
    torch.save({"a": np.zeros(2)}, tmp_path / "y.pt")
    with pytest.raises(CheckpointError, match="may only hold"):
        load_checkpoint(tmp_path / "y.pt")


def draws():
    return (random.random(), random.randrange(10**9), np.random.rand(3).tolist(), np.random.randn(3).tolist(),
            torch.rand(3), torch.randn(3), torch.randint(0, 10**6, (3,)))


def same(a, b):
    return all(torch.equal(x, y) if torch.is_tensor(x) else x == y for x, y in zip(a, b))


def test_rng_round_trip_through_checkpoint(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.randn()  # leave a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    first = draws()
    draws()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert same(draws(), first)
    assert not same(draws(), first)


def test_bad_rng_state():
    with pytest.raises(CheckpointError, match="random state"):
        set_rng_state({"python": (3, (1, 2), None)})


def test_atomic_write_helper(tmp_path):
    checkpoint.atomic_write(tmp_path / "a" / "b.txt", lambda f: f.write(b"hello"))
    assert (tmp_path / "a" / "b.txt").read_bytes() == b"hello"


def test_a_checkpoint_asking_for_a_blocked_global_is_refused_as_such(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return os.system, ("true",)

    torch.save({"w": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match=r"refused: it asks to load posix\.system") as e:
        load_checkpoint(tmp_path / "evil.pt")
    assert "corrupt" not in str(e.value)


def test_a_full_disk_is_one_error_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    from enas.errors import WriteError

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(WriteError, match=f"no space left on device while writing {path}"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["last.pt"]
