"""Helpers shared by the apps: networks per activation, mixed-precision forward passes, the fit
loop with a measured progress bar and early stopping, output folders, atomic JSON/CSV/PNG."""

import copy
import csv
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._typing import PathLike
from ..config import SirenConfig, TrainConfig
from ..io import atomic_write, check_output_dir
from ..nn import Siren, nyquist_frequencies
from ..nn.fused import resolve_precision  # noqa: F401  (the apps' name for it)
from ..nn.siren import FourierFeatures
from ..train import StepFn, fit

log = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor]
"""``forward(coords (M, in_dim)) -> (M, out_dim)``: a network's values, possibly in mixed precision."""


ACTIVATIONS = ("sine", "relu", "relu-pe", "relu-ff", "tanh")


def network_config(
    activation: str, base: SirenConfig, in_dim: int, out_dim: int, samples: int, num_frequencies: int = 0
) -> SirenConfig:
    """Return ``base`` with the task's dimensions and ``activation`` (sine, relu, relu-pe, relu-ff or tanh).

    ``relu-pe`` is a ReLU network on a positional encoding with ``num_frequencies`` octaves, or
    ``nyquist_frequencies(samples)`` when that is 0 (the SIREN reference code's rule). ``relu-ff``
    is a ReLU network whose Fourier-feature encoding ``build_network`` adds.
    """
    if activation == "relu-pe":
        freqs = num_frequencies or nyquist_frequencies(samples)
        return replace(base, in_dim=in_dim, out_dim=out_dim, activation="relu", num_frequencies=freqs)
    if activation == "relu-ff":
        return replace(base, in_dim=in_dim, out_dim=out_dim, activation="relu", num_frequencies=0)
    if activation not in ("sine", "relu", "tanh"):
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    return replace(base, in_dim=in_dim, out_dim=out_dim, activation=activation, num_frequencies=0)


def build_network(
    activation: str,
    base: SirenConfig,
    in_dim: int,
    out_dim: int,
    samples: int,
    *,
    num_frequencies: int = 0,
    ff_features: int = 256,
    ff_scale: float = 10.0,
    seed: int = 0,
    device: Any = "cpu",
) -> Siren:
    """Build the network of ``activation`` (see ``network_config``), seeded with ``seed``.

    ``relu-ff`` gets ``FourierFeatures(in_dim, ff_features, ff_scale)`` before its first layer.
    """
    config = network_config(activation, base, in_dim, out_dim, samples, num_frequencies)
    torch.manual_seed(seed)
    encoding = FourierFeatures(in_dim, ff_features, ff_scale, seed=seed) if activation == "relu-ff" else None
    return Siren(config, encoding=encoding).to(device)


def describe_network(network: Siren, activation: str) -> str:
    """One line such as ``SIREN 2 -> 256 x 3 -> 3 (w0 30 first, 30 hidden)`` (width x hidden layers) for plans and logs."""
    c = network.config
    shape = f"{c.in_dim} -> {c.hidden_dim} x {c.num_hidden_layers} -> {c.out_dim}"
    if activation == "sine":
        return f"SIREN {shape} (w0 {c.w0_first:g} first, {c.w0:g} hidden)"
    enc = network.encoding
    extra = ""
    if isinstance(enc, FourierFeatures):
        extra = f" on {enc.out_dim // 2} Fourier features (scale {enc.scale:g})"
    elif enc is not None:
        extra = f" on a positional encoding ({c.num_frequencies} octaves)"
    return f"{activation.split('-')[0]} MLP {shape}{extra}"


def _activate(layer: Any, z: torch.Tensor) -> torch.Tensor:
    if layer.activation == "sine":
        return torch.sin(z)
    if layer.activation == "relu":
        return torch.relu(z)
    return torch.tanh(z)


def make_forward(network: Siren, dtype: torch.dtype = torch.float32) -> Forward:
    """Return ``network``'s forward pass with the hidden layers' matrix products in ``dtype``.

    float32 returns ``network`` itself. bfloat16 keeps the input encoding, the first layer (whose
    ``w0 x`` spans tens of radians: bfloat16's 8 bits would shift phases by a tenth of a radian),
    every bias, ``w0`` product and activation, and the output layer in float32; only the hidden
    ``W h`` products (almost all of the arithmetic) round their inputs and outputs to bfloat16,
    with float32 accumulation. Gradients flow through the casts, so ``loss.backward()`` fills
    float32 ``.grad`` as usual. For fitting values only: the rounding would swamp input
    derivatives.
    """
    if dtype == torch.float32:
        return network

    def forward(coords: torch.Tensor) -> torch.Tensor:
        h = coords if network.encoding is None else network.encoding(coords)
        first, *hidden = network.layers
        h = first(h)
        for layer in hidden:
            z = F.linear(h.to(dtype), layer.linear.weight.to(dtype)).float() + layer.linear.bias
            h = _activate(layer, layer.w0 * z)
        return network.last(h)

    return forward


def prepare_output_dir(path: PathLike) -> Path:
    """Create the output folder (and parents) if needed: ``io.check_output_dir(path, create=True)``.

    Raises:
        InputError: the path is a file, or the folder is not writable.
    """
    return check_output_dir(path, create=True)


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


