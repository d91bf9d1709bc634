"""Matplotlib helpers the spaces' `figure(tokens)` methods share: boxes, arrows between them, a caption
and a legend, on a Figure built directly (Agg canvas, no pyplot state, no display needed).

matplotlib is imported inside each function: drawing happens at log time, not when a space loads.
Positions are in the axes' data units; `inch_axes` makes one data unit one inch, so that curvatures
and gaps computed in inches hold on the page.
"""
from __future__ import annotations

EDGE_COLOR = "#333333"
BOX_EDGE = "#444444"
LOOSE_COLOR = "#c55a11"  # edges into a cell's output: a second colour (and dashes) since they span columns
LOOSE_STYLE = (0, (4, 2))


def text_figure(text: str):
    """A figure that shows `text` (a space's arc string, say) in monospace: the picture of last resort."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1))
    ax = fig.add_axes((0, 0, 1, 1))  # Jupyter shows no figure without axes
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", family="monospace", wrap=True)
    return fig


def inch_axes(width: float, height: float, top: float = 0.4, bottom: float = 0.45):
    """(fig, ax): a width x height inch drawing plus `top` inches for a caption above and `bottom` for
    a legend below; the axes run 0..width by 0..height, one unit per inch."""
    from matplotlib.figure import Figure

    total = height + top + bottom
    fig = Figure(figsize=(width, total))
    ax = fig.add_axes((0, bottom / total, 1, height / total))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def box(ax, x: float, y: float, label: str, color: str, fontsize: float = 10, style: str = "round,pad=0.35"):
    """A label in a filled box centred at (x, y); returns the Text, which `arrow` takes as an end."""
    return ax.text(x, y, label, ha="center", va="center", fontsize=fontsize, zorder=3,
                   bbox=dict(boxstyle=style, fc=color, ec=BOX_EDGE, lw=1))


def arrow(ax, src, dst, src_side=(1, 0.5), dst_side=(0, 0.5), **kw) -> None:
    """An arrow from a point of src's box to a point of dst's box (fractions of each box: by default
    right edge to left edge); lines pass behind boxes. kw go to matplotlib's arrowprops."""
    props = dict(arrowstyle="-|>", color=EDGE_COLOR, lw=1.2, shrinkA=0, shrinkB=0)
    props.update(kw)
    ax.annotate("", xy=dst_side, xycoords=dst, xytext=src_side, textcoords=src, arrowprops=props, zorder=1)


def detour(src: tuple[float, float], dst: tuple[float, float], obstacles: list[tuple[float, float]],
           y_range: tuple[float, float], half_size: tuple[float, float] = (0.45, 0.32)) -> float:
    """A small curvature (matplotlib arc3 `rad`) for the edge src -> dst that misses every other box
    and stays inside y_range; 0 (straight, passing behind boxes) when no small one does.

    Positions are box centres in inches; boxes are taken as 2 * half_size inches (default 0.9 x 0.64:
    two lines of 10 pt text). arc3 draws a quadratic Bezier through midpoint + rad * (dy, -dx).
    """
    (x1, y1), (x2, y2) = (src[0] + 0.4, src[1]), (dst[0] - 0.35, dst[1])  # right edge -> left edge
    ts = [k / 40 for k in range(41)]
    hx, hy = half_size
    for rad in (0.0, 0.1, -0.1, 0.2, -0.2, 0.3, -0.3):
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        pts = [((1 - t) ** 2 * x1 + 2 * t * (1 - t) * cx + t * t * x2,
                (1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t * t * y2) for t in ts]
        inside = all(y_range[0] <= py <= y_range[1] for _, py in pts)
        hits = any(abs(px - bx) < hx and abs(py - by) < hy for bx, by in obstacles for px, py in pts)
        if inside and not hits:
            return rad
    return 0.0


def caption(fig, text: str, top: float = 0.4) -> None:
    """One monospace line (the arc string) in the `top` inches above the drawing."""
    h = fig.get_figheight()
    fig.text(0.01, 1 - (top / 2) / h, text, ha="left", va="center", fontsize=9, family="monospace")


def legend(fig, entries: list[tuple[str, dict]]) -> None:
    """A one-row legend under the drawing. entries: (label, dict(fc=colour) for a box or
    dict(color=..., ls=...) for a line)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(ec=BOX_EDGE, label=label, **style) if "fc" in style else Line2D([], [], label=label, **style)
               for label, style in entries]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 0.0))
