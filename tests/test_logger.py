"""Run directory writer: archs.jsonl, TensorBoard events, JSON files, pictures of cells."""
import json
import os
import re

import pytest
import torch
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import enas
from enas.checkpoint import save_checkpoint
from enas.logger import RunLogger, cell_figure, cell_text, format_metric
from enas.spaces import Choice, SearchSpace


def events(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_archs_jsonl_and_truncate(tmp_path):
    arch = enas.zoo.get("enas_ptb")
    log = RunLogger(tmp_path / "run")
    for step in range(6):
        log.arch({"step": step, "arch": arch, "reward": torch.tensor(0.5 * step), "metric": 80.0 + step})
    lines = (tmp_path / "run" / "archs.jsonl").read_text().splitlines()  # flushed without close()
    assert len(lines) == 6
    rec = json.loads(lines[3])
    assert rec == {"step": 3, "arch": str(arch), "reward": 1.5, "metric": 83.0}

    with open(tmp_path / "run" / "archs.jsonl", "a") as f:
        f.write('{"step": 6, "arch": "0 1')  # a crash in the middle of a line
    assert log.truncate_archs(after_step=2) == 4
    assert [r["step"] for r in log.read_archs()] == [0, 1, 2]
    log.arch({"step": 3, "arch": "0 0", "reward": 0.0})  # appending goes on after truncation
    log.close()
    lines = (tmp_path / "run" / "archs.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="step"):
        RunLogger(tmp_path / "run").arch({"arch": "0"})


def test_scalars_text_figure_in_event_file(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in range(3):
            log.scalar("shared/loss", torch.tensor(2.0 - step), step)  # a 0-d tensor
            log.scalars({"controller/reward": 0.1 * step, "valid/ppl": torch.tensor(100.0)}, step)
        log.text("arch/derived", "line one\nline two", 2)
        a = enas.zoo.get("enas_ptb")
        log.figure("arch/cell", cell_figure(a.space, a), 2)
    acc = events(tmp_path)
    assert {"shared/loss", "controller/reward", "valid/ppl"} <= set(acc.Tags()["scalars"])
    assert [e.value for e in acc.Scalars("shared/loss")] == [2.0, 1.0, 0.0]
    assert [e.step for e in acc.Scalars("valid/ppl")] == [0, 1, 2]
    assert "arch/cell" in acc.Tags()["images"]
    assert any(t.startswith("arch/derived") for t in acc.Tags()["tensors"])


def test_purge_step_on_resume(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in range(6):
            log.scalar("shared/loss", float(step), step)
    with RunLogger(tmp_path, purge_step=3) as log:  # resumed from a checkpoint after step 2
        for step in range(3, 5):
            log.scalar("shared/loss", 10.0 + step, step)
    assert [(e.step, e.value) for e in events(tmp_path).Scalars("shared/loss")] == \
        [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0)]


def test_writer_is_lazy_and_json_is_atomic(tmp_path):
    log = RunLogger(tmp_path / "run")
    arch = enas.zoo.get("enas_ptb")
    path = log.write_json("arch.json", arch.to_json(metric=torch.tensor(56.3), how="best of 100"))
    log.write_json("arch.json", arch.to_json(metric=55.8, how="best of 100"))  # replaces
    log.close()
    obj = json.loads(path.read_text())
    assert obj["metric"] == 55.8 and enas.Arch.from_json(obj) == arch
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["arch.json"]  # no events file, no temp


def test_cell_text_names_every_node():
    arch = enas.zoo.get("enas_ptb")
    text = cell_text(arch.space, arch)
    for i in range(12):
        assert re.search(rf"\bnode {i}\b", text), i
    assert "node 8  = relu(node 6)" in text  # tokens 17-18 of the official arc: p8 = 6, f8 = 1
    assert re.search(r"h_t .*mean\(node 3, node 4, node 7, node 9, node 10, node 11\)", text)
    assert str(arch) in text


def test_cell_figure_official_cell(tmp_path):
    arch = enas.zoo.get("enas_ptb")
    fig = cell_figure(arch.space, arch)
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "cell.png")  # arrows are laid out at draw time: drawing must work
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {f"node {i}\n{a}" for i, a in [(0, "tanh"), (8, "relu"), (11, "relu")]} <= labels
    assert (tmp_path / "cell.png").stat().st_size > 10_000


@pytest.mark.parametrize("options", [{"num_nodes": 1},
                                     {"num_nodes": 5, "first_act": "tanh", "output": "all"}])
def test_cell_pictures_other_rnn_spaces(options):
    space = enas.get_space("enas_rnn", **options)
    arch = space.sample(seed=0)
    assert "node 0" in cell_text(space, arch)
    cell_figure(space, arch).canvas.draw()


def test_a_space_that_draws_nothing_of_its_own_shows_its_arc_string():
    from IPython.core.pylabtools import print_figure  # what a notebook's display() of a Figure calls

    class Plain(SearchSpace):  # not registered: the base class's text and figure
        name = "some_cnn"

        def build_decisions(self):
            return [Choice("op", 3)] * 3

    assert cell_text(Plain(), (1, 0, 2)) == "some_cnn: 1 0 2"
    fig = cell_figure(Plain(), "1 0 2")
    assert isinstance(fig, Figure)
    assert fig.axes[0].texts[0].get_text() == "some_cnn: 1 0 2"
    assert print_figure(fig), "a notebook draws it (it skips figures without axes)"


def test_format_metric_and_the_last_values_logged(tmp_path):
    assert format_metric("acc", 0.2344) == "23.44%"
    assert format_metric("ppl", 812.3) == "812.30"
    assert format_metric("loss", 6.123456) == format_metric(None, 6.123456) == "6.123"
    assert format_metric("acc", None) == "n/a"
    with RunLogger(tmp_path) as log:
        log.scalars({"shared/loss": torch.tensor(2.5), "controller/reward": 0.25}, 1)
        log.scalar("shared/loss", 2.0, 2)
        assert log.last == {"shared/loss": 2.0, "controller/reward": 0.25}


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_run_files_follow_the_umask(umask, mode, tmp_path):
    old = os.umask(umask)
    try:
        with RunLogger(tmp_path) as log:
            log.write_json("config.json", {"seed": 0})
            log.arch({"step": 1, "arch": "0 1"})
            log.arch({"step": 2, "arch": "0 1"})
            log.truncate_archs(after_step=1)  # rewrites archs.jsonl
            log.scalar("shared/loss", 1.0, 0)
        save_checkpoint(tmp_path / "checkpoints" / "last.pt", {"step": 1})
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4 and {p.stat().st_mode & 0o777 for p in files} == {mode}, files


def _sessions(run_dir) -> dict:
    """hparams of the HPARAMS tab's session in run_dir, as TensorBoard reads them."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events(run_dir).PluginTagToContent("hparams")
    assert "_hparams_/experiment" not in content, "no experiment summary: it would hide other runs' columns"
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    values = start.session_start_info.hparams
    return {k: v.string_value or v.number_value or v.bool_value for k, v in values.items()}


def test_hparams_row_in_a_run_of_its_own(tmp_path):
    """The row's session is RUN/hparams, whose only scalars are its metrics: the tab's columns (TensorBoard
    takes every scalar tag of the session's run and those below it)."""
    run = tmp_path / "run"
    for lr in (5.0, 2.0):  # written again (a run continued after it finished): one row, the last
        with RunLogger(run) as log:
            log.scalar("train/loss", 3.0, 1)
            log.hparams({"kind": "train", "optim.lr": lr, "preset": "tiny"}, {"hparams/test_ppl": 123.0,
                                                                              "hparams/valid_ppl": None}, step=7)
    with pytest.raises(KeyError):  # RUN itself holds no session
        events(run).PluginTagToContent("hparams")
    assert len(list((run / "hparams").iterdir())) == 1
    assert _sessions(run / "hparams") == {"kind": "train", "optim.lr": 2.0, "preset": "tiny"}
    assert events(run / "hparams").Tags()["scalars"] == ["hparams/test_ppl"], "unmeasured metrics are left out"
    assert [(s.step, s.value) for s in events(run / "hparams").Scalars("hparams/test_ppl")] == [(7, 123.0)]


def test_run_hparams_name_what_differs_from_the_closest_preset():
    from enas.config import apply_overrides
    from enas.strategies import preset
    from enas.hparams import closest_preset, run_hparams

    cfg = apply_overrides(preset("search", "ptb", "tiny"), ["controller.lr=0.01", "seed=3", "data_dir=/x"])
    assert closest_preset(cfg) == "tiny"
    hp = run_hparams(cfg, "search")
    assert hp == {"kind": "search", "strategy": "enas", "space": "enas_rnn", "task": "ptb", "seed": 3,
                  "preset": "tiny", "enas.controller.lr": 0.01}
    train = apply_overrides(preset("train", "ptb", "small"), ["optim.lr=10"])
    assert run_hparams(train, "train", "enas_rnn", arch="0 1") == {
        "kind": "train", "strategy": "", "space": "enas_rnn", "task": "ptb", "seed": 0, "preset": "small",
        "optim.lr": 10.0, "arch": "0 1"}
    nested = run_hparams(apply_overrides(preset("search", "ptb", "tiny"), ["space_options={'num_nodes': 4}"]), "search")
    assert nested["space_options.num_nodes"] == 4
