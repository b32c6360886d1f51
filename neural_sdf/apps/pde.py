"""Solve a PDE with a SIREN (or a baseline), compare with the reference, write the results.

SIREN paper, Sec. 4.3; the problems are described in ``fields.pde``. Outputs of
``solve_pde(..., output_dir=OUT)``: ``solution.png`` (network, reference and error; the wave at
several times), ``error.csv`` + ``error.png`` (relative L2 error and loss over time and steps) and
``metrics.json`` (``relative_error``, ``residual_rms``). Settings come from a ``--quality``
preset (``presets.pde_preset``).
"""

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .._typing import Device, PathLike
from ..config import PDEConfig, SirenConfig, TrainConfig, config_to_dict
from ..errors import InputError
from ..fields.pde import PDE_NAMES, EvaluationSet, PDEProblem, evaluate_network, make_pde_step, make_problem
from ..nn import Siren
from ._common import (
    build_network,
    check_output_dir,
    describe_network,
    format_seconds,
    new_figure,
    prepare_output_dir,
    run_fit,
    save_figure,
    time_steps,
    write_csv,
    write_json,
)
from .presets import pde_preset

__all__ = ["PDE_NAMES", "PDEResult", "solve_pde", "evaluate_solution", "PDEEvaluation", "check_pde_config"]

log = logging.getLogger(__name__)

MIN_POINTS_PER_WAVELENGTH = 6.0
"""Helmholtz: grid points per wavelength the evaluation grid must have to show and measure the wave."""
MIN_COLLOCATION_PER_SQUARE_WAVELENGTH = 4.0
"""Helmholtz: interior collocation points per step and square wavelength of the domain, at least."""
MIN_POINTS_PER_PULSE_WIDTH = 4.0
"""Wave: coarser reference grid points per pulse width, at least (second order then errs below a few percent)."""


@dataclass
class PDEEvaluation:
    """A network's solution on the evaluation points against the reference.

    Attributes:
        points: where it was measured (``fields.pde.EvaluationSet``: coordinates, reference, mask,
            picture shape, times).
        solution: ``(M, C)`` network output.
        residual: ``(M, C)`` PDE residual divided by the problem's ``residual_scale``.
        relative_error: ``||u - u*|| / ||u*||`` over masked points and all channels.
        residual_rms: RMS of ``residual`` over masked points, divided by the RMS of ``u*`` there.
    """

    points: EvaluationSet
    solution: np.ndarray
    residual: np.ndarray
    relative_error: float
    residual_rms: float


@dataclass
class PDEResult:
    """What ``solve_pde`` produced.

    Attributes:
        name: the problem.
        network: the fitted solution ``(M, in_dim) -> (M, C)``.
        evaluation: the final ``PDEEvaluation``.
        relative_error: ``evaluation.relative_error``.
        residual_rms: ``evaluation.residual_rms``.
        curve: ``[(step, seconds, relative_error)]`` at step 0, every ``eval_every`` steps and at the end.
        seconds: wall time of the fit (measurements included).
        steps: optimizer steps taken (fewer than planned when ``target_error`` was reached).
        info: JSON-able record of the settings.
    """

    name: str
    network: Siren
    evaluation: PDEEvaluation
    relative_error: float
    residual_rms: float
    curve: list[tuple[int, float, float]]
    seconds: float
    steps: int
    info: dict[str, Any] = field(default_factory=dict)


def _relative_error(solution: np.ndarray, points: EvaluationSet) -> float:
    m = points.mask
    return float(np.linalg.norm(solution[m] - points.reference[m]) / np.linalg.norm(points.reference[m]))


def evaluate_solution(network: Siren, problem: PDEProblem, points: EvaluationSet) -> PDEEvaluation:
    """Evaluate ``network`` and its residual at ``points`` and compare with the reference."""
    solution, residual = evaluate_network(network, problem, points.coords)
    assert residual is not None
    m = points.mask
    ref_rms = float(np.sqrt(np.mean(points.reference[m] ** 2)))
    res_rms = float(np.sqrt(np.mean(residual[m] ** 2)) / ref_rms)
    return PDEEvaluation(points, solution, residual, _relative_error(solution, points), res_rms)


