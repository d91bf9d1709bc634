"""PNAS: the cell space (canonical form, the released PNASNet-5), the surrogate, and the progressive
search on the child pool (levels, correlations, exact resume after kills)."""
from __future__ import annotations

import json
import random
import signal

import pytest
import torch
from scipy import stats

import enas
from conftest import SHARED_DATA
from enas import zoo
from enas.cli import main
from enas.nn.surrogate import Ensemble, Predictor, encode
from enas.spaces import get_space
from enas.train import count_parameters
from test_faults import _kill_at_random

FASHION = SHARED_DATA / "fashion-mnist"


def _rows(run) -> list[dict]:
    return [json.loads(line) for line in (run / "archs.jsonl").read_text().splitlines()]


def _search(run, *args) -> list[str]:
    return ["search", "--space", "pnas", "--strategy", "pnas", "--task", "fashion_mnist", "--data-dir", str(FASHION),
            "--preset", "tiny", "--logdir", str(run), "--device", "cpu", "--quiet", *args]


# --- the space ---------------------------------------------------------------------------------------
def test_one_block_cells_are_the_136_unordered_pairs_of_the_256_ordered_ones():
    space = get_space("pnas")
    ordered = {(i1, o1, i2, o2) for i1 in range(2) for o1 in range(8) for i2 in range(2) for o2 in range(8)}
    assert len(ordered) == 256
    assert {space.canonical(c) for c in ordered} == {a.tokens for a in space.one_block_cells()}
    assert len(space.one_block_cells()) == 136 == 16 * 17 // 2


def test_expansions_add_every_distinct_block_once():
    space = get_space("pnas")
    cell = space.one_block_cells()[5]
    grown = space.expansions(cell)
    n = 8 * 3  # (input, op) pairs of block 1: inputs c_{k-2}, c_{k-1}, block 0
    assert len(grown) == len({a.tokens for a in grown}) == n * (n + 1) // 2
    assert all(a.tokens[:4] == cell.tokens and a.space.blocks == 2 for a in grown)
    assert all(space.canonical(a.tokens) == a.tokens for a in grown)


def test_pnasnet5_on_cifar10_has_the_papers_parameter_count():
    arch = zoo.get("pnasnet5")
    cfg = enas.presets.preset("train", "cifar10", "paper", "pnas")
    assert (cfg.model.channels, cfg.model.num_layers) == (48, 9)  # F = 48, N = 3 (Table 1)
    net = enas.build_child(arch.space, arch, in_channels=3, num_classes=10, image_size=32, channels=48,
                           num_layers=9, aux_head=True, style="final")
    assert round(count_parameters(net, without_aux=True) / 1e6, 1) == 3.2  # Table 1: 3.2M


def test_the_new_ops_keep_shapes_and_reduce_at_stride_2():
    from enas.nn.darts_cnn import darts_op

    x = torch.randn(2, 8, 9, 9)
    for name in ("conv_7x1_1x7", "identity", "sep_conv_7x7", "dil_conv_3x3"):
        assert darts_op(name, 8, 1, True, False, False)(x).shape == x.shape
        assert darts_op(name, 8, 2, True, False, False)(x).shape == (2, 8, 5, 5)


# --- the surrogate -------------------------------------------------------------------------------------
OP_VALUE = [0.9, 0.8, 0.7, 0.5, 0.1, 0.2, 0.3, 0.6]


def _synthetic(n: int, rng: random.Random) -> tuple[list[tuple[int, ...]], list[float]]:
    """Cells of 1-3 blocks whose 'accuracy' is the mean value of their ops."""
    cells = []
    for _ in range(n):
        b = rng.randint(1, 3)
        cells.append(tuple(t for j in range(b) for t in (rng.randrange(2 + j), rng.randrange(8),
                                                         rng.randrange(2 + j), rng.randrange(8))))
    return cells, [0.3 + 0.4 * sum(OP_VALUE[o] for o in c[1::2]) / len(c[1::2]) for c in cells]


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_the_ensemble_ranks_held_out_cells(kind):
    torch.set_num_threads(1)
    cells, acc = _synthetic(400, random.Random(0))
    ensemble = Ensemble(kind, num_inputs=4, num_ops=8, seed=0).fit(cells[:200], acc[:200])
    assert len(ensemble.models) == 5
    rho = stats.spearmanr(ensemble.predict(cells[200:]).numpy(), acc[200:]).statistic
    assert rho >= 0.9, rho


def test_the_lstm_reads_cells_of_different_sizes_in_one_batch():
    torch.manual_seed(0)
    model = Predictor("lstm", 4, 8).eval()
    cells = [(0, 1, 1, 2), (0, 1, 1, 2, 2, 3, 0, 4), (1, 7, 0, 0, 2, 5, 1, 1, 3, 2, 0, 6)]
    together = model(*encode(cells))
    alone = torch.cat([model(*encode([c])) for c in cells])
    assert torch.allclose(together, alone, atol=1e-6)
    assert together[0] != together[1], "the padding of a short cell is not read as blocks"


