"""Reconstruction quality on the real shapes: neural_sdf vs Open3D screened Poisson (depth 9).

Each mesh in ../shared/data/shapes/ is sampled to 100k oriented points (area-weighted, seed 0);
both methods reconstruct from the same points; both results are compared with the original mesh
(``neural_sdf.metrics.evaluate_meshes``: 100k samples per mesh). Poisson is reported as the better
(by F-score at 0.5%) of its raw output and the usual 2% density trim.

    .venv/bin/python scripts/benchmark_quality.py [--shapes spot armadillo ...] [--quality default]
        [--steps N] [--resolution R] [--out out/quality]

With ``--cli`` our time is the wall time of the ``neural-sdf reconstruct CLOUD -o MESH`` command in
a fresh process (the cloud written as a binary PLY first): the time-to-quality measure.

Prints a Markdown table and writes ``OUT/quality.json`` and the meshes.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR

import neural_sdf as ns
from neural_sdf.extract import connected_components
from neural_sdf.sampling import sample_mesh_surface

MESHES = ["spot", "armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"]


def poisson(cloud: ns.PointCloud, depth: int = 9) -> tuple[ns.Mesh, ns.Mesh, float]:
    """Open3D screened Poisson: (raw mesh, 2%-density-trimmed mesh, seconds)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.normals = o3d.utility.Vector3dVector(cloud.normals)
    t0 = time.perf_counter()
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth)
    seconds = time.perf_counter() - t0
    raw = ns.Mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles))
    dens = np.asarray(dens)
    trimmed = o3d.geometry.TriangleMesh(mesh)
    trimmed.remove_vertices_by_mask(dens < np.quantile(dens, 0.02))
    trim = ns.Mesh(np.asarray(trimmed.vertices), np.asarray(trimmed.triangles))
    return raw, trim, seconds


def describe(mesh: ns.Mesh) -> dict:
    """Watertightness and number of connected pieces."""
    return {
        "watertight": bool(mesh.to_trimesh().is_watertight),
        "pieces": int(connected_components(mesh).max() + 1) if not mesh.is_empty else 0,
        "faces": int(len(mesh.faces)),
    }


def metrics_row(pred: ns.Mesh, gt: ns.Mesh) -> dict:
    m = ns.evaluate_meshes(pred, gt)
    return {
        "f05": m.fscore["0.5%"],
        "f1": m.fscore["1%"],
        "nc": m.normal_consistency,
        "chamfer_rel": m.chamfer_l1_rel,
        "hausdorff_rel": m.hausdorff_rel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=MESHES)
    parser.add_argument("--quality", default=None, help="reconstruct preset (fast, default, high) if available")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("out/quality"))
    parser.add_argument("--cli", action="store_true",
                        help="time ours end to end as a user runs it: the cloud written as a binary PLY, then "
                        "`neural-sdf reconstruct CLOUD -o MESH` in a fresh process (imports, loading, fit, extraction, writing)")
    args = parser.parse_args()
    if not SHAPES_DIR.is_dir():
        raise SystemExit(f"{SHAPES_DIR}: shapes folder not found")
    args.out.mkdir(parents=True, exist_ok=True)
    options, extract = reconstruct_settings(args)
    rows = []
    for name in args.shapes:
        gt = ns.load_mesh(SHAPES_DIR / f"{name}.obj")
        cloud = sample_mesh_surface(gt, args.points, seed=0)
        if args.cli:
            mesh, ours = reconstruct_cli(cloud, args.out / f"{name}_100k.ply", args.out / f"{name}_ours.ply", args)
        else:
            t0 = time.perf_counter()
            result = ns.reconstruct(cloud, options, extract, progress=True)
            total = time.perf_counter() - t0
            mesh = result.mesh
            ns.save_mesh(mesh, args.out / f"{name}_ours.ply")
            ours = {"fit_s": result.fit_seconds, "extract_s": result.extract_seconds, "total_s": total}
        ours = {**metrics_row(mesh, gt), **describe(mesh), **ours}
        raw, trim, p_s = poisson(cloud)
        p_raw, p_trim = metrics_row(raw, gt), metrics_row(trim, gt)
        best, which = (p_raw, "raw") if p_raw["f05"] >= p_trim["f05"] else (p_trim, "trim2%")
        ns.save_mesh(raw if which == "raw" else trim, args.out / f"{name}_poisson.ply")
        pois = {**best, **describe(raw if which == "raw" else trim), "variant": which, "total_s": p_s}
        rows.append({"shape": name, "ours": ours, "poisson": pois})
        print_row(rows[-1], flush=True)
        (args.out / "quality.json").write_text(json.dumps({"settings": settings_record(options, extract), "rows": rows}, indent=2))
    print_table(rows)


