"""The command line as a user meets it: the README's main job, its summaries and --json, the help and
`enas config`, and one-line errors with exit 2."""
import json
import os
import shutil

import pytest

import enas
from enas.cli import main, read_arch
from enas.config import apply_overrides
from enas.presets import PRESETS
from enas.strategies import get_strategy, list_strategies, preset

from conftest import SHARED_DATA, run_cli

SHARED = ["--set", "shared_steps=6", "--set", "eval_max_batches=2", "--set", "derive_samples=3"]
FAST = [*SHARED, "--set", "controller.steps=2"]


def test_search_derive_train(ptb_dir, tmp_path, capsys):
    run, final = tmp_path / "ptb", tmp_path / "final"
    r = run_cli("search", "--space", "enas_rnn", "--task", "ptb", "--data-dir", str(ptb_dir),
                "--logdir", str(run), "--preset", "tiny", "--device", "cpu", *FAST)
    assert r.returncode == 0, r.stderr
    assert "device: cpu" in r.stderr.splitlines()
    total = 2 * (6 + 2)  # the tiny preset's 2 epochs of 6 shared steps and 2 controller updates
    assert f"{total}/{total}" in r.stderr and "epoch 2/2" in r.stderr, "one bar for the whole run"
    assert "loss" in r.stderr and "reward" in r.stderr and "entropy" in r.stderr
    assert "enas search of enas_rnn on ptb finished" in r.stdout and "valid ppl" in r.stdout
    assert r.stdout.strip().endswith(f"next: enas derive {run}")

    assert main(["derive", str(run)]) == 0  # in process from here on: the same code, without the start-up
    out = capsys.readouterr().out
    derived = json.loads((run / "arch.json").read_text())
    assert set(derived) >= {"space", "arch", "metric", "how"} and derived["task"] == "ptb"
    assert derived["data_dir"] == str(ptb_dir.resolve()), "where the search read its data, for train"
    assert derived["arch"] in out and f"valid ppl {derived['metric']:.2f}" in out
    assert f"next: enas train --arch {run / 'arch.json'} --data-dir {ptb_dir} --logdir {run}-final --preset tiny" \
        in out
    assert main(["derive", str(run), "--json", "--quiet"]) == 0  # the same derivation, for a script
    assert json.loads(capsys.readouterr().out) == derived

    assert main(["train", "--arch", str(run / "arch.json"), "--logdir", str(final),  # the data of arch.json
                 "--preset", "tiny", "--json", "--set", "max_steps=5", "--set", "eval_max_batches=2"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # stdout is the one JSON line; the progress went to stderr
    assert result == json.loads((final / "results.json").read_text()) and "parameters" in err
    assert result["arch"] == derived["arch"] and 1 < result["valid_ppl"] < 10000 and 1 < result["test_ppl"] < 10000

    for done, said in ((run, f"{run} is a finished enas search: nothing to resume"),
                       (final, f"{final} is a finished training: nothing to resume")):
        before = {p: p.stat().st_mtime_ns for p in done.rglob("*") if p.name != ".lock"}
        command = "search" if done == run else "train"
        assert main([command, "--resume", "--logdir", str(done)]) == 0
        out = capsys.readouterr().out
        assert said in out and "next: " + (f"enas derive {run}" if done == run else "tensorboard") in out
        assert {p: p.stat().st_mtime_ns for p in done.rglob("*") if p.name != ".lock"} == before, "writes nothing"

    for command in ("derive", "analyze"):  # a final training is not a search
        assert main([command, str(final)]) == 2
        assert capsys.readouterr().err.strip() == (f"error: {final} is a final training (`enas train`); {command} "
                                                   f"needs a search run, the --logdir of `enas search`")

    umask = os.umask(0)
    os.umask(umask)
    for path in [*run.rglob("*"), *final.rglob("*")]:  # readable like the event files: the umask decides
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_train_takes_a_zoo_name_and_an_arc_string(ptb_dir, tmp_path, capsys):
    for arch in ("enas_ptb", "0 0 0 1 1"):  # the official cell; a 3-node cell
        run = tmp_path / arch.replace(" ", "")
        code = main(["train", "--space", "enas_rnn", "--arch", arch, "--data-dir", str(ptb_dir),
                     "--logdir", str(run), "--preset", "tiny", "--set", "max_steps=2", "--set", "eval_max_batches=1"])
        out = capsys.readouterr().out
        assert code == 0
        result = json.loads((run / "results.json").read_text())
        assert result["steps"] == 2
        assert f"test ppl {result['test_ppl']:.2f}; {result['parameters']:,} parameters" in out
        assert out.strip().endswith(f"next: tensorboard --logdir {run}")


def test_an_image_arch_trains_on_the_task_it_records(tmp_path, capsys):
    data = ["--data-dir", str(SHARED_DATA / "fashion-mnist"), "--preset", "tiny", "--quiet",
            "--set", "max_steps=2", "--set", "eval_max_batches=1"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--space", "enas_macro", "--task", "fashion_mnist", "--arch", "0 1 1",  # 2 layers
                 "--logdir", str(first), *data]) == 0
    assert json.loads((first / "arch.json").read_text())["task"] == "fashion_mnist"
    assert main(["train", "--arch", str(first / "arch.json"), "--logdir", str(second), *data]) == 0  # no --task
    assert "trained enas_macro on fashion_mnist" in capsys.readouterr().out
    assert "test_acc" in json.loads((second / "results.json").read_text())

    assert main(["train", "--arch", str(first / "arch.json"), "--task", "ptb", "--logdir", str(tmp_path / "x"),
                 *data]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --task ptb, but {first / 'arch.json'} records task fashion_mnist"


def test_an_arch_json_without_task_takes_the_task_of_its_run(tmp_path):
    arch = enas.zoo.get("enas_macro_cifar10")
    (tmp_path / "arch.json").write_text(json.dumps(arch.to_json()))  # written before arch.json had "task"
    assert read_arch(str(tmp_path / "arch.json"), None) == (arch, None, "")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"task": "fashion_mnist"}}))
    assert read_arch(str(tmp_path / "arch.json"), None) == (arch, "fashion_mnist", "")


