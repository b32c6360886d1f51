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
from ..fields.video import frame_times, make_video_step, render_frames, render_samples, video_targets
from ..io.image import save_image
from ..io.video import VideoClip, load_video, save_video
from ..metrics import psnr as _psnr
from ..nn import Siren
from ._common import (
    build_network,
    check_output_dir,
    describe_network,
    format_seconds,
    make_forward,
    prepare_output_dir,
    resolve_precision,
    run_fit,
    run_record,
    save_curve,
    save_figure,
    time_steps,
    write_csv,
    write_json,
)
from .presets import video_preset

__all__ = ["VideoFitResult", "fit_video", "interpolation_times", "write_video_outputs", "EVAL_SAMPLES"]

log = logging.getLogger(__name__)

EVAL_SAMPLES = 65536
"""Samples of the clip (fixed, seeded) whose PSNR is measured during a fit; the final PSNR uses every pixel."""


@dataclass
class VideoFitResult:
    """What ``fit_video`` produced.

    Attributes:
        network: the fitted field ``(M, 3) -> (M, 3)`` on ``(t, row, col)`` in [-1, 1].
        clip: the decoded (and downscaled) target clip.
        reconstruction: ``(T, H, W, 3)`` fitted frames in [0, 1] (clipped).
        psnr_per_frame: ``(T,)`` dB of each fitted frame.
        psnr: mean of ``psnr_per_frame``.
        curve: ``[(step, seconds, psnr_db)]`` at step 0, every ``eval_every`` steps (PSNR of
            ``EVAL_SAMPLES`` fixed random samples) and at the end (mean per-frame PSNR).
        interpolated: ``[(frame_index, (H, W, 3) frame)]`` at fractional frame indices.
        seconds: wall time of the fit (measurements included).
        steps: optimizer steps taken.
        time_scale: factor on the time coordinate (``fields.video``): ``w0_time / w0_first``, or 1.
        info: JSON-able record of the settings.
    """

    network: Siren
    clip: VideoClip
    reconstruction: np.ndarray
    psnr_per_frame: np.ndarray
    psnr: float
    curve: list[tuple[int, float, float]]
    interpolated: list[tuple[float, np.ndarray]]
    seconds: float
    steps: int
    time_scale: float
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
    config: Optional[VideoConfig] = None,
    siren: Optional[SirenConfig] = None,
    train: Optional[TrainConfig] = None,
    quality: str = "default",
    device: Device = "cpu",
    progress: bool = True,
) -> VideoFitResult:
    """Fit a video file with a SIREN (or a baseline) and measure per-frame PSNR.

    Args:
        source: video path (anything FFmpeg decodes), or an already decoded ``VideoClip`` (then
            ``config.frames`` still limits its length but ``config.max_side`` is not applied).
        output_dir: write the outputs listed in the module docstring here (created if needed,
            only after the input is validated). None: write nothing.
        config: frames, size, batch, time frequency, precision and measurement settings; None: the preset's.
        siren: width, depth and ``w0``; dimensions and activation come from the task; None: the preset's.
        train: steps, learning rate, seed; None: the preset's.
        quality: the preset (``presets.video_preset``) that fills the settings left as None.
        device: torch device.
        progress: show a progress bar with the PSNR and the ETA.

    Raises:
        InputError: unreadable file, not a video, zero frames, or an unusable output folder.
    """
    preset = video_preset(quality)
    config = config or preset.config
    siren = siren or preset.siren
    train = train or preset.train
    if isinstance(source, VideoClip):
        clip = VideoClip(source.frames[: config.frames or None], source.fps)
        source = "clip"
    else:
        clip = load_video(source, max_frames=config.frames, max_side=config.max_side)
    if output_dir is not None:
        check_output_dir(output_dir)
    t, h, w, c = clip.frames.shape
    network = build_network(
        config.activation, siren, 3, c, max(t, h, w), num_frequencies=config.num_frequencies,
        ff_features=config.ff_features, ff_scale=config.ff_scale, seed=train.seed, device=device,
    )
    time_scale = (config.w0_time / siren.w0_first) if config.w0_time else 1.0
    dtype = resolve_precision(config.precision, device)
    targets = video_targets(clip.frames, device)
    shape = (t, h, w)

    def make_step(net: Siren):  # noqa: ANN202
        return make_video_step(net, targets, shape, config.batch_size, train.seed, forward=make_forward(net, dtype), time_scale=time_scale)

    # PSNR during the fit on a fixed sample of the clip (seeded); every pixel at the end.
    n = targets.shape[0]
    sample = torch.as_tensor(np.sort(np.random.default_rng(train.seed).choice(n, min(n, EVAL_SAMPLES), replace=False)), device=device)
    sample_target = clip.frames.reshape(n, c)[sample.cpu().numpy()]

    def measure() -> float:
        raw = (render_samples(network, sample, shape, time_scale).double().cpu().numpy() + 1.0) / 2.0
        return _psnr(np.clip(raw, 0.0, 1.0), sample_target)

    step_seconds = time_steps(make_step, network, train.lr)
    t_eval = time.perf_counter()
    measure()
    expected = train.steps * step_seconds + (train.steps // config.eval_every + 2) * (time.perf_counter() - t_eval)
    target = config.target_psnr or None
    log.info(
        "plan: %s (%d frames of %dx%d): %s%s; %d steps of %d random samples, lr %g%s, %s hidden layers; expected %s%s",
        source, t, w, h, describe_network(network, config.activation),
        f", w0 {config.w0_time:g} along time" if config.w0_time else "", train.steps, config.batch_size, train.lr,
        f" cosine to {train.lr * train.lr_final_ratio:.2g}" if train.lr_final_ratio < 1 else "",
        "bfloat16" if dtype == torch.bfloat16 else "float32",
        format_seconds(expected), f" (less if it reaches {target:g} dB first)" if target else "",
    )
    run = run_fit(
        network, make_step(network), train, measure, eval_every=config.eval_every, target=target,
        label=f"video {config.activation}", metric="PSNR dB", progress=progress,
        keep_best=True,
    )
    network.eval()
    times = frame_times(np.arange(t), t)
    raw = render_frames(network, times, h, w, time_scale=time_scale)
    per_frame = _per_frame_psnr(raw, clip.frames)
    last = (run.curve[-1][0], run.curve[-1][1], float(per_frame.mean()))
    curve = run.curve[:-1] + [last] if run.best_step == run.steps else run.curve
    ks = interpolation_times(t, config.num_interpolated)
    mids = render_frames(network, frame_times(ks, t), h, w, time_scale=time_scale) if ks else np.zeros((0, h, w, c))
    interpolated = [(k, np.clip(f, 0, 1)) for k, f in zip(ks, mids)]
    info = {
        "source": str(source),
        "frames": t,
        "height": h,
        "width": w,
        "fps": clip.fps,
        "video": config_to_dict(config),
        **run_record(run, network, train, quality=quality, expected=expected, dtype=dtype),
    }
    log.info("%s: mean PSNR %.2f dB over %d frames after %d steps (%.1f s)", source, per_frame.mean(), t, run.steps, run.seconds)
    out = VideoFitResult(network, clip, np.clip(raw, 0, 1), per_frame, float(per_frame.mean()), curve, interpolated, run.seconds, run.steps, time_scale, info)
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
    write_csv(["step", "seconds", "psnr_db"], [(s, f"{t:.2f}", f"{v:.4f}") for s, t, v in result.curve], out / "psnr.csv")
    save_curve([t for _, t, _ in result.curve], {"PSNR": [v for _, _, v in result.curve]}, out / "psnr.png", xlabel="seconds", ylabel="PSNR (dB)",
               title="PSNR of the fit over time (sampled pixels; last point: mean per frame)")
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
            "steps": result.steps,
            "seconds": result.seconds,
            "interpolated_frames": [k for k, _ in result.interpolated],
            "psnr_definition": "mean over frames of the per-frame PSNR (dB, frames in [0, 1], fit clipped)",
            **result.info,
        },
        out / "metrics.json",
    )
    return out
