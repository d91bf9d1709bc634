"""A run read back from its directory: the config it records, and the config and checkpoint state it
resumes (or derives, or is analysed) with.

A run directory may come from someone else, so what decides where code runs and what starts
(RUNTIME_KEYS) comes from the command line on every start, never from the directory; and what the saved
state is made of (the config class's `fixed_keys`: shapes, the space, what the cursor counts) cannot
change when a run resumes.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from . import checkpoint as ckpt
from .config import apply_overrides, from_dict, to_dict
from .errors import CheckpointError, ConfigError, EnasError
from .rundir import read_json

RUNTIME_KEYS = ("device", "executor", "workers", "ray_address")


def run_config(run_dir) -> dict:
    """The config a run directory records (RUN/config.json, "config"), as a dict."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise CheckpointError(f"{run_dir} holds no run (no config.json)")
    header = read_json(path, "the run's config")
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict):
        raise CheckpointError(f"{path} holds no config (a JSON object with a \"config\" object); restore it from "
                              f"a copy or start the run over with --overwrite")
    return header["config"]


def restore(config_class: type, run_dir, overrides=()) -> tuple[Any, dict]:
    """(config, checkpoint state) of a run to resume or derive from.

    The config is RUN/config.json's with RUNTIME_KEYS reset to their defaults, then `overrides` (the
    command line) on top; the checkpoint contributes only state. A checkpoint that disagrees with
    config.json on what its state is made of (`config_class.fixed_keys`), and an override that would
    change one of those, are refused with one line.
    """
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / "last.pt"
    state = ckpt.load_checkpoint(path)
    recorded = run_config(run_dir)
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"checkpoint {path} holds no config (a dict); it is damaged or not a checkpoint "
                              f"of this program")
    fixed = config_class.fixed_keys
    differ = _differences(saved, recorded, fixed)
    if differ:
        raise CheckpointError(f"checkpoint {path} does not belong to {run_dir / 'config.json'}: they differ in "
                              f"{', '.join(differ)}; restore the run's own config.json, or start over with "
                              f"--overwrite")
    try:
        cfg = from_dict(config_class, recorded)
    except (TypeError, AttributeError):
        raise CheckpointError(f"{run_dir / 'config.json'} is not a {config_class.__name__} (a section is not "
                              f"an object); restore it from a copy") from None
    except ConfigError as e:  # a key this version does not have: another version's run, or an edited file
        raise CheckpointError(f"{run_dir / 'config.json'} does not fit this version of enas ({e}); continue it "
                              f"with the version that wrote it, or start the run over with --overwrite") from None
    defaults = config_class()
    for key in RUNTIME_KEYS:
        if hasattr(cfg, key):
            setattr(cfg, key, getattr(defaults, key))
    cfg = apply_overrides(cfg, list(overrides))
    changed = _differences(to_dict(cfg), recorded, fixed)
    if changed:
        key = changed[0]
        raise ConfigError(f"{key} cannot change when a run resumes (the run has {_get(recorded, key)!r}, "
                          f"--set gives {_get(to_dict(cfg), key)!r}): its saved state is made for it; start a "
                          f"new run (another --logdir, or --overwrite) to change it")
    return cfg, state


def _get(values: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        values = values.get(name) if isinstance(values, dict) else None
    return values


def _differences(a: dict, b: dict, fixed: tuple[str, ...]) -> list[str]:
    """The dotted names under `fixed` whose values differ between two config dicts, leaf by leaf."""
    def leaves(x: Any, y: Any, key: str) -> list[str]:
        if isinstance(x, dict) and isinstance(y, dict):
            return [k for name in sorted(set(x) | set(y), key=str) for k in leaves(x.get(name), y.get(name),
                                                                                   f"{key}.{name}")]
        return [] if _as_json(x) == _as_json(y) else [key]
    return [k for key in fixed for k in leaves(_get(a, key), _get(b, key), key)]


def _as_json(x: Any) -> Any:
    """x as config.json gives it back: tuples (a checkpoint's space options) become lists."""
    return [_as_json(v) for v in x] if isinstance(x, (list, tuple)) else x


@contextmanager
def reading_checkpoint(path) -> Iterator[None]:
    """Turn what a checkpoint lacking an entry, or holding one that does not fit, raises while its state
    is loaded into one CheckpointError line."""
    try:
        yield
    except EnasError:
        raise
    except KeyError as e:
        raise CheckpointError(f"checkpoint {path} lacks the entry {e.args[0]!r}; it is damaged or not a "
                              f"checkpoint of this kind of run") from None
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {path} does not fit this run ({first}); it is damaged or not a "
                              f"checkpoint of this kind of run") from None
