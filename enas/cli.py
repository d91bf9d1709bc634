"""The `enas` command: search, derive, analyze, train, compare, config, spaces.

Every user error ends as one line `error: ...` on stderr with exit status 2. Ctrl-C (SIGINT) and
SIGTERM finish or abandon the current unit of work, save a checkpoint and exit 130 and 143 (128 + the
signal number; continue with --resume); a second signal stops at once. A command holds its run
directory's lock for its whole life: a second command on it exits 2 naming the first one's pid, and a
new run refuses a directory that holds one unless --overwrite.

What a run says on its way (the device, progress, a line per epoch) goes to stderr; each command ends
with a short summary on stdout, or with --json one JSON line, so that `enas ... --json > result.json`
keeps the result alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import AlreadyFinished, ArchError, CheckpointError, ConfigError, EnasError
from .interrupt import stop_on_interrupt

EXIT_USER_ERROR, EXIT_INTERRUPTED = 2, 130
# what --help shows --set taking, per kind of config (a test applies each)
SET_EXAMPLES = {"search": ("seed=7", "controller.lr=3.5e-4"), "train": ("seed=7", "optim.lr=0.05")}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors follow the one-line rule too
        raise ConfigError(f"{self.prog}: {message}")


def _one_of(what: str, names: list[str]):
    """An argparse type that takes a registry's names only, so that a typo lists what exists."""
    def check(name: str) -> str:
        if name not in names:
            raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; known: {', '.join(names)}")
        return name
    return check


def _strategy_lines() -> str:
    """Every registered strategy with its one-line description, for --help."""
    from .strategies import get_strategy, list_strategies

    width = max(map(len, list_strategies()))
    return "strategies:\n" + "\n".join(f"  {name:{width}}  {get_strategy(name).description}"
                                       for name in list_strategies())


