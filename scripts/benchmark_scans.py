"""Benchmark reconstruction from raw scans against Open3D screened Poisson (depth 9).

For each mesh in ../shared/data/shapes, 100k points are sampled and reconstructed in these
conditions: oriented (true normals), unoriented (normals dropped, then estimated and oriented),
noisy (Gaussian noise of 0.5% of the bounding-box diagonal, no normals), outliers (1% of points
uniform in the bounding box, no normals), noisy-oriented (0.5% noise, the exact normals given
with the file), thin (the shape squashed along its shortest side to 12% of its diagonal there,
0.5% noise, exact normals: a plate-like part). Poisson gets the same cleaned points with the same
normals our pipeline fitted (true ones when given), and its usual density trim (lowest 5%). Every
condition goes through the whole pipeline as a user's file would (``--normals auto``): clean-up,
the check of given normals, the fit. ``--json`` writes the rows to a results file.
Reports Chamfer-L1 (fraction of the diagonal), normal consistency, F-score at 1% and the number
of connected pieces; optionally reconstructs the real gargoyle scan and renders it, and measures
the peak resident memory of a CLI reconstruction of a large synthetic cloud.

    nice -n 5 python scripts/benchmark_scans.py --shapes fandisk --steps 300 --out bench_scans
    python scripts/benchmark_scans.py --memory 5000000 --steps 20 --out bench_scans
"""

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR as SHAPES
from _shared import poisson, run_measured

import neural_sdf as ns
from neural_sdf.cleanup import ScanConfig, prepare_cloud
from neural_sdf.config import replace_given
from neural_sdf.extract import connected_components

CONDITIONS = ("oriented", "unoriented", "noisy", "outliers", "noisy-oriented", "thin")
log = logging.getLogger("benchmark_scans")


def thin_variant(gt: ns.Mesh, thickness: float = 0.12) -> ns.Mesh:
    """``gt`` squashed along its shortest bounding-box side until that side is ``thickness`` of
    the diagonal (faces keep their winding, so normals stay outward)."""
    ext = np.ptp(gt.vertices, axis=0)
    axis = int(np.argmin(ext))
    v = gt.vertices.copy()
    others = float(np.linalg.norm(np.delete(ext, axis)))
    # Solve t = thickness * sqrt(t^2 + others^2) for the new extent t.
    target = thickness * others / np.sqrt(1.0 - thickness**2)
    v[:, axis] = (v[:, axis] - v[:, axis].mean()) * (target / ext[axis])
    return ns.Mesh(v, gt.faces)


