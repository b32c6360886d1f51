"""Helpers shared by the apps: network configs per activation, output folders, atomic JSON/CSV/PNG."""

import csv
import json
import logging
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._typing import PathLike
from ..config import SirenConfig
from ..errors import InputError
from ..io import atomic_write
from ..nn import nyquist_frequencies

log = logging.getLogger(__name__)


def network_config(
    activation: str, base: SirenConfig, in_dim: int, out_dim: int, samples: int, num_frequencies: int = 0
) -> SirenConfig:
    """Return ``base`` with the task's dimensions and ``activation`` (sine, relu, relu-pe or tanh).

    ``relu-pe`` is a ReLU network on a positional encoding with ``num_frequencies`` octaves, or
    ``nyquist_frequencies(samples)`` when that is 0 (the SIREN reference code's rule).
    """
    if activation == "relu-pe":
        freqs = num_frequencies or nyquist_frequencies(samples)
        return replace(base, in_dim=in_dim, out_dim=out_dim, activation="relu", num_frequencies=freqs)
    if activation not in ("sine", "relu", "tanh"):
        raise ValueError(f"activation must be one of ['sine', 'relu', 'relu-pe', 'tanh'], got {activation!r}")
    return replace(base, in_dim=in_dim, out_dim=out_dim, activation=activation, num_frequencies=0)


def prepare_output_dir(path: PathLike) -> Path:
    """Create the output folder (and parents) if needed; fail clearly when it cannot be used.

    Raises:
        InputError: the path is a file, or the folder is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{p}: output path exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{p}: cannot create output folder ({exc.strerror or exc})") from exc
    if not os.access(p, os.W_OK):
        raise InputError(f"{p}: output folder is not writable")
    return p


def check_output_dir(path: PathLike) -> None:
    """Check, without creating anything, that ``path`` can become an output folder."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{p}: output path exists and is not a folder")
        if not os.access(p, os.W_OK):
            raise InputError(f"{p}: output folder is not writable")
        return
    parent = next((q for q in p.absolute().parents if q.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"{p}: cannot create output folder here")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(data: Mapping[str, Any], path: PathLike) -> Path:
    """Write ``data`` as indented JSON, atomically (non-finite floats become strings)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(_clean(data), indent=2, sort_keys=True) + "\n")
    return Path(path)


def write_csv(header: Sequence[str], rows: Sequence[Sequence[Any]], path: PathLike) -> Path:
    """Write a CSV with a header row, atomically."""
    with atomic_write(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    return Path(path)


def new_figure(width: float = 6.0, height: float = 4.0, ncols: int = 1) -> Any:
    """Return ``(figure, axes)`` drawn by Agg, without pyplot's global state."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def save_figure(fig: Any, path: PathLike) -> Path:
    """Write a matplotlib figure as PNG, atomically."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def save_curve(
    x: Sequence[float], curves: Mapping[str, Sequence[float]], path: PathLike, *, xlabel: str, ylabel: str,
    title: str = "", logy: bool = False,
) -> Path:
    """Plot one or more curves against ``x`` and save the PNG."""
    fig, (ax,) = new_figure()
    for label, ys in curves.items():
        ax.plot(x, ys, label=label, marker="." if len(x) < 40 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def colormap_image(values: np.ndarray, cmap: str = "RdBu_r", symmetric: bool = True, percentile: float = 99.0) -> np.ndarray:
    """Map an ``(H, W)`` array to ``(H, W, 3)`` floats in [0, 1] with a matplotlib colormap.

    The range is the ``percentile`` of ``|values|`` (symmetric about 0), or min to that
    percentile, so that a few extreme pixels do not wash out the picture.
    """
    from matplotlib import colormaps

    v = np.asarray(values, dtype=np.float64)
    if symmetric:
        hi = float(np.percentile(np.abs(v), percentile)) or 1.0
        t = (v / hi + 1.0) / 2.0
    else:
        lo, hi = float(v.min()), float(np.percentile(v, percentile))
        t = (v - lo) / ((hi - lo) or 1.0)
    return colormaps[cmap](np.clip(t, 0.0, 1.0))[..., :3]