def check_pde_config(name: str, config: PDEConfig) -> None:
    """Reject settings the sampling cannot resolve, with one line that names the option.

    Raises:
        InputError: a Helmholtz wavelength shorter than ``MIN_POINTS_PER_WAVELENGTH`` evaluation
            grid spacings or covered by fewer than ``MIN_COLLOCATION_PER_SQUARE_WAVELENGTH``
            collocation points per step; a wave pulse narrower than ``MIN_POINTS_PER_PULSE_WIDTH``
            reference grid spacings; an evaluation grid that does not fall on the reference grid.
    """
    if name == "helmholtz":
        wavelength = 2 * math.pi / config.wavenumber
        per_wave = wavelength / (2.0 / (config.eval_resolution - 1))
        if per_wave < MIN_POINTS_PER_WAVELENGTH:
            need = math.ceil(MIN_POINTS_PER_WAVELENGTH * 2.0 / wavelength) + 1
            raise InputError(
                f"--wavenumber {config.wavenumber:g}: too high for --eval-resolution {config.eval_resolution} "
                f"({per_wave:.1f} points per wavelength, at least {MIN_POINTS_PER_WAVELENGTH:g} needed: use --eval-resolution >= {need})"
            )
        per_area = config.batch_size / (2.0 / wavelength) ** 2
        if per_area < MIN_COLLOCATION_PER_SQUARE_WAVELENGTH:
            need = math.ceil(MIN_COLLOCATION_PER_SQUARE_WAVELENGTH * (2.0 / wavelength) ** 2)
            raise InputError(
                f"--wavenumber {config.wavenumber:g}: too high for --batch-size {config.batch_size} "
                f"({per_area:.1f} collocation points per square wavelength, at least {MIN_COLLOCATION_PER_SQUARE_WAVELENGTH:g}: "
                f"use --batch-size >= {need})"
            )
    if name == "wave":
        per_width = config.pulse_width / (2.0 / (config.reference_resolution - 1))
        if per_width < MIN_POINTS_PER_PULSE_WIDTH:
            raise InputError(
                f"--pulse-width {config.pulse_width:g}: too narrow for --reference-resolution {config.reference_resolution} "
                f"({per_width:.1f} points per pulse width, at least {MIN_POINTS_PER_PULSE_WIDTH:g})"
            )
        fine = 2 * (config.reference_resolution - 1)
        if fine % (config.eval_resolution - 1):
            raise InputError(
                f"--eval-resolution {config.eval_resolution}: its {config.eval_resolution - 1} intervals must divide the "
                f"reference grid's {fine} (e.g. --eval-resolution {fine // 4 + 1})"
            )


