"""What a run writes for people to read: TensorBoard events, archs.jsonl, config.json / arch.json.

Every strategy writes the same run directory (ARCHITECTURE.md, "The run directory"), so one notebook
and one TensorBoard view serve all. Values may be 0-d tensors: they are read (`.item()`) here, at log
time, so the training step itself never waits on the device.

Resuming from a checkpoint taken after step S: `RunLogger(run, purge_step=S + 1)` hides the events
TensorBoard had from the interrupted run past S, and `truncate_archs(S)` drops the archs.jsonl records
past S, so the resumed run's logs read as one uninterrupted run.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

if TYPE_CHECKING:  # matplotlib is imported where a picture is made (enas/spaces/drawing.py)
    from matplotlib.figure import Figure

from .checkpoint import atomic_write

ARCHS_FILE = "archs.jsonl"
HPARAMS_RUN = "hparams"  # the sub-run of a run's row in TensorBoard's HPARAMS tab


def to_jsonable(obj: Any) -> Any:
    """json.dumps `default`: tensors and numpy values as numbers/lists, architectures as arc strings."""
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 and obj.dim() == 0 else obj.tolist()
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tokens") and hasattr(obj, "space"):  # an enas.Arch
        return str(obj)
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON")


def format_metric(name: str | None, value: float | None) -> str:
    """A number as people read it: an accuracy in percent ("23.45%"), a perplexity with two decimals,
    anything else (a loss, a reward, a metric of unknown name) to four significant digits."""
    if value is None:
        return "n/a"
    return {"acc": f"{value:.2%}", "ppl": f"{value:.2f}"}.get(name, f"{value:.4g}")


def count_of(count: int, one: str, many: str = "") -> str:
    """"1 epoch", "3 epochs", "2 children": a count for a summary line."""
    return f"{count} {one if count == 1 else many or one + 's'}"


def _number(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().item())  # the one host sync, at log time
    return float(value)


class NullLogger:
    """Logs nothing: for runs that write no directory (a full-NAS child in a worker, ranks > 0)."""

    purge_step = None
    last: dict[str, float] = {}  # never written: nothing is logged

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class RunLogger:
    """Writer of one run directory. The TensorBoard writer opens on first use, so a run that logs no
    scalars (or a test) leaves no empty event file."""

    def __init__(self, run_dir: str | os.PathLike, purge_step: int | None = None, flush_secs: int = 30):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.purge_step = purge_step
        self.flush_secs = flush_secs
        self._writer = None
        self._archs = None  # file handle of archs.jsonl, opened for append on first record
        self.last: dict[str, float] = {}  # tag -> the value logged last: progress bars and summaries

    # --- TensorBoard ---------------------------------------------------------------------------
    @property
    def writer(self):
        """The underlying torch.utils.tensorboard.SummaryWriter (created on first access)."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when needed

            self._writer = SummaryWriter(str(self.run_dir), purge_step=self.purge_step,
                                         flush_secs=self.flush_secs)
        return self._writer

    def scalar(self, tag: str, value: Any, step: int) -> None:
        """Log a number (float, int, numpy scalar or 0-d tensor, read now). NaN/inf are logged as they are."""
        self.last[tag] = _number(value)
        self.writer.add_scalar(tag, self.last[tag], global_step=int(step))

    def scalars(self, values: dict[str, Any], step: int) -> None:
        """Each entry as its own scalar tag (unlike SummaryWriter.add_scalars, no extra sub-runs)."""
        for tag, value in values.items():
            self.scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        # TensorBoard renders text as markdown: indent by 4 so cells and tables keep their layout.
        indented = "\n".join("    " + line for line in str(text).splitlines())
        self.writer.add_text(tag, indented, global_step=int(step))

    def figure(self, tag: str, figure: Figure, step: int, close: bool = True) -> None:
        self.writer.add_figure(tag, figure, global_step=int(step), close=close)

    def hparams(self, hparams: dict[str, Any], metrics: dict[str, Any], step: int = 0) -> None:
        """This run's row in TensorBoard's HPARAMS tab: `hparams` (bool, int, float or str values, e.g.
        from `enas.hparams.run_hparams`) and `metrics`, scalars the tab reads (logged at `step`), in the
        sub-run RUN/hparams, written anew each time. Metrics that are None (not measured) are left out.

        TensorBoard makes the tab's metric columns from every scalar tag of a session's run and of the
        runs below it, so the row has a run of its own that holds only its metrics (in RUN itself every
        curve of the run became a column). No experiment summary: TensorBoard shows the first one it
        finds under a logdir, so with one per run, runs of other settings would lose their columns;
        without any, it builds the table from every run's session."""
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        values = {tag: _number(v) for tag, v in metrics.items() if v is not None}
        _experiment, session_start, session_end = hparams_summary(hparams, values)
        row = self.run_dir / HPARAMS_RUN
        shutil.rmtree(row, ignore_errors=True)  # a run continued after it finished: its last row only
        with SummaryWriter(str(row)) as writer:
            writer.file_writer.add_summary(session_start)
            writer.file_writer.add_summary(session_end)
            for tag, value in values.items():
                writer.add_scalar(tag, value, global_step=int(step))
        self.last.update(values)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
        if self._archs is not None:
            self._archs.flush()

    # --- archs.jsonl -----------------------------------------------------------------------------
    @property
    def archs_path(self) -> Path:
        return self.run_dir / ARCHS_FILE

    def arch(self, record: dict[str, Any]) -> None:
        """Append one evaluated architecture, e.g. {"step", "arch", "reward", "metric", ...}, as a JSON line.

        The line is flushed at once, so a crashed run keeps every record it wrote.
        """
        if "step" not in record:
            raise ValueError("an archs.jsonl record needs a 'step'")
        line = json.dumps(record, default=to_jsonable, allow_nan=True)
        if self._archs is None:
            self._archs = open(self.archs_path, "a", encoding="utf-8")
        self._archs.write(line + "\n")
        self._archs.flush()

    def truncate_archs(self, after_step: int) -> int:
        """Drop the records with step > after_step (and a half-written last line); returns how many went."""
        return self.keep_archs(lambda record: record.get("step", -math.inf) <= after_step)

    def keep_archs(self, keep: Callable[[dict], bool]) -> int:
        """Drop the records `keep` refuses (and a half-written last line); returns how many went."""
        if self._archs is not None:
            self._archs.close()
            self._archs = None
        if not self.archs_path.exists():
            return 0
        kept, dropped = [], 0
        for line in self.archs_path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # cut off by a crash mid-write
                dropped += 1
                continue
            if not keep(record):
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            data = "".join(line + "\n" for line in kept).encode("utf-8")
            atomic_write(self.archs_path, lambda f: f.write(data))
        return dropped

    def read_archs(self) -> list[dict[str, Any]]:
        """All records of archs.jsonl, in order."""
        if self._archs is not None:
            self._archs.flush()
        if not self.archs_path.exists():
            return []
        return [json.loads(line) for line in self.archs_path.read_text(encoding="utf-8").splitlines() if line]

    # --- JSON files --------------------------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        """RUN/name (e.g. config.json, arch.json), written atomically."""
        data = (json.dumps(obj, default=to_jsonable, indent=2) + "\n").encode("utf-8")
        path = self.run_dir / name
        atomic_write(path, lambda f: f.write(data))
        return path

    # --- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._archs is not None:
            self._archs.close()
            self._archs = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- pictures of architectures --------------------------------------------------------------------------
# Each space draws its own architectures (`SearchSpace.text` / `.figure`, enas/spaces/).

def _tokens(arch: Any) -> tuple[int, ...]:
    tokens = getattr(arch, "tokens", arch)
    if isinstance(tokens, str):
        tokens = tokens.split()
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.tolist()
    return tuple(int(t) for t in tokens)


def cell_text(space: Any, arch: Any) -> str:
    """A few lines describing the architecture (an Arch, an arc string or a token sequence of `space`)."""
    return space.text(_tokens(arch))


def cell_figure(space: Any, arch: Any) -> Figure:
    """A matplotlib Figure of the architecture, as its space draws it (built on
    matplotlib.figure.Figure directly: Agg canvas, no pyplot state, no display needed)."""
    return space.figure(_tokens(arch))