# --- the search -------------------------------------------------------------------------------------
def test_a_tiny_search_grows_cells_and_measures_its_surrogate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_search(run, "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = _rows(run)
    assert [r["level"] for r in rows] == [1] * 6 + [2] * 3  # 6 one-block cells, then a beam of 3
    assert all(len(r["arch"].split()) == 4 * r["level"] for r in rows)
    assert all(r["predicted"] is None for r in rows[:6]) and all(0 < r["predicted"] < 1 for r in rows[6:])
    assert all(r["seconds"] > 0 and 0 < r["metric"] <= 1 for r in rows)
    parents = {r["arch"] for r in rows[:6]}
    assert all(" ".join(r["arch"].split()[:4]) in parents for r in rows[6:]), "level 2 grows level 1's cells"
    levels = summary["levels"]
    assert [lv["level"] for lv in levels] == [1, 2] and levels[0]["spearman"] is None
    assert -1 <= levels[1]["spearman"] <= 1 and -1 <= levels[1]["kendall"] <= 1
    best = json.loads((run / "arch.json").read_text())
    assert best["options"] == {"num_blocks": 2}, "the best cell of the deepest level"
    assert best["arch"] == max(rows[6:], key=lambda r: r["reward"])["arch"]


def test_the_random_control_trains_uniform_cells_of_each_level(tmp_path):
    run = tmp_path / "run"
    assert main(_search(run, "--set", "pnas.random_control=true")) == 0
    rows = _rows(run)
    assert [r["level"] for r in rows] == [1] * 6 + [2] * 3
    parents = {r["arch"] for r in rows[:6]}
    assert not all(" ".join(r["arch"].split()[:4]) in parents for r in rows[6:])
    assert all(r["predicted"] is not None for r in rows[6:]), "the surrogate's correlation is measured on them"


def test_pnas_killed_at_random_moments_resumes_to_the_uninterrupted_result(tmp_path):
    rng = random.Random(20261203)
    run = tmp_path / "killed"
    statuses = _kill_at_random(_search(run), run, [rng.uniform(0.05, 0.8), rng.uniform(0.05, 0.8)])
    assert statuses[0] == -signal.SIGKILL, "the first kill came mid-run"
    strip = lambda rows: [(r["child"], r["level"], r["arch"], r["predicted"], r["reward"]) for r in
                          sorted(rows, key=lambda r: r["child"])]
    killed = _rows(run)
    assert len({r["child"] for r in killed}) == len(killed) == 9, "every child recorded once"
    assert strip(killed) == strip(_rows(tmp_path / "killed-whole"))
    assert (run / "arch.json").read_text() == (tmp_path / "killed-whole" / "arch.json").read_text()


def test_pnas_refuses_another_space(tmp_path, capsys):
    args = ["search", "--space", "darts_cnn", "--strategy", "pnas", "--task", "fashion_mnist", "--data-dir",
            str(FASHION), "--preset", "tiny", "--logdir", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "pnas space" in err[0]
    assert not (tmp_path / "run").exists()


def test_enas_train_prints_pnasnet5s_parameter_count_on_cifar10(tmp_path, monkeypatch, capsys):
    from enas.tasks import images
    from test_image_data import write_cifar_fixture

    md5 = write_cifar_fixture(tmp_path / "cifar")
    monkeypatch.setattr(images.load_cifar10, "__defaults__",
                        tuple(md5 if isinstance(d, dict) else d for d in images.load_cifar10.__defaults__))
    assert main(["train", "--arch", "pnasnet5", "--task", "cifar10", "--data-dir", str(tmp_path / "cifar"),
                 "--preset", "paper", "--logdir", str(tmp_path / "final"), "--device", "cpu", "--set", "epochs=1",
                 "--set", "max_steps=1", "--set", "eval_max_batches=1", "--set", "batch_size=8"]) == 0
    assert "(3,176,602 without the auxiliary head)" in capsys.readouterr().err


def test_compare_runs_pnas_against_full_nas_and_random_search(tmp_path):
    root = tmp_path / "cmp"
    assert main(["compare", "--space", "pnas", "--task", "fashion_mnist", "--strategies", "pnas,nas,random_scratch",
                 "--data-dir", str(FASHION), "--budget", "4", "--seeds", "1", "--logdir", str(root), "--quiet",
                 "--device", "cpu", "--set", "child_max_steps=3", "--set", "eval_max_batches=1",
                 "--train-set", "max_steps=3", "--train-set", "eval_max_batches=1"]) == 0
    rows = json.loads((root / "comparison.json").read_text())
    assert [r["strategy"] for r in rows] == ["pnas", "nas", "random (from scratch)"]
    assert all(len(r["arch"].split()) % 4 == 0 for r in rows)
