"""Rewards of many ENAS recurrent cells in one forward (enas/nn/rnn_batched.py, PTBTask.score_many)
equal the rewards scored one architecture at a time."""
import json
import math
import random

import pytest
import torch

import enas
from enas.errors import ArchError
from enas.nn.rnn_batched import mean_cross_entropy
from enas.nn.rnn_lm import edge_index
from enas.strategies import derive
from enas.strategies.enas import Enas
from enas.tasks.ptb import PTBTask

H, T, B = 8, 7, 3
SPACES = [dict(num_nodes=7), dict(num_nodes=8, output="all"), dict(num_nodes=6, first_act="tanh"),
          dict(num_nodes=6, first_act="tanh", output="all")]
CLIP = 0.3  # clips the output rows of many of these cells, not all (checked below)


@pytest.fixture(scope="module")
def task(ptb_dir):
    return PTBTask(str(ptb_dir), torch.device("cpu"), batch_size=B, bptt=T, eval_batch_size=B)


def _model(task, space, dtype, max_hidden_norm=None):
    torch.manual_seed(0)
    # init_range 0.5: large weights, so that activations saturate differently and clipping bites
    return enas.build_supernet(space, vocab_size=task.vocab_size, hidden_size=H, init_range=0.5,
                               max_hidden_norm=max_hidden_norm, dropout_x=0.3, dropout_h=0.3).to(dtype)


def _tokens(space, n=9, seed=0):
    rng = random.Random(seed)
    return torch.tensor([space.sample(rng=rng).tokens for _ in range(n)], dtype=torch.long).reshape(n, -1)


def _one_by_one(task, model, tokens, batch):
    return torch.stack([task.score(model, t, batch) for t in tokens])


def _rel_err(a, b):
    return ((a - b).abs() / b.abs()).max().item()


@pytest.mark.parametrize("clip", [None, CLIP], ids=["no_clip", "clip"])
@pytest.mark.parametrize("options", SPACES, ids=str)
def test_score_many_equals_one_by_one_in_float64(task, options, clip):
    space = enas.get_space("enas_rnn", **options)
    model = _model(task, space, torch.float64, clip)  # left in training mode: scores are eval mode
    tokens, batch = _tokens(space), task.first_reward_batch()
    many = task.score_many(model, tokens, batch)
    assert many.shape == (len(tokens),) and many.dtype == torch.float64
    assert _rel_err(many, _one_by_one(task, model, tokens, batch)) < 1e-10
    assert model.training
    assert len(set(many.tolist())) == len(set(map(tuple, tokens.tolist())))  # every cell scored apart
    if clip is not None:  # the clip is exercised: without it the same weights score otherwise
        model.max_hidden_norm = None
        assert _rel_err(task.score_many(model, tokens, batch), many) > 1e-6


def test_score_many_equals_one_by_one_in_float32(task):
    space = enas.get_space("enas_rnn", num_nodes=8)
    model = _model(task, space, torch.float32, CLIP)
    tokens, batch = _tokens(space, n=10), task.next_reward_batch()
    many = task.score_many(model, tokens, batch)
    assert many.dtype == torch.float32
    assert _rel_err(many, _one_by_one(task, model, tokens, batch)) < 1e-5


def test_decoder_chunks_do_not_change_the_scores(task, monkeypatch):
    from enas.nn import rnn_batched
    space = enas.get_space("enas_rnn", num_nodes=7)
    model = _model(task, space, torch.float64)
    tokens, batch = _tokens(space, n=4), task.first_reward_batch()
    whole = task.score_many(model, tokens, batch)
    # a chunk of 5 rows: chunks straddle the boundaries between cells (T*B = 21 rows per cell)
    monkeypatch.setattr(rnn_batched, "CPU_DECODER_CHUNK_ELEMENTS", 5 * task.vocab_size)
    assert _rel_err(task.score_many(model, tokens, batch), whole) < 1e-12


