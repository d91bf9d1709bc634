"""It must learn: the shared weights of a search on the real PTB files fall below uniform guessing
and keep falling; so does a final training. (benchmarks/learning_curve.py prints the full curves.)"""
import math

import enas
from enas.config import apply_overrides
from enas.strategies import preset
from enas.strategies.enas import Enas
from enas.train import FinalTraining

UNIFORM = math.log(10000)  # 9.21: the loss of guessing among PTB's 10,000 words


def _falls(curve):
    """Losses of successive log windows: well below uniform at the end, and the last third lower
    than the first (a single noisy window may go up; the trend may not)."""
    losses = [v for _, v in curve]
    third = len(losses) // 3
    assert losses[-1] < UNIFORM - 1.5, losses
    assert sum(losses[-third:]) / third < sum(losses[:third]) / third - 0.3, losses
    return losses


def test_shared_weights_learn_on_ptb(ptb_dir, tmp_path):
    # the tiny search preset with the paper's batch shape, no controller updates: ~15 s
    cfg = apply_overrides(preset("search", "ptb", "tiny"), [
        f"data_dir={ptb_dir}", "epochs=1", "shared_steps=90", "controller.steps=0", "log_every=15"])
    search = Enas.start(cfg, tmp_path / "run", progress=False)
    search.run()
    assert len(_falls(search.engine.shared_losses)) == 6


def test_without_the_decoder_bias_the_paper_lr_does_not_learn_as_fast(ptb_dir, tmp_path):
    """The decoder bias is what the shared weights need at lr 20 (see enas/nn/rnn_lm.py): the same
    run without it ends clearly higher."""
    def final_loss(bias):
        cfg = apply_overrides(preset("search", "ptb", "tiny"), [
            f"data_dir={ptb_dir}", "epochs=1", "shared_steps=150", "controller.steps=0", "log_every=50",
            "shared.lr=20", f"model.decoder_bias={bias}"])
        search = Enas.start(cfg, tmp_path / f"run{bias}", progress=False)
        search.run()
        return search.engine.shared_losses[-1][1]
    assert final_loss(True) < final_loss(False) - 0.5  # measured: 7.1 against 8.9


def test_final_training_of_the_published_cell_learns(ptb_dir, tmp_path):
    cfg = apply_overrides(preset("train", "ptb", "tiny"), [f"data_dir={ptb_dir}", "log_every=10"])
    run = FinalTraining.start(enas.zoo.get("enas_ptb"), cfg, tmp_path / "final", progress=False)
    result = run.run()
    _falls(run.train_losses)
    assert result["test_ppl"] < 1500  # uniform: 10,000


def test_tiny_image_final_training_learns_fashion_mnist(tmp_path):
    """The tiny final recipe is meant to show learning in seconds: 210 steps of 32 images."""
    from conftest import SHARED_DATA

    space = enas.get_space("enas_macro", num_layers=4)
    cfg = apply_overrides(preset("train", "fashion_mnist", "tiny", "enas_macro"),
                          [f"data_dir={SHARED_DATA / 'fashion-mnist'}"])
    run = FinalTraining.start(space.sample(seed=0), cfg, tmp_path / "final", progress=False)
    result = run.run()
    assert result["test_acc"] >= 0.70  # chance: 0.10; measured 0.76
