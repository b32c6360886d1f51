"""Real scene scans, one plain ``neural-sdf reconstruct`` each: coverage, time, tiles, pictures.

The two RGB-D / stereo table-top frames of ``../shared/data/scenes`` (no normals, NaN pixels,
sensor noise; metres, camera at the origin looking along +z) and the airborne LiDAR tile
``autzen_trim.laz`` (map units, around (636000, 849000, 400)). Each is reconstructed by the command
a user would run (``neural-sdf reconstruct FILE -o OUT --jobs 2``, in a child process, timed).

Per frame: the share of the finite points within 2 cm of the mesh, and the share of the mesh's
area within 5 cm of a point (area-weighted mesh samples), pieces, tiles, faces, seconds; Open3D's
screened Poisson at depth 9 on normals estimated and oriented towards the camera, with the usual
5% density trim and untrimmed, as the reference. For the LiDAR tile: the same shares at 2 and 5
map units, and how far the mesh's box is from the points' box (it must be in the input's
coordinates to the decimetre). Pictures (front and three-quarter views) go to ``--pictures``.
Results: ``scripts/results/real_scenes.json``.

    python scripts/benchmark_real_scenes.py --pictures data/pictures
"""

import argparse
import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _results import write_results
from _shared import SHARED_DATA, poisson_mesh

import neural_sdf as ns
from neural_sdf.extract import connected_components

SCENES = SHARED_DATA / "scenes"
FRAMES = ["table_scene_mug_stereo_textured.pcd", "milk_cartoon_all_small_clorox.pcd"]
LIDAR = "autzen_trim.laz"
log = logging.getLogger("benchmark_real_scenes")


def coverage(mesh: ns.Mesh, points: np.ndarray, near: float, far: float, samples: int = 1_000_000) -> dict:
    """Share of points within ``near`` of the mesh, and of the mesh's area within ``far`` of a point."""
    from scipy.spatial import cKDTree

    if mesh.is_empty:
        return {"points_near": 0.0, "mesh_near": 0.0}
    s = mesh.sample(samples, seed=0).points
    d_points, _ = cKDTree(s).query(points, k=1, workers=-1)
    d_mesh, _ = cKDTree(points).query(s, k=1, workers=-1)
    # Mesh samples lie up to half their own spacing from the nearest mesh point a query point has;
    # 1M samples of a table-top frame are about 1.5 mm apart, far below the 2 cm tolerance.
    return {"points_near": float((d_points <= near).mean()), "mesh_near": float((d_mesh <= far).mean())}


def poisson_towards(cloud: ns.PointCloud, viewpoint: np.ndarray, depth: int = 9) -> tuple[ns.Mesh, ns.Mesh]:
    """Poisson on normals estimated (Open3D, 30 neighbours) and turned towards the sensor: (trimmed, untrimmed)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(30))
    pcd.orient_normals_towards_camera_location(np.asarray(viewpoint, dtype=np.float64))
    return poisson_mesh(pcd, depth, 0.05)


def render(mesh: ns.Mesh, path: Path, camera_frame: bool) -> None:
    """Front and three-quarter views, side by side."""
    from neural_sdf import RenderOptions, render_views_guarded, save_image

    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    center = (lo + hi) / 2
    size = float(np.linalg.norm(hi - lo))
    if camera_frame:  # a camera-frame depth frame: front = from the camera (y points down)
        up = np.array([0.0, -1.0, 0.0])
        front = np.zeros(3)
        # The three-quarter view looks at the nearer part of the surface (the table top; a far wall
        # in the frame would pull the box centre into empty space), from up and to the side.
        depth = np.linalg.norm(mesh.vertices, axis=1)
        center = np.median(mesh.vertices[depth <= np.quantile(depth, 0.4)], axis=0)
        side = center + np.array([0.3, -0.35, -0.2]) * size
    else:  # map coordinates, z up
        up = np.array([0.0, 0.0, 1.0])
        front = center + np.array([0.0, -0.9, 0.35]) * size
        side = center + np.array([0.65, -0.65, 0.45]) * size
    images = []
    for eye in (front, side):
        options = RenderOptions(width=640, height=480, camera=(tuple(eye), tuple(center), tuple(up), 50.0))
        images.append(render_views_guarded([mesh], options))
    save_image(np.concatenate(images, axis=1), path)


def run(path: Path, args: argparse.Namespace, lidar: bool) -> dict:
    out = args.work / f"{path.stem}.ply"
    cmd = [sys.executable, "-m", "neural_sdf.cli", "reconstruct", str(path), "-o", str(out), "--jobs", str(args.jobs), "--no-checkpoint"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    plan = next((line for line in proc.stderr.splitlines()[::-1] if "plan:" in line), "")
    tiles = re.search(r"plan: (\d+) tiles?", plan)
    row: dict = {
        "file": path.name, "command": " ".join(["neural-sdf", *cmd[3:]]), "exit": proc.returncode, "seconds": seconds,
        "plan": plan.split("plan:", 1)[-1].strip(), "tiles": int(tiles.group(1)) if tiles else None,
        "stderr_tail": proc.stderr[-1500:],
    }
    log.info("%s: exit %d in %.0f s; %s", path.name, proc.returncode, seconds, row["plan"])
    cloud = ns.load_points(path)
    row["points"] = len(cloud)
    if proc.returncode != 0:
        return row
    mesh = ns.load_mesh(out)
    near, far = (2.0, 5.0) if lidar else (0.02, 0.05)
    row.update(coverage(mesh, cloud.points, near, far), faces=len(mesh.faces), pieces=int(connected_components(mesh).max()) + 1)
    if lidar:
        pb = np.stack([cloud.points.min(axis=0), cloud.points.max(axis=0)])
        mb = np.stack([mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)])
        row["box_offset"] = float(np.abs(mb - pb).max())
        row["points_box"] = pb.tolist()
        row["mesh_box"] = mb.tolist()
    elif not args.no_poisson:
        t0 = time.perf_counter()
        trimmed, full = poisson_towards(cloud, cloud.viewpoint if cloud.viewpoint is not None else np.zeros(3))
        row["poisson9"] = {"seconds": time.perf_counter() - t0, "trimmed": coverage(trimmed, cloud.points, near, far), "untrimmed": coverage(full, cloud.points, near, far)}
    if args.pictures:
        render(mesh, args.pictures / f"scene_{path.stem}.png", camera_frame=not lidar)
    log.info("%s", json.dumps({k: v for k, v in row.items() if k != "stderr_tail"}))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="file names to run (default: all three)")
    ap.add_argument("--no-poisson", action="store_true")
    ap.add_argument("--pictures", type=Path, default=None, help="folder for the PNGs")
    ap.add_argument("--work", type=Path, default=Path("out/real_scenes"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "real_scenes.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if not SCENES.is_dir():
        raise SystemExit(f"{SCENES} is absent: this benchmark needs the shared scenes")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.pictures:
        args.pictures.mkdir(parents=True, exist_ok=True)
    rows = [run(SCENES / name, args, name == LIDAR) for name in FRAMES + [LIDAR] if args.only is None or name in args.only]
    write_results(args.out, {"settings": {"jobs": args.jobs}, "rows": rows})


if __name__ == "__main__":
    main()
