"""Fit an image with a SIREN (or a baseline) from its values, gradient or Laplacian; write the results.

SIREN paper, Sec. 4.1. Outputs of ``fit_image(..., output_dir=OUT)``: ``reconstruction.png``,
``psnr.csv`` + ``psnr.png`` (PSNR over time and steps), ``gradient.png`` and ``laplacian.png``
(of the fitted function, by autograd), ``summary.png`` (target, fit and derivatives side by side)
and ``metrics.json`` (final PSNR under ``psnr``).

Settings come from a ``--quality`` preset (``presets.image_preset``).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import numpy as np
import torch

from .._typing import Device, PathLike
from ..config import ImageConfig, SirenConfig, TrainConfig, config_to_dict
from ..fields.image import (
    FieldDerivatives,
    LaplacianBlur,
    evaluate_field,
    field_derivatives,
    image_targets,
    make_image_step,
    pixel_coords,
    render_image,
)
from ..fields.pde import taylor_derivatives
from ..io.image import load_image, resize_max_side, save_image
from ..metrics import psnr as _psnr
from ..nn import Siren
from ._common import (
    build_network,
    check_output_dir,
    colormap_image,
    describe_network,
    format_seconds,
    make_forward,
    new_figure,
    prepare_output_dir,
    resolve_precision,
    run_fit,
    run_record,
    save_figure,
    time_steps,
    write_csv,
    write_json,
)
from .presets import image_preset

__all__ = ["ImageFitResult", "fit_image", "AlignedPSNR", "aligned_psnr", "write_image_outputs", "EVAL_PIXELS"]

log = logging.getLogger(__name__)

EVAL_PIXELS = 65536
"""Pixels of the PSNR measured during a fit: all of them up to 256 x 256, else a fixed random sample
(the final PSNR always uses every pixel)."""


@dataclass
class ImageFitResult:
    """What ``fit_image`` produced.

    Attributes:
        network: the fitted field ``(M, 2) -> (M, C)`` (network units, see ``fields.image``).
        image: ``(H, W, C)`` target in [0, 1] (after any downscaling).
        reconstruction: ``(H, W, C)`` fitted image in [0, 1] (clipped; shifted by ``offset`` and ``ramp``).
        psnr: dB of ``reconstruction`` against ``image`` (see ``aligned_psnr``: after removing
            the constant for gradient and Laplacian supervision, and also the affine ramp for the
            ``pointwise`` Laplacian loss, whose operator cannot see it).
        offset: ``(C,)`` constant added to the raw fit before measuring: 0 for value supervision;
            for gradient / Laplacian supervision the least-squares constant they cannot see.
        curve: ``[(step, seconds, psnr_db)]`` at step 0, every ``eval_every`` steps and at the end
            (during the fit on ``EVAL_PIXELS`` pixels; the last entry on all of them).
        derivatives: gradient and Laplacian of the fitted function at every pixel.
        seconds: wall time of the fit (measurements included).
        steps: optimizer steps taken (fewer than planned when ``target_psnr`` was reached).
        siren: the network config used.
        info: JSON-able record of the settings.
        ramp: ``(C, 2)`` slopes along (row, col) added before measuring (the pointwise Laplacian loss only; else 0).
        psnr_constant_only: dB after removing the constant only (equal to ``psnr`` except for the pointwise Laplacian loss).
    """

    network: Siren
    image: np.ndarray
    reconstruction: np.ndarray
    psnr: float
    offset: np.ndarray
    curve: list[tuple[int, float, float]]
    derivatives: Optional[FieldDerivatives]
    seconds: float
    steps: int
    siren: SirenConfig
    info: dict[str, Any] = field(default_factory=dict)
    ramp: Optional[np.ndarray] = None
    psnr_constant_only: Optional[float] = None


class AlignedPSNR(NamedTuple):
    """PSNR of a derivative-supervised fit after removing what its supervision cannot see.

    Attributes:
        psnr: dB after removing ``offset`` and ``ramp`` and clipping to [0, 1].
        psnr_constant_only: dB after removing the per-channel constant only (equal to ``psnr``
            unless the ramp is removed).
        offset: ``(C,)`` constant added to the raw fit: 0 for values, the least-squares constant
            for gradients and Laplacians.
        ramp: ``(C, 2)`` slopes along (row, col) normalized coordinates added to the raw fit: 0
            except for Laplacians (the affine ramp ``a + b r + c col``, harmonic, is invisible to
            a Laplacian).
        reconstruction: aligned fit in [0, 1], shaped like the image.
    """

    psnr: float
    psnr_constant_only: float
    offset: np.ndarray
    ramp: np.ndarray
    reconstruction: np.ndarray


def aligned_psnr(
    raw: np.ndarray, image: np.ndarray, supervise: str, coords: Optional[np.ndarray] = None, remove_ramp: bool = True
) -> AlignedPSNR:
    """PSNR of a raw fit ``(..., C)`` against ``image`` after the allowed shift and clipping.

    Values: nothing removed. Gradients: the per-channel constant (least squares). Laplacians:
    the per-channel affine ramp ``a + b r + c col`` (least squares over the pixels), the
    lowest-order harmonic functions, which a network's own Laplacian cannot see; the
    constant-only number is reported beside it. With ``remove_ramp=False`` (the ``energy`` loss,
    whose discrete operator sees everything but the constant) only the constant is removed.

    Args:
        raw: ``(..., C)`` fit in image units.
        image: target shaped like ``raw``, in [0, 1].
        supervise: ``values``, ``gradient`` or ``laplacian``.
        remove_ramp: for ``laplacian``, remove the affine ramp too (else the constant only).
        coords: ``(..., 2)`` normalized (row, col) coordinates of the pixels of ``raw``; None:
            ``raw`` is a whole ``(H, W, C)`` image (``fields.image.pixel_coords``).

    Returns:
        ``AlignedPSNR``.
    """
    c = image.shape[-1]
    res = (image - raw).reshape(-1, c)
    zero_ramp = np.zeros((c, 2))
    if supervise == "values":
        rec = np.clip(raw, 0.0, 1.0)
        value = _psnr(rec, image)
        return AlignedPSNR(value, value, np.zeros(c), zero_ramp, rec)
    offset = res.mean(axis=0)
    rec0 = np.clip(raw + offset, 0.0, 1.0)
    constant_only = _psnr(rec0, image)
    if supervise != "laplacian" or not remove_ramp:
        return AlignedPSNR(constant_only, constant_only, offset, zero_ramp, rec0)
    if coords is None:
        coords = pixel_coords(*image.shape[:2], dtype=torch.float64).numpy()
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    basis = np.concatenate([np.ones((xy.shape[0], 1)), xy], axis=1)
    coef = np.linalg.lstsq(basis, res, rcond=None)[0]  # (3, C)
    rec = np.clip(raw + (basis @ coef).reshape(raw.shape), 0.0, 1.0)
    return AlignedPSNR(_psnr(rec, image), constant_only, coef[0], coef[1:].T.copy(), rec)


def fit_image(
    source: Union[PathLike, np.ndarray],
    output_dir: Optional[PathLike] = None,
    *,
    config: Optional[ImageConfig] = None,
    siren: Optional[SirenConfig] = None,
    train: Optional[TrainConfig] = None,
    quality: str = "default",
    device: Device = "cpu",
    progress: bool = True,
    derivatives: bool = True,
) -> ImageFitResult:
    """Fit an image file or array with a SIREN (or a baseline network) and measure its PSNR.

    Args:
        source: image path (PNG, JPEG, ...) or array ``(H, W)`` / ``(H, W, C)`` (see ``io.image``).
        output_dir: write the outputs listed in the module docstring here (created if needed,
            only after the input is validated). None: write nothing.
        config: activation, supervision, batch, precision and measurement settings; None: the preset's.
        siren: width, depth and ``w0`` of the network (dimensions and activation come from the
            task); None: the preset's.
        train: steps, learning rate, seed (checkpoints are not used here); None: the preset's.
        quality: the preset (``image_preset(quality, config.supervise)``) that fills the settings left as None.
        device: torch device.
        progress: show a progress bar with the PSNR and the ETA.
        derivatives: compute the gradient and Laplacian of the fit at every pixel (always done
            when writing outputs).

    Returns:
        ``ImageFitResult``.

    Raises:
        InputError: unreadable file, an image smaller than 2x2, or an unusable output folder.
    """
    preset = image_preset(quality, *((config.supervise, config.laplacian_loss) if config is not None else ()))
    config = config or preset.config
    siren = siren or preset.siren
    train = train or preset.train
    image = resize_max_side(load_image(source), config.max_side)
    if output_dir is not None:
        check_output_dir(output_dir)
    name = str(source) if not isinstance(source, np.ndarray) else "array"
    h, w, c = image.shape
    network = build_network(
        config.activation, siren, 2, c, max(h, w), num_frequencies=config.num_frequencies,
        ff_features=config.ff_features, ff_scale=config.ff_scale, seed=train.seed, device=device,
    )
    values_only = config.supervise == "values"
    dtype = resolve_precision(config.precision, device) if values_only else torch.float32
    coords = pixel_coords(h, w, device)
    targets = image_targets(image, device, derivatives=not values_only)
    blur = None
    if config.supervise == "laplacian" and preset.laplacian_blur is not None:
        start, end, fraction = preset.laplacian_blur
        # The preset's blurs are for 256 pixels a side; a smaller image starts at 1/8 of its side.
        blur = LaplacianBlur(min(start, max(h, w) / 8), end, max(1, round(fraction * train.steps)))

    def make_step(net: Siren):  # noqa: ANN202
        return make_image_step(
            net, coords, targets, config.supervise, config.batch_size, train.seed, forward=make_forward(net, dtype),
            derivatives=taylor_derivatives, laplacian_blur=blur, shape=(h, w), laplacian_loss=config.laplacian_loss,
        )

    # PSNR during the fit: every pixel up to EVAL_PIXELS, else a fixed sample (seeded).
    n = h * w
    if n <= EVAL_PIXELS:
        eval_idx = None
        eval_target = image.reshape(n, c)
    else:
        eval_idx = np.sort(np.random.default_rng(train.seed).choice(n, EVAL_PIXELS, replace=False))
        eval_target = image.reshape(n, c)[eval_idx]
    eval_coords = coords if eval_idx is None else coords[torch.as_tensor(eval_idx, device=coords.device)]
    eval_xy = eval_coords.double().cpu().numpy()
    remove_ramp = config.laplacian_loss == "pointwise"  # the energy's operator sees the ramp

    def measure() -> float:
        raw = (evaluate_field(network, eval_coords).double().cpu().numpy() + 1.0) / 2.0
        return aligned_psnr(raw, eval_target, config.supervise, eval_xy, remove_ramp).psnr

    batch = min(config.batch_size or n, n)
    step_seconds = time_steps(make_step, network, train.lr)
    evals = train.steps // config.eval_every + 2
    expected = train.steps * step_seconds + evals * _time_once(measure)
    target = config.target_psnr or None
    log.info(
        "plan: %s (%dx%d, %d channel%s): %s; %d steps of %s pixels, lr %g%s, %s hidden layers, fitting %s; "
        "expected %s%s",
        name, w, h, c, "s" if c > 1 else "", describe_network(network, config.activation), train.steps,
        f"{batch} random" if batch < n else f"all {n}", train.lr,
        f" cosine to {train.lr * train.lr_final_ratio:.2g}" if train.lr_final_ratio < 1 else "",
        "bfloat16" if dtype == torch.bfloat16 else "float32", config.supervise,
        format_seconds(expected), f" (less if it reaches {target:g} dB first)" if target else "",
    )
    run = run_fit(
        network, make_step(network), train, measure, eval_every=config.eval_every, target=target,
        label=f"image {config.activation}/{config.supervise}", metric="PSNR dB", progress=progress,
        keep_best=True,
    )
    network.eval()
    aligned = aligned_psnr(render_image(network, h, w), image, config.supervise, remove_ramp=remove_ramp)
    value = aligned.psnr
    # The last point: the final PSNR on every pixel (unless an earlier, better state was kept).
    curve = run.curve[:-1] + [(run.curve[-1][0], run.curve[-1][1], value)] if run.best_step == run.steps else run.curve
    derivs = field_derivatives(network, h, w) if (derivatives or output_dir is not None) else None
    info = {
        "source": name,
        "height": h,
        "width": w,
        "channels": c,
        "image": config_to_dict(config),
        "laplacian_blur": blur._asdict() if blur is not None else None,
        **run_record(run, network, train, quality=quality, expected=expected, dtype=dtype),
    }
    if config.supervise == "laplacian" and remove_ramp:
        log.info(
            "%s: PSNR %.2f dB after removing the affine ramp, %.2f dB after removing the constant only; %d steps (%.1f s)",
            name, value, aligned.psnr_constant_only, run.steps, run.seconds,
        )
    else:
        shifted = " after removing the constant" if config.supervise != "values" else ""
        log.info("%s: PSNR %.2f dB%s after %d steps (%.1f s)", name, value, shifted, run.steps, run.seconds)
    out = ImageFitResult(
        network, image, aligned.reconstruction, value, aligned.offset, curve, derivs, run.seconds, run.steps, network.config,
        info, ramp=aligned.ramp, psnr_constant_only=aligned.psnr_constant_only,
    )
    if output_dir is not None:
        write_image_outputs(out, output_dir)
    return out


def _time_once(fn: Any) -> float:
    import time

    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _gradient_magnitude(derivs: FieldDerivatives) -> np.ndarray:
    """``(H, W)`` norm of the gradient over channels and both axes, in image units (/2 from network units)."""
    return 0.5 * np.sqrt((derivs.gradients**2).sum(axis=(2, 3)))


def write_image_outputs(result: ImageFitResult, output_dir: PathLike) -> Path:
    """Write the outputs listed in the module docstring into ``output_dir`` (created if needed)."""
    if result.derivatives is None:
        raise ValueError("result has no derivatives; fit with derivatives=True to write outputs")
    out = prepare_output_dir(output_dir)
    save_image(result.reconstruction, out / "reconstruction.png")
    write_csv(["step", "seconds", "psnr_db"], [(s, f"{t:.2f}", f"{v:.4f}") for s, t, v in result.curve], out / "psnr.csv")
    label = f"{result.info['image']['activation']}, {result.info['image']['supervise']}"
    fig, axes = new_figure(11, 4, ncols=2)
    for ax, (k, xlabel) in zip(axes, [(1, "seconds"), (0, "step")]):
        ax.plot([p[k] for p in result.curve], [p[2] for p in result.curve], marker=".", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_title("PSNR of the fit over time")
    axes[1].set_title("PSNR of the fit over steps")
    axes[0].legend()
    save_figure(fig, out / "psnr.png")
    grad = _gradient_magnitude(result.derivatives)
    lap = 0.5 * result.derivatives.laplacians.mean(axis=2)
    save_image(colormap_image(grad, "gray", symmetric=False), out / "gradient.png")
    save_image(colormap_image(lap, "RdBu_r"), out / "laplacian.png")
    fig, axes = new_figure(16, 4.4, ncols=4)
    cmap = "gray" if result.image.shape[2] == 1 else None
    panels = [
        (result.image.squeeze(-1) if cmap else result.image, "target", cmap),
        (result.reconstruction.squeeze(-1) if cmap else result.reconstruction, f"fit ({result.psnr:.2f} dB)", cmap),
        (colormap_image(grad, "gray", symmetric=False), "|gradient| of the fit", None),
        (colormap_image(lap, "RdBu_r"), "Laplacian of the fit", None),
    ]
    for ax, (img, title, cm) in zip(axes, panels):
        ax.imshow(img, cmap=cm, vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    save_figure(fig, out / "summary.png")
    write_json(
        {
            "psnr": result.psnr,
            "psnr_constant_only": result.psnr_constant_only if result.psnr_constant_only is not None else result.psnr,
            "offset": result.offset.tolist(),
            "ramp": result.ramp.tolist() if result.ramp is not None else None,
            "steps": result.steps,
            "seconds": result.seconds,
            "psnr_definition": "dB over all pixels and channels, images in [0, 1], fit clipped to [0, 1]; "
            "gradient fits and Laplacian fits with the energy loss first shifted by the per-channel mean difference (the "
            "constant they cannot see), Laplacian fits with the pointwise loss by the per-channel least-squares affine "
            "ramp a + b row + c col (harmonic: a network's own Laplacian cannot see it; psnr_constant_only: the "
            "constant only)",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
