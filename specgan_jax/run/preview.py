"""Preview grids: PNG pictures of spectrograms in the data's own units.

Frequency runs up the vertical axis with the lowest bin at the bottom (imshow origin='lower';
CSV row 0 = lowest frequency, docs/data.md), time runs left to right, a perceptual colormap
(magma) and one shared colour scale with a colorbar in the input's units, so grids from
different steps and the grid of real examples can be compared by eye.

Uses matplotlib's object API with the Agg canvas directly (no pyplot, no global backend).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from specgan_jax import atomic


def color_range(x: np.ndarray, lo: float = 1.0, hi: float = 99.0) -> tuple[float, float]:
    """A robust shared colour scale: the [lo, hi] percentiles of `x` (any shape)."""
    vmin, vmax = np.percentile(np.asarray(x, np.float64), [lo, hi])
    if not vmax > vmin:  # constant input: widen so imshow has a non-empty range
        vmin, vmax = vmin - 0.5, vmax + 0.5
    return float(vmin), float(vmax)


def save_grid(path: str, images: np.ndarray, *, title: str, vmin: float, vmax: float,
              labels: list[str] | None = None, cbar_label: str = "value (input units)",
              cols: int | None = None) -> str:
    """Write `images` [N, F, T] (F = frequency = CSV rows) as one PNG grid, atomically.

    labels: optional per-panel captions (e.g. class names). Returns `path`.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]  # [N, F, T, 1] -> [N, F, T]
    if images.ndim != 3:
        raise ValueError(f"save_grid expects [N, F, T] images; got shape {images.shape}")
    n = images.shape[0]
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(1.9 * cols + 1.2, 1.9 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    im = None
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        im = ax.imshow(images[i], origin="lower", aspect="auto", cmap="magma",
                       vmin=vmin, vmax=vmax, interpolation="nearest")
        if labels is not None:
            ax.set_title(labels[i], fontsize=7)
    # Axis meaning on the bottom-left panel only (the grid is uniform).
    axes[-1, 0].set_xlabel("time →", fontsize=7)
    axes[-1, 0].set_ylabel("frequency →", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.86, bottom=0.05, top=0.92, wspace=0.06, hspace=0.12)
    cax = fig.add_axes([0.89, 0.1, 0.025, 0.78])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label(cbar_label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return atomic.save_figure(fig, path)


def _as_rows(sets, what: str) -> list[np.ndarray]:
    rows = [np.asarray(a, np.float32) for a in sets]
    for a in rows:
        if a.ndim != 3:
            raise ValueError(f"save_class_grid: each class's {what} must be [n, F, T]; got "
                             f"shape {a.shape}")
    return rows


def class_grid_figure(fakes, reals, class_names, *, title: str, vmin: float, vmax: float,
                      cbar_label: str = "value (input units)") -> Figure:
    """The figure of `save_class_grid` (unsaved): row k = class k, its generated samples on the
    left, a gap, then its real examples. Each image panel's artist label is "fake k i" or
    "real k j" (matplotlib's Artist.get_label, not drawn), so the layout can be checked."""
    fakes = _as_rows(fakes, "generated samples")
    reals = None if reals is None else _as_rows(reals, "real examples")
    k = len(fakes)
    if k != len(class_names) or (reals is not None and len(reals) != k):
        raise ValueError(f"save_class_grid: {k} generated rows, "
                         f"{'no' if reals is None else len(reals)} real rows and "
                         f"{len(class_names)} class names; give one of each per class")
    n = max((len(a) for a in fakes), default=0)
    m = 0 if reals is None else max((len(a) for a in reals), default=0)
    if k == 0 or n == 0:
        raise ValueError("save_class_grid: nothing to draw")
    gap = 0.3  # width of the empty column between the generated and the real block, in panels
    widths = [1.0] * n + ([gap] + [1.0] * m if m else [])
    label_w = 0.12 * max(len(c) for c in class_names) + 0.3  # room for the row labels
    fig = Figure(figsize=(1.5 * sum(widths) + label_w + 1.0, 1.5 * k + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    width_in = fig.get_figwidth()
    grid = fig.add_gridspec(k, len(widths), width_ratios=widths, wspace=0.06, hspace=0.1,
                            left=label_w / width_in, right=1 - 0.9 / width_in,
                            bottom=0.3 / fig.get_figheight(), top=1 - 0.5 / fig.get_figheight())
    im = None
    for row in range(k):
        blocks = [("fake", fakes[row], 0)]
        if m:
            blocks.append(("real", reals[row], n + 1))
        for kind, imgs, first_col in blocks:
            for i, img in enumerate(imgs):
                ax = fig.add_subplot(grid[row, first_col + i])
                ax.set_label(f"{kind} {row} {i}")
                ax.set_xticks([])
                ax.set_yticks([])
                im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma", vmin=vmin,
                               vmax=vmax, interpolation="nearest")
                if i == 0 and row == 0:
                    ax.set_title("generated" if kind == "fake" else "real", fontsize=8,
                                 loc="left")
                if i == 0 and kind == "fake":
                    ax.set_ylabel(class_names[row], fontsize=8, rotation=0, ha="right",
                                  va="center")
    fig.suptitle(title, fontsize=9)
    cax = fig.add_axes([1 - 0.7 / width_in, 0.15, 0.15 / width_in, 0.7])
    cb = fig.colorbar(im, cax=cax)
    cb.set_label(cbar_label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig


def save_class_grid(path: str, fakes, reals, class_names, *, title: str, vmin: float,
                    vmax: float, cbar_label: str = "value (input units)") -> str:
    """Write one PNG, one row per class (atomically): fakes[k] [n_k, F, T] generated samples of
    class k on the left, reals[k] [m_k, F, T] real examples of class k on the right (reals None:
    generated only), class_names[k] as the row label, one shared colour scale. Arrays
    [K, n, F, T] / [K, m, F, T] or per-class lists (rows may differ in length). Returns path."""
    return atomic.save_figure(class_grid_figure(fakes, reals, class_names, title=title,
                                                vmin=vmin, vmax=vmax, cbar_label=cbar_label),
                              path)


def fakes_name(step: int, ext: str = "png") -> str:
    """Predictable artefact name of the preview at `step` (stylegan2-ada style)."""
    return f"fakes_{step:06d}.{ext}"


def round_robin(labels: np.ndarray, n: int) -> np.ndarray:
    """n indices taking one sample of each class in turn (class order, then index order), so
    that a grid shows every class, not the first one only."""
    labels = np.asarray(labels)
    rank = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    return np.lexsort((labels, rank))[:n]
