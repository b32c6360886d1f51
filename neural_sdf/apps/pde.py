"""Solve a PDE with a SIREN (or a baseline), compare with the analytic reference, write the results.

SIREN paper, Sec. 4.3; the problems are described in ``fields.pde``. Outputs of
``solve_pde(..., output_dir=OUT)``: ``solution.png`` (network, reference and error on the grid),
``error.csv`` + ``error.png`` (relative L2 error and loss over steps) and ``metrics.json``
(``relative_error``, ``residual_rms``).
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .._typing import Device, PathLike
from ..config import PDEConfig, SirenConfig, TrainConfig, config_to_dict
from ..errors import InputError
from ..fields.pde import PDE_NAMES, PDEProblem, evaluation_grid, make_pde_step, make_problem
from ..nn import Siren
from ..sampling import iter_chunks
from ..train import fit
from ._common import check_output_dir, network_config, new_figure, prepare_output_dir, save_figure, write_csv, write_json

__all__ = ["PDE_NAMES", "PDEResult", "solve_pde", "evaluate_solution", "PDEEvaluation"]

log = logging.getLogger(__name__)


@dataclass
class PDEEvaluation:
    """A network's solution on the evaluation grid against the reference.

    Attributes:
        coords: ``(R * R, 2)`` grid points (``fields.pde.evaluation_grid``).
        solution: ``(R * R, C)`` network output.
        reference: ``(R * R, C)`` analytic solution (may be infinite where ``mask`` is False).
        residual: ``(R * R, C)`` PDE residual divided by the problem's ``residual_scale``.
        mask: ``(R * R,)`` points where errors are measured.
        relative_error: ``||u - u*|| / ||u*||`` over masked points and all channels.
        residual_rms: RMS of ``residual`` over masked points, divided by the RMS of ``u*`` there.
    """

    coords: np.ndarray
    solution: np.ndarray
    reference: np.ndarray
    residual: np.ndarray
    mask: np.ndarray
    relative_error: float
    residual_rms: float


@dataclass
class PDEResult:
    """What ``solve_pde`` produced.

    Attributes:
        name: the problem.
        network: the fitted solution ``(M, 2) -> (M, C)``.
        evaluation: the final ``PDEEvaluation``.
        relative_error: ``evaluation.relative_error``.
        residual_rms: ``evaluation.residual_rms``.
        curve: ``[(step, relative_error, loss)]`` every ``eval_every`` steps and at the end.
        seconds: wall time of the fit.
        info: JSON-able record of the settings.
    """

    name: str
    network: Siren
    evaluation: PDEEvaluation
    relative_error: float
    residual_rms: float
    curve: list[tuple[int, float, float]]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def evaluate_solution(network: Siren, problem: PDEProblem, resolution: int, chunk_size: int = 8192) -> PDEEvaluation:
    """Evaluate ``network`` and its residual on a ``resolution``-square grid and compare with the reference."""
    coords = evaluation_grid(resolution)
    param = next(network.parameters())
    sol, res = [], []
    for sl in iter_chunks(len(coords), chunk_size):
        x = torch.as_tensor(coords[sl], dtype=param.dtype, device=param.device)
        u, r = problem.residual(network, x, create_graph=False)
        sol.append(u.detach().double().cpu().numpy())
        res.append(r.detach().double().cpu().numpy())
    solution, residual = np.concatenate(sol), np.concatenate(res)
    reference = problem.reference(coords)
    mask = problem.error_mask(coords)
    ref_norm = float(np.linalg.norm(reference[mask]))
    rel = float(np.linalg.norm(solution[mask] - reference[mask]) / ref_norm)
    ref_rms = ref_norm / np.sqrt(reference[mask].size)
    res_rms = float(np.sqrt(np.mean(residual[mask] ** 2)) / ref_rms)
    return PDEEvaluation(coords, solution, reference, residual, mask, rel, res_rms)


def solve_pde(
    name: str,
    output_dir: Optional[PathLike] = None,
    *,
    config: PDEConfig = PDEConfig(),
    siren: SirenConfig = SirenConfig(),
    train: TrainConfig = TrainConfig(checkpoint_every=0),
    device: Device = "cpu",
    progress: bool = True,
) -> PDEResult:
    """Solve ``poisson``, ``helmholtz`` or ``wave`` (see ``fields.pde``) and measure the error.

    Args:
        name: one of ``PDE_NAMES``.
        output_dir: write the outputs listed in the module docstring here (created if needed).
        config: problem, sampling, weighting and measurement settings.
        siren: width, depth and ``w0``; dimensions and activation come from the task.
        train: steps, learning rate, seed.
        device: torch device.
        progress: show a progress bar with loss and ETA.

    Raises:
        InputError: unknown ``name`` or an unusable output folder.
    """
    if name not in PDE_NAMES:
        raise InputError(f"{name}: unknown PDE; expected one of {', '.join(PDE_NAMES)}")
    if output_dir is not None:
        check_output_dir(output_dir)
    problem = make_problem(name, config)
    net_config = network_config(config.activation, siren, 2, problem.out_dim, 24, config.num_frequencies)
    torch.manual_seed(train.seed)
    network = Siren(net_config).to(device)
    like = torch.zeros((), device=device)
    inner = make_pde_step(network, problem, train.seed, like)
    curve: list[tuple[int, float, float]] = []
    pending: dict[str, float] = {}

    def step_fn(step: int) -> dict[str, float]:
        measure = step % config.eval_every == 0
        if measure:
            pending["error"] = evaluate_solution(network, problem, config.eval_resolution).relative_error
        logs = inner(step)
        if measure:
            curve.append((step, pending["error"], logs["loss"]))
        return logs

    t0 = time.perf_counter()
    result = fit(network, step_fn, train, progress=progress, desc=f"{name} {config.activation}")
    seconds = time.perf_counter() - t0
    network.eval()
    ev = evaluate_solution(network, problem, config.eval_resolution)
    final_loss = result.history[-1]["loss"] if result.history else float("nan")
    curve.append((train.steps, ev.relative_error, final_loss))
    info = {
        "problem": name,
        "pde": config_to_dict(config),
        "siren": config_to_dict(net_config),
        "train": config_to_dict(train),
        "final_loss": final_loss,
    }
    log.info("%s: relative L2 error %.4g, residual %.3g after %d steps (%.1f s)", name, ev.relative_error, ev.residual_rms, train.steps, seconds)
    out = PDEResult(name, network, ev, ev.relative_error, ev.residual_rms, curve, seconds, info)
    if output_dir is not None:
        write_pde_outputs(out, output_dir)
    return out


def write_pde_outputs(result: PDEResult, output_dir: PathLike) -> Path:
    """Write the outputs listed in the module docstring into ``output_dir`` (created if needed)."""
    out = prepare_output_dir(output_dir)
    ev = result.evaluation
    res = int(round(np.sqrt(len(ev.coords))))
    channels = ev.solution.shape[1]
    labels = ["Re u", "Im u"] if channels == 2 else ["u"]
    axis_names = ("x", "t") if result.name == "wave" else ("x", "y")
    extent = (-1, 1, 0, 1) if result.name == "wave" else (-1, 1, -1, 1)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.8 * channels + 0.4), dpi=100, layout="constrained")
    axes = fig.subplots(channels, 3, squeeze=False)
    for ch in range(channels):
        sol = ev.solution[:, ch].reshape(res, res)
        ref = np.where(ev.mask, ev.reference[:, ch], np.nan).reshape(res, res)
        err = np.abs(sol - ref)
        finite = ref[np.isfinite(ref)]
        vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        # Grids are indexing="ij" (rows are the first coordinate); show the first coordinate across.
        for ax, img, title, cmap, lim in (
            (axes[ch][0], sol, f"network {labels[ch]}", "RdBu_r", (-vmax, vmax)),
            (axes[ch][1], ref, f"reference {labels[ch]}", "RdBu_r", (-vmax, vmax)),
            (axes[ch][2], err, f"|error| {labels[ch]}", "magma", (0, float(np.nanmax(err)) or 1.0)),
        ):
            im = ax.imshow(img.T, origin="lower", extent=extent, cmap=cmap, vmin=lim[0], vmax=lim[1], aspect="auto" if result.name == "wave" else "equal")
            ax.set_title(title)
            ax.set_xlabel(axis_names[0])
            ax.set_ylabel(axis_names[1])
            fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{result.name}: relative L2 error {result.relative_error:.3g}")
    save_figure(fig, out / "solution.png")
    write_csv(["step", "relative_error", "loss"], [(s, f"{e:.6g}", f"{loss:.6g}") for s, e, loss in result.curve], out / "error.csv")
    fig, (ax,) = new_figure()
    steps = [s for s, _, _ in result.curve]
    ax.plot(steps, [e for _, e, _ in result.curve], label="relative L2 error")
    ax.plot(steps, [loss for _, _, loss in result.curve], label="training loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"{result.name} ({result.info['pde']['activation']})")
    save_figure(fig, out / "error.png")
    write_json(
        {
            "relative_error": result.relative_error,
            "residual_rms": result.residual_rms,
            "steps": result.curve[-1][0],
            "seconds": result.seconds,
            "error_definition": "||u - u*||_2 / ||u*||_2 over the evaluation grid (Helmholtz: points with r >= exclude_radius; "
            "both real and imaginary parts)",
            "residual_definition": "RMS of the PDE residual (divided by the problem's scale) over the same points, "
            "divided by the RMS of u*",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
