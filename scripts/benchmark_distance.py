"""How far from the surface a fitted model's ``sdf`` is a distance: network alone against the
corrected field (network near the surface, the far-field grid of distances to the mesh beyond).

For the quick start's torus and each mesh in ../shared/data/shapes: default ``reconstruct`` of
100k oriented points sampled from the mesh, then 20,000 query points uniform in the ground
truth's bounding box grown by 10% of each side at both ends. The truth is the exact signed
distance to the ground-truth mesh (Open3D ``RaycastingScene``, negative inside). Per shape and
per field ("network", "corrected"):

- ``p95_near``: 95th percentile of |f - d| / diagonal where |d| < 5% of the diagonal;
- ``p95_all``: the same over the whole box;
- ``sign_ok``: share of points with |d| > 0.5% of the diagonal whose sign is right;
- ``grad_ok``: share of the box where ||grad f| - 1| < 0.05;
- ``grad_ok_smooth``: the same where the true distance itself is smooth at the far-field grid's
  scale (its central differences over one grid cell have norm > 0.95): away from its medial axes,
  where any grid's interpolation rounds the kink off;
- ``extra_s`` / ``reconstruct_s``: the far field's build time against the whole reconstruct.

``--morph A B`` (with ``--models``) also blends the two fitted models in 5 frames, once mixing
the raw networks and once mixing ``SDFModel.field()`` (what ``interpolate`` does), and counts each
frame's pieces and its smallest piece's share of the area before the speck filter
(``interpolate.MIN_PIECE_SHARE``).

Writes ``scripts/results/distance.json`` (``--json``).

    OMP_NUM_THREADS=1 python scripts/benchmark_distance.py --shapes torus armadillo
"""

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from _results import RESULTS_DIR, write_results
from _shared import SHAPES_DIR

import neural_sdf as ns
from neural_sdf.extract import extract_mesh, piece_areas
from neural_sdf.nn import gradient

REPO = Path(__file__).resolve().parents[1]
SHAPES = ("torus", "armadillo", "fandisk", "fertility", "rocker_arm", "scorpion", "spot")
log = logging.getLogger("benchmark_distance")


def true_sdf(gt: ns.Mesh, points: np.ndarray) -> np.ndarray:
    """Exact signed distance to ``gt`` (negative inside; sign by ray voting)."""
    import open3d.core as o3c

    scene = gt.raycasting_scene()
    q = o3c.Tensor(points.astype(np.float32))
    unsigned = scene.compute_distance(q).numpy().astype(np.float64)
    # Majority of 5 ray directions: robust to the few folded faces of some meshes.
    votes = np.zeros(len(points))
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        rays = np.hstack([points, np.broadcast_to(d, points.shape)]).astype(np.float32)
        hits = scene.count_intersections(o3c.Tensor(rays)).numpy()
        votes += np.where(hits % 2 == 1, 1, -1)
    return np.where(votes > 0, -unsigned, unsigned)


