"""Shells with holes: does the fit put surface where no point supports it? Before/after, and Poisson.

For each shared shape, 100k exact oriented samples of the closed mesh and of the mesh with
``--holes`` round patches of faces deleted (each ``--hole-fraction`` of its area: real scans have
holes where the sensor could not see). Each cloud is reconstructed with the default recipe
("after"), with the recipe minus the free-space sign term ("before", ``weights.sign = 0``), and by
Open3D's screened Poisson (depth 9, 5% density trim). Per run: the output's area over the closed
mesh's area (caps over the holes are right, a second wall is not), the share of the output's area
within 1% of the diagonal of an input point, pieces, F@0.5% and normal consistency against the
closed mesh, seconds. Results: ``scripts/results/holes.json``.

    python scripts/benchmark_holes.py
    python scripts/benchmark_holes.py --shapes armadillo --hole-fraction 0.005
"""

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
from _results import write_results
from _shared import SHAPES_DIR, poisson

import neural_sdf as ns
from neural_sdf.extract import connected_components
from neural_sdf.synthetic import cut_holes

SHAPES = ["spot", "armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"]
log = logging.getLogger("benchmark_holes")


def area(mesh: ns.Mesh) -> float:
    return float(mesh.face_areas().sum())


def supported_share(mesh: ns.Mesh, points: np.ndarray, tolerance: float, samples: int = 200_000) -> float:
    """Share of the mesh's area within ``tolerance`` of an input point (area-weighted samples)."""
    from scipy.spatial import cKDTree

    s = mesh.sample(samples, seed=1).points
    dist, _ = cKDTree(points).query(s, k=1, workers=-1)
    return float((dist <= tolerance).mean())


def row(mesh: ns.Mesh, gt: ns.Mesh, points: np.ndarray, seconds: float) -> dict:
    diag = float(np.linalg.norm(np.ptp(gt.vertices, axis=0)))
    if mesh.is_empty:
        return {"area_ratio": 0.0, "supported": 0.0, "pieces": 0, "f05": 0.0, "nc": float("nan"), "seconds": seconds}
    m = ns.evaluate_meshes(mesh, gt, num_samples=100_000)
    return {
        "area_ratio": area(mesh) / area(gt),
        "supported": supported_share(mesh, points, 0.01 * diag),
        "pieces": int(connected_components(mesh).max()) + 1,
        "f05": float(m.fscore["0.5%"]),
        "nc": float(m.normal_consistency),
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=SHAPES)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--holes", type=int, default=4)
    ap.add_argument("--hole-fraction", type=float, default=0.002, help="area of each hole, as a fraction of the mesh's")
    ap.add_argument("--conditions", nargs="*", default=["closed", "holed"], choices=["closed", "holed"])
    ap.add_argument("--no-before", action="store_true", help="skip the run without the sign term")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "holes.json")
    ap.add_argument("--meshes", type=Path, default=None, help="also write every mesh into this folder")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not SHAPES_DIR.is_dir():
        raise SystemExit(f"{SHAPES_DIR} is absent: this benchmark needs the shared shapes")
    after = ns.FitOptions()
    before = dataclasses.replace(after, weights=dataclasses.replace(after.weights, sign=0.0))
    methods = {"after": after} if args.no_before else {"before": before, "after": after}
    rows = []
    for name in args.shapes:
        gt = ns.load_mesh(SHAPES_DIR / f"{name}.obj")
        for condition in args.conditions:
            source = cut_holes(gt, args.holes, args.hole_fraction, seed=args.seed) if condition == "holed" else gt
            cloud = source.sample(args.points, seed=args.seed)
            entry = {"shape": name, "condition": condition, "input_area_ratio": area(source) / area(gt)}
            for label, options in methods.items():
                t0 = time.perf_counter()
                result = ns.reconstruct(cloud, options, progress=False)
                entry[label] = row(result.mesh, gt, cloud.points, time.perf_counter() - t0)
                if args.meshes:
                    args.meshes.mkdir(parents=True, exist_ok=True)
                    ns.save_mesh(result.mesh, args.meshes / f"{name}_{condition}_{label}.ply")
            t0 = time.perf_counter()
            entry["poisson"] = row(poisson(cloud), gt, cloud.points, time.perf_counter() - t0)
            log.info("%s", entry)
            rows.append(entry)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_results(args.out, {"settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
