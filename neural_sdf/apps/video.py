"""Fit a video clip ``(t, row, col) -> colour`` with a SIREN and write the results.

SIREN paper, Sec. 4.1 (video). Outputs of ``fit_video(..., output_dir=OUT)``:
``reconstruction.mp4`` (the fitted clip at the source frame rate), ``psnr_per_frame.csv`` +
``psnr_per_frame.png``, ``psnr.csv`` + ``psnr.png`` (mean PSNR over steps),
``frames/frame_<k.5>.png`` (frames at fractional times, i.e. temporal interpolation),
``interpolation.png`` (fitted frames k, k + 0.5, k + 1 beside the decoded k, k + 1) and
``metrics.json`` (mean per-frame PSNR under ``psnr``).
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from .._typing import Device, PathLike
from ..config import SirenConfig, TrainConfig, VideoConfig, config_to_dict
from ..fields.video import frame_times, make_video_step, render_frames, video_targets
from ..io.image import save_image
from ..io.video import VideoClip, load_video, save_video
from ..metrics import psnr as _psnr
from ..nn import Siren
from ..train import fit
from ._common import check_output_dir, network_config, prepare_output_dir, save_curve, save_figure, write_csv, write_json

__all__ = ["VideoFitResult", "fit_video", "interpolation_times", "write_video_outputs"]

log = logging.getLogger(__name__)


@dataclass
class VideoFitResult:
    """What ``fit_video`` produced.

    Attributes:
        network: the fitted field ``(M, 3) -> (M, 3)`` on ``(t, row, col)`` in [-1, 1].
        clip: the decoded (and downscaled) target clip.
        reconstruction: ``(T, H, W, 3)`` fitted frames in [0, 1] (clipped).
        psnr_per_frame: ``(T,)`` dB of each fitted frame.
        psnr: mean of ``psnr_per_frame``.
        curve: ``[(step, mean_psnr_db)]`` every ``eval_every`` steps and at the end.
        interpolated: ``[(frame_index, (H, W, 3) frame)]`` at fractional frame indices.
        seconds: wall time of the fit.
        info: JSON-able record of the settings.
    """

    network: Siren
    clip: VideoClip
    reconstruction: np.ndarray
    psnr_per_frame: np.ndarray
    psnr: float
    curve: list[tuple[int, float]]
    interpolated: list[tuple[float, np.ndarray]]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def interpolation_times(num_frames: int, count: int) -> list[float]:
    """``count`` fractional frame indices ``k + 0.5``, spread evenly over the clip (none for a single frame)."""
    if num_frames < 2 or count < 1:
        return []
    ks = np.unique(np.linspace(0, num_frames - 2, count).round().astype(int))
    return [float(k) + 0.5 for k in ks]


def _per_frame_psnr(frames: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.array([_psnr(np.clip(f, 0, 1), g) for f, g in zip(frames, target)])


def fit_video(
    source: Union[PathLike, VideoClip],
    output_dir: Optional[PathLike] = None,
    *,
    config: VideoConfig = VideoConfig(),
    siren: SirenConfig = SirenConfig(),
    train: TrainConfig = TrainConfig(checkpoint_every=0),
    device: Device = "cpu",
    progress: bool = True,
) -> VideoFitResult:
    """Fit a video file with a SIREN (or a baseline) and measure per-frame PSNR.

    Args:
        source: video path (anything FFmpeg decodes), or an already decoded ``VideoClip`` (then
            ``config.frames`` still limits its length but ``config.max_side`` is not applied).
        output_dir: write the outputs listed in the module docstring here (created if needed,
            only after the input is validated). None: write nothing.
        config: frames, size, batch and measurement settings.
        siren: width, depth and ``w0``; dimensions and activation come from the task.
        train: steps, learning rate, seed.
        device: torch device.
        progress: show a progress bar with loss and ETA.

    Raises:
        InputError: unreadable file, not a video, zero frames, or an unusable output folder.
    """
    if isinstance(source, VideoClip):
        clip = VideoClip(source.frames[: config.frames or None], source.fps)
        source = "clip"
    else:
        clip = load_video(source, max_frames=config.frames, max_side=config.max_side)
    if output_dir is not None:
        check_output_dir(output_dir)
    t, h, w, c = clip.frames.shape
    net_config = network_config(config.activation, siren, 3, c, max(t, h, w), config.num_frequencies)
    torch.manual_seed(train.seed)
    network = Siren(net_config).to(device)
    targets = video_targets(clip.frames, device)
    inner = make_video_step(network, targets, (t, h, w), config.batch_size, train.seed)
    times = frame_times(np.arange(t), t)
    curve: list[tuple[int, float]] = []

    def step_fn(step: int) -> dict[str, float]:
        if step % config.eval_every == 0:
            curve.append((step, float(_per_frame_psnr(render_frames(network, times, h, w), clip.frames).mean())))
        return inner(step)

    t0 = time.perf_counter()
    result = fit(network, step_fn, train, progress=progress, desc=f"video {config.activation}")
    seconds = time.perf_counter() - t0
    network.eval()
    raw = render_frames(network, times, h, w)
    per_frame = _per_frame_psnr(raw, clip.frames)
    curve.append((train.steps, float(per_frame.mean())))
    ks = interpolation_times(t, config.num_interpolated)
    mids = render_frames(network, frame_times(ks, t), h, w) if ks else np.zeros((0, h, w, c))
    interpolated = [(k, np.clip(f, 0, 1)) for k, f in zip(ks, mids)]
    info = {
        "source": str(source),
        "frames": t,
        "height": h,
        "width": w,
        "fps": clip.fps,
        "video": config_to_dict(config),
        "siren": config_to_dict(net_config),
        "train": config_to_dict(train),
        "final_loss": result.history[-1]["loss"] if result.history else None,
    }
    log.info("%s: mean PSNR %.2f dB over %d frames after %d steps (%.1f s)", source, per_frame.mean(), t, train.steps, seconds)
    out = VideoFitResult(network, clip, np.clip(raw, 0, 1), per_frame, float(per_frame.mean()), curve, interpolated, seconds, info)
    if output_dir is not None:
        write_video_outputs(out, output_dir)
    return out


def write_video_outputs(result: VideoFitResult, output_dir: PathLike) -> Path:
    """Write the outputs listed in the module docstring into ``output_dir`` (created if needed)."""
    out = prepare_output_dir(output_dir)
    save_video(result.reconstruction, out / "reconstruction.mp4", fps=result.clip.fps)
    frames = np.arange(len(result.psnr_per_frame))
    write_csv(["frame", "psnr_db"], [(int(k), f"{v:.4f}") for k, v in zip(frames, result.psnr_per_frame)], out / "psnr_per_frame.csv")
    save_curve(frames.tolist(), {"fit": result.psnr_per_frame.tolist()}, out / "psnr_per_frame.png", xlabel="frame", ylabel="PSNR (dB)", title="PSNR of each fitted frame")
    write_csv(["step", "mean_psnr_db"], [(s, f"{v:.4f}") for s, v in result.curve], out / "psnr.csv")
    save_curve([s for s, _ in result.curve], {"mean over frames": [v for _, v in result.curve]}, out / "psnr.png", xlabel="step", ylabel="mean PSNR (dB)", title="PSNR of the fit over steps")
    if result.interpolated:
        (out / "frames").mkdir(exist_ok=True)
        for k, frame in result.interpolated:
            save_image(frame, out / "frames" / f"frame_{k:06.1f}.png")
        rows = len(result.interpolated)
        from matplotlib.figure import Figure

        aspect = result.reconstruction.shape[1] / result.reconstruction.shape[2]
        fig = Figure(figsize=(15, rows * (3.0 * aspect + 0.35) + 0.2), dpi=100, layout="constrained")
        axes = fig.subplots(rows, 5, squeeze=False)
        for row, (k, mid) in enumerate(result.interpolated):
            a, b = int(k - 0.5), int(k + 0.5)
            panels = [
                (result.clip.frames[a], f"decoded {a}"),
                (result.reconstruction[a], f"fit {a}"),
                (mid, f"fit {k:g} (interpolated)"),
                (result.reconstruction[b], f"fit {b}"),
                (result.clip.frames[b], f"decoded {b}"),
            ]
            for ax, (img, title) in zip(axes[row], panels):
                ax.imshow(np.clip(img, 0, 1))
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        save_figure(fig, out / "interpolation.png")
    write_json(
        {
            "psnr": result.psnr,
            "psnr_min": float(result.psnr_per_frame.min()),
            "psnr_max": float(result.psnr_per_frame.max()),
            "steps": result.curve[-1][0],
            "seconds": result.seconds,
            "interpolated_frames": [k for k, _ in result.interpolated],
            "psnr_definition": "mean over frames of the per-frame PSNR (dB, frames in [0, 1], fit clipped)",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
