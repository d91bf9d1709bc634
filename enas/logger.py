"""What a run writes for people to read: TensorBoard events, archs.jsonl, config.json / arch.json.

Every strategy writes the same run directory (layout in DESIGN.md section 3), so one notebook and one
TensorBoard view serve all. Values may be 0-d tensors: they are read (`.item()`) here, at log time,
so the training step itself never waits on the device.

Resuming from a checkpoint taken after step S: `RunLogger(run, purge_step=S + 1)` hides the events
TensorBoard had from the interrupted run past S, and `truncate_archs(S)` drops the archs.jsonl records
past S, so the resumed run's logs read as one uninterrupted run.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from matplotlib.figure import Figure

from .checkpoint import atomic_write

ARCHS_FILE = "archs.jsonl"


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
        from `enas.hparams.run_hparams`) and `metrics`, tags whose values the tab reads from the
        scalars of the same tag (logged here too, at `step`; a later scalar of the tag updates the row).
        Metrics that are None (not measured) are left out."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        values = {tag: _number(v) for tag, v in metrics.items() if v is not None}
        # Into this run's own event file (SummaryWriter.add_hparams would open a sub-run), and without
        # the experiment summary: TensorBoard shows the first experiment summary it finds under a
        # logdir, so with one per run, runs of other settings would lose their columns; without any,
        # it builds the table from every run's session.
        _experiment, session_start, session_end = hparams_summary(hparams, values)
        self.writer.file_writer.add_summary(session_start)
        self.writer.file_writer.add_summary(session_end)
        self.scalars(values, step)

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


# --- pictures of cells ------------------------------------------------------------------------------
# space name -> renderer; image spaces add theirs with register_cell_renderer.
_TEXT: dict[str, Callable[[Any, tuple[int, ...]], str]] = {}
_FIGURE: dict[str, Callable[[Any, tuple[int, ...]], Figure]] = {}


def register_cell_renderer(space_name: str, text: Callable | None = None,
                           figure: Callable | None = None) -> None:
    """Make cell_text / cell_figure draw `space_name`'s architectures with `text(space, tokens) -> str`
    and `figure(space, tokens) -> Figure`."""
    if text is not None:
        _TEXT[space_name] = text
    if figure is not None:
        _FIGURE[space_name] = figure


def _tokens(arch: Any) -> tuple[int, ...]:
    tokens = getattr(arch, "tokens", arch)
    if isinstance(tokens, str):
        tokens = tokens.split()
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.tolist()
    return tuple(int(t) for t in tokens)


def cell_text(space: Any, arch: Any) -> str:
    """A few lines describing the architecture (arc string for spaces without a renderer)."""
    tokens = _tokens(arch)
    if space.name in _TEXT:
        return _TEXT[space.name](space, tokens)
    return f"{space.name}: {' '.join(map(str, tokens))}"


def cell_figure(space: Any, arch: Any) -> Figure:
    """A matplotlib Figure of the architecture (the arc string for spaces without a renderer).

    Built on matplotlib.figure.Figure directly (Agg canvas, no pyplot state, no display needed).
    """
    tokens = _tokens(arch)
    if space.name in _FIGURE:
        return _FIGURE[space.name](space, tokens)
    fig = Figure(figsize=(6, 1))
    ax = fig.add_axes((0, 0, 1, 1))  # Jupyter shows no figure without axes
    ax.axis("off")
    ax.text(0.5, 0.5, cell_text(space, tokens), ha="center", va="center", family="monospace", wrap=True)
    return fig


# --- enas_rnn -------------------------------------------------------------------------------------------
_ACT_COLORS = {"tanh": "#cfe2f3", "relu": "#d9ead3", "identity": "#eeeeee", "sigmoid": "#fce5cd"}


def _rnn_cell(space: Any, tokens: tuple[int, ...]) -> tuple[list[int], list[str], list[int]]:
    from .spaces.enas_rnn import ACTIVATIONS

    prev, act = space.cell(tokens)
    return prev, [ACTIVATIONS[a] for a in act], space.loose_ends(tokens)


def _enas_rnn_text(space: Any, tokens: tuple[int, ...]) -> str:
    prev, acts, outs = _rnn_cell(space, tokens)
    width = len(f"node {len(prev) - 1}")
    lines = [f"enas_rnn cell, {len(prev)} nodes: {' '.join(map(str, tokens))}"]
    for i, (p, a) in enumerate(zip(prev, acts)):
        reads = "x_t, h_{t-1}" if p < 0 else f"node {p}"
        lines.append(f"  {f'node {i}':<{width}} = {a}({reads})")
    how = "mean of all nodes" if space.options.get("output") == "all" else "mean of loose ends"
    lines.append(f"  {'h_t':<{width}} = mean({', '.join(f'node {i}' for i in outs)})   [{how}]")
    return "\n".join(lines)


def _enas_rnn_layout(prev: list[int]) -> tuple[list[int], list[float]]:
    """Column (depth) and height of each node: a node sits one column right of the node it reads, as
    level with it as overlaps allow, so chains are straight lines and branches fan out."""
    depth = [1] * len(prev)
    for i in range(1, len(prev)):
        depth[i] = depth[prev[i]] + 1
    y = [0.0] * len(prev)
    for col in range(2, max(depth) + 1):
        nodes = [i for i in range(len(prev)) if depth[i] == col]
        want = {}
        for p in sorted({prev[i] for i in nodes}, key=lambda p: y[p]):
            kids = [i for i in nodes if prev[i] == p]
            for k, i in enumerate(kids):  # siblings spread around their parent's height
                want[i] = y[p] + (k - (len(kids) - 1) / 2)
        placed: list[float] = []
        for i in sorted(nodes, key=lambda i: want[i]):  # push apart to a gap of at least 1
            placed.append(want[i] if not placed or want[i] >= placed[-1] + 1 else placed[-1] + 1)
        shift = sum(want.values()) / len(nodes) - sum(placed) / len(nodes)
        for i, h in zip(sorted(nodes, key=lambda i: want[i]), placed):
            y[i] = h + shift
    return depth, y


def _detour(src: tuple[float, float], dst: tuple[float, float], obstacles: list[tuple[float, float]],
            y_range: tuple[float, float]) -> float:
    """A small curvature (matplotlib arc3 `rad`) for the edge src -> dst that misses every other box
    and stays inside y_range; 0 (straight, passing behind boxes) when no small one does.

    Positions are box centres in inches; boxes are taken as 0.9 x 0.64 in (two lines of 10 pt text).
    arc3 draws a quadratic Bezier through the control point midpoint + rad * (dy, -dx).
    """
    (x1, y1), (x2, y2) = (src[0] + 0.4, src[1]), (dst[0] - 0.35, dst[1])  # right edge -> left edge
    ts = [k / 40 for k in range(41)]
    for rad in (0.0, 0.1, -0.1, 0.2, -0.2, 0.3, -0.3):
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        pts = [((1 - t) ** 2 * x1 + 2 * t * (1 - t) * cx + t * t * x2,
                (1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t * t * y2) for t in ts]
        inside = all(y_range[0] <= py <= y_range[1] for _, py in pts)
        hits = any(abs(px - bx) < 0.45 and abs(py - by) < 0.32 for bx, by in obstacles for px, py in pts)
        if inside and not hits:
            return rad
    return 0.0


def _enas_rnn_figure(space: Any, tokens: tuple[int, ...]) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    prev, acts, outs = _rnn_cell(space, tokens)
    depth, y = _enas_rnn_layout(prev)
    out_col = max(depth) + 1
    lo, hi = min(y + [-0.5]), max(y + [0.5])
    dx, dy = 1.45, 0.85  # inches per column / per unit of height
    top, bottom = 0.4, 0.45  # inches for the arc string above and the legend below the drawing
    w, h = max(dx * (out_col + 1) + 0.3, 7.0), dy * (hi - lo + 1.2) + top + bottom
    fig = Figure(figsize=(w, h))
    ax = fig.add_axes((0, bottom / h, 1, 1 - (top + bottom) / h))
    ax.set_xlim(-0.6, max(out_col + 0.6, w / dx - 0.6))
    ax.set_ylim(lo - 0.6, hi + 0.6)
    ax.axis("off")

    def box(x, hgt, label, color):
        return ax.text(x, hgt, label, ha="center", va="center", fontsize=10, zorder=3,
                       bbox=dict(boxstyle="round,pad=0.35", fc=color, ec="#444444", lw=1))

    def edge(src, dst, **kw):
        props = dict(arrowstyle="-|>", color="#333333", lw=1.2, shrinkA=0, shrinkB=0)
        props.update(kw)
        # from the right edge of src's box to the left edge of dst's box; lines pass behind boxes
        ax.annotate("", xy=(0, 0.5), xycoords=dst, xytext=(1, 0.5), textcoords=src, arrowprops=props,
                    zorder=1)

    x_t = box(0, 0.5, r"$x_t$", "white")
    h_prev = box(0, -0.5, r"$h_{t-1}$", "white")
    nodes = [box(depth[i], y[i], f"node {i}\n{a}", _ACT_COLORS[a]) for i, a in enumerate(acts)]
    all_nodes = space.options.get("output") == "all"
    h_t = box(out_col, sum(y[i] for i in outs) / len(outs), "$h_t$\n(avg of\nall nodes)" if all_nodes
              else "$h_t$\n(avg)", "white")
    edge(x_t, nodes[0])
    edge(h_prev, nodes[0])
    for i in range(1, len(prev)):
        edge(nodes[prev[i]], nodes[i])
    loose = "#c55a11"  # a second colour and dashes: these edges may span several columns
    boxes = [(depth[j] * dx, y[j] * dy) for j in range(len(prev))]  # box centres in inches
    out_xy = (out_col * dx, h_t.get_position()[1] * dy)
    # output="all": an edge from every node would bury the cell; the h_t box says it instead
    for i in ([] if all_nodes else outs):
        rad = _detour(boxes[i], out_xy, [b for j, b in enumerate(boxes) if j != i],
                      ((lo - 0.5) * dy, (hi + 0.5) * dy))
        edge(nodes[i], h_t, color=loose, linestyle=(0, (4, 2)), lw=1.1, connectionstyle=f"arc3,rad={rad}")

    fig.text(0.01, 1 - 0.2 / h, f"{space.name}: {' '.join(map(str, tokens))}", ha="left", va="center",
             fontsize=9, family="monospace")
    handles = [Patch(fc=c, ec="#444444", label=a) for a, c in _ACT_COLORS.items()]
    handles.append(Line2D([], [], color="#333333", label="reads"))
    if not all_nodes:
        handles.append(Line2D([], [], color=loose, ls=(0, (4, 2)), label="averaged into $h_t$"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
    return fig


register_cell_renderer("enas_rnn", text=_enas_rnn_text, figure=_enas_rnn_figure)