def network_values(model: ns.SDFModel, points: np.ndarray, corrected: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(f, |grad f|)`` at world points, world units; ``corrected`` uses ``model.field()``."""
    fn = model.field() if corrected else model.network
    x = torch.as_tensor(model.normalization.to_normalized(points), dtype=torch.float32).requires_grad_(True)
    f = fn(x)
    g = gradient(f, x)
    return f[:, 0].detach().double().numpy() / model.normalization.scale, torch.linalg.vector_norm(g, dim=-1).detach().double().numpy()


def smooth_mask(gt: ns.Mesh, points: np.ndarray, step: float) -> np.ndarray:
    """Points where the true distance's central differences over ``step`` have norm > 0.95."""
    grad = np.zeros_like(points)
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = step / 2
        grad[:, axis] = (true_sdf(gt, points + e) - true_sdf(gt, points - e)) / step
    return np.linalg.norm(grad, axis=1) > 0.95


def measure(f: np.ndarray, grad: np.ndarray, d: np.ndarray, diag: float, smooth: np.ndarray) -> dict:
    err = np.abs(f - d) / diag
    near = np.abs(d) < 0.05 * diag
    far = np.abs(d) > 0.005 * diag
    return {
        "p95_near": float(np.percentile(err[near], 95)),
        "p95_all": float(np.percentile(err, 95)),
        "sign_ok": float(np.mean(np.sign(f[far]) == np.sign(d[far]))),
        "wrong_sign_points": int(np.sum(np.sign(f[far]) != np.sign(d[far]))),
        "grad_ok": float(np.mean(np.abs(grad - 1) < 0.05)),
        "grad_ok_smooth": float(np.mean((np.abs(grad - 1) < 0.05)[smooth])),
        "smooth_share": float(np.mean(smooth)),
    }


def run_shape(name: str, args: argparse.Namespace) -> dict:
    if name == "torus":
        gt = ns.load_mesh(REPO / "data" / "torus_gt.ply")
        cloud = ns.load_points(REPO / "data" / "torus.ply")
    else:
        gt = ns.load_mesh(SHAPES_DIR / f"{name}.obj")
        cloud = gt.sample(args.points, seed=args.seed)
    cached = args.models / f"{name}.nsdf" if args.models else None
    if cached is not None and cached.exists():
        # Re-measure a saved fit (its mesh beside it): the far field is rebuilt, the fit reused.
        model, mesh = ns.SDFModel.load(cached), ns.load_mesh(cached.with_suffix(".ply"))
        t0 = time.perf_counter()
        model.attach_far_field(mesh)
        total = float(model.info.get("reconstruct_seconds", np.nan)) + time.perf_counter() - t0 - float(model.info.get("far_field_seconds_saved", 0.0))
    else:
        t0 = time.perf_counter()
        result = ns.reconstruct(cloud, progress=not args.quiet)
        total = time.perf_counter() - t0
        model = result.model
        if cached is not None:
            model.info["reconstruct_seconds"] = total
            model.info["far_field_seconds_saved"] = model.info.get("far_field_seconds", 0.0)
            model.save(cached)
            ns.save_mesh(result.mesh, cached.with_suffix(".ply"))
    lo, hi = gt.vertices.min(0), gt.vertices.max(0)
    pad = 0.1 * (hi - lo)
    rng = np.random.default_rng(args.seed)
    q = rng.uniform(lo - pad, hi + pad, size=(args.queries, 3))
    diag = float(np.linalg.norm(hi - lo))
    d = true_sdf(gt, q)
    cell = model.far_field.spacing / model.normalization.scale if model.far_field is not None else 0.01 * diag
    smooth = smooth_mask(gt, q, cell)
    row = {"shape": name, "reconstruct_s": total, "extra_s": float(model.info.get("far_field_seconds", 0.0))}
    for label, corrected in (("network", False), ("corrected", True)):
        f, g = network_values(model, q, corrected)
        row[label] = measure(f, g, d, diag, smooth)
    log.info("%s", row)
    return row


def piece_shares(mesh: ns.Mesh) -> list[float]:
    """Each connected piece's share of the mesh's area, largest first."""
    areas = piece_areas(mesh)
    return sorted((areas / areas.sum()).tolist(), reverse=True)


def run_morph(a_name: str, b_name: str, args: argparse.Namespace) -> dict:
    """Pieces of the blend frames of two saved models, raw networks against corrected fields."""
    from neural_sdf.interpolate import blend_sdf, frame_times

    row: dict = {"a": a_name, "b": b_name}
    for label in ("network", "corrected"):
        a, b = (ns.SDFModel.load(args.models / f"{n}.nsdf") for n in (a_name, b_name))
        if label == "network":
            for m in (a, b):
                m.field = (lambda net: (lambda: net))(m.network)  # the raw network, as before
        frames = []
        for t in frame_times(5):
            blend = blend_sdf(a, b, float(t))
            fn = a.network if t == 0 else b.network if t == 1 else blend
            support = a.support_points if t == 0 else b.support_points if t == 1 else None  # as interpolate does
            mesh = extract_mesh(fn, blend.normalization, blend.data_bounds, ns.ExtractConfig(), support_points=support, progress=False)
            frames.append(piece_shares(mesh))
        row[label] = {"pieces": [len(f) for f in frames], "smallest_share": [f[-1] for f in frames]}
    log.info("%s", row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--models", type=Path, default=None, help="folder to keep fitted models and meshes in, and reuse them from")
    ap.add_argument("--morph", nargs=2, action="append", default=[], metavar=("A", "B"), help="blend two of the shapes (needs --models)")
    ap.add_argument("--morph-only", action="store_true", help="skip the distance measurements; keep the rows of --json")
    ap.add_argument("--json", type=Path, default=RESULTS_DIR / "distance.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.models:
        args.models.mkdir(parents=True, exist_ok=True)
    if args.morph_only:
        rows = json.loads(args.json.read_text())["rows"]
    else:
        rows = [run_shape(name, args) for name in args.shapes]
    morphs = [run_morph(a, b, args) for a, b in args.morph]
    for m in morphs:
        for label in ("network", "corrected"):
            print(f"blend {m['a']} -> {m['b']} ({label}): pieces {m[label]['pieces']}, smallest share "
                  + " ".join(f"{x:.1e}" for x in m[label]["smallest_share"]))
    print(f"{'shape':12s} {'field':10s} {'p95 near':>9s} {'p95 all':>8s} {'sign ok':>8s} {'|grad|ok':>8s} {'smooth':>7s}  extra")
    for r in rows:
        for label in ("network", "corrected"):
            m = r[label]
            extra = f"{r['extra_s']:.1f}/{r['reconstruct_s']:.0f} s" if label == "corrected" else ""
            print(f"{r['shape']:12s} {label:10s} {100 * m['p95_near']:8.2f}% {100 * m['p95_all']:7.2f}% {100 * m['sign_ok']:7.2f}% {100 * m['grad_ok']:7.1f}% {100 * m['grad_ok_smooth']:6.1f}%  {extra}")
    command = "scripts/benchmark_distance.py --shapes " + " ".join(args.shapes) + "".join(f" --morph {a} {b}" for a, b in args.morph)
    write_results(args.json, {"command": command, "rows": rows, "morphs": morphs})


if __name__ == "__main__":
    main()
