"""A search strategy's registration: one class, declared with `@register`, says everything the rest of
the program asks of a strategy, so nothing outside the registrations asks a strategy its name.

What a registration declares:
- `name` (the CLI's `--strategy`, the run's `strategy`, its config section) and `description`, one
  line for `--help`; `label`, its row in `enas compare`;
- `Section`: its own config dataclass, at `cfg.<name>` (`--set <name>.<key>=...`), with the
  `fixed_keys` a resumed run keeps; `section_preset`: how it fills the section from a space's preset
  (the preset adjustments it owns: full NAS's controller is full NAS's);
- what it needs: `shared_weights` (a supernet; `enas derive` scores on it), `has_controller` (a
  learned policy), `trains_children` (children trained from scratch), `unfit(space, task)`;
- how the commands treat its runs: `derive` (weight sharing), `analyze_groups` (the `enas analyze`
  groups its runs have), `result` (the architecture `enas compare` trains), `summary` (the end of
  `enas search`), `hparams` (the metric columns of its HPARAMS row), `check` (what a new run
  verifies first);
- and the life of a run: `start`, `resume`, `load`, `run`, `finish`.

Two bases implement most of it: `WeightSharingSearch` (the shared-weights engine plus a policy,
weight_sharing.py) and `ChildPoolSearch` (children trained from scratch by an executor, pool.py).
"""
from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

from ..config import SearchPreset, apply_overrides, to_dict, validate, with_section
from ..errors import AlreadyFinished, CheckpointError, ConfigError
from ..hparams import closest_preset
from ..registry import SPACES, STRATEGIES
from ..restore import reading_checkpoint, restore, run_config
from ..rundir import read_archs
from ..runtime import run_header
from ..tasks import check_search_task


