"""Time to quality of image fits: which settings buy the most PSNR per second on this CPU.

Two parts, each one run, results side by side:

* ``--sweep``: variants of the default preset (width, depth, learning rate, batch of pixels or the
  full image, first-layer w0, float32 or bfloat16) each get the same wall-time budget. Their
  seconds per step are measured first, interleaved (a few steps of each in turn, medians), so
  that a shared machine slows every variant alike; each variant then runs ``budget / seconds
  per step`` steps with its cosine schedule over those steps, and its final PSNR is measured on
  every pixel.
* ``--compare``: SIREN (the default preset) against the relu, relu-pe, relu-ff and tanh
  baselines at equal wall time on each image: seconds per step measured interleaved, then each
  network runs the steps that fit in the time SIREN's default preset (or ``--compare-steps`` of
  it) takes (same batch, learning rate and schedule over its own steps; only the activation and
  its input encoding differ).
* ``--presets``: the ``image`` command's presets (``fast``, ``default``, ``high``) on 256 x 256
  crops of scikit-image's ``astronaut``, ``chelsea`` and ``coffee`` and on the 512 x 512
  ``astronaut``: PSNR, steps and wall time of ``fit_image`` with the preset's settings.
* ``--poisson``: Poisson reconstruction (``image --supervise gradient|laplacian``) of the
  256 x 256 ``camera`` (downscaled whole, as ``resize_max_side(sample_image('camera'), 256)``)
  with the presets of ``--qualities`` and the Laplacian losses of ``--laplacian-losses``: PSNR
  with the constant removed (and, for the pointwise loss, the affine ramp), steps, time.

Writes ``scripts/results/image_sweep_TAG.json`` / ``image_compare.json`` / ``image_presets.json`` /
``image_poisson_TAG.json`` (``_results.write_results``)
and PSNR-over-time pictures into ``--out``.

    python scripts/benchmark_image.py --sweep --budget 60 --out out/image_sweep
    python scripts/benchmark_image.py --presets --compare --threads 1 --out data/pictures/image_benchmark
    python scripts/benchmark_image.py --poisson --supervise laplacian --qualities fast default --threads 1 --tag energy
"""

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _results import RESULTS_DIR, plot_curves, write_results

import neural_sdf as ns
from neural_sdf.apps import build_network, make_forward, resolve_precision
from neural_sdf.apps.presets import image_preset
from neural_sdf.fields.image import image_targets, make_image_step, pixel_coords
from neural_sdf.io.image import as_image_array, resize_max_side

IMAGES = ("astronaut", "chelsea", "coffee")


def square_image(name: str, size: int) -> np.ndarray:
    """scikit-image's ``name``, centre-cropped to a square and downscaled (anti-aliased) to ``size``."""
    import skimage.data

    img = as_image_array(getattr(skimage.data, name)(), name)
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return resize_max_side(img, size)


def parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,key=value`` (keys of ImageConfig, SirenConfig or TrainConfig)."""
    name, _, rest = text.partition(":")
    values = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            values[key] = int(value)
        except ValueError:
            try:
                values[key] = float(value)
            except ValueError:
                values[key] = value
    return name, values


def apply(preset, values: dict):
    parts = {"config": {}, "siren": {}, "train": {}}
    for key, value in values.items():
        for part in parts:
            if key in {f.name for f in dataclasses.fields(getattr(preset, part))}:
                parts[part][key] = value
                break
        else:
            raise SystemExit(f"unknown setting {key!r}")
    return {part: dataclasses.replace(getattr(preset, part), **v) for part, v in parts.items()}


def step_seconds(image: np.ndarray, settings: list[dict], rounds: int = 4, steps: int = 3) -> list[float]:
    """Seconds per training step of each setting, measured in interleaved rounds (medians)."""
    h, w, c = image.shape
    coords = pixel_coords(h, w)
    targets = image_targets(image, derivatives=False)
    probes = []
    for s in settings:
        cfg, siren, train = s["config"], s["siren"], s["train"]
        net = build_network(cfg.activation, siren, 2, c, max(h, w), ff_features=cfg.ff_features, ff_scale=cfg.ff_scale)
        fwd = make_forward(net, resolve_precision(cfg.precision, "cpu"))
        opt = torch.optim.Adam(net.parameters(), lr=train.lr)
        probes.append((make_image_step(net, coords, targets, cfg.supervise, cfg.batch_size, 0, forward=fwd), opt))
    times = [[] for _ in settings]
    for _ in range(rounds + 1):
        for i, (step, opt) in enumerate(probes):
            t = time.perf_counter()
            for k in range(steps):
                opt.zero_grad(set_to_none=True)
                step(k)
                opt.step()
            times[i].append((time.perf_counter() - t) / steps)
    return [float(np.median(t[1:])) for t in times]


def sweep(args: argparse.Namespace) -> None:
    image = square_image(args.image, args.size)
    base = image_preset("default")
    variants = [("default", {})] + [parse_variant(v) for v in args.variant]
    settings = [apply(base, v) for _, v in variants]
    per_step = step_seconds(image, settings)
    rows = []
    for (name, values), s, sec in zip(variants, settings, per_step):
        steps = max(int(args.budget / sec), 1)
        train = dataclasses.replace(s["train"], steps=steps)
        cfg = dataclasses.replace(s["config"], eval_every=max(steps // 10, 1))
        r = ns.fit_image(image, config=cfg, siren=s["siren"], train=train, progress=False, derivatives=False)
        rows.append({"variant": name, "settings": values, "seconds_per_step": sec, "steps": steps, "psnr": r.psnr,
                     "seconds": r.seconds, "curve": r.curve})
        print(f"{name:28s} {sec * 1000:7.1f} ms/step  {steps:5d} steps  {r.psnr:6.2f} dB  ({r.seconds:.0f} s)", flush=True)
    write_results(RESULTS_DIR / f"image_sweep{args.tag_suffix}.json", {
        "command": "scripts/benchmark_image.py " + " ".join(args.raw), "image": args.image, "size": args.size,
        "budget_seconds": args.budget, "threads": torch.get_num_threads(), "base": "image_preset('default')", "rows": rows})
    _plot({r["variant"]: r["curve"] for r in rows}, args.out / f"sweep{args.tag_suffix}.png", f"{args.image} {args.size}px, {args.budget:g} s each")


ACTIVATIONS = ("sine", "relu", "relu-pe", "relu-ff", "tanh")


def compare(args: argparse.Namespace) -> None:
    base = image_preset("default")
    budget = args.compare_steps or base.train.steps  # SIREN's steps; the others get the same seconds
    rows = []
    for name in args.images:
        image = square_image(name, 256)
        settings = [apply(base, {"activation": a}) for a in ACTIVATIONS]
        per_step = step_seconds(image, settings)
        seconds = budget * per_step[0]
        curves = {}
        for act, s, sec in zip(ACTIVATIONS, settings, per_step):
            steps = max(int(round(seconds / sec)), 1)
            train = dataclasses.replace(s["train"], steps=steps)
            cfg = dataclasses.replace(s["config"], eval_every=max(steps // 10, 1))
            r = ns.fit_image(image, config=cfg, siren=s["siren"], train=train, progress=False, derivatives=False)
            rows.append({"image": name, "activation": act, "siren_steps": budget, "seconds_per_step": sec, "steps": steps, "psnr": r.psnr,
                         "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "curve": r.curve})
            curves[act] = r.curve
            write_results(RESULTS_DIR / f"image_compare{args.tag_suffix}.json", {
                "command": "scripts/benchmark_image.py " + " ".join(args.raw), "threads": torch.get_num_threads(),
                "base": "image_preset('default'), activation varied", "rows": rows})
            print(f"{name:10s} {act:8s} {sec * 1000:6.1f} ms/step {steps:5d} steps {r.psnr:6.2f} dB ({r.seconds:.0f} s)", flush=True)
        _plot(curves, args.out / f"compare_{name}.png", f"{name} 256px: activations at equal time ({seconds:.0f} s of steps)")


def presets(args: argparse.Namespace) -> None:
    rows = []
    jobs = [(name, 256, q) for q in args.qualities for name in args.images] + [("astronaut", 512, q) for q in args.qualities_512]
    curves = {}
    for name, size, quality in jobs:
        image = square_image(name, size)
        r = ns.fit_image(image, args.out / f"{name}_{size}_{quality}", quality=quality, progress=False)
        rows.append({"image": name, "size": size, "quality": quality, "psnr": r.psnr, "steps": r.steps,
                     "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "curve": r.curve,
                     "expected_seconds": r.info["expected_seconds"]})
        curves[f"{name} {size} {quality}"] = r.curve
        write_results(RESULTS_DIR / f"image_presets{args.tag_suffix}.json", {
            "command": "scripts/benchmark_image.py " + " ".join(args.raw), "threads": torch.get_num_threads(), "rows": rows})
        print(f"{name:10s} {size:4d} {quality:8s} {r.psnr:6.2f} dB  {r.steps:5d} steps  {r.seconds:6.1f} s (cpu {r.info['cpu_seconds']:.1f} s) "
              f"(planned {r.info['expected_seconds']:.0f} s)", flush=True)
    _plot(curves, args.out / "image_presets.png", "image presets: PSNR over time")


def poisson(args: argparse.Namespace) -> None:
    from neural_sdf.io.image import sample_image

    image = resize_max_side(sample_image("camera"), 256)
    rows, curves = [], {}
    jobs = [(sup, loss, q) for sup in args.supervise for loss in (args.laplacian_losses if sup == "laplacian" else ["-"])
            for q in args.qualities]
    for sup, loss, quality in jobs:
        config = image_preset(quality, sup, loss if loss != "-" else "energy").config
        name = f"{sup}_{loss}_{quality}" if loss != "-" else f"{sup}_{quality}"
        r = ns.fit_image(image, args.out / f"poisson_{name}", config=config, quality=quality, progress=False)
        rows.append({"supervise": sup, "laplacian_loss": r.info["image"]["laplacian_loss"] if sup == "laplacian" else None,
                     "quality": quality, "psnr": r.psnr, "psnr_constant_only": r.psnr_constant_only,
                     "ramp": r.ramp.tolist() if r.ramp is not None else None, "steps": r.steps, "kept_step": r.info.get("kept_step"),
                     "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "laplacian_blur": r.info["laplacian_blur"],
                     "curve": r.curve})
        curves[name] = r.curve
        write_results(RESULTS_DIR / f"image_poisson{args.tag_suffix}.json", {
            "command": "scripts/benchmark_image.py " + " ".join(args.raw), "threads": torch.get_num_threads(),
            "image": "resize_max_side(sample_image('camera'), 256)",
            "psnr_definition": "dB, image in [0, 1], fit clipped; psnr: the constant removed (and the affine ramp for "
            "the pointwise Laplacian loss), psnr_constant_only: the constant only", "rows": rows})
        print(f"{name:28s} {r.psnr:6.2f} dB (constant only {r.psnr_constant_only:6.2f})  {r.steps:5d} steps  "
              f"{r.seconds:6.1f} s (cpu {r.info['cpu_seconds']:.1f} s)", flush=True)
    _plot(curves, args.out / "image_poisson.png", "Poisson reconstruction of camera 256: PSNR over time")


def _plot(curves: dict, path: Path, title: str) -> None:
    plot_curves(curves, path, title)


def main() -> None:
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--presets", action="store_true")
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--poisson", action="store_true")
    parser.add_argument("--supervise", nargs="*", default=["gradient", "laplacian"], help="--poisson: what is fitted")
    parser.add_argument("--laplacian-losses", nargs="*", default=["energy"], help="--poisson: energy and/or pointwise")
    parser.add_argument("--image", default="astronaut", choices=IMAGES)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per sweep variant")
    parser.add_argument("--variant", action="append", default=[], help="name:key=value,... (repeatable)")
    parser.add_argument("--tag", default="", help="suffix of the result files (image_sweep_TAG.json, image_presets_TAG.json, ...)")
    parser.add_argument("--compare-steps", type=int, default=0, help="--compare: SIREN's steps (0: the default preset's)")
    parser.add_argument("--images", nargs="*", default=list(IMAGES), choices=IMAGES, help="--presets / --compare: images")
    parser.add_argument("--qualities", nargs="*", default=["default", "high"])
    parser.add_argument("--qualities-512", nargs="*", default=["default"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("out/image_benchmark"))
    args = parser.parse_args()
    args.raw = sys.argv[1:]
    args.tag_suffix = f"_{args.tag}" if args.tag else ""
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.sweep:
        sweep(args)
    if args.presets:
        presets(args)
    if args.compare:
        compare(args)
    if args.poisson:
        poisson(args)


if __name__ == "__main__":
    main()