# ----------------------------------------------------------------------------- fitting with a measured progress bar
@dataclass
class FitRun:
    """What ``run_fit`` did.

    Attributes:
        steps: optimizer steps taken (fewer than planned when the target was reached).
        seconds: wall time, measurements included.
        cpu_seconds: CPU time of this process over the same span (on a shared machine, closer to
            what the fit takes alone with one thread than the wall time).
        curve: ``[(step, seconds, value)]`` at step 0, every ``eval_every`` steps and at the end.
        reached_target: the run stopped early because a measurement reached the target.
        final_loss: the last step's loss (nan when no step ran).
        best_step: with ``keep_best``, the step whose parameters the network holds at the end
            (the best measurement); else ``steps``.
    """

    steps: int
    seconds: float
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    cpu_seconds: float = 0.0
    reached_target: bool = False
    final_loss: float = float("nan")
    best_step: int = 0


class _TargetReached(Exception):
    """Raised inside a step to leave ``train.fit`` once the target is met (before that step's update)."""


def run_fit(
    network: torch.nn.Module,
    step_fn: StepFn,
    train: TrainConfig,
    measure: Callable[[], float],
    *,
    eval_every: int,
    target: Optional[float] = None,
    higher_is_better: bool = True,
    label: str = "fit",
    metric: str = "psnr",
    fmt: str = "{:.2f}",
    progress: bool = True,
    keep_best: bool = False,
) -> FitRun:
    """Run ``train.fit`` with a progress bar showing the latest measurement and the ETA.

    ``measure()`` runs at step 0, every ``eval_every`` steps and after the last step; when
    ``target`` is given and a measurement reaches it (``>=``, or ``<=`` when not
    ``higher_is_better``), the fit stops there. With ``keep_best`` (for measurements of the
    training data itself, as a fit's PSNR), the network ends with the parameters of its best
    measurement: a late instability of the optimizer then costs time, not the result.
    """
    from ..progress import progress_bar

    run = FitRun(0, 0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    bar = progress_bar(total=train.steps, desc=label, disable=not progress, unit="step", dynamic_ncols=True, leave=False)
    best: dict[str, Any] = {"value": None, "state": None}

    def better(value: float) -> bool:
        if not math.isfinite(value):
            return False
        old = best["value"]
        return old is None or (value > old if higher_is_better else value < old)

    def record(step: int) -> float:
        value = float(measure())
        run.curve.append((step, time.perf_counter() - t0, value))
        bar.set_postfix({metric: fmt.format(value)}, refresh=True)
        if keep_best and better(value):
            best["value"] = value
            best["state"] = copy.deepcopy(network.state_dict())
            run.best_step = step
        return value

    def reached(value: float) -> bool:
        if target is None or not math.isfinite(value):
            return False
        return value >= target if higher_is_better else value <= target

    def wrapped(step: int) -> dict[str, float]:
        if step % eval_every == 0 and reached(record(step)):
            raise _TargetReached
        logs = step_fn(step)
        run.steps = step + 1
        run.final_loss = logs["loss"]
        bar.update(1)
        return logs

    try:
        fit(network, wrapped, train, progress=False)
        last = record(run.steps)
        run.reached_target = reached(last)
    except _TargetReached:
        run.reached_target = True
    finally:
        bar.close()
    if keep_best and best["state"] is not None and run.best_step != run.steps:
        log.warning(
            "%s: the last measurement (%s) is worse than step %d's (%s): keeping step %d's parameters",
            label, fmt.format(run.curve[-1][2]), run.best_step, fmt.format(best["value"]), run.best_step,
        )
        network.load_state_dict(best["state"])
    if not keep_best:
        run.best_step = run.steps
    run.seconds = time.perf_counter() - t0
    run.cpu_seconds = time.process_time() - c0
    return run


def run_record(run: Any, network: Siren, train: TrainConfig, *, quality: str, expected: float, dtype: torch.dtype) -> dict[str, Any]:
    """The part of a field fit's ``info`` every app records: preset, precision, how the run ended
    (``run_fit``'s result), the expected and CPU seconds, and the network and training settings."""
    from ..config import config_to_dict

    return {
        "quality": quality,
        "precision": "bfloat16" if dtype == torch.bfloat16 else "float32",
        "reached_target": run.reached_target,
        "cpu_seconds": run.cpu_seconds,
        "kept_step": run.best_step,
        "expected_seconds": expected,
        "siren": config_to_dict(network.config),
        "train": config_to_dict(train),
        "final_loss": run.final_loss,
    }


def time_steps(make_step: Callable[[torch.nn.Module], StepFn], network: torch.nn.Module, lr: float, count: int = 3) -> float:
    """Median seconds of ``count`` training steps of a throwaway copy of ``network`` (after one warm-up step).

    ``make_step(copy)`` builds the step function for the copy; the real network, its
    initialization and its random batches are untouched.
    """
    probe = copy.deepcopy(network)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    step_fn = make_step(probe)
    times = []
    for i in range(count + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_fn(i)
        opt.step()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3.5 min`` or ``1.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
