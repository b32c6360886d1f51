"""Fit the real clip ``../shared/data/video/bikes.mp4`` with SIREN and a ReLU P.E. baseline; measure
per-frame PSNR, and temporal interpolation on held-out frames.

1. Fit the first ``--frames`` frames (downscaled to ``--size`` pixels on the longer side) and
   report mean / min per-frame PSNR, for SIREN and ReLU with positional encoding (same network,
   steps and optimizer).
2. Interpolation: fit SIREN on the even frames only, evaluate it at the odd frames' (fractional)
   times and compare with the decoded odd frames, against the baseline of averaging the two
   neighbouring even frames.

Writes ``video.md``, ``video.json``, ``video_psnr.csv`` + ``video_psnr.png`` (per-frame PSNR) and
the full SIREN run's outputs (``siren/``) under ``--out``.

    python scripts/benchmark_video.py --out data/pictures/video --frames 16 --size 64 --steps 400
"""

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from _shared import VIDEO_DIR

import neural_sdf as ns
from neural_sdf.fields.video import frame_times, render_frames
from neural_sdf.io.video import VideoClip

CLIP = VIDEO_DIR / "bikes.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=CLIP)
    parser.add_argument("--out", type=Path, default=Path("out/video"))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--hidden-dim", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.video.exists():
        raise SystemExit(f"{args.video}: not found (the benchmark needs ../shared/data/video/bikes.mp4)")
    args.out.mkdir(parents=True, exist_ok=True)
    clip = ns.load_video(args.video, max_frames=args.frames, max_side=args.size)
    t, h, w, _ = clip.frames.shape
    siren = ns.SirenConfig(hidden_dim=args.hidden_dim)
    train = ns.TrainConfig(steps=args.steps, lr=args.lr, checkpoint_every=0)
    results = {"clip": str(args.video), "frames": t, "height": h, "width": w, "steps": args.steps,
               "hidden_dim": args.hidden_dim, "batch_size": args.batch_size, "lr": args.lr, "fits": {}}
    curves = {}
    for act in ("sine", "relu-pe"):
        config = ns.VideoConfig(activation=act, batch_size=args.batch_size, eval_every=max(args.steps // 8, 1))
        r = ns.fit_video(clip, args.out / ("siren" if act == "sine" else "relu_pe"), config=config, siren=siren, train=train)
        results["fits"][act] = {"mean_psnr": r.psnr, "min_psnr": float(r.psnr_per_frame.min()), "seconds": r.seconds}
        curves[act] = r.psnr_per_frame
        print(f"{act:8s} mean PSNR {r.psnr:.2f} dB (min {r.psnr_per_frame.min():.2f}) in {r.seconds:.0f} s", flush=True)
    # Temporal interpolation on held-out frames.
    even = VideoClip(clip.frames[0::2], clip.fps / 2)
    odd_idx = np.arange(1, t - 1, 2)
    r = ns.fit_video(even, None, config=ns.VideoConfig(batch_size=args.batch_size, eval_every=args.steps), siren=siren, train=train)
    te = len(even.frames)
    mids = np.clip(render_frames(r.network, frame_times((odd_idx - 1) / 2 + 0.5, te), h, w), 0, 1)
    net = [ns.psnr(m, clip.frames[k]) for m, k in zip(mids, odd_idx)]
    blend = [ns.psnr(0.5 * (clip.frames[k - 1] + clip.frames[k + 1]), clip.frames[k]) for k in odd_idx]
    results["interpolation"] = {"held_out_frames": odd_idx.tolist(), "siren_psnr": float(np.mean(net)),
                                "blend_psnr": float(np.mean(blend)), "even_fit_psnr": r.psnr}
    print(f"held-out odd frames: SIREN at t+0.5 {np.mean(net):.2f} dB, neighbour average {np.mean(blend):.2f} dB", flush=True)
    (args.out / "video.json").write_text(json.dumps(results, indent=1))
    with open(args.out / "video_psnr.csv", "w") as fh:
        fh.write("frame," + ",".join(curves) + "\n")
        for k in range(t):
            fh.write(f"{k}," + ",".join(f"{curves[a][k]:.4f}" for a in curves) + "\n")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    for act, c in curves.items():
        ax.plot(range(t), c, marker=".", label=act)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"bikes.mp4, {t} frames at {w}x{h}, {args.steps} steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(args.out / "video_psnr.png")
    lines = ["| fit | mean PSNR (dB) | min PSNR (dB) |", "|---|---|---|"]
    lines += [f"| {a} | {v['mean_psnr']:.2f} | {v['min_psnr']:.2f} |" for a, v in results["fits"].items()]
    i = results["interpolation"]
    lines += ["", f"Held-out odd frames ({len(odd_idx)}): SIREN fitted on even frames, evaluated at t + 0.5: "
              f"{i['siren_psnr']:.2f} dB; average of the two neighbouring frames: {i['blend_psnr']:.2f} dB."]
    (args.out / "video.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