def _parser() -> argparse.ArgumentParser:
    from .presets import PRESETS
    from .spaces import list_spaces
    from .strategies import list_strategies
    from .tasks import list_tasks

    spaces, strategies = list_spaces(), list_strategies()
    tasks, presets = sorted(list_tasks()), sorted({p for *_, p in PRESETS})

    def choice(parser, flag: str, names: list[str], default: str | None, help: str) -> None:
        parser.add_argument(flag, default=default, type=_one_of(flag[2:], names),
                            metavar="{" + ",".join(names) + "}",
                            help=help + (" (default: %(default)s)" if default else ""))

    def space_task_preset(parser, preset_default: str = "paper") -> None:
        choice(parser, "--space", spaces, "enas_rnn", "search space")
        choice(parser, "--task", tasks, "ptb", "data set")
        choice(parser, "--preset", presets, preset_default,
               "paper: the published hyperparameters; small: learns on one machine; tiny: toy sizes, "
               "seconds on a CPU")

    def overrides(parser, flag: str = "--set", dest: str = "overrides", kind: str = "search") -> None:
        example = SET_EXAMPLES[kind]
        parser.add_argument(flag, dest=dest, action="append", default=[], metavar="KEY=VALUE",
                            help=f"set a {kind} config field by its dotted name, e.g. {' or '.join(example)} "
                                 f"(`enas config --kind {kind}` lists them)")

    def overwrite(parser) -> None:
        parser.add_argument("--overwrite", action="store_true",
                            help="start over in a --logdir that holds a run: its run files are removed first")

    def run_options(parser) -> None:
        parser.add_argument("--device", default="auto",
                            help="cpu, cuda, cuda:N, or auto: the GPU when there is one (default: %(default)s)")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        parser.add_argument("--json", action="store_true",
                            help="end with one JSON line on stdout instead of the summary, for scripts")

    p = _Parser(prog="enas", description="Neural architecture search by weight sharing (ENAS).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search a space on a task; writes a run directory", epilog=_strategy_lines(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    space_task_preset(s)
    choice(s, "--strategy", strategies, "enas", "how to search (below)")
    s.add_argument("--data-dir", default="")
    s.add_argument("--logdir", required=True, help="the run directory")
    s.add_argument("--executor", default=None, choices=["local", "ray"],
                   help="where children trained from scratch train")
    s.add_argument("--workers", type=int, default=None, help="local executor: worker processes")
    overrides(s)
    s.add_argument("--resume", action="store_true", help="continue the run in --logdir")
    overwrite(s)
    run_options(s)

    d = sub.add_parser("derive", help="best of N sampled architectures on the shared weights -> RUN/arch.json")
    d.add_argument("run", help="a search run directory")
    d.add_argument("--samples", type=int, default=None, help="default: the run's derive_samples (100 in paper)")
    run_options(d)

    def a_run(text: str) -> str:  # checked before the command locks the directory, which would make it
        from .rundir import run_files

        if not run_files(text):
            raise argparse.ArgumentTypeError(f"{text} holds no run")
        return text

    n = sub.add_parser("analyze", help="trained controller vs its initial weights vs uniform on the shared "
                                       "weights; hidden states, embeddings -> RUN/analysis/")
    n.add_argument("run", type=a_run, help="an enas search run directory")
    n.add_argument("--samples", type=int, default=None,
                   help="architectures per group, 1..100000 (default: the run's analyze_samples, 1000 in paper)")
    n.add_argument("--batches", type=int, default=None,
                   help="validation batches every architecture is scored on, 1..10000 (default: the run's "
                        "analyze_batches)")
    n.add_argument("--against", type=a_run, default=None, metavar="OTHER",
                   help="also score the architectures of OTHER, a run of the same space and task whose controller "
                        "never learned (or random search with shared weights), on OTHER's own shared weights")
    n.add_argument("--standalone", type=int, default=None, metavar="K",
                   help="rank fidelity instead: K architectures spread over the shared-weight scores, each "
                        "trained from scratch; Kendall tau and Spearman between the two rankings")
    choice(n, "--preset", presets, "small", "--standalone: the final recipe the K architectures train with")
    n.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="--standalone: where the K architectures train (default: %(default)s)")
    n.add_argument("--workers", type=int, default=1, help="--standalone, local executor: worker processes")
    overrides(n, "--train-set", "train_overrides", kind="train")
    run_options(n)

    t = sub.add_parser("train", help="train an architecture from scratch; reports valid and test metric")
    t.add_argument("--arch", default=None, help="RUN/arch.json, an arc string, or a zoo name (enas.zoo)")
    choice(t, "--space", spaces, None, "the space of an arc string")
    choice(t, "--task", tasks, None, "data set (default: the task recorded with --arch, "
                                     "else the only one the space has presets for)")
    choice(t, "--preset", presets, "paper", "paper: the published final recipe; small: learns on one machine; "
           "tiny: toy sizes, seconds on a CPU")
    t.add_argument("--data-dir", default="")
    t.add_argument("--logdir", required=True)
    overrides(t, kind="train")
    t.add_argument("--resume", action="store_true", help="continue the run in --logdir")
    overwrite(t)
    run_options(t)

    c = sub.add_parser("compare", help="the strategies under one budget, several seeds", epilog=_strategy_lines(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    space_task_preset(c, preset_default="tiny")
    c.add_argument("--strategies", default=None, type=lambda text: [_one_of("strategy", strategies)(name.strip())
                                                                    for name in text.split(",") if name.strip()],
                   metavar="A,B,...", help="the strategies to compare (default: every one that fits the space)")
    c.add_argument("--data-dir", default="")
    c.add_argument("--budget", type=float, required=True, help="search seconds per strategy and seed")
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--logdir", required=True)
    overrides(c)
    overrides(c, "--train-set", "train_overrides", kind="train")
    c.add_argument("--resume", action="store_true",
                   help="continue the comparison in --logdir, given with the same arguments: finished entrants "
                        "are kept, a stopped final training continues, a stopped search starts over")
    overwrite(c)
    run_options(c)

    g = sub.add_parser("config", help="print a resolved config, one dotted KEY=VALUE per line (what --set takes)",
                       epilog=_strategy_lines(), formatter_class=argparse.RawDescriptionHelpFormatter)
    space_task_preset(g)
    choice(g, "--strategy", strategies, "enas", "the strategy of a search config (below)")
    g.add_argument("--kind", default="search", choices=["search", "train"],
                   help="the search config or the final-training one (default: %(default)s)")
    overrides(g)

    sub.add_parser("spaces", help="the registered search spaces, their decisions and sizes")
    return p


def read_arch(text: str, space_name: str | None):
    """(Arch, task or None, data directory or "") from a path to arch.json, a zoo name or an arc string
    (then --space is needed).

    The task and data directory are those arch.json records (where the search read its data); for an
    arch.json that predates them, the task of the run beside it.
    """
    from . import zoo
    from .arch import Arch
    from .restore import run_config
    from .rundir import read_json
    from .spaces import get_space

    path, task, data_dir = Path(text), None, ""
    if text.endswith(".json") or (os.path.lexists(text) and text not in zoo.names()):
        obj = read_json(path, "the architecture file", ArchError)
        if not isinstance(obj, dict) or not isinstance(obj.get("task", ""), (str, type(None))):
            raise ArchError(f"{text} is not an architecture JSON (an object with \"space\" and \"arch\", as "
                            f"`enas derive` writes)")
        arch = Arch.from_json(obj)
        task, data_dir = obj.get("task"), obj.get("data_dir") or ""
        if task is None and (path.parent / "config.json").exists():  # an arch.json that predates "task"
            task = run_config(path.parent).get("task")
        if not isinstance(data_dir, str):
            raise ArchError(f"{text}: \"data_dir\" must be a path")
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
    return arch, task, data_dir


def _only_task(space) -> str:
    """The task of a space that fits one task only (a recurrent cell: Penn Treebank)."""
    tasks = type(space).tasks
    if len(tasks) != 1:
        raise ConfigError(f"give --task: {space.name} fits {', '.join(tasks) or 'no task'}")
    return tasks[0]


def _note(text: str) -> None:
    """A line about a run on its way: stderr, beside the progress bars."""
    print(text, file=sys.stderr, flush=True)


def _device_line(device) -> str:
    import torch

    return f"device: {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")


def _report(a, lines: list[str], data) -> None:
    """A command's last words on stdout: a short summary, or with --json one JSON line."""
    from .logger import to_jsonable

    print(json.dumps(data, default=to_jsonable) if a.json else "\n".join(lines), flush=True)


def _stopped(run: Path, stop) -> int:
    print(f"stopped: checkpoint saved in {run}/checkpoints/last.pt; continue with --resume", file=sys.stderr)
    return stop.exit_status


def _cmd_search(a, stop) -> int:
    from .config import apply_overrides
    from .presets import preset
    from .strategies import check_search, resume_search, start_search, strategy_of

    run = Path(a.logdir)
    extra = [f"executor={a.executor}"] * bool(a.executor) + [f"workers={a.workers}"] * (a.workers is not None)
    given = [f"device={a.device}", *a.overrides, *extra]
    if a.resume:
        if a.data_dir:  # the data may have moved since the run started
            given.insert(1, f"data_dir={a.data_dir}")
        strategy_of(run, "search --resume")
        search = resume_search(run, given, progress=not a.quiet)
    else:
        cfg = preset("search", a.task, a.preset, a.space, a.strategy)
        cfg.data_dir = a.data_dir
        cfg = apply_overrides(cfg, given)
        check_search(cfg)  # before anything is written
        _new_run(run, a.overwrite)
        search = start_search(cfg, run, progress=not a.quiet)
    _note(_device_line(search.device) + search.describe_placement())
    start = time.monotonic()
    finished = search.run()
    search.close()
    if not search.is_main:  # under torchrun rank 0 reports
        return 0 if finished else stop.exit_status
    if not finished:
        return _stopped(run, stop)
    search.finish()
    _report(a, *search.summary(run, time.monotonic() - start))
    return 0


def _cmd_derive(a, stop) -> int:
    from .logger import format_metric
    from .strategies import load_search, next_train, strategy_of
    from .strategies.derive import check_samples

    run = Path(a.run)
    if a.samples is not None:
        check_samples(a.samples)  # before the search is loaded
    strategy_of(run, "derive")
    search = load_search(run, [f"device={a.device}"], progress=not a.quiet)
    _note(_device_line(search.device))
    result = search.derive(a.samples)
    if result is None:
        print(f"stopped: nothing written to {run}; derive again for the same architecture", file=sys.stderr)
        return stop.exit_status
    m = result["metric_name"]
    _report(a, [f"derived {result['space']} architecture, valid {m} {format_metric(m, result['metric'])}: "
                f"{result['arch']}",
                f"  {result['how']}",
                f"  written to {run / 'arch.json'} (and derive/arch, derive/cell in TensorBoard)",
                f"  next: {next_train(run, search.cfg)}"], result)
    return 0


def _cmd_analyze(a, stop) -> int:
    from .analysis import FILES, analyze_search, check_options, check_run, summary_lines
    from .analysis.against import check_against
    from .strategies import load_search

    run = Path(a.run)
    check_options(a.samples, a.batches)  # before the search is loaded
    if a.standalone is not None:
        if a.against is not None:
            raise ConfigError("--standalone measures rank fidelity and --against compares controllers: give one")
        return _rank_fidelity(a, stop, run)
    check_run(run)
    search = load_search(run, [f"device={a.device}"], progress=not a.quiet)
    other = None
    if a.against is not None:
        if not (Path(a.against) / "checkpoints" / "last.pt").exists():
            raise CheckpointError(f"--against: {a.against} holds no checkpoints/last.pt: run that search first")
        other = load_search(a.against, [f"device={a.device}"], progress=False)
        check_against(search, other)  # before anything is printed: a refusal is one line
    _note(_device_line(search.device))
    result = analyze_search(search, a.samples, a.batches, progress=not a.quiet, other=other)
    if result is None:
        print(f"stopped: nothing written to {run / 'analysis'}; analyze again for the same numbers", file=sys.stderr)
        return stop.exit_status
    _report(a, summary_lines(result, list(FILES) + (["against.png"] if other is not None else [])), result)
    return 0


def _rank_fidelity(a, stop, run: Path) -> int:
    from .analysis.standalone import PICTURE, RESULT, ROWS, check_standalone, rank_fidelity
    from .strategies import load_search, strategy_of

    if isinstance(a.standalone, bool) or a.standalone < 1:
        raise ConfigError(f"--standalone must be a whole number >= 1, got {a.standalone}")
    check_standalone(strategy_of(run, "analyze"), run)
    if not (run / "checkpoints" / "last.pt").exists():
        raise CheckpointError(f"{run} holds no checkpoints/last.pt to analyse: run the search (or resume it) first")
    search = load_search(run, [f"device={a.device}"], progress=not a.quiet)
    _note(_device_line(search.device))
    result = rank_fidelity(search, a.standalone, a.preset, a.samples, a.batches, a.executor, a.workers,
                           a.train_overrides, progress=not a.quiet)
    if result is None:
        print(f"stopped: every architecture trained so far is in {run / ROWS}; analyze again to train the rest",
              file=sys.stderr)
        return stop.exit_status
    tau, rho = (("n/a" if v is None else f"{v:+.3f}") for v in (result["kendall"], result["spearman"]))
    _report(a, [f"rank fidelity of {result['trained']} architectures ({result['failed']} failed), "
                f"{result['metric']} on the shared weights vs trained from scratch ({a.preset} recipe):",
                f"  Kendall tau {tau}, Spearman {rho}",
                f"  written to {run}: {RESULT}, {PICTURE}, {ROWS}",
                f"  next: tensorboard --logdir {run}"], result)
    return 0


def _cmd_train(a, stop) -> int:
    from .config import apply_overrides
    from .logger import format_metric
    from .presets import preset
    from .train import FinalTraining, count_parameters

    run = Path(a.logdir)
    given = [f"device={a.device}", *a.overrides]
    if a.resume:
        if a.data_dir:  # the data may have moved since the run started
            given.insert(1, f"data_dir={a.data_dir}")
        training = FinalTraining.resume(run, given, progress=not a.quiet)
    else:
        if a.arch is None:
            raise ArchError("train needs --arch (RUN/arch.json, an arc string or a zoo name)")
        arch, recorded, searched_on = read_arch(a.arch, a.space)
        if a.task and recorded and a.task != recorded:
            raise ConfigError(f"--task {a.task}, but {a.arch} records task {recorded}")
        cfg = preset("train", a.task or recorded or _only_task(arch.space), a.preset, arch.space.name)
        same_task = not a.task or a.task == recorded
        cfg.data_dir = a.data_dir or (searched_on if same_task else "")  # default: where the search read
        cfg = apply_overrides(cfg, given)
        _new_run(run, a.overwrite)
        training = FinalTraining.start(arch, cfg, run, progress=not a.quiet)
    arch, task = training.arch, training.cfg.task
    _note(_device_line(training.device))
    total, without_aux = count_parameters(training.model), count_parameters(training.model, without_aux=True)
    aux = f" ({without_aux:,} without the auxiliary head)" if without_aux != total else ""
    _note(f"training {arch.space.name} '{arch}' on {task}: {total:,} parameters{aux}")
    start = time.monotonic()
    result = training.run()
    if result is None:
        return _stopped(run, stop)
    m = training.task.metric
    valid = result[f"valid_{m}"]
    kept = "" if valid is None else f"valid {m} {format_metric(m, valid)} (epoch {result['epoch_kept']}), "
    _report(a, [f"trained {arch.space.name} on {task} in {time.monotonic() - start:.0f} s: {kept}"
                f"test {m} {format_metric(m, result[f'test_{m}'])}; {result['parameters']:,} parameters, "
                f"{result['steps']} steps",
                f"  written to {run}: results.json, arch.json, config.json, TensorBoard events",
                f"  next: tensorboard --logdir {run}"], result)
    return 0


def _cmd_compare(a, stop) -> int:
    from .compare import compare, entrant_configs
    from .rundir import RUN_FILES
    from .runtime import resolve_device
    from .strategies import list_strategies

    if a.budget <= 0 or a.seeds < 1:
        raise ConfigError("--budget must be > 0 seconds and --seeds >= 1")
    if a.strategies is not None and not a.strategies:
        raise ConfigError("--strategies names no strategy; give a comma-separated list such as enas,random")
    device = [f"device={a.device}"]
    _note(_device_line(resolve_device(a.device)))
    if not a.resume:
        _new_run(Path(a.logdir), a.overwrite, names=(*RUN_FILES, *list_strategies()),
                 check=lambda: entrant_configs(a.space, a.task, a.data_dir, a.preset, device + a.overrides,
                                               a.strategies))
    compared = compare(a.space, a.task, a.data_dir, a.budget, a.seeds, a.logdir, a.preset, device + a.overrides,
                       device + a.train_overrides, progress=not a.quiet, strategies=a.strategies, resume=a.resume)
    if compared is None:
        print(f"stopped: the comparison in {a.logdir} is unfinished; continue it with the same arguments and "
              f"--resume", file=sys.stderr)
        return stop.exit_status
    table, rows = compared
    _report(a, [table.rstrip(), "",
                f"written to {a.logdir}: comparison.md, comparison.json, one run directory per strategy and seed",
                f"  next: tensorboard --logdir {a.logdir}"], rows)
    return 0


def _cmd_config(a) -> int:
    from .config import apply_overrides, to_dict
    from .hparams import flat
    from .presets import preset
    from .spaces import get_space

    cfg = apply_overrides(preset(a.kind, a.task, a.preset, a.space, a.strategy), a.overrides)
    values = to_dict(cfg)
    what = f"{a.strategy} search" if a.kind == "search" else "train"
    if a.kind == "search":  # the space's defaults too, so that every option it has is listed
        values["space_options"] = get_space(cfg.space, **cfg.space_options).options
    print(f"# {what} config of {a.space} on {a.task}, preset {a.preset}; change a line with --set KEY=VALUE")
    print("\n".join(f"{key}={value}" for key, value in flat(values).items()))
    return 0


def _cmd_spaces(a) -> int:
    from .spaces import get_space, list_spaces

    for name in list_spaces():
        print(get_space(name).describe())
    return 0


def _new_run(run: Path, overwrite: bool, names: tuple[str, ...] | None = None, check=lambda: None) -> None:
    """A new run starts in a directory that holds none; with --overwrite the old run's files go first,
    once `check()` (what else the command verifies before it writes) has passed."""
    from .rundir import RUN_FILES, remove, run_files
    from .strategies.distributed import launch_rank

    if launch_rank() != 0:  # under torchrun rank 0 writes the run directory
        return
    found = run_files(run, names or RUN_FILES)
    if found and not overwrite:
        raise CheckpointError(f"{run} already holds a run ({', '.join(p.name for p in found)}); continue it "
                              f"with --resume, start it over with --overwrite or choose another --logdir")
    check()
    remove(found)


# the commands that write a run directory, and the argument that names it
_RUNS = {"search": (_cmd_search, "logdir"), "derive": (_cmd_derive, "run"), "train": (_cmd_train, "logdir"),
         "compare": (_cmd_compare, "logdir"), "analyze": (_cmd_analyze, "run")}


@contextmanager
def _holding(a):
    """The command's run directory, locked for the command's whole life by the one process that writes it
    (under torchrun, rank 0). --resume and derive need a run there."""
    from .rundir import locked, run_files
    from .strategies.distributed import launch_rank

    name = getattr(a, _RUNS[a.command][1])
    if not name.strip():
        raise ConfigError(f"{'--logdir' if _RUNS[a.command][1] == 'logdir' else 'the run directory'} is empty; "
                          f"name the run directory")
    run, resume = Path(name), getattr(a, "resume", False)
    if resume and a.overwrite:
        raise ConfigError("--resume continues the run in --logdir and --overwrite replaces it: give one of them")
    if resume and a.command == "compare":
        pass  # compare checks its own: ROOT/config.json with the same arguments (enas/compare.py)
    elif resume and not (run / "checkpoints" / "last.pt").exists():
        raise CheckpointError(f"nothing to resume in {run}: it holds no checkpoints/last.pt"
                              + ("; start the run over with --overwrite" if run_files(run) else ""))
    if a.command == "derive" and not run_files(run):
        raise CheckpointError(f"{run} holds no run")
    if launch_rank() != 0:
        yield
        return
    with locked(run):
        yield


def main(argv: list[str] | None = None) -> int:
    stop = None
    try:
        a = _parser().parse_args(argv)
        if a.command not in _RUNS:
            return {"config": _cmd_config, "spaces": _cmd_spaces}[a.command](a)
        with stop_on_interrupt() as stop, _holding(a):
            return _RUNS[a.command][0](a, stop)
    except EnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except AlreadyFinished as e:
        print(e, flush=True)
        return 0
    except BrokenPipeError:  # `enas spaces | head -1`: the reader has what it wanted; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail
        return 0
    except Exception as e:  # a full disk wherever it strikes (an atomic save says which file itself)
        from .checkpoint import disk_full

        if not disk_full(e):
            raise
        where = f" while writing {e.filename}" if getattr(e, "filename", None) else ""
        print(f"error: no space left on device{where}; free some space, then run the command again (with "
              f"--resume to continue)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # a second signal, or Ctrl-C before the first one could be handled
        print("interrupted", file=sys.stderr)
        return stop.exit_status if stop else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
