"""Measure what the clean-up and the given-normal repair do to good and bad input.

Rows (each measured in this one run, written to ``scripts/results/cleanup.json``):

* **scene**: the six shared shapes, each scaled to a unit diagonal, standing 2 apart on a 6 x 4 x
  0.05 slab (``neural_sdf.synthetic.tabletop_scene``), 100k exact oriented points per object and
  100k on the slab: points dropped as outliers, given normals changed (both should be 0).
* **scene + outliers**: the same with 0.5% uniform outliers in the scene's box (random unit
  normals): the share found, of all of them and of those farther than 3 local point spacings
  from the true surface, and valid points lost.
* **shapes**: each shape alone, 100k exact oriented points, clean and with Gaussian noise of 0.5%
  of the diagonal: points dropped, given normals changed; 20% of the normals flipped at random
  (independently of the sampling): agreement with the truth after the repair.
* **plate**: a 1 x 0.7 x 0.04 plate (3.3% of its diagonal thick), 100k points, 0.5% noise.
* **gargoyle**: the real scan with its own normals: points dropped, normals changed.

    python scripts/benchmark_cleanup.py
"""

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from _results import write_results
from _shared import SHAPES_DIR, on_folded_faces

import neural_sdf as ns
from neural_sdf.cleanup import find_outliers
from neural_sdf.normals import repair_normals
from neural_sdf.synthetic import box_mesh, tabletop_scene

SHAPES = ["spot", "armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"]


def _far_mask(scene, outliers: np.ndarray, factor: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each outlier to the true surface, and whether it exceeds ``factor`` local spacings."""
    import trimesh
    from scipy.spatial import cKDTree

    surface = trimesh.util.concatenate([m.to_trimesh() for m in [*scene.objects, scene.ground]])
    foot, dist, _ = trimesh.proximity.closest_point(surface, outliers)
    pts = scene.cloud.points
    tree = cKDTree(pts)
    own = tree.query(pts, k=2, workers=-1)[0][:, 1]
    local = np.median(own[tree.query(foot, k=16, workers=-1)[1]], axis=1)
    return dist, dist > factor * local


def scene_rows(points: int, ground: int, seed: int) -> dict:
    meshes = [ns.load_mesh(SHAPES_DIR / f"{n}.obj") for n in SHAPES]
    scene = tabletop_scene(meshes, points_per_object=points, ground_points=ground, seed=seed)
    pts, nrm = scene.cloud.points, scene.cloud.normals
    t0 = time.perf_counter()
    clean = find_outliers(pts, nrm)
    t_out = time.perf_counter() - t0
    t0 = time.perf_counter()
    repair = repair_normals(pts, nrm)
    t_nrm = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    out = rng.uniform(lo, hi, size=(len(pts) // 200, 3))
    onrm = rng.normal(size=out.shape)
    onrm /= np.linalg.norm(onrm, axis=1, keepdims=True)
    dirty = find_outliers(np.vstack([pts, out]), np.vstack([nrm, onrm]))
    found = dirty.mask[len(pts):]
    _, far = _far_mask(scene, out)
    return {
        "points": len(pts),
        "ground_points": int((scene.label < 0).sum()),
        "clean_dropped": int(clean.mask.sum()),
        "clean_normals_changed": repair.num_changed,
        "changed_on_folded_faces": on_folded_faces(scene, np.flatnonzero(repair.changed)),
        "outlier_seconds": t_out,
        "normals_seconds": t_nrm,
        "outliers": len(out),
        "outliers_far": int(far.sum()),
        "found_all": float(found.mean()),
        "found_far": float(found[far].mean()),
        "valid_dropped": int(dirty.mask[: len(pts)].sum()),
    }


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.sum(a * b, axis=1) > 0).mean())


def cloud_rows(name: str, cloud: ns.PointCloud, seed: int) -> list[dict]:
    diag = float(np.linalg.norm(np.ptp(cloud.points, axis=0)))
    rows = []
    for noise in (0.0, 0.005):
        rng = np.random.default_rng(seed + 2)
        pts = cloud.points + rng.normal(0, noise * diag, cloud.points.shape) if noise else cloud.points
        kept = repair_normals(pts, cloud.normals)
        flip = np.random.default_rng(seed + 3).random(len(pts)) < 0.2
        mixed = np.where(flip[:, None], -cloud.normals, cloud.normals)
        fixed = repair_normals(pts, mixed)
        rows.append({
            "cloud": name,
            "noise": noise,
            "dropped": int(find_outliers(pts, cloud.normals).mask.sum()),
            "normals_kept": 1.0 - float(kept.changed.mean()),
            "flips_repaired": _agreement(fixed.normals, cloud.normals),
        })
        logging.info("%s", json.dumps(rows[-1]))
    return rows


def gargoyle_row() -> dict:
    cloud = ns.load_points(SHAPES_DIR / "gargoyle_scan.ply")
    t = find_outliers(cloud.points, cloud.normals)
    r = repair_normals(cloud.points, cloud.normals)
    return {"points": len(cloud), "dropped": int(t.mask.sum()), "normals_changed": r.num_changed, "flipped_all": r.flipped_all}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100_000, help="points per object and per shape")
    ap.add_argument("--ground", type=int, default=100_000, help="points on the slab")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cleanup.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not SHAPES_DIR.is_dir():
        raise SystemExit(f"{SHAPES_DIR} is absent: this benchmark needs the shared shapes")
    result: dict = {"settings": {"points": args.points, "ground": args.ground, "seed": args.seed}}
    result["scene"] = scene_rows(args.points, args.ground, args.seed)
    logging.info("scene: %s", json.dumps(result["scene"]))
    rows = []
    for name in SHAPES:
        rows += cloud_rows(name, ns.load_mesh(SHAPES_DIR / f"{name}.obj").sample(args.points, seed=args.seed), args.seed)
    rows += cloud_rows("plate", box_mesh((0, 0, 0), (1.0, 0.7, 0.04)).sample(args.points, seed=args.seed), args.seed)
    result["clouds"] = rows
    result["gargoyle"] = gargoyle_row()
    logging.info("gargoyle: %s", json.dumps(result["gargoyle"]))
    write_results(args.out, result)


if __name__ == "__main__":
    main()