@pytest.mark.parametrize("command", ["search", "train", "compare", "config"])
def test_help_lists_the_choices_and_defaults(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    spaces, tasks = enas.list_spaces(), sorted({t for _, t, _, _ in PRESETS})
    assert "--space {" + ",".join(spaces) + "}" in text and "--task {" + ",".join(tasks) + "}" in text
    assert "--preset {" + ",".join(sorted({p for *_, p in PRESETS})) + "}" in text
    if command == "search":
        assert "--strategy {" + ",".join(list_strategies()) + "}" in text and "(default: enas)" in text
        assert "(default: enas_rnn)" in text and "(default: ptb)" in text and "(default: paper)" in text
    if command in ("search", "compare", "config"):  # every strategy with its one-line description
        assert all(f"{name} {get_strategy(name).description}" in text for name in list_strategies())
    if command != "config":
        assert "--device" in text and "cuda:N" in text and "--json" in text


def test_config_prints_every_key_and_value(capsys):
    sets = ["enas.controller.lr=0.001", "space_options.num_nodes=8"]
    assert main(["config", "--preset", "tiny", *[x for kv in sets for x in ("--set", kv)]]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert set(sets) <= set(lines) and "model.hidden_size=48" in lines and "space_options.output=loose_ends" in lines
    tiny = preset("search", "ptb", "tiny")
    # every line is a valid --set, and together they rebuild the config
    assert apply_overrides(tiny, lines) == apply_overrides(tiny, sets + ["space_options.first_act=sampled",
                                                                         "space_options.output=loose_ends"])
    assert main(["config", "--kind", "train", "--space", "enas_macro", "--task", "fashion_mnist"]) == 0
    assert "model.style=final" in capsys.readouterr().out.splitlines()


def test_config_shows_a_strategys_own_section(capsys):
    """Full NAS's controller (Zoph & Le: two layers of 35 units) under the strategy's own section."""
    assert main(["config", "--strategy", "nas", "--preset", "tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert {"strategy=nas", "nas.controller.hidden_size=35", "nas.controller.num_layers=2", "nas.updates=3"} <= set(lines)
    assert not any(line.startswith(("enas.", "controller.")) for line in lines)
    assert main(["config", "--strategy", "random", "--preset", "tiny"]) == 0
    assert not any("controller" in line for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("args,what", [
    (["search", "--space", "foo", "--logdir", "x"], "space 'foo'"),
    (["train", "--space", "foo", "--arch", "0 0", "--logdir", "x"], "space 'foo'"),
    (["config", "--space", "foo"], "space 'foo'"),
    (["compare", "--task", "imagenet", "--budget", "1", "--logdir", "x"], "task 'imagenet'"),
    (["search", "--preset", "huge", "--logdir", "x"], "preset 'huge'"),
])
def test_unknown_names_list_what_is_known(args, what, capsys):
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    known = {"space": enas.list_spaces(), "task": sorted({t for _, t, _, _ in PRESETS}),
             "preset": sorted({p for *_, p in PRESETS})}[what.split()[0]]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert lines[0].endswith(f"unknown {what}; known: {', '.join(known)}")


def test_random_and_nas_report_without_controller_wording(ptb_dir, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "random"
    base = ["--data-dir", str(ptb_dir), "--preset", "tiny", "--device", "cpu", "--set", "space_options.num_nodes=3"]
    assert main(["search", "--strategy", "random", "--logdir", str(run), *base, *SHARED]) == 0
    assert main(["derive", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "random search of enas_rnn on ptb finished" in out and "drawn uniformly at random" in out
    assert "controller" not in (out + err).lower(), out + err
    events = EventAccumulator(str(run))
    events.Reload()
    assert not [t for kind in ("scalars", "tensors") for t in events.Tags()[kind] if t.startswith("controller/")]

    run = tmp_path / "nas"
    assert main(["search", "--strategy", "nas", "--logdir", str(run), *base, "--set", "nas.updates=1",
                 "--set", "controller.num_aggregate=2", "--set", "child_max_steps=2", "--set", "eval_max_batches=1",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["children"] == 2 and summary["best"]["arch"] == json.loads((run / "arch.json").read_text())["arch"]
    assert summary["next"].startswith(f"enas train --arch {run / 'arch.json'}")
    rows = [line for line in err.splitlines() if line.startswith("child ")]
    assert len(rows) == 2 and all("reward" in r and "ppl" in r and " s  worker " in r for r in rows), err
    assert "device: cpu; children train on the local executor (1 worker)" in err.splitlines()


def test_spaces_lists_the_registry():
    r = run_cli("spaces")
    assert r.returncode == 0 and "enas_rnn" in r.stdout and "node11.act" in r.stdout


def _corrupt_copy(ptb_dir, tmp_path):
    bad = tmp_path / "bad-ptb"
    shutil.copytree(ptb_dir, bad)
    with open(bad / "ptb.valid.txt", "r+b") as f:
        f.seek(1000)
        f.write(b"X")
    return bad


@pytest.mark.parametrize("case", ["missing data", "corrupt data", "unknown key", "bad value", "bad preset",
                                  "bad arc", "bad arc value", "missing arch file", "bad space",
                                  "no checkpoint", "derive no run", "bad strategy", "bad device"])
def test_user_errors_are_one_line_and_exit_2(case, ptb_dir, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    search = ["search", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny"]
    train = ["train", "--space", "enas_rnn", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny"]
    args = {
        "missing data": ["search", "--data-dir", str(tmp_path / "nowhere"), "--logdir", str(run), "--preset",
                         "tiny", "--set", "device=cpu"],
        "corrupt data": ["search", "--data-dir", str(_corrupt_copy(ptb_dir, tmp_path)), "--logdir", str(run),
                         "--preset", "tiny"],
        "unknown key": search + ["--set", "controller.learning_rate=1"],
        "bad value": search + ["--set", "seed=seven"],
        "bad preset": search[:-1] + ["huge"],
        "bad arc": train + ["--arch", "0 0 x 1"],
        "bad arc value": train + ["--arch", "0 0 0 1 7"],
        "missing arch file": train + ["--arch", str(tmp_path / "arch.json")],
        "bad space": ["search", "--space", "nope", "--data-dir", str(ptb_dir), "--logdir", str(run)],
        "no checkpoint": search + ["--resume"],
        "derive no run": ["derive", str(tmp_path)],
        "bad strategy": search + ["--strategy", "evolution"],
        "bad device": search + ["--device", "tpu"],
    }[case]
    monkeypatch.setenv("ENAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ENAS_PTB_URL", (tmp_path / "no-mirror").as_uri())
    code = main(args)  # in process: the same code path as the console script, without the start-up
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert not (run / "checkpoints").exists(), "a failed start leaves no half-written run"


def test_an_existing_run_is_not_overwritten(ptb_dir, tmp_path):
    run = tmp_path / "run"
    args = ["search", "--data-dir", str(ptb_dir), "--logdir", str(run), "--preset", "tiny", *FAST,
            "--set", "epochs=1"]
    assert run_cli(*args).returncode == 0
    before = (run / "checkpoints" / "last.pt").read_bytes()
    r = run_cli(*args)  # the console script's own exit status and stderr
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "--resume" in r.stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
