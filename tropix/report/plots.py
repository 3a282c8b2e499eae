"""The report's figures (matplotlib, Agg backend, written as PNG).

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> p = heatmap(np.arange(6.0).reshape(2, 3), "demo", pathlib.Path(tempfile.mkdtemp()) / "h.png")
>>> p.stat().st_size > 0
True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["heatmap", "layer_profile", "slice_grid", "pareto"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cell_label(x: float, fmt: str) -> str:
    """A heatmap cell's text: the value, ``inf`` / ``-inf``, or nothing for NaN (a head not analysed; it was
    labelled ``inf``)."""
    if np.isnan(x):
        return ""
    return format(x, fmt) if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def heatmap(values, title: str, path, cbar_label: str = "", log: bool = False, fmt: str = ".2f"):
    """A layer × head heatmap with the value printed in each cell."""
    plt = _plt()
    from matplotlib.colors import LogNorm

    v = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * v.shape[1], 1.2 + 0.45 * v.shape[0]))
    pos = v[np.isfinite(v) & (v > 0)]
    norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if log and pos.size and pos.min() < pos.max() else None
    im = ax.imshow(np.where(np.isfinite(v), v, np.nan), cmap="viridis", aspect="auto", norm=norm)
    for (i, j), x in np.ndenumerate(v):
        ax.text(j, i, _cell_label(x, fmt), ha="center", va="center", fontsize=6,
                color="w" if np.isfinite(x) else "k")  # (a non-finite cell is left white: dark text)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(v.shape[1]))
    ax.set_yticks(range(v.shape[0]))
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=cbar_label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def layer_profile(series: dict, title: str, path, ylabel: str = "", log: bool = False, layers=None):
    """Lines over layers: ``series`` maps a label to ``(median per layer, (low, high) per layer)``; ``layers`` are
    the layer numbers of the entries (default ``0, 1, ...``; a report of layers 0 and 2 was drawn at 0 and 1)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, (mid, band) in series.items():
        x = np.arange(len(mid)) if layers is None else np.asarray(layers)
        ax.set_xticks(x)
        ax.plot(x, mid, marker="o", label=label)
        if band is not None:
            ax.fill_between(x, band[0], band[1], alpha=0.2)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def slice_grid(panels, n_rows: int, n_cols: int, window: float, title: str, path):
    """Small multiples of 2-D slices: ``panels[(row, col)] = (cells, query_xy)``."""
    plt = _plt()
    from matplotlib.patches import Polygon

    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, 1.3 * n_rows), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for (r, c), (cells, xy) in panels.items():
        ax = axes[r][c]
        for cell in cells:
            ax.add_patch(Polygon(cell.vertices, closed=True, facecolor=cmap(cell.key % 20), edgecolor="k",
                                 linewidth=0.3, alpha=0.8))
        if xy is not None and len(xy):
            ax.plot(xy[:, 0], xy[:, 1], ".", color="k", markersize=1)
    for row in axes:
        for ax in row:
            ax.set_xlim(-window, window)
            ax.set_ylim(-window, window)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
    for r in range(n_rows):
        axes[r][0].set_ylabel(f"L{r}", fontsize=7)
    for c in range(n_cols):
        axes[0][c].set_title(f"h{c}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def pareto(points: dict, title: str, path, xlabel: str = "parameter ratio", ylabel: str = "embedding cosine"):
    """Scatter/lines of ``points[method] = [(x, y), ...]`` (sorted by x), one colour per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, pts in points.items():
        pts = sorted(pts)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
