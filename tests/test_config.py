import pytest

from enas import ConfigError
from enas.config import apply_overrides, from_dict, to_dict
from enas.optim import lr_at
from enas.presets import PRESETS
from enas.strategies import preset


def test_set_addresses_dotted_fields_and_checks_types():
    cfg = preset("search", "ptb", "paper")
    new = apply_overrides(cfg, ["seed=7", "controller.lr=1e-3", "space_options.num_nodes=8",
                                "model.dropout_x=0.5", "device=cpu"])
    assert (new.seed, new.enas.controller.lr, new.space_options, new.model.dropout_x) == (7, 1e-3, {"num_nodes": 8},
                                                                                         0.5)
    assert apply_overrides(cfg, ["enas.controller.lr=1e-3"]) == apply_overrides(cfg, ["controller.lr=1e-3"])
    assert cfg.seed == 0, "the preset itself is left as it was"
    assert from_dict(type(new), to_dict(new)) == new
    # a space option reads true / false as written in config.json and in the space's own errors
    flags = apply_overrides(preset("search", "fashion_mnist", "tiny", "nas_cnn"),
                            ["space_options.predict_stride=false"])
    assert flags.space_options["predict_stride"] is False


@pytest.mark.parametrize("pair, message", [
    ("nope=1", "unknown config key 'nope'"),
    ("controller.lrr=2", "unknown config key 'controller.lrr'"),
    ("seed=abc", "seed expects int"),
    ("controller.lr=fast", "controller.lr expects float"),
    ("model.dropout_x=1.5", "drop rate"),
    ("epochs=0", "epochs must be >= 1"),
    ("shared.lr=-1", "must be >= 0"),
    ("model=3", "is a section"),
    ("seed", "expects key=value"),
])
def test_bad_overrides(pair, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(preset("search", "ptb", "tiny"), [pair])


def test_unknown_preset_and_task():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("search", "ptb", "huge")
    with pytest.raises(ConfigError, match="unknown task"):
        preset("search", "imagenet", "paper")


def test_paper_lr_schedule():
    shared = preset("search", "ptb", "paper").shared
    # official lr 0.25 on a loss summed over 35 steps = 8.75 per token; paper: x0.96 per epoch from
    # epoch 15 (0-based), so epoch 15 runs at 8.75 * 0.96
    assert lr_at(shared, 0) == 8.75 and lr_at(shared, 14) == 8.75
    assert lr_at(shared, 15) == pytest.approx(8.75 * 0.96)
    assert lr_at(shared, 24) == pytest.approx(8.75 * 0.96 ** 10)
    final = preset("train", "ptb", "paper").optim
    assert lr_at(final, 1999) > final.lr_min and lr_at(final, 20_000) == final.lr_min


def test_presets_come_from_the_space_registrations():
    with pytest.raises(ConfigError, match="no presets for enas_macro on ptb; spaces with presets: .*enas_rnn"):
        preset("search", "ptb", "paper", "enas_macro")
    with pytest.raises(ConfigError, match="unknown preset 'huge' for enas_micro on cifar10; known: paper, small, tiny"):
        preset("train", "cifar10", "huge", "enas_micro")
    # the image recipes serve both image tasks; the task is the one asked for
    for task in ("cifar10", "fashion_mnist"):
        cfg = preset("search", task, "tiny", "enas_micro")
        assert (cfg.task, cfg.space, cfg.section.controller.op_bias) == (task, "enas_micro", True)
    assert preset("search", "fashion_mnist", "tiny", "enas_macro").section.controller.skip_weight == 0.8
    assert ("search", "ptb", "enas_rnn", "paper") in PRESETS and ("search", "ptb", "enas_macro", "paper") not in PRESETS


def test_full_nas_controller_lr_is_the_tasks():
    # Zoph & Le 2017: Adam lr 5e-4 on Penn Treebank, 6e-4 on CIFAR-10
    assert preset("search", "ptb", "tiny", strategy="nas").section.controller.lr == 5e-4
    assert preset("search", "cifar10", "tiny", "enas_macro", strategy="nas").section.controller.lr == 6e-4
    assert preset("search", "cifar10", "tiny", "enas_macro").section.controller.lr == 0.0035  # enas keeps its own
