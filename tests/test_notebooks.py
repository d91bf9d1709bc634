"""The notebooks run headless, top to bottom, on real (tiny) runs of every strategy, from the
repository root and from notebooks/ (where Jupyter starts), with the run given as a relative path."""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from enas.config import apply_overrides
from enas.strategies import start_search
from enas.strategies.derive import derive

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHILDREN = ["nas_updates=1", "controller.num_aggregate=2", "child_max_steps=2", "eval_max_batches=1"]
STRATEGIES = {  # name -> (overrides of the tiny search, what inspect_run.ipynb says of its result)
    "enas": (["strategy=enas"], "sampled from the controller"),
    "random-shared": (["strategy=random"], "drawn uniformly at random"),
    "nas": (["strategy=nas", *CHILDREN], "sampled by the controller"),
    "random-scratch": (["strategy=random", "weight_sharing=false", *CHILDREN], "(random) trained from scratch"),
}
CASES = [("enas", "."), ("enas", "notebooks"), ("random-shared", "notebooks"), ("nas", "."),
         ("random-scratch", "notebooks")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
@pytest.mark.parametrize("strategy,cwd", CASES, ids=[f"{s}-from-{c}" for s, c in CASES])
def test_notebook_runs(path, strategy, cwd, tiny_search_cfg, tmp_path, monkeypatch):
    overrides, result = STRATEGIES[strategy]
    (tmp_path / "notebooks").mkdir()  # laid out like the repository: notebooks/ beside runs/
    run = tmp_path / "runs" / strategy
    search = start_search(apply_overrides(tiny_search_cfg, overrides), run, progress=False)
    assert search.run() is True
    if hasattr(search, "supernet"):
        derive(run, progress=False)
    else:
        search.finish()
    monkeypatch.setenv("ENAS_RUN", f"runs/{strategy}")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path / cwd)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs), "figures are shown"
    if path.name == "inspect_run.ipynb":
        assert result in text and "highest rewards" in text
        assert "image/png" in outputs[-1].get("data", {}), "the result's cell is drawn"
        records = "controller records" if strategy == "enas" else "derive records" if "shared" in strategy else \
            "child records"
        assert records in text
        if strategy.startswith("random"):
            assert "controller" not in text
        if strategy in ("enas", "random-shared"):
            assert re.search(r"ppl +\d+\.\d\d\b", text), "perplexities with two decimals"