def reconstruct_cli(cloud: ns.PointCloud, cloud_path: Path, mesh_path: Path, args: argparse.Namespace) -> tuple[ns.Mesh, dict]:
    """Write ``cloud``, run the ``neural-sdf reconstruct`` command on it, return the mesh and its wall time."""
    import subprocess
    import sys

    ns.save_points(cloud, cloud_path)
    cmd = [str(Path(sys.executable).with_name("neural-sdf")), "reconstruct", str(cloud_path), "-o", str(mesh_path),
           "--quiet", "--no-checkpoint"]
    if args.quality:
        cmd += ["--quality", args.quality]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    total = time.perf_counter() - t0
    return ns.load_mesh(mesh_path), {"fit_s": None, "extract_s": None, "total_s": total, "command": " ".join(cmd)}


def reconstruct_settings(args: argparse.Namespace):
    presets = getattr(ns, "quality_preset", None)
    if args.quality and presets is not None:
        options, extract = presets(args.quality)
    else:
        options, extract = ns.FitOptions(), ns.ExtractConfig()
    import dataclasses

    if args.steps:
        options = dataclasses.replace(options, train=dataclasses.replace(options.train, steps=args.steps))
    if args.resolution:
        extract = dataclasses.replace(extract, resolution=args.resolution)
    return options, extract


def settings_record(options, extract) -> dict:
    from neural_sdf.config import config_to_dict

    return {"fit": config_to_dict(options), "extract": config_to_dict(extract)}


def print_row(row: dict, flush: bool = False) -> None:
    o, p = row["ours"], row["poisson"]
    print(
        f"{row['shape']}: ours F0.5={o['f05']:.4f} NC={o['nc']:.4f} CD={o['chamfer_rel']:.2e} HD={o['hausdorff_rel']:.2e} "
        f"wt={o['watertight']} pieces={o['pieces']} time={o['total_s']:.0f}s | poisson({p['variant']}) F0.5={p['f05']:.4f} "
        f"NC={p['nc']:.4f} CD={p['chamfer_rel']:.2e} HD={p['hausdorff_rel']:.2e} wt={p['watertight']} pieces={p['pieces']}",
        flush=flush,
    )


def print_table(rows: list) -> None:
    print()
    print("| shape | F@0.5% ours | F@0.5% Poisson | NC ours | NC Poisson | NC gap | Chamfer-L1/diag ours | Poisson | Hausdorff/diag ours | Poisson | watertight, pieces (ours) | fit + extract (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, p = r["ours"], r["poisson"]
        print(
            f"| {r['shape']} | {o['f05']:.4f} | {p['f05']:.4f} ({p['variant']}) | {o['nc']:.4f} | {p['nc']:.4f} | {o['nc'] - p['nc']:+.4f} | "
            f"{o['chamfer_rel']:.2e} | {p['chamfer_rel']:.2e} | {o['hausdorff_rel']:.2e} | {p['hausdorff_rel']:.2e} | "
            f"{'yes' if o['watertight'] else 'NO'}, {o['pieces']} | "
            + (f"{o['fit_s']:.0f} + {o['extract_s']:.0f} |" if o["fit_s"] is not None else f"{o['total_s']:.1f} end to end |")
        )


if __name__ == "__main__":
    main()