def make_condition(gt: ns.Mesh, condition: str, num_points: int, seed: int) -> ns.PointCloud:
    """Sample ``gt`` and degrade the samples as ``condition`` says (``thin``: sample the thin variant)."""
    cloud = gt.sample(num_points, seed=seed)
    rng = np.random.default_rng(seed + 1)
    diag = float(np.linalg.norm(np.ptp(gt.vertices, axis=0)))
    if condition == "oriented":
        return cloud
    pts = cloud.points
    if condition in ("noisy-oriented", "thin"):
        return ns.PointCloud(pts + rng.normal(0, 0.005 * diag, pts.shape), cloud.normals)
    if condition == "noisy":
        pts = pts + rng.normal(0, 0.005 * diag, pts.shape)
    elif condition == "outliers":
        lo, hi = pts.min(0), pts.max(0)
        out = rng.uniform(lo, hi, size=(num_points // 100, 3))
        pts = np.vstack([pts, out])
    return ns.PointCloud(pts)


def pieces(mesh: ns.Mesh) -> int:
    return 0 if mesh.is_empty else int(connected_components(mesh).max()) + 1


def row(mesh: ns.Mesh, gt: ns.Mesh, seconds: float) -> dict:
    if mesh.is_empty:
        return {"chamfer_rel": float("nan"), "nc": float("nan"), "f05": float("nan"), "f1": float("nan"), "pieces": 0, "seconds": seconds}
    m = ns.evaluate_meshes(mesh, gt, num_samples=50_000)
    return {
        "chamfer_rel": m.chamfer_l1_rel, "nc": m.normal_consistency, "f05": m.fscore["0.5%"], "f1": m.fscore["1%"],
        "pieces": pieces(mesh), "seconds": seconds,
    }


def fit_options(args: argparse.Namespace, **fields) -> ns.FitOptions:
    """``reconstruct``'s defaults, with the flags that were given (and no checkpoints)."""
    o = ns.FitOptions(**fields)
    return dataclasses.replace(
        o,
        siren=replace_given(o.siren, hidden_dim=args.hidden_dim, num_hidden_layers=args.layers),
        train=replace_given(o.train, steps=args.steps, checkpoint_every=0, seed=args.seed),
        sampling=replace_given(o.sampling, batch_size=args.batch_size),
    )


def extract_config(args: argparse.Namespace) -> ns.ExtractConfig:
    return ns.ExtractConfig() if args.resolution is None else ns.ExtractConfig(resolution=args.resolution)


def run_shape(name: str, args: argparse.Namespace) -> list[dict]:
    original = ns.load_mesh(SHAPES / f"{name}.obj")
    rows = []
    for condition in args.conditions:
        gt = thin_variant(original) if condition == "thin" else original
        cloud = make_condition(gt, condition, args.points, args.seed)
        options = fit_options(args, scan=ScanConfig(normals="auto"))
        t0 = time.perf_counter()
        prepared = prepare_cloud(cloud, options.scan, seed=args.seed, progress=False)
        t_prep = time.perf_counter() - t0
        # The prepared cloud is fitted as is (its normals given, no second clean-up pass).
        again = dataclasses.replace(options, scan=ScanConfig(normals="given", denoise=False, dedupe=False))
        result = ns.reconstruct(prepared.cloud, again, extract_config(args), progress=not args.quiet)
        ours = row(result.mesh, gt, t_prep + result.fit_seconds + result.extract_seconds)
        t0 = time.perf_counter()
        ref = row(poisson(prepared.cloud), gt, time.perf_counter() - t0)
        entry = {
            "shape": name, "condition": condition, "ours": ours, "poisson": ref, "normals": prepared.normals_from,
            "points_kept": len(prepared.cloud) / len(cloud),
        }
        if cloud.normals is not None and len(prepared.cloud) == len(cloud):
            entry["normals_kept"] = float(np.mean(np.sum(prepared.cloud.normals * cloud.normals, axis=1) > 0))
        log.info("%s", json.dumps(entry))
        rows.append(entry)
        if args.out:
            ns.save_mesh(result.mesh, args.out / f"{name}_{condition}.ply")
    return rows


def run_gargoyle(args: argparse.Namespace) -> dict:
    options = fit_options(args)
    t0 = time.perf_counter()
    result = ns.reconstruct(SHAPES / "gargoyle_scan.ply", options, extract_config(args), progress=not args.quiet)
    seconds = time.perf_counter() - t0
    ns.save_mesh(result.mesh, args.out / "gargoyle.ply")

    # In a watched child: this render once hung in-process on the CPU Vulkan driver (README "Viewer").
    ns.save_image(ns.render_views_guarded([result.mesh], ns.RenderOptions(width=480, height=480, views=2)), args.out / "gargoyle.png")
    return {"pieces": pieces(result.mesh), "faces": len(result.mesh.faces), "seconds": seconds, "normals": result.model.info.get("normals_from")}


def run_memory(args: argparse.Namespace) -> dict:
    """Peak RSS of ``neural-sdf reconstruct`` on an N-point noisy sphere with 1% NaN rows."""
    rng = np.random.default_rng(args.seed)
    n = args.memory
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p += rng.normal(0, 0.002, p.shape)
    p[rng.random(n) < 0.01] = np.nan
    path = args.out / f"big_{n}.npy"
    np.save(path, p.astype(np.float32))
    del p
    cmd = [
        sys.executable, "-m", "neural_sdf.cli", "reconstruct", str(path), "-o", str(args.out / "big.ply"),
        "--no-checkpoint",
    ]
    for flag, value in (("--steps", args.steps), ("--hidden-dim", args.hidden_dim), ("--num-hidden-layers", args.layers), ("--resolution", args.resolution)):
        if value is not None:
            cmd += [flag, str(value)]
    proc, seconds, peak_mb = run_measured(cmd)
    path.unlink()
    return {"points": n, "exit": proc.returncode, "peak_rss_gb": peak_mb / 1024, "seconds": seconds, "stderr_tail": proc.stderr[-600:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=["spot", "armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"])
    ap.add_argument("--conditions", nargs="*", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=None, help="default: reconstruct's (FitOptions)")
    ap.add_argument("--hidden-dim", type=int, default=None, help="default: reconstruct's")
    ap.add_argument("--layers", type=int, default=None, help="default: reconstruct's")
    ap.add_argument("--resolution", type=int, default=None, help="default: reconstruct's (ExtractConfig)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: reconstruct's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gargoyle", action="store_true", help="also reconstruct and render the gargoyle scan")
    ap.add_argument("--memory", type=int, default=0, help="measure the peak RSS of the CLI on this many points")
    ap.add_argument("--out", type=Path, default=Path("bench_scans"))
    ap.add_argument("--json", type=Path, default=None, help="also write the rows (with the machine stamp) to this results file")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    if args.memory:
        report["memory"] = run_memory(args)
        print(json.dumps(report["memory"], indent=2))
    else:
        report["rows"] = [r for name in args.shapes for r in run_shape(name, args)]
        if args.gargoyle:
            report["gargoyle"] = run_gargoyle(args)
        print("| shape | condition | ours Chamfer | Poisson Chamfer | ours NC | Poisson NC | ours pieces | Poisson pieces |")
        print("|---|---|---|---|---|---|---|---|")
        for r in report["rows"]:
            o, p = r["ours"], r["poisson"]
            print(f"| {r['shape']} | {r['condition']} | {o['chamfer_rel']:.2e} | {p['chamfer_rel']:.2e} | {o['nc']:.3f} | {p['nc']:.3f} | {o['pieces']} | {p['pieces']} |")
        if "gargoyle" in report:
            print("gargoyle:", json.dumps(report["gargoyle"]))
    name = "memory.json" if args.memory else "results.json"
    (args.out / name).write_text(json.dumps(report, indent=2))
    if args.json is not None:
        from _results import write_results

        write_results(args.json, report)


if __name__ == "__main__":
    main()
