"""Benchmark of shape interpolation and shape spaces on the meshes in ``../shared/data/shapes``.

Measures, side by side in one run (same network size, same steps, same samples per shape):

1. a single-shape fit of every shape (``fit_sdf``), meshed and compared with its ground truth;
2. a shape space trained on the collection minus one held-back shape (``fit_shape_space``): each
   training shape decoded and meshed (the t=0 / t=1 frames of latent interpolation), Chamfer
   against the ground truth and its ratio to the single-shape fit (target: <= 1.5);
3. latent and blend interpolation between consecutive training shapes: every frame watertight
   and non-empty;
4. the held-back shape fitted through the space alone (``fit_latent``), Chamfer against the
   ground truth next to its full single-shape fit.

Writes ``OUT/benchmark_interpolation.json`` and ``OUT/benchmark_interpolation.png``.

Example (about 4 minutes on 2 idle CPU cores; results in README)::

    .venv/bin/python scripts/benchmark_interpolation.py --hidden 64 --space-steps 2400 -o out/interp64
"""

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR as DEFAULT_DATA

from neural_sdf import (
    ExtractConfig,
    FitOptions,
    LossWeights,
    SamplingConfig,
    SirenConfig,
    TrainConfig,
    evaluate_meshes,
    extract_mesh,
    fit_sdf,
    load_mesh,
)
from neural_sdf.config import ShapeSpaceConfig
from neural_sdf.fields.shape_space import SpaceOptions, fit_latent, fit_shape_space
from neural_sdf.interpolate import interpolate_meshes, interpolated_normalization

log = logging.getLogger("benchmark_interpolation")


