import pytest

from enas import ConfigError
from enas.config import SearchConfig, apply_overrides, from_dict, preset, to_dict
from enas.optim import lr_at


def test_set_addresses_dotted_fields_and_checks_types():
    cfg = preset("search", "ptb", "paper")
    new = apply_overrides(cfg, ["seed=7", "controller.lr=1e-3", "space_options.num_nodes=8",
                                "model.dropout_x=0.5", "device=cpu"])
    assert (new.seed, new.controller.lr, new.space_options, new.model.dropout_x) == (7, 1e-3, {"num_nodes": 8}, 0.5)
    assert cfg.seed == 0, "the preset itself is left as it was"
    assert from_dict(SearchConfig, to_dict(new)) == new


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
    # paper: lr 20, x0.96 per epoch from epoch 15 (0-based), so epoch 15 runs at 20 * 0.96
    assert lr_at(shared, 0) == 20.0 and lr_at(shared, 14) == 20.0
    assert lr_at(shared, 15) == pytest.approx(20.0 * 0.96)
    assert lr_at(shared, 24) == pytest.approx(20.0 * 0.96 ** 10)
    final = preset("train", "ptb", "paper").optim
    assert lr_at(final, 1999) > final.lr_min and lr_at(final, 20_000) == final.lr_min
