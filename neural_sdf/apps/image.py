"""Fit an image with a SIREN (or a baseline) from its values, gradient or Laplacian; write the results.

SIREN paper, Sec. 4.1. Outputs of ``fit_image(..., output_dir=OUT)``: ``reconstruction.png``,
``psnr.csv`` + ``psnr.png`` (PSNR over steps), ``gradient.png`` and ``laplacian.png`` (of the
fitted function, by autograd), ``summary.png`` (target, fit and derivatives side by side) and
``metrics.json`` (final PSNR under ``psnr``).
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .._typing import Device, PathLike
from ..config import ImageConfig, SirenConfig, TrainConfig, config_to_dict
from ..fields.image import FieldDerivatives, field_derivatives, image_targets, make_image_step, pixel_coords, render_image
from ..io.image import load_image, resize_max_side, save_image
from ..metrics import psnr as _psnr
from ..nn import Siren
from ..train import fit
from ._common import (
    check_output_dir,
    colormap_image,
    network_config,
    new_figure,
    prepare_output_dir,
    save_curve,
    save_figure,
    write_csv,
    write_json,
)

__all__ = ["ImageFitResult", "fit_image", "aligned_psnr", "write_image_outputs"]

log = logging.getLogger(__name__)


@dataclass
class ImageFitResult:
    """What ``fit_image`` produced.

    Attributes:
        network: the fitted field ``(M, 2) -> (M, C)`` (network units, see ``fields.image``).
        image: ``(H, W, C)`` target in [0, 1] (after any downscaling).
        reconstruction: ``(H, W, C)`` fitted image in [0, 1] (clipped; shifted by ``offset``).
        psnr: dB of ``reconstruction`` against ``image``.
        offset: ``(C,)`` constant added to the raw fit before measuring: 0 for value supervision;
            for gradient / Laplacian supervision the mean difference, the constant they cannot see.
        curve: ``[(step, psnr_db)]`` measured every ``eval_every`` steps and at the end.
        derivatives: gradient and Laplacian of the fitted function at every pixel.
        seconds: wall time of the fit.
        siren: the network config used.
        info: JSON-able record of the settings.
    """

    network: Siren
    image: np.ndarray
    reconstruction: np.ndarray
    psnr: float
    offset: np.ndarray
    curve: list[tuple[int, float]]
    derivatives: FieldDerivatives
    seconds: float
    siren: SirenConfig
    info: dict[str, Any] = field(default_factory=dict)


def aligned_psnr(raw: np.ndarray, image: np.ndarray, supervise: str) -> tuple[float, np.ndarray, np.ndarray]:
    """PSNR of a raw fit ``(H, W, C)`` against ``image`` after the allowed constant shift and clipping.

    Returns:
        ``(psnr_db, offset (C,), aligned reconstruction (H, W, C) in [0, 1])``.
    """
    if supervise == "values":
        offset = np.zeros(image.shape[2])
    else:
        offset = (image - raw).reshape(-1, image.shape[2]).mean(axis=0)
    rec = np.clip(raw + offset, 0.0, 1.0)
    return _psnr(rec, image), offset, rec


def fit_image(
    source: Union[PathLike, np.ndarray],
    output_dir: Optional[PathLike] = None,
    *,
    config: ImageConfig = ImageConfig(),
    siren: SirenConfig = SirenConfig(),
    train: TrainConfig = TrainConfig(checkpoint_every=0),
    device: Device = "cpu",
    progress: bool = True,
) -> ImageFitResult:
    """Fit an image file or array with a SIREN (or a baseline network) and measure its PSNR.

    Args:
        source: image path (PNG, JPEG, ...) or array ``(H, W)`` / ``(H, W, C)`` (see ``io.image``).
        output_dir: write the outputs listed in the module docstring here (created if needed,
            only after the input is validated). None: write nothing.
        config: activation, supervision, size and measurement settings.
        siren: width, depth and ``w0`` of the network; dimensions and activation come from the task.
        train: steps, learning rate, seed (checkpoints are not used here).
        device: torch device.
        progress: show a progress bar with loss and ETA.

    Returns:
        ``ImageFitResult``.

    Raises:
        InputError: unreadable file, an image smaller than 2x2, or an unusable output folder.
    """
    image = resize_max_side(load_image(source), config.max_side)
    if output_dir is not None:
        check_output_dir(output_dir)
    h, w, c = image.shape
    net_config = network_config(config.activation, siren, 2, c, max(h, w), config.num_frequencies)
    torch.manual_seed(train.seed)
    network = Siren(net_config).to(device)
    coords = pixel_coords(h, w, device)
    targets = image_targets(image, device)
    inner = make_image_step(network, coords, targets, config.supervise, config.batch_size, train.seed)
    curve: list[tuple[int, float]] = []

    def step_fn(step: int) -> dict[str, float]:
        if step % config.eval_every == 0:
            curve.append((step, aligned_psnr(render_image(network, h, w), image, config.supervise)[0]))
        return inner(step)

    t0 = time.perf_counter()
    result = fit(network, step_fn, train, progress=progress, desc=f"image {config.activation}/{config.supervise}")
    seconds = time.perf_counter() - t0
    network.eval()
    value, offset, rec = aligned_psnr(render_image(network, h, w), image, config.supervise)
    curve.append((train.steps, value))
    derivs = field_derivatives(network, h, w)
    name = str(source) if not isinstance(source, np.ndarray) else "array"
    info = {
        "source": name,
        "height": h,
        "width": w,
        "channels": c,
        "image": config_to_dict(config),
        "siren": config_to_dict(net_config),
        "train": config_to_dict(train),
        "final_loss": result.history[-1]["loss"] if result.history else None,
    }
    log.info("%s: PSNR %.2f dB after %d steps (%.1f s)", name, value, train.steps, seconds)
    out = ImageFitResult(network, image, rec, value, offset, curve, derivs, seconds, net_config, info)
    if output_dir is not None:
        write_image_outputs(out, output_dir)
    return out


def _gradient_magnitude(derivs: FieldDerivatives) -> np.ndarray:
    """``(H, W)`` norm of the gradient over channels and both axes, in image units (/2 from network units)."""
    return 0.5 * np.sqrt((derivs.gradients**2).sum(axis=(2, 3)))


def write_image_outputs(result: ImageFitResult, output_dir: PathLike) -> Path:
    """Write the outputs listed in the module docstring into ``output_dir`` (created if needed)."""
    out = prepare_output_dir(output_dir)
    save_image(result.reconstruction, out / "reconstruction.png")
    steps = [s for s, _ in result.curve]
    values = [v for _, v in result.curve]
    write_csv(["step", "psnr_db"], [(s, f"{v:.4f}") for s, v in result.curve], out / "psnr.csv")
    label = f"{result.info['image']['activation']}, {result.info['image']['supervise']}"
    save_curve(steps, {label: values}, out / "psnr.png", xlabel="step", ylabel="PSNR (dB)", title="PSNR of the fit over steps")
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
            "offset": result.offset.tolist(),
            "steps": result.curve[-1][0],
            "seconds": result.seconds,
            "psnr_definition": "dB over all pixels and channels, images in [0, 1], fit clipped to [0, 1]; "
            "gradient/Laplacian fits first shifted by the per-channel mean difference (the constant they cannot see)",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