def _closed(mesh) -> bool:
    return (not mesh.is_empty) and bool(mesh.to_trimesh().is_watertight)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of the shapes")
    ap.add_argument("--shapes", nargs="+", default=["armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"], help="training collection (file stems)")
    ap.add_argument("--held-out", default="spot", help="shape fitted through the space alone")
    ap.add_argument("--steps", type=int, default=600, help="steps of the single-shape and latent fits")
    ap.add_argument("--space-steps", type=int, default=None, help="steps of the space fit (default: --steps; each step sees every shape)")
    ap.add_argument("--hidden", type=int, default=64, help="SIREN width (48 left armadillo at 1.79x its single fit)")
    ap.add_argument("--layers", type=int, default=2, help="hidden sine layers")
    ap.add_argument("--batch", type=int, default=300, help="surface samples per shape and step")
    ap.add_argument("--points", type=int, default=20000, help="surface samples per mesh")
    ap.add_argument("--latent-dim", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--resolution", type=int, default=48)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--samples", type=int, default=20000, help="Chamfer samples per mesh")
    ap.add_argument("-o", "--output", type=Path, default=Path("bench_interp"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.output.mkdir(parents=True, exist_ok=True)

    names = list(args.shapes) + [args.held_out]
    gts = {}
    for n in names:
        path = next(iter(sorted(args.data.glob(f"{n}.*"))), None)
        if path is None:
            raise SystemExit(f"{args.data}: no shape {n!r}")
        gts[n] = load_mesh(path)
    clouds = {n: gts[n].sample(args.points, seed=0) for n in names}

    siren = SirenConfig(hidden_dim=args.hidden, num_hidden_layers=args.layers)
    train = TrainConfig(steps=args.steps, lr=args.lr, lr_final_ratio=0.1, checkpoint_every=0, log_every=50)
    sampling = SamplingConfig(batch_size=args.batch)
    extract = ExtractConfig(resolution=args.resolution)
    weights = LossWeights()

    def chamfer(mesh, name: str) -> float:
        if mesh.is_empty:
            return float("nan")
        return evaluate_meshes(mesh, gts[name], num_samples=args.samples, seed=0).chamfer_l1_rel

    result: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    t0 = time.perf_counter()
    single = {}
    for n in names:
        model = fit_sdf(clouds[n], FitOptions(siren=siren, train=train, sampling=sampling, weights=weights), progress=True)
        mesh = extract_mesh(model, extract)
        single[n] = {"model": model, "chamfer": chamfer(mesh, n), "closed": _closed(mesh)}
        log.info("single %s: Chamfer %.4g of diagonal", n, single[n]["chamfer"])
    t_single = time.perf_counter() - t0

    t0 = time.perf_counter()
    space_train = TrainConfig(steps=args.space_steps or args.steps, lr=args.lr, lr_final_ratio=0.1, checkpoint_every=0, log_every=50)
    options = SpaceOptions(siren=siren, train=space_train, sampling=sampling, weights=weights, space=ShapeSpaceConfig(latent_dim=args.latent_dim))
    space = fit_shape_space([clouds[n] for n in args.shapes], options, names=list(args.shapes), progress=True)
    t_space = time.perf_counter() - t0
    endpoints = {}
    for n in args.shapes:
        mesh = extract_mesh(space.shape_model(n), extract)
        c = chamfer(mesh, n)
        endpoints[n] = {"chamfer": c, "single_chamfer": single[n]["chamfer"], "ratio": c / single[n]["chamfer"], "closed": _closed(mesh)}
        log.info("space %s: Chamfer %.4g (single %.4g, ratio %.2f)", n, c, single[n]["chamfer"], endpoints[n]["ratio"])

    paths = []
    for a, b in zip(args.shapes[:-1], args.shapes[1:]):
        ma, mb = space.shape_model(a), space.shape_model(b)
        for method in ("latent", "blend"):
            if method == "latent":
                frames = interpolate_meshes(ma, mb, args.frames, extract, method="latent", space=space)
            else:
                frames = interpolate_meshes(single[a]["model"], single[b]["model"], args.frames, extract, method="blend")
            # Volumes in the frames' normalized units (the frame's world size moves from A's to B's).
            scales = [interpolated_normalization(ma.normalization, mb.normalization, f.t).scale for f in frames]
            vols = [abs(float(f.mesh.to_trimesh().volume)) * sc**3 if not f.mesh.is_empty else 0.0 for f, sc in zip(frames, scales)]
            paths.append({
                "a": a, "b": b, "method": method,
                "all_closed_non_empty": all(_closed(f.mesh) for f in frames),
                "closed": [_closed(f.mesh) for f in frames],
                "faces": [len(f.mesh.faces) for f in frames],
                "volumes": vols,
            })
            log.info("%s %s -> %s: all frames closed and non-empty: %s", method, a, b, paths[-1]["all_closed_non_empty"])

    t0 = time.perf_counter()
    held = fit_latent(clouds[args.held_out], space, train, sampling, weights, progress=True)
    t_latent = time.perf_counter() - t0
    mesh = extract_mesh(held, extract)
    held_c = chamfer(mesh, args.held_out)
    heldout = {"name": args.held_out, "latent_chamfer": held_c, "single_chamfer": single[args.held_out]["chamfer"],
               "ratio": held_c / single[args.held_out]["chamfer"], "closed": _closed(mesh)}
    log.info("held-out %s through the space: Chamfer %.4g (single %.4g)", args.held_out, held_c, heldout["single_chamfer"])

    result.update({
        "chamfer_definition": "Chamfer-L1 as a fraction of the ground truth's bounding-box diagonal (neural_sdf.metrics)",
        "single": {n: {"chamfer": v["chamfer"], "closed": v["closed"]} for n, v in single.items()},
        "space_endpoints": endpoints,
        "endpoint_ratio_max": max(v["ratio"] for v in endpoints.values()),
        "paths": paths,
        "held_out": heldout,
        "seconds": {"single_fits": t_single, "space_fit": t_space, "latent_fit": t_latent},
    })
    (args.output / "benchmark_interpolation.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, args.output / "benchmark_interpolation.png")
    log.info("wrote %s", args.output / "benchmark_interpolation.json")


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ends = result["space_endpoints"]
    names = list(ends) + [result["held_out"]["name"] + "\n(held out)"]
    single = [ends[n]["single_chamfer"] for n in ends] + [result["held_out"]["single_chamfer"]]
    space = [ends[n]["chamfer"] for n in ends] + [result["held_out"]["latent_chamfer"]]
    x = np.arange(len(names))
    ax1.bar(x - 0.2, single, 0.4, label="single-shape fit")
    ax1.bar(x + 0.2, space, 0.4, label="through the shape space")
    ax1.set_xticks(x, names, fontsize=8)
    ax1.set_ylabel("Chamfer-L1 / GT diagonal")
    ax1.legend()
    ax1.set_title("Endpoint and held-out reconstruction")
    for p in result["paths"]:
        v = np.asarray(p["volumes"])
        ax2.plot(np.linspace(0, 1, len(v)), v, "-o" if p["method"] == "latent" else "--x",
                 label=f"{p['method']} {p['a']}->{p['b']}")
    ax2.set_xlabel("t")
    ax2.set_ylabel("volume (normalized units)")
    ax2.set_title("Volume along interpolation paths")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