def solve_pde(
    name: str,
    output_dir: Optional[PathLike] = None,
    *,
    config: Optional[PDEConfig] = None,
    siren: Optional[SirenConfig] = None,
    train: Optional[TrainConfig] = None,
    quality: str = "default",
    device: Device = "cpu",
    progress: bool = True,
) -> PDEResult:
    """Solve ``poisson``, ``helmholtz`` or ``wave`` (see ``fields.pde``) and measure the error.

    Args:
        name: one of ``PDE_NAMES``.
        output_dir: write the outputs listed in the module docstring here (created if needed).
        config: problem, sampling, weighting and measurement settings; None: the preset's.
        siren: width, depth and ``w0``; dimensions and activation come from the task; None: the preset's.
        train: steps, learning rate, seed; None: the preset's.
        quality: the preset (``presets.pde_preset``) that fills the settings left as None.
        device: torch device.
        progress: show a progress bar with the error and the ETA.

    Raises:
        InputError: unknown ``name``, settings the sampling cannot resolve (``check_pde_config``)
            or an unusable output folder.
    """
    if name not in PDE_NAMES:
        raise InputError(f"{name}: unknown PDE; expected one of {', '.join(PDE_NAMES)}")
    preset = pde_preset(name, quality)
    config = config or preset.config
    siren = siren or preset.siren
    train = train or preset.train
    check_pde_config(name, config)
    if output_dir is not None:
        check_output_dir(output_dir)
    problem = make_problem(name, config)
    t_ref = time.perf_counter()
    points = problem.evaluation_set(config.eval_resolution)
    if name == "wave":
        log.info(
            "reference: leapfrog finite differences on %d x %d points (dt = h / 2c), checked against %d x %d: "
            "estimated relative error %.2g (%.1f s)",
            2 * config.reference_resolution - 1, 2 * config.reference_resolution - 1, config.reference_resolution,
            config.reference_resolution, points.reference_error, time.perf_counter() - t_ref,
        )
    network = build_network(
        config.activation, siren, problem.in_dim, problem.out_dim, 24, num_frequencies=config.num_frequencies or 6,
        ff_features=config.ff_features, ff_scale=config.ff_scale, seed=train.seed, device=device,
    )
    like = torch.zeros((), device=device)
    masked = points.coords[points.mask]

    def measure() -> float:
        solution, _ = evaluate_network(network, problem, masked, residuals=False)
        return float(np.linalg.norm(solution - points.reference[points.mask]) / np.linalg.norm(points.reference[points.mask]))

    def make_step(net: Siren):  # noqa: ANN202
        return make_pde_step(net, problem, train.seed, like)

    step_seconds = time_steps(make_step, network, train.lr)
    t = time.perf_counter()
    measure()
    eval_seconds = time.perf_counter() - t
    expected = train.steps * step_seconds + (train.steps // config.eval_every + 2) * eval_seconds
    target = config.target_error or None
    log.info(
        "plan: %s: %s; %d steps of %d + %d points, lr %g%s; expected %s%s",
        name, describe_network(network, config.activation), train.steps, config.batch_size, config.boundary_batch_size,
        train.lr, f" cosine to {train.lr * train.lr_final_ratio:.2g}" if train.lr_final_ratio < 1 else "",
        format_seconds(expected), f" (less if the error reaches {target:g} first)" if target else "",
    )
    run = run_fit(
        network, make_step(network), train, measure, eval_every=config.eval_every, target=target, higher_is_better=False,
        label=f"{name} {config.activation}", metric="rel. error", fmt="{:.4f}", progress=progress,
    )
    network.eval()
    ev = evaluate_solution(network, problem, points)
    curve = run.curve[:-1] + [(run.curve[-1][0], run.curve[-1][1], ev.relative_error)]
    info = {
        "problem": name,
        "quality": quality,
        "reached_target": run.reached_target,
        "cpu_seconds": run.cpu_seconds,
        "expected_seconds": expected,
        "reference_error": points.reference_error,
        "pde": config_to_dict(config),
        "siren": config_to_dict(network.config),
        "train": config_to_dict(train),
        "final_loss": run.final_loss,
    }
    log.info("%s: relative L2 error %.4g, residual %.3g after %d steps (%.1f s)", name, ev.relative_error, ev.residual_rms, run.steps, run.seconds)
    out = PDEResult(name, network, ev, ev.relative_error, ev.residual_rms, curve, run.seconds, run.steps, info)
    if output_dir is not None:
        write_pde_outputs(out, output_dir)
    return out


def _picture_2d(result: PDEResult, fig: Any) -> None:
    ev = result.evaluation
    res = ev.points.shape[0]
    channels = ev.solution.shape[1]
    labels = ["Re u", "Im u"] if channels == 2 else ["u"]
    axes = fig.subplots(channels, 3, squeeze=False)
    half = 1.0 - result.info["pde"]["pml_width"] if result.name == "helmholtz" else None
    for ch in range(channels):
        sol = ev.solution[:, ch].reshape(res, res)
        ref = np.where(ev.points.mask, ev.points.reference[:, ch], np.nan).reshape(res, res)
        err = np.abs(sol - ref)
        finite = ref[np.isfinite(ref)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        # Grids are indexing="ij" (rows are x); transpose so that x runs across.
        for ax, img, title, cmap, lim in (
            (axes[ch][0], sol, f"network {labels[ch]}", "RdBu_r", (-vmax, vmax)),
            (axes[ch][1], ref, f"reference {labels[ch]}", "RdBu_r", (-vmax, vmax)),
            (axes[ch][2], err, f"|error| {labels[ch]}", "magma", (0, float(np.nanmax(err)) or 1.0)),
        ):
            im = ax.imshow(img.T, origin="lower", extent=(-1, 1, -1, 1), cmap=cmap, vmin=lim[0], vmax=lim[1])
            if half is not None:
                ax.plot([-half, half, half, -half, -half], [-half, -half, half, half, -half], "k--", lw=0.8)
            ax.set_title(title)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            fig.colorbar(im, ax=ax, shrink=0.8)


def _picture_wave(result: PDEResult, fig: Any) -> None:
    ev = result.evaluation
    k, res, _ = ev.points.shape
    pick = sorted(set(np.linspace(0, k - 1, min(k, 5)).round().astype(int)))
    sol = ev.solution[:, 0].reshape(k, res, res)
    ref = ev.points.reference[:, 0].reshape(k, res, res)
    vmax = float(np.abs(ref).max())
    emax = float(np.abs(sol - ref)[pick].max()) or 1.0
    axes = fig.subplots(3, len(pick), squeeze=False)
    for col, i in enumerate(pick):
        for row, (img, name, cmap, lim) in enumerate(
            ((sol[i], "network", "RdBu_r", (-vmax, vmax)), (ref[i], "reference", "RdBu_r", (-vmax, vmax)),
             (np.abs(sol[i] - ref[i]), "|error|", "magma", (0, emax)))
        ):
            ax = axes[row][col]
            im = ax.imshow(img.T, origin="lower", extent=(-1, 1, -1, 1), cmap=cmap, vmin=lim[0], vmax=lim[1])
            ax.set_title(f"{name}, t = {ev.points.times[i]:.2f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == len(pick) - 1:
                fig.colorbar(im, ax=ax, shrink=0.8)


def write_pde_outputs(result: PDEResult, output_dir: PathLike) -> Path:
    """Write the outputs listed in the module docstring into ``output_dir`` (created if needed)."""
    out = prepare_output_dir(output_dir)
    from matplotlib.figure import Figure

    if result.name == "wave":
        fig = Figure(figsize=(3.2 * 5 + 1, 3.2 * 3 + 0.6), dpi=100, layout="constrained")
        _picture_wave(result, fig)
    else:
        channels = result.evaluation.solution.shape[1]
        fig = Figure(figsize=(13, 3.8 * channels + 0.4), dpi=100, layout="constrained")
        _picture_2d(result, fig)
    extra = " (dashed: the PML's inner edge)" if result.name == "helmholtz" else ""
    fig.suptitle(f"{result.name} ({result.info['pde']['activation']}): relative L2 error {result.relative_error:.3g}{extra}")
    save_figure(fig, out / "solution.png")
    write_csv(["step", "seconds", "relative_error"], [(s, f"{t:.2f}", f"{e:.6g}") for s, t, e in result.curve], out / "error.csv")
    fig, axes = new_figure(11, 4, ncols=2)
    for ax, (k, xlabel) in zip(axes, [(1, "seconds"), (0, "step")]):
        ax.plot([p[k] for p in result.curve], [p[2] for p in result.curve], marker=".")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative L2 error")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{result.name} ({result.info['pde']['activation']}) over time")
    axes[1].set_title("over steps")
    save_figure(fig, out / "error.png")
    write_json(
        {
            "relative_error": result.relative_error,
            "residual_rms": result.residual_rms,
            "steps": result.steps,
            "seconds": result.seconds,
            "error_definition": "||u - u*||_2 / ||u*||_2 over the evaluation points (Helmholtz: the physical region inside "
            "the PML at r >= exclude_radius, real and imaginary parts; wave: eval_times snapshots of the grid against the "
            "finite-difference reference)",
            "residual_definition": "RMS of the PDE residual (divided by the problem's scale) over the same points, "
            "divided by the RMS of u*",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
