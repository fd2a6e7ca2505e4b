"""Figures: sample grids / scatter plots and training curves.

matplotlib (Agg backend, no display needed) is imported inside the functions and
nothing here imports torch, so plotting costs a second, not a torch start-up:

    ebm-bench plot curves --logs RUN/train_log.csv ... --out RUN/train_curves.png ...
    ebm-bench plot grid RUN/samples.npz RUN/samples.png
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

MAX_GRID = 100  # images shown in a sample grid (a square number)
MAX_POINTS = 5000  # points drawn in a scatter


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out_png) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    tmp.replace(out)
    return out


def _to_uint8_images(samples: np.ndarray) -> np.ndarray:
    """(N,C,H,W) / (N,H,W,C) / (N,H,W), uint8 or float, -> uint8 (N,H,W,C) with C in {1,3}."""
    x = np.asarray(samples)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N,C,H,W); got shape {x.shape}")
    if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
        x = np.moveaxis(x, -1, 1)  # channels-last input
    if x.dtype != np.uint8:
        x = np.nan_to_num(x.astype(np.float64))
        lo, hi = (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else ((-1.0, 1.0) if x.min() >= -1 and x.max() <= 1 else (x.min(), x.max()))
        x = np.clip((x - lo) / max(hi - lo, 1e-12), 0, 1)
        x = np.round(x * 255).astype(np.uint8)
    x = x[:, :3]
    return np.moveaxis(x, 1, -1)


def _image_grid(images: np.ndarray) -> np.ndarray:
    """uint8 (N,H,W,C) -> one (rows*H', cols*W', C) mosaic with 1-pixel gaps."""
    n, h, w, c = images.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    pad = 1
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def sample_grid(samples: np.ndarray, out_png, is_image: bool, real: np.ndarray | None = None,
                title: str | None = None) -> Path:
    """Picture of generated samples.

    Images (N,C,H,W), uint8 (floats are rescaled): a grid of the first ``MAX_GRID``.
    Vectors (N,D): a scatter plot, over the real data in grey when ``real`` is given;
    D > 2 shows the first two coordinates, D == 1 a histogram. No samples at all (a
    diverged run) gives a picture that says so.
    """
    plt = _pyplot()
    samples = np.asarray(samples)
    n = int(samples.shape[0]) if samples.ndim else 0
    if is_image:
        fig, ax = plt.subplots(figsize=(6, 6))
        if n == 0:
            _empty(ax, "no samples (diverged run)")
        else:
            imgs = _to_uint8_images(samples[:MAX_GRID])
            grid = _image_grid(imgs)
            if grid.shape[-1] == 1:
                ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(grid, interpolation="nearest")
            ax.set_axis_off()
        ax.set_title(title or f"{min(n, MAX_GRID)} of {n} samples", fontsize=10)
        try:
            return save_figure(fig, out_png)
        finally:
            plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    x = samples.reshape(n, -1).astype(np.float64) if n else np.zeros((0, 2))
    finite = np.isfinite(x).all(axis=1) if n else np.zeros(0, bool)
    x = x[finite][:MAX_POINTS]
    dim = x.shape[1] if x.ndim == 2 else 0
    r = None
    if real is not None:
        r = np.asarray(real, dtype=np.float64)
        r = r.reshape(r.shape[0], -1)[:MAX_POINTS]
    if len(x) == 0:
        _empty(ax, "no finite samples (diverged run)" if n else "no samples (diverged run)")
        if r is not None and r.shape[1] >= 2:
            ax.scatter(r[:, 0], r[:, 1], s=3, c="0.75", label="data", rasterized=True)
    elif dim == 1:
        bins = 60
        if r is not None:
            ax.hist(r[:, 0], bins=bins, density=True, color="0.75", label="data")
        ax.hist(x[:, 0], bins=bins, density=True, histtype="step", color="C0", lw=1.5, label="samples")
        ax.set_xlabel("x")
    else:
        if r is not None and r.shape[1] >= 2:
            ax.scatter(r[:, 0], r[:, 1], s=3, c="0.75", label="data", rasterized=True)
        ax.scatter(x[:, 0], x[:, 1], s=3, c="C0", alpha=0.6, label="samples", rasterized=True)
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
        if dim == 2:
            ax.set_aspect("equal", adjustable="datalim")
    if r is not None or len(x):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8, markerscale=3)
    note = f" (first 2 of {dim} dims)" if dim > 2 else ""
    ax.set_title(title or f"{len(x)} of {n} samples{note}", fontsize=10)
    try:
        return save_figure(fig, out_png)
    finally:
        plt.close(fig)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="C3")
    ax.set_xticks([])
    ax.set_yticks([])


def read_log(train_log_csv) -> dict[str, np.ndarray]:
    """train_log.csv -> {column: float array}; non-numeric cells become NaN."""
    with open(train_log_csv, newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        cols: dict[str, list[float]] = {k: [] for k in fields}
        for row in reader:
            for k in fields:
                v = row.get(k)
                try:
                    cols[k].append(float(v) if v not in (None, "") else math.nan)
                except ValueError:
                    cols[k].append(math.nan)
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def training_curves(train_log_csv, out_png, title: str | None = None) -> Path:
    """One panel per logged scalar column (losses, energies, ESS, wall time, ...) against
    ``step`` (the row number when there is no step column)."""
    plt = _pyplot()
    cols = read_log(train_log_csv)
    n = len(next(iter(cols.values()))) if cols else 0
    step = cols.pop("step", np.arange(1, n + 1, dtype=np.float64))
    panels = [k for k, v in cols.items() if np.isfinite(v).any()]
    if not panels:
        fig, ax = plt.subplots(figsize=(5, 3))
        _empty(ax, "no logged values")
    else:
        ncols = min(3, len(panels))
        nrows = int(math.ceil(len(panels) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
        for ax, name in zip(axes.flat, panels):
            y = cols[name]
            ok = np.isfinite(y)
            ax.plot(step[ok], y[ok], lw=1.2, marker="." if ok.sum() < 30 else None)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            pos = y[ok]
            if len(pos) > 2 and (pos > 0).all() and pos.max() / max(pos.min(), 1e-300) > 1e3:
                ax.set_yscale("log")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        return save_figure(fig, out_png)
    finally:
        plt.close(fig)


def run_title(path: Path) -> str | None:
    """results/runs/D/V/seedS/x -> 'D / V / seedS'."""
    parts = path.parent.parts
    return " / ".join(parts[-3:]) if len(parts) >= 3 else None
