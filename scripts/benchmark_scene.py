"""A synthetic scene of the shared shapes on a ground slab: ``neural-sdf reconstruct`` against Poisson.

The six shapes of ``../shared/data/shapes`` (repeated for more than six objects), each scaled to a
unit bounding-box diagonal, stand ``--spacing`` apart on a slab 0.05 thick reaching 1 unit beyond
the outer objects (6 x 4 x 0.05 for six), with ``--points`` exact oriented samples per object and
as many on the slab (``neural_sdf.synthetic.tabletop_scene``; the narrow gap where an object meets
the slab is not sampled, as no scanner sees into it). The cloud is written as a PLY and
reconstructed by the plain command a user would run (``neural-sdf reconstruct scene.ply -o
out.ply --jobs J``, in a child process, timed, peak memory from the child's rusage), and by
Open3D's screened Poisson at depth 10 and 11 on the same points (each in a child process too).

Per object, the meshes are cut to the object's box (above 1% of its diagonal over the slab, below
which the contact is hidden) and compared with the object's mesh: F-score at 0.5% and 1% of the
object's own diagonal, normal consistency, Chamfer-L1 (fraction of its diagonal), pieces. The
ground is present when 99% of samples of the slab's top (away from the objects) lie within 1% of
a unit of the mesh. ``--solo`` also reconstructs each object alone with the defaults (the NC bar).
``--objects 1 2 4 8`` runs the scene at several sizes and reports seconds per object and peak
memory (cost grows with the surface, not the box). Results: ``scripts/results/scene.json``.

    python scripts/benchmark_scene.py --solo
    python scripts/benchmark_scene.py --objects 1 2 4 8 --no-poisson
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _results import write_results
from _shared import SHAPES_DIR, on_folded_faces, run_measured

import neural_sdf as ns
from neural_sdf.extract import connected_components
from neural_sdf.synthetic import tabletop_scene

SHAPES = ["spot", "armadillo", "fandisk", "rocker_arm", "fertility", "scorpion"]
log = logging.getLogger("benchmark_scene")

_POISSON = """
import sys, numpy as np, open3d as o3d, time, json
pcd = o3d.io.read_point_cloud(sys.argv[1])
t0 = time.perf_counter()
mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=int(sys.argv[3]))
dens = np.asarray(dens)
mesh.remove_vertices_by_mask(dens < np.quantile(dens, 0.05))
seconds = time.perf_counter() - t0
o3d.io.write_triangle_mesh(sys.argv[2], mesh)
print(json.dumps({"seconds": seconds}))  # Poisson's own time; the peak is measured from outside (run_measured)
"""


def _crop(mesh: ns.Mesh, box: np.ndarray) -> ns.Mesh:
    if mesh.is_empty:
        return mesh
    c = mesh.vertices[mesh.faces].mean(axis=1)
    keep = np.all((c >= box[0]) & (c <= box[1]), axis=1)
    faces = mesh.faces[keep]
    used = np.unique(faces)
    remap = np.full(len(mesh.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return ns.Mesh(mesh.vertices[used], remap[faces])


def _pieces(mesh: ns.Mesh) -> int:
    return 0 if mesh.is_empty else int(connected_components(mesh).max()) + 1


def object_rows(mesh: ns.Mesh, scene, names: list[str]) -> list[dict]:
    rows = []
    for i, (obj, name) in enumerate(zip(scene.objects, names)):
        box = scene.object_bounds(i)
        diag = float(np.linalg.norm(box[1] - box[0]))
        cut = np.stack([box[0] - 0.02 * diag, box[1] + 0.02 * diag])
        cut[0, 2] = 0.01 * diag  # above the hidden contact with the slab
        pred, gt = _crop(mesh, cut), _crop(obj, cut)
        if pred.is_empty:
            rows.append({"object": name, "f05": 0.0, "f1": 0.0, "nc": float("nan"), "chamfer_rel": float("nan"), "pieces": 0})
            continue
        m = ns.evaluate_meshes(pred, gt, num_samples=100_000)
        rows.append({
            "object": name, "f05": float(m.fscore["0.5%"]), "f1": float(m.fscore["1%"]), "nc": float(m.normal_consistency),
            "chamfer_rel": float(m.chamfer_l1 / diag), "pieces": _pieces(pred),
        })
    return rows


def ground_present(mesh: ns.Mesh, scene, tolerance: float = 0.01) -> float:
    """Share of the slab's top (outside the objects' footprints) within ``tolerance`` of the mesh."""
    from scipy.spatial import cKDTree

    top = scene.ground.sample(200_000, seed=7).points
    top = top[np.abs(top[:, 2]) < 1e-9]
    for i in range(len(scene.objects)):
        b = scene.object_bounds(i)
        inside = np.all((top[:, :2] >= b[0, :2] - 0.05) & (top[:, :2] <= b[1, :2] + 0.05), axis=1)
        top = top[~inside]
    if mesh.is_empty or not len(top):
        return 0.0
    s = mesh.sample(2_000_000, seed=8).points
    dist, _ = cKDTree(s).query(top, k=1, workers=-1)
    return float((dist <= tolerance).mean())


def data_stage(scene, cloud_path: Path) -> dict:
    """What the data stage ``reconstruct`` runs first (``prepare_cloud`` with the default settings,
    the same function and settings as the command's) does to the clean scene: points dropped and
    given normals changed, and how many of those lie on faces the source meshes fold back (their
    own normals point against the surface there)."""
    from scipy.spatial import cKDTree

    from neural_sdf.cleanup import prepare_cloud

    prepared = prepare_cloud(str(cloud_path), progress=False)
    given = ns.load_points(cloud_path)  # the file as the command reads it, in the scene's order
    dist, index = cKDTree(given.points).query(prepared.cloud.points, workers=-1)
    assert float(dist.max()) == 0.0, "the data stage moved points"
    changed = index[np.sum(prepared.cloud.normals * given.normals[index], axis=1) < 0.999]
    return {
        "points_dropped": len(given) - len(prepared.cloud),
        "normals_changed": len(changed),
        "normals_changed_on_folded_faces": on_folded_faces(scene, changed),
        "normals_from": prepared.normals_from,
    }


def run_scene(num_objects: int, args: argparse.Namespace, work: Path) -> dict:
    names = [SHAPES[i % len(SHAPES)] for i in range(num_objects)]
    meshes = [ns.load_mesh(SHAPES_DIR / f"{n}.obj") for n in names]
    scene = tabletop_scene(meshes, spacing=args.spacing, points_per_object=args.points, ground_points=args.points, seed=args.seed)
    cloud_path = work / f"scene_{num_objects}.ply"
    ns.save_points(scene.cloud, cloud_path)
    entry: dict = {"objects": num_objects, "names": names, "points": len(scene.cloud), "extent": np.ptp(scene.cloud.points, axis=0).tolist()}
    entry["data"] = data_stage(scene, cloud_path)
    log.info("data stage (%d objects): %s", num_objects, entry["data"])
    out = work / f"ours_{num_objects}.ply"
    cmd = [sys.executable, "-m", "neural_sdf.cli", "reconstruct", str(cloud_path), "-o", str(out), "--jobs", str(args.jobs), *args.extra]
    proc, seconds, peak = run_measured(cmd)
    entry["command"] = " ".join(["neural-sdf", *cmd[3:]])
    plan = [line for line in proc.stderr.splitlines() if "plan:" in line]
    entry["ours"] = {"exit": proc.returncode, "seconds": seconds, "peak_rss_mb": peak, "plan": plan[-1] if plan else "", "stderr_tail": proc.stderr[-800:]}
    log.info("ours (%d objects): exit %d in %.1f s, %s", num_objects, proc.returncode, seconds, entry["ours"]["plan"])
    if proc.returncode == 0:
        mesh = ns.load_mesh(out)
        entry["ours"].update(objects=object_rows(mesh, scene, names), ground=ground_present(mesh, scene), pieces=_pieces(mesh), faces=len(mesh.faces))
    if not args.no_poisson:
        for depth in args.depths:
            pout = work / f"poisson{depth}_{num_objects}.ply"
            proc, seconds, peak = run_measured([sys.executable, "-c", _POISSON, str(cloud_path), str(pout), str(depth)])
            row: dict = {"exit": proc.returncode, "seconds": seconds, "peak_rss_mb": peak}
            if proc.returncode == 0:
                row["inner_seconds"] = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
                mesh = ns.load_mesh(pout)
                row.update(objects=object_rows(mesh, scene, names), ground=ground_present(mesh, scene), pieces=_pieces(mesh), faces=len(mesh.faces))
            entry[f"poisson{depth}"] = row
            log.info("poisson depth %d: %.1f s", depth, seconds)
    return entry


def solo_rows(args: argparse.Namespace) -> list[dict]:
    """Each shape alone (unit diagonal), defaults, cut like the scene's objects."""
    rows = []
    for name in SHAPES:
        scene = tabletop_scene([ns.load_mesh(SHAPES_DIR / f"{name}.obj")], points_per_object=args.points, ground_points=1_000, seed=args.seed)
        alone = scene.cloud.subset(scene.label == 0)
        t0 = time.perf_counter()
        result = ns.reconstruct(alone, progress=False)
        row = object_rows(result.mesh, scene, [name])[0]
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        log.info("solo %s: %s", name, row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, nargs="*", default=[6], help="scene sizes (objects) to run")
    ap.add_argument("--points", type=int, default=100_000, help="points per object and on the slab")
    ap.add_argument("--spacing", type=float, default=2.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--depths", type=int, nargs="*", default=[10, 11])
    ap.add_argument("--no-poisson", action="store_true")
    ap.add_argument("--solo", action="store_true", help="also reconstruct each object alone (defaults)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="keep the clouds and meshes in this folder")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scene.json")
    ap.add_argument("extra", nargs="*", help="extra flags for neural-sdf reconstruct (after --)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not SHAPES_DIR.is_dir():
        raise SystemExit(f"{SHAPES_DIR} is absent: this benchmark needs the shared shapes")
    with tempfile.TemporaryDirectory(prefix="bench_scene_") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        report: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "cpu_count": os.cpu_count()}
        report["scenes"] = [run_scene(n, args, work) for n in args.objects]
        if args.solo:
            report["solo"] = solo_rows(args)
    write_results(args.out, report)
    for entry in report["scenes"]:
        ours = entry["ours"]
        print(f"{entry['objects']} objects, {entry['points']:,} points: ours exit {ours['exit']} {ours['seconds']:.0f} s, peak {ours['peak_rss_mb']:.0f} MB; "
              + ", ".join(f"poisson d{d} {entry[f'poisson{d}']['seconds']:.0f} s" for d in args.depths if f"poisson{d}" in entry))
        for r in ours.get("objects", []):
            print(f"  {r['object']:<11} F@0.5% {r['f05']:.4f}  F@1% {r['f1']:.4f}  NC {r['nc']:.4f}  pieces {r['pieces']}")
        print(f"  ground {ours.get('ground', float('nan')):.4f}, pieces {ours.get('pieces')}, faces {ours.get('faces')}")
        data = entry["data"]
        print(f"  data stage: {data['points_dropped']} points dropped, {data['normals_changed']} given normals changed "
              f"({data['normals_changed_on_folded_faces']} on folded faces of the source meshes)")


if __name__ == "__main__":
    main()
