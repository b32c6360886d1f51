"""Fit the real clip ``../shared/data/video/bikes.mp4`` with the ``video`` command's presets; measure
per-frame PSNR and time, and temporal interpolation on held-out frames.

* ``--presets``: ``fit_video`` with each ``--quality`` in ``--qualities`` (defaults: 25 frames,
  256 pixels wide): mean / min per-frame PSNR, steps, wall time (set-up and measurements included).
* ``--interpolation``: the default preset fitted on the even frames only (of ``2 * 13 - 1``
  frames), evaluated at the odd frames' times (``k + 0.5`` of the even clip) and compared with
  the decoded odd frames, against the average of the two neighbouring even frames; one row per
  ``--w0-time`` value (0: the first layer's w0 along time too, as in the paper).

Writes ``scripts/results/video_presets.json`` / ``video_interpolation.json`` (``_results.write_results``)
and each run's outputs under ``--out``.

    python scripts/benchmark_video.py --presets --interpolation --threads 1 --out out/video
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from _results import RESULTS_DIR, write_results
from _shared import VIDEO_DIR

import neural_sdf as ns
from neural_sdf.apps.presets import video_preset
from neural_sdf.fields.video import frame_times, render_frames
from neural_sdf.io.video import VideoClip

CLIP = VIDEO_DIR / "bikes.mp4"


def presets(args: argparse.Namespace) -> None:
    rows = []
    for quality in args.qualities:
        r = ns.fit_video(args.video, args.out / f"preset_{quality}", quality=quality, progress=False)
        rows.append({"quality": quality, "psnr": r.psnr, "psnr_min": float(r.psnr_per_frame.min()), "steps": r.steps,
                     "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "frames": int(r.reconstruction.shape[0]), "height": int(r.reconstruction.shape[1]),
                     "width": int(r.reconstruction.shape[2]), "curve": r.curve, "expected_seconds": r.info["expected_seconds"]})
        print(f"{quality:8s} mean PSNR {r.psnr:.2f} dB (min {r.psnr_per_frame.min():.2f}) {r.steps} steps {r.seconds:.0f} s "
              f"(planned {r.info['expected_seconds']:.0f} s)", flush=True)
    write_results(RESULTS_DIR / "video_presets.json", {"command": "scripts/benchmark_video.py " + " ".join(sys.argv[1:]),
                                                       "clip": str(args.video), "rows": rows})


def interpolation(args: argparse.Namespace) -> None:
    base = video_preset("default")
    frames = 2 * args.even_frames - 1
    clip = ns.load_video(args.video, max_frames=frames, max_side=base.config.max_side)
    t, h, w, _ = clip.frames.shape
    even = VideoClip(clip.frames[0::2], clip.fps / 2)
    odd = np.arange(1, t - 1, 2)
    blend = [ns.psnr(0.5 * (clip.frames[k - 1] + clip.frames[k + 1]), clip.frames[k]) for k in odd]
    rows = []
    for w0_time in args.w0_time:
        config = dataclasses.replace(base.config, w0_time=w0_time)
        r = ns.fit_video(even, None, config=config, quality="default", progress=False)
        mids = np.clip(render_frames(r.network, frame_times((odd - 1) / 2 + 0.5, len(even.frames)), h, w, time_scale=r.time_scale), 0, 1)
        net = [ns.psnr(m, clip.frames[k]) for m, k in zip(mids, odd)]
        rows.append({"w0_time": w0_time, "fit_psnr": r.psnr, "between_psnr": float(np.mean(net)), "between_min": float(np.min(net)),
                     "neighbour_average_psnr": float(np.mean(blend)), "seconds": r.seconds, "steps": r.steps})
        print(f"w0_time {w0_time:5g}: fitted even frames {r.psnr:.2f} dB; odd frames at t + 0.5 {np.mean(net):.2f} dB "
              f"(min {np.min(net):.2f}); neighbour average {np.mean(blend):.2f} dB; {r.seconds:.0f} s", flush=True)
    write_results(RESULTS_DIR / f"video_interpolation{'_' + args.tag if args.tag else ''}.json", {
        "command": "scripts/benchmark_video.py " + " ".join(sys.argv[1:]), "clip": str(args.video), "frames": t,
        "height": h, "width": w, "held_out_frames": odd.tolist(), "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=CLIP)
    parser.add_argument("--out", type=Path, default=Path("out/video"))
    parser.add_argument("--presets", action="store_true")
    parser.add_argument("--qualities", nargs="*", default=["default"])
    parser.add_argument("--interpolation", action="store_true")
    parser.add_argument("--even-frames", type=int, default=13)
    parser.add_argument("--w0-time", type=float, nargs="*", default=[0.0, 15.0])
    parser.add_argument("--tag", default="", help="suffix of the interpolation result file")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if not args.video.exists():
        raise SystemExit(f"{args.video}: not found (the benchmark needs ../shared/data/video/bikes.mp4)")
    if args.presets:
        presets(args)
    if args.interpolation:
        interpolation(args)


if __name__ == "__main__":
    main()
