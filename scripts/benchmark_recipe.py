"""Time against quality for one training recipe: how the ``reconstruct`` defaults were chosen.

Samples a mesh of ../shared/data/shapes/ to 100k oriented points (area-weighted, seed 0), runs
``reconstruct`` with the given network, schedule and sampling, and compares the mesh with the
original (``neural_sdf.metrics.evaluate_meshes``). Optionally re-extracts the same fitted model at
more resolutions. One JSON line per result goes to stdout and is appended to ``--log``.

    .venv/bin/python scripts/benchmark_recipe.py --shape armadillo --hidden-dim 128 --steps 450 \\
        --lr 1e-3 --lr-final-ratio 0.05 --off-surface-ratio 0.5 --resolution 256 --extra-resolutions 384 512

The README's "Choosing the defaults" table lists the runs behind the defaults.
"""

import argparse
import dataclasses as dc
import json
import time
from pathlib import Path

from _shared import SHAPES_DIR

import neural_sdf as ns
from neural_sdf.config import replace_given
from neural_sdf.extract import connected_components
from neural_sdf.recipe import keep_explicit
from neural_sdf.sampling import sample_mesh_surface


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="armadillo",
                   help="a mesh of ../shared/data/shapes/ by name, or the path of any mesh file (ground truth)")
    p.add_argument("--input", type=Path, default=None,
                   help="fit this cloud instead of sampling the ground truth (e.g. data/torus.ply)")
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--hidden-dim", type=int, default=None)
    p.add_argument("--num-hidden-layers", type=int, default=None)
    p.add_argument("--w0-first", type=float, default=None)
    p.add_argument("--weight-normal", type=float, default=None)
    p.add_argument("--weight-surface", type=float, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lr-final-ratio", type=float, default=None)
    p.add_argument("--warmup-steps", type=int, default=None)
    p.add_argument("--w0", type=float, default=None, help="hidden layers' w0")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default=None,
                   help="hidden products of the fused step (default: the recipe's, auto)")
    p.add_argument("--seed", type=int, default=None, help="training seed (the cloud is always sampled with seed 0)")
    p.add_argument("--off-surface-ratio", type=float, default=None)
    p.add_argument("--near-surface-ratio", type=float, default=None)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--extra-resolutions", type=int, nargs="*", default=[])
    p.add_argument("--log", type=Path, default=Path("out/recipe.jsonl"))
    a = p.parse_args()
    gt_path = Path(a.shape) if Path(a.shape).suffix else SHAPES_DIR / f"{a.shape}.obj"
    if not gt_path.is_file():
        raise SystemExit(f"{gt_path}: ground-truth mesh not found")
    gt = ns.load_mesh(gt_path)
    cloud = ns.load_points(a.input) if a.input else sample_mesh_surface(gt, a.points, seed=0)

    o = ns.FitOptions()
    o = dc.replace(
        o,
        siren=replace_given(o.siren, hidden_dim=a.hidden_dim, num_hidden_layers=a.num_hidden_layers, w0_first=a.w0_first,
                             w0=a.w0),
        weights=replace_given(o.weights, normal=a.weight_normal, surface=a.weight_surface),
        train=replace_given(o.train, steps=a.steps, lr=a.lr, lr_final_ratio=a.lr_final_ratio,
                            warmup_steps=a.warmup_steps, seed=a.seed, checkpoint_every=0,
                            precision=a.precision),
        sampling=replace_given(o.sampling, batch_size=a.batch_size, off_surface_ratio=a.off_surface_ratio,
                      near_surface_ratio=a.near_surface_ratio),
    )
    # The given first-layer w0 and normal weight are kept, whatever the density and the normals.
    o = keep_explicit(o, [key for key, value in (("siren.w0_first", a.w0_first), ("weights.normal", a.weight_normal)) if value is not None])
    e = replace_given(ns.ExtractConfig(), resolution=a.resolution)
    t0 = time.perf_counter()
    result = ns.reconstruct(cloud, o, e, progress=False)
    total = time.perf_counter() - t0
    settings = {
        "shape": gt_path.stem, "input": str(a.input) if a.input else f"{a.points} samples",
        "hidden_dim": o.siren.hidden_dim, "layers": o.siren.num_hidden_layers, "w0_first": o.siren.w0_first,
        "w0": o.siren.w0, "warmup": o.train.warmup_steps, "seed": o.train.seed,
        "precision": o.train.precision,
        "weight_normal": o.weights.normal, "weight_surface": o.weights.surface,
        "steps": o.train.steps, "batch": o.sampling.batch_size, "lr": o.train.lr,
        "lr_final_ratio": o.train.lr_final_ratio, "off": o.sampling.off_surface_ratio,
        "near": o.sampling.near_surface_ratio, "fit_s": round(result.fit_seconds, 1), "total_s": round(total, 1),
        "surface_residual": result.model.info.get("surface_residual"),
    }
    a.log.parent.mkdir(parents=True, exist_ok=True)

    def report(mesh: ns.Mesh, resolution: int, seconds: float) -> None:
        m = ns.evaluate_meshes(mesh, gt)
        row = {
            **settings, "resolution": resolution, "extract_s": round(seconds, 1),
            "f05": round(m.fscore["0.5%"], 5), "nc": round(m.normal_consistency, 5),
            "chamfer_rel": float(f"{m.chamfer_l1_rel:.3e}"), "hausdorff_rel": float(f"{m.hausdorff_rel:.3e}"),
            "watertight": bool(mesh.to_trimesh().is_watertight),
            "pieces": int(connected_components(mesh).max() + 1) if not mesh.is_empty else 0,
        }
        print(json.dumps(row), flush=True)
        with a.log.open("a") as f:
            f.write(json.dumps(row) + "\n")

    report(result.mesh, e.resolution, result.extract_seconds)
    for res in a.extra_resolutions:
        t0 = time.perf_counter()
        mesh = ns.extract_mesh(result.model, dc.replace(e, resolution=res))
        report(mesh, res, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
