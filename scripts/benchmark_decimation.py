"""What ``--target-faces`` costs: the six shared shapes' default meshes against 10x fewer faces.

For each mesh in ``--meshes`` (default ``reconstruct`` outputs named after the shapes of
``../shared/data/shapes``, for example the ``--models`` folder of ``benchmark_distance.py``):
Chamfer-L1 (fraction of the diagonal), normal consistency, F@0.5% against the ground truth, for
the mesh as extracted and simplified to a tenth of its faces (``extract.decimate_mesh``); whether
it stays closed and in how many pieces; seconds. Results: ``scripts/results/decimation.json``.

    python scripts/benchmark_decimation.py --meshes out/distance_models
"""

import argparse
import time
from pathlib import Path

import numpy as np
from _results import RESULTS_DIR, write_results
from _shared import SHAPES_DIR

import neural_sdf as ns
from neural_sdf.extract import connected_components, decimate_mesh
from neural_sdf.geometry import is_closed

SHAPES = ("armadillo", "fandisk", "fertility", "rocker_arm", "scorpion", "spot")


def row(mesh: ns.Mesh, gt: ns.Mesh) -> dict:
    m = ns.evaluate_meshes(mesh, gt, seed=0)
    return {
        "faces": int(len(mesh.faces)), "chamfer": m.chamfer_l1_rel, "nc": m.normal_consistency, "f05": m.fscore["0.5%"],
        "closed": is_closed(mesh.faces), "pieces": int(len(np.unique(connected_components(mesh)))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meshes", type=Path, required=True)
    ap.add_argument("--factor", type=float, default=10.0, help="fewer faces by this factor")
    ap.add_argument("--json", type=Path, default=RESULTS_DIR / "decimation.json")
    args = ap.parse_args()
    rows = []
    for name in SHAPES:
        mesh, gt = ns.load_mesh(args.meshes / f"{name}.ply"), ns.load_mesh(SHAPES_DIR / f"{name}.obj")
        t0 = time.perf_counter()
        small = decimate_mesh(mesh, int(len(mesh.faces) / args.factor))
        seconds = time.perf_counter() - t0
        r = {"shape": name, "full": row(mesh, gt), "simplified": row(small, gt), "seconds": seconds}
        print(r, flush=True)
        rows.append(r)
    write_results(args.json, {"command": f"scripts/benchmark_decimation.py --meshes MESHES --factor {args.factor:g}", "rows": rows})


if __name__ == "__main__":
    main()
