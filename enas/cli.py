"""The `enas` command: search, derive, train, spaces.

Every user error ends as one line `error: ...` on stderr with exit status 2; Ctrl-C saves a
checkpoint and exits 130 (continue with --resume).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ArchError, CheckpointError, ConfigError, EnasError

EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors follow the one-line rule too
        raise ConfigError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="enas", description="Neural architecture search by weight sharing (ENAS).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search a space on a task; writes a run directory")
    s.add_argument("--space", default="enas_rnn")
    s.add_argument("--task", default="ptb")
    s.add_argument("--data-dir", default="")
    s.add_argument("--logdir", required=True, help="the run directory")
    s.add_argument("--strategy", default="enas", choices=["enas"])
    s.add_argument("--preset", default="paper")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set a config field by its dotted name, e.g. controller.lr=3.5e-4")
    s.add_argument("--resume", action="store_true", help="continue the run in --logdir")
    s.add_argument("--quiet", action="store_true", help="no progress bars")

    d = sub.add_parser("derive", help="best of N sampled architectures on the shared weights -> RUN/arch.json")
    d.add_argument("run", help="a search run directory")
    d.add_argument("--samples", type=int, default=None, help="default: the run's derive_samples (100 in paper)")
    d.add_argument("--quiet", action="store_true")

    t = sub.add_parser("train", help="train an architecture from scratch; reports valid and test metric")
    t.add_argument("--space", default=None, help="needed with an arc string")
    t.add_argument("--task", default="ptb")
    t.add_argument("--arch", default=None, help="RUN/arch.json, an arc string, or a zoo name (enas.zoo)")
    t.add_argument("--data-dir", default="")
    t.add_argument("--logdir", required=True)
    t.add_argument("--preset", default="paper")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    t.add_argument("--resume", action="store_true")
    t.add_argument("--quiet", action="store_true")

    sub.add_parser("spaces", help="the registered search spaces, their decisions and sizes")
    return p


def read_arch(text: str, space_name: str | None):
    """An Arch from a path to arch.json, a zoo name or an arc string (then --space is needed)."""
    from . import zoo
    from .arch import Arch
    from .spaces import get_space

    path = Path(text)
    if text.endswith(".json") or path.is_file():
        try:
            arch = Arch.from_json(path.read_text())
        except OSError as e:
            raise ArchError(f"cannot read {text}: {e.strerror}") from None
    elif text in zoo.names():
        arch = zoo.get(text)
    else:
        if not space_name:
            raise ArchError(f"{text!r} is not a file or a zoo name; for an arc string give --space")
        space = get_space(space_name)
        n = len(text.replace(",", " ").split())
        if n != space.num_tokens:
            space = get_space(space_name, **space.infer_options(n))
        arch = Arch.parse(space, text)
    if space_name and arch.space.name != space_name:
        raise ArchError(f"--space {space_name} but the architecture is of {arch.space.name}")
    return arch


def _cmd_search(a) -> int:
    from .config import apply_overrides, preset
    from .strategies.enas import EnasSearch

    run = Path(a.logdir)
    if a.resume:
        search = EnasSearch.resume(run, a.overrides, progress=not a.quiet)
    else:
        if (run / "checkpoints" / "last.pt").exists():
            raise CheckpointError(f"{run} already holds a run; continue it with --resume or choose another --logdir")
        cfg = preset("search", a.task, a.preset, a.space)
        cfg.space, cfg.task, cfg.data_dir, cfg.strategy = a.space, a.task, a.data_dir, a.strategy
        cfg = apply_overrides(cfg, a.overrides)
        search = EnasSearch.start(cfg, run, progress=not a.quiet)
    finished = search.run()
    search.dist.close()
    if not search.dist.is_main:
        return 0 if finished else EXIT_INTERRUPTED
    if not finished:
        print(f"stopped: checkpoint saved in {run}/checkpoints/last.pt; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"search done: {run}  (next: enas derive {run})")
    return 0


def _cmd_derive(a) -> int:
    from .strategies.derive import derive

    result = derive(a.run, a.samples, progress=not a.quiet)
    print(json.dumps(result))
    return 0


def _cmd_train(a) -> int:
    from .config import apply_overrides, preset
    from .train import FinalTraining, count_parameters

    run = Path(a.logdir)
    if a.resume:
        training = FinalTraining.resume(run, a.overrides, progress=not a.quiet)
    else:
        if a.arch is None:
            raise ArchError("train needs --arch (RUN/arch.json, an arc string or a zoo name)")
        if (run / "checkpoints" / "last.pt").exists():
            raise CheckpointError(f"{run} already holds a run; continue it with --resume or choose another --logdir")
        arch = read_arch(a.arch, a.space)
        cfg = preset("train", a.task, a.preset, arch.space.name)
        cfg.task, cfg.data_dir = a.task, a.data_dir
        training = FinalTraining.start(arch, apply_overrides(cfg, a.overrides), run, progress=not a.quiet)
    print(f"training {training.arch.space.name} '{training.arch}': "
          f"{count_parameters(training.model):,} parameters", flush=True)
    result = training.run()
    if result is None:
        print(f"stopped: checkpoint saved in {run}/checkpoints/last.pt; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(json.dumps(result))
    return 0


def _cmd_spaces(a) -> int:
    from .spaces import get_space, list_spaces

    for name in list_spaces():
        print(get_space(name).describe())
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        a = _parser().parse_args(argv)
        return {"search": _cmd_search, "derive": _cmd_derive, "train": _cmd_train,
                "spaces": _cmd_spaces}[a.command](a)
    except EnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