def test_pending_weight_decay_is_applied_before_batched_scoring(task):
    """Rows of w_edges that owe lazy weight decay: the batched path sees the true weights, as a
    single forward does (through the decay ledger)."""
    space = enas.get_space("enas_rnn", num_nodes=7)
    model = _model(task, space, torch.float64)
    model.use_row_sparse_gradients(True)
    ledger = model.w_edges_decay
    ledger.log_scale.fill_(-0.4)
    ledger.mark.copy_(torch.linspace(0.0, -0.4, model.num_edges, dtype=torch.float64))  # factors 0.67 .. 1
    ledger.pending = True
    tokens, batch = _tokens(space), task.first_reward_batch()
    single = _one_by_one(task, model, tokens, batch)  # first: reads through the ledger
    assert _rel_err(task.score_many(model, tokens, batch), single) < 1e-10


def test_a_diverged_cell_is_inf_and_leaves_the_others_alone(task):
    space = enas.get_space("enas_rnn", num_nodes=6)
    model = _model(task, space, torch.float64)
    tokens, batch = _tokens(space, n=12), task.first_reward_batch()
    prev, _ = zip(*(space.cell(t) for t in tokens.tolist()))
    with torch.no_grad():
        model.w_edges[edge_index(0, 1)].fill_(math.nan)  # node 1 of every cell reads node 0
        model.w_edges[edge_index(1, 2)].fill_(math.nan)  # read by the cells whose node 2 reads node 1
    many = task.score_many(model, tokens, batch)
    single = _one_by_one(task, model, tokens, batch)
    assert torch.isinf(many).all() and torch.isinf(single).all()
    with torch.no_grad():
        model.w_edges[edge_index(0, 1)].fill_(0.1)
    many, single = task.score_many(model, tokens, batch), _one_by_one(task, model, tokens, batch)
    diverged = torch.tensor([p[2] == 1 for p in prev])
    assert diverged.any() and (~diverged).any()
    assert torch.isinf(many[diverged]).all() and torch.isfinite(many[~diverged]).all()
    assert torch.equal(torch.isinf(single), diverged)
    assert _rel_err(many[~diverged], single[~diverged]) < 1e-10


def test_other_models_are_scored_one_by_one(task):
    space = enas.get_space("nas_rnn", base=2)
    torch.manual_seed(0)
    model = enas.build_supernet(space, vocab_size=task.vocab_size, hidden_size=H).double()
    tokens, batch = _tokens(space, n=3), task.first_reward_batch()
    assert torch.equal(task.score_many(model, tokens, batch), _one_by_one(task, model, tokens, batch))


def test_bad_tokens_are_an_arch_error(task):
    space = enas.get_space("enas_rnn", num_nodes=6)
    model = _model(task, space, torch.float64)
    x, y = task.first_reward_batch()
    with pytest.raises(ArchError, match=r"\[n, 11\], got shape \(11,\)"):
        mean_cross_entropy(model, torch.zeros(space.num_tokens, dtype=torch.long), x, y)
    with pytest.raises(ArchError):
        mean_cross_entropy(model, torch.zeros(2, space.num_tokens + 1, dtype=torch.long), x, y)


def test_search_rewards_equal_rewards_scored_one_by_one(tiny_search_cfg, tmp_path, monkeypatch):
    """The tiny search (with weight decay, so rows of w_edges carry pending decay when the controller
    scores) writes the same architectures and, to float32 precision, the same metrics to archs.jsonl
    whether its rewards are scored in one forward or one architecture at a time."""
    from enas.config import apply_overrides
    cfg = apply_overrides(tiny_search_cfg, ["shared.weight_decay=1e-3"])

    def records(run):
        Enas.start(cfg, run, progress=False).run()
        derive(run, progress=False)
        return [json.loads(line) for line in (run / "archs.jsonl").read_text().splitlines()]

    batched = records(tmp_path / "batched")
    monkeypatch.setattr(PTBTask, "score_many", _one_by_one)  # (self, model, tokens, batch): the old loop
    single = records(tmp_path / "single")
    assert [r["phase"] for r in batched].count("controller") == \
        cfg.epochs * cfg.section.controller.steps * cfg.section.controller.num_aggregate
    assert [r["phase"] for r in batched].count("derive") == cfg.derive_samples
    assert [(r["phase"], r["arch"]) for r in batched] == [(r["phase"], r["arch"]) for r in single]
    for a, b in zip(batched, single):
        assert a["metric"] == pytest.approx(b["metric"], rel=1e-5)
