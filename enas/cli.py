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
    s.add_argument("--strategy", default="enas", choices=["enas", "nas", "random"],
                   help="enas: weight sharing + controller; nas: every child from scratch; "
                        "random: uniform archs (with weight sharing unless --set weight_sharing=false)")
    s.add_argument("--executor", default=None, choices=["local", "ray"], help="nas / random: where children train")
    s.add_argument("--workers", type=int, default=None, help="local executor: worker processes")
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

    c = sub.add_parser("compare", help="enas, nas and random search under one budget, several seeds")
    c.add_argument("--space", default="enas_rnn")
    c.add_argument("--task", default="ptb")
    c.add_argument("--data-dir", default="")
    c.add_argument("--budget", type=float, required=True, help="search seconds per strategy and seed")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--logdir", required=True)
    c.add_argument("--preset", default="tiny")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="search config fields for every strategy")
    c.add_argument("--train-set", dest="train_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="final-training config fields, the same for every strategy")
    c.add_argument("--quiet", action="store_true")

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
    from .strategies import resume_search, start_search

    run = Path(a.logdir)
    extra = [f"executor={a.executor}"] * bool(a.executor) + [f"workers={a.workers}"] * (a.workers is not None)
    if a.resume:
        search = resume_search(run, a.overrides + extra, progress=not a.quiet)
    else:
        if (run / "checkpoints" / "last.pt").exists():
            raise CheckpointError(f"{run} already holds a run; continue it with --resume or choose another --logdir")
        cfg = preset("search", a.task, a.preset, a.space)
        cfg.space, cfg.task, cfg.data_dir, cfg.strategy = a.space, a.task, a.data_dir, a.strategy
        cfg = apply_overrides(cfg, a.overrides + extra)
        search = start_search(cfg, run, progress=not a.quiet)
    finished = search.run()
    dist = getattr(search, "dist", None)
    if dist is not None:
        dist.close()
        if not dist.is_main:
            return 0 if finished else EXIT_INTERRUPTED
    if finished and hasattr(search, "finish"):
        search.finish()
    if not finished:
        print(f"stopped: checkpoint saved in {run}/checkpoints/last.pt; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    nxt = f"enas derive {run}" if hasattr(search, "supernet") else f"enas train --arch {run}/arch.json ..."
    print(f"search done: {run}  (next: {nxt})")
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


def _cmd_compare(a) -> int:
    from .strategies.compare import compare

    if a.budget <= 0 or a.seeds < 1:
        raise ConfigError("--budget must be > 0 seconds and --seeds >= 1")
    if Path(a.logdir, "comparison.md").exists():
        raise CheckpointError(f"{a.logdir} already holds a comparison; choose another --logdir")
    print(compare(a.space, a.task, a.data_dir, a.budget, a.seeds, a.logdir, a.preset, a.overrides,
                  a.train_overrides, progress=not a.quiet))
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
                "compare": _cmd_compare, "spaces": _cmd_spaces}[a.command](a)
    except EnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