class Strategy:
    """The registration contract of a search strategy, and the life of one run of it."""

    name: ClassVar[str]
    description: ClassVar[str]                      # one line: what the strategy does and whose it is
    label: ClassVar[str] = ""                       # its row in `enas compare` (default: name)
    Section: ClassVar[type | None] = None           # its own config dataclass, at cfg.<name>
    config_class: ClassVar[type]                    # SearchConfig plus Section (set by @register)
    shared_weights: ClassVar[bool] = False          # trains a supernet whose weights score architectures
    has_controller: ClassVar[bool] = False          # learns a policy over architectures
    trains_children: ClassVar[bool] = False         # trains children from scratch
    analyze_groups: ClassVar[tuple[str, ...]] = ()  # the `enas analyze` groups its runs have
    length_key: ClassVar[str] = "epochs"            # the config key that says how long a run is

    # --- the config ----------------------------------------------------------------------------
    @classmethod
    def section_preset(cls, recipe: SearchPreset, task: str) -> Any:
        """The strategy's section under a space's preset `recipe` on `task` (default: the section's own
        defaults)."""
        return cls.Section() if cls.Section is not None else None

    @classmethod
    def configure(cls, recipe: SearchPreset, task: str):
        """The strategy's config from a space's search preset: the fields every search has as the preset
        gives them, and the strategy's section (`section_preset`)."""
        common = {f.name: getattr(recipe, f.name) for f in fields(cls.config_class)
                  if f.name not in ("strategy", cls.name)}
        section = {cls.name: cls.section_preset(recipe, task)} if cls.Section is not None else {}
        return cls.config_class(**common, **section)

    @classmethod
    def unbounded(cls, cfg, n: int):
        """`cfg` with the search's own end (`length_key`: epochs, updates or children) moved out of reach
        at n, so that only a deadline ends it (`enas compare`)."""
        return apply_overrides(cfg, [f"{cls.length_key}={n}"])

    @classmethod
    def unfit(cls, space: type, task: str) -> str | None:
        """Why the strategy cannot search `space` (a registered space class) on `task`; None when it can."""
        return None

    @classmethod
    def check(cls, cfg) -> None:
        """What a run needs before it writes anything (default: a valid config and what the task asks of
        a search); checked by `enas search` before a new run and on every load."""
        _check_config(cfg)

    # --- a run ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, cfg, run_dir: str | Path, progress: bool = True) -> "Strategy":
        """A new search; writes RUN/config.json."""
        _check_config(cfg)
        search = cls(cfg, run_dir, progress)
        search.logger.write_json("config.json", run_header(to_dict(cfg)))
        return search

    @classmethod
    def done(cls, cfg, state: dict) -> bool:
        """Whether a run with this config and checkpoint state has nothing left to do."""
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir: str | Path, overrides=(), progress: bool = True, restored=None) -> "Strategy":
        """The search as RUN/checkpoints/last.pt left it: the config of RUN/config.json with `overrides`
        (the command line: device and any --set) on top, the state of the checkpoint (enas/restore.py)."""
        cfg, state = restored or restore(cls.config_class, run_dir, overrides)
        cls.check(cfg)
        search = cls(cfg, run_dir, progress)
        with reading_checkpoint(Path(run_dir) / "checkpoints" / "last.pt"):
            search.load_state_dict(state)
        return search

    @classmethod
    def resume(cls, run_dir: str | Path, overrides=(), progress: bool = True) -> "Strategy":
        """Continue an interrupted search with the config of RUN/config.json (the command line on top)
        and the state of its checkpoint; what was logged after the checkpoint is dropped, and
        config.json records the config it continues with."""
        records = read_archs(run_dir)  # refuses an altered archs.jsonl before anything is rewritten
        cfg, state = restored = restore(cls.config_class, run_dir, overrides)
        search = cls.load(run_dir, overrides, progress, restored)  # checks the checkpoint whole; writes nothing
        if cls.done(cfg, state):
            after = f"enas derive {run_dir}" if cls.shared_weights else next_train(Path(run_dir), cfg)
            raise AlreadyFinished(f"{run_dir} is a finished {cls.name} search: nothing to resume (to search "
                                  f"longer, resume with a larger --set {cls.length_key}=...)\n  next: {after}")
        search.continue_from(records)
        search.logger.write_json("config.json", run_header(to_dict(search.cfg)))
        return search

    def __init__(self, cfg, run_dir: str | Path, progress: bool = True):
        raise NotImplementedError

    def run(self, max_units: int | None = None, deadline: float | None = None) -> bool:
        """Run to the end; True when finished, False when stopped (Ctrl-C or SIGTERM, `max_units` units
        of work, or the time.monotonic() `deadline` of a budgeted comparison) with the checkpoint saved."""
        raise NotImplementedError

    def finish(self) -> None:
        """After a finished run: what the run directory gets once (its HPARAMS row, with `hparams`)."""

    def hparams(self) -> dict:
        """The metric columns of the run's row in TensorBoard's HPARAMS tab ({"hparams/...": value})."""
        return {}

    @property
    def is_main(self) -> bool:
        """Whether this process reports the run (under torchrun, rank 0 only)."""
        return True

    def close(self) -> None:
        """The end of this process's part in the run (a torchrun process group is left)."""

    def describe_placement(self) -> str:
        """Where the run's work runs beyond its device, for the line `enas search` starts with."""
        return ""

    def continue_from(self, records: list[dict]) -> None:
        """On resume, after the checkpoint is loaded: drop what was logged after it (`records`: archs.jsonl)."""

    def result(self) -> dict | None:
        """The architecture a finished run yields, as arch.json holds it (what `enas compare` trains);
        None when stopped while deriving it."""
        raise NotImplementedError

    def summary(self, run: Path, seconds: float) -> tuple[list[str], dict]:
        """The end of `enas search`: a few lines, and the same as data for --json."""
        raise NotImplementedError


def next_train(run: Path, cfg) -> str:
    """The final training that follows a search, as a command line (the train preset closest to the
    search's)."""
    data = ["--data-dir", cfg.data_dir] if cfg.data_dir else []
    return shlex.join(["enas", "train", "--arch", str(run / "arch.json"), *data, "--logdir", f"{run}-final",
                       "--preset", closest_preset(cfg)])


def _check_config(cfg) -> None:
    """A valid config whose strategy can search its space and task (a preset checks the same; a config
    read back or changed by --set is checked here)."""
    validate(cfg)
    reason = STRATEGIES.get(cfg.strategy).unfit(SPACES.get(cfg.space), cfg.task)
    if reason is not None:
        raise ConfigError(f"{cfg.strategy} cannot search {cfg.space} on {cfg.task}: {reason}")
    check_search_task(cfg)


def register(cls: type[Strategy]) -> type[Strategy]:
    """The class decorator of a strategy: builds its config class and registers it under its name."""
    cls.config_class = with_section(cls.name, cls.Section)
    cls.label = cls.label or cls.name
    return STRATEGIES.register(cls)


def get_strategy(name: str) -> type[Strategy]:
    return STRATEGIES.get(name)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def strategy_of(run_dir: str | Path, command: str = "this command") -> type[Strategy]:
    """The strategy that wrote the search run in run_dir (RUN/config.json names it); `command` is who asks,
    for the error that a directory of another kind gets."""
    config = run_config(run_dir)
    if "strategy" not in config:
        what = "a final training (`enas train`)" if "optim" in config else "not a search run"
        raise CheckpointError(f"{run_dir} is {what}; {command} needs a search run, the --logdir of `enas search`")
    return get_strategy(config["strategy"])
