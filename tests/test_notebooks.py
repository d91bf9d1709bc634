"""The notebooks run headless, top to bottom, on a real (tiny) run directory."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from enas.strategies.derive import derive
from enas.strategies.enas import EnasSearch

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tiny_search_cfg, tmp_path, monkeypatch):
    run = tmp_path / "run"
    EnasSearch.start(tiny_search_cfg, run, progress=False).run()
    derive(run, progress=False)
    monkeypatch.setenv("ENAS_RUN", str(run))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "controller rewards" in outputs and "best of" in outputs
