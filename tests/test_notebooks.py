"""The notebooks run headless, top to bottom, on real (tiny) runs, from the repository root and from
notebooks/ (where Jupyter starts), with the run given as a relative path: inspect_run.ipynb on a run of
every strategy, controller_analysis.ipynb on an enas run analysed with a few architectures."""
import re
from pathlib import Path

import pytest

from enas.analysis import analyze
from enas.config import apply_overrides
from enas.strategies import derive, preset, start_search

# the notebooks extra; a machine without it (a GPU image running `pytest -m gpu`) skips this module
nbformat = pytest.importorskip("nbformat")
NotebookClient = pytest.importorskip("nbclient").NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SHARED = ["shared_steps=6", "eval_max_batches=3", "derive_samples=4", "log_every=2"]
CHILDREN = ["child_max_steps=2", "eval_max_batches=1"]
STRATEGIES = {  # name -> (overrides of its tiny search, what inspect_run.ipynb says of its result)
    "enas": ([*SHARED, "controller.steps=3"], "sampled from the controller"),
    "random": (SHARED, "drawn uniformly at random"),
    "nas": (["nas.updates=1", "controller.num_aggregate=2", *CHILDREN], "sampled by the controller"),
    "random_scratch": (["random_scratch.children=2", *CHILDREN], "(random) trained from scratch"),
}
CASES = [("enas", "."), ("enas", "notebooks"), ("random", "notebooks"), ("nas", "."), ("random_scratch", "notebooks")]


def test_every_notebook_is_tested():
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == {"inspect_run.ipynb", "controller_analysis.ipynb"}


def make_run(strategy, ptb_dir, tmp_path) -> Path:
    """A finished tiny run of `strategy` in tmp_path/runs/, laid out like the repository (notebooks/ beside
    runs/), with its result: derived with shared weights, the best child without."""
    overrides, _ = STRATEGIES[strategy]
    (tmp_path / "notebooks").mkdir()
    run = tmp_path / "runs" / strategy
    cfg = apply_overrides(preset("search", "ptb", "tiny", strategy=strategy), [f"data_dir={ptb_dir}", *overrides])
    search = start_search(cfg, run, progress=False)
    assert search.run() is True
    if search.shared_weights:
        derive(run, progress=False)
    else:
        search.finish()
    return run


def run_notebook(name, run, cwd, tmp_path, monkeypatch) -> tuple[list, str]:
    """Runs notebooks/name on `run` (given relative to tmp_path) from tmp_path/cwd: (outputs, their text)."""
    monkeypatch.setenv("ENAS_RUN", str(run.relative_to(tmp_path)))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    where = {"metadata": {"path": str(tmp_path / cwd)}}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources=where).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    return outputs, "".join(o.get("text", "") for o in outputs)


def execute(name, run, cwd, tmp_path, monkeypatch) -> tuple[list, str]:
    """`run_notebook`, which must show figures."""
    outputs, text = run_notebook(name, run, cwd, tmp_path, monkeypatch)
    assert any("image/png" in o.get("data", {}) for o in outputs), "figures are shown"
    return outputs, text


@pytest.mark.parametrize("strategy,cwd", CASES, ids=[f"{s}-from-{c}" for s, c in CASES])
def test_inspect_run(strategy, cwd, ptb_dir, tmp_path, monkeypatch):
    result = STRATEGIES[strategy][1]
    outputs, text = execute("inspect_run.ipynb", make_run(strategy, ptb_dir, tmp_path), cwd, tmp_path,
                            monkeypatch)
    assert result in text and "highest rewards" in text
    assert "image/png" in outputs[-1].get("data", {}), "the result's cell is drawn"
    records = {"enas": "controller records", "random": "derive records"}.get(strategy, "child records")
    assert records in text
    if strategy.startswith("random"):
        assert "controller" not in text
    if strategy in ("enas", "random"):
        assert re.search(r"ppl +\d+\.\d\d\b", text), "perplexities with two decimals"


@pytest.mark.parametrize("cwd", [".", "notebooks"])
def test_controller_analysis(cwd, ptb_dir, tmp_path, monkeypatch):
    run = make_run("enas", ptb_dir, tmp_path)
    analyze(run, samples=12, batches=1, progress=False)
    outputs, text = execute("controller_analysis.ipynb", run, cwd, tmp_path, monkeypatch)
    assert "12 architectures per group, valid ppl over 1 validation batches" in text
    assert "no --against run in this analysis" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| trained controller |" in markdown and "| tokens that differ (Hamming) |" in markdown
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4, "three figures and the reward curves"


def test_controller_analysis_without_an_analysis(ptb_dir, tmp_path, monkeypatch):
    run = make_run("enas", ptb_dir, tmp_path)
    outputs, text = run_notebook("controller_analysis.ipynb", run, ".", tmp_path, monkeypatch)
    assert f"run `enas analyze {Path('runs/enas')}`" in text and not (run / "analysis").exists()
    assert not any("image/png" in o.get("data", {}) for o in outputs)


def test_inspect_run_on_a_final_training(ptb_dir, tmp_path, monkeypatch):
    import enas
    from enas.train import FinalTraining

    (tmp_path / "notebooks").mkdir()
    cfg = apply_overrides(preset("train", "ptb", "tiny", "enas_rnn"), [f"data_dir={ptb_dir}", "epochs=1",
                                                                        "max_steps=4", "log_every=2",
                                                                        "eval_max_batches=2"])
    run = tmp_path / "runs" / "final"
    assert FinalTraining.start(enas.zoo.get("enas_ptb"), cfg, run, progress=False).run() is not None
    outputs, text = execute("inspect_run.ipynb", run, "notebooks", tmp_path, monkeypatch)
    assert "final training of enas_rnn on ptb" in text and "a final training evaluates no architectures" in text
    assert re.search(r"trained from scratch: valid_ppl +\d+\.\d\d, test_ppl +\d+\.\d\d", text), text
    assert "image/png" in outputs[-1].get("data", {}), "the architecture is drawn"


def test_the_jupyter_we_suggest_is_installed():
    """`jupyter lab`, which the README and `enas analyze` suggest, comes with the dev install (the
    notebooks extra)."""
    import subprocess
    import sys

    from enas.analysis import report

    for where, text in {"README.md": (NOTEBOOKS.parent / "README.md").read_text(),
                        "enas analyze": Path(report.__file__).read_text()}.items():
        assert "jupyter lab notebooks/" in text and "jupyter notebook" not in text, where
    jupyter = Path(sys.executable).parent / "jupyter"
    done = subprocess.run([str(jupyter), "lab", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
