"""Re-evaluate the meshes written by ``benchmark_quality.py`` with more samples and several seeds.

F-scores near 1 differ between methods by a few points in 100,000; this script measures them
with ``--samples`` points per mesh over ``--seeds`` sampling seeds, so that the comparison with
Poisson is not decided by sampling noise, and prints mean and spread per shape.

    .venv/bin/python scripts/evaluate_quality.py out/quality --samples 1000000 --seeds 3
    .venv/bin/python scripts/evaluate_quality.py out/quality --samples 100000 --seeds 3 --exact

Columns: shape, F@0.5% ours, Poisson, difference, largest spread over seeds, normal consistency
ours, Poisson, gap, and with ``--exact`` the exact-distance F@0.5% of ours and Poisson.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR

import neural_sdf as ns
from neural_sdf.metrics import exact_fscore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="output folder of benchmark_quality.py (NAME_ours.ply, NAME_poisson.ply)")
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--exact", action="store_true",
                   help="also F@0.5%% with exact sample-to-surface distances for the misses (neural_sdf.metrics.exact_fscore)")
    a = p.parse_args()
    rows = {}
    for ours in sorted(a.folder.glob("*_ours.ply")):
        name = ours.name[: -len("_ours.ply")]
        gt = ns.load_mesh(SHAPES_DIR / f"{name}.obj")
        row = {}
        for method, path in (("ours", ours), ("poisson", a.folder / f"{name}_poisson.ply")):
            mesh = ns.load_mesh(path)
            ms = [ns.evaluate_meshes(mesh, gt, num_samples=a.samples, seed=10 + s) for s in range(a.seeds)]
            f05 = np.array([m.fscore["0.5%"] for m in ms])
            nc = np.array([m.normal_consistency for m in ms])
            row[method] = {"f05": f05.mean(), "f05_spread": np.ptp(f05), "nc": nc.mean(), "nc_spread": np.ptp(nc)}
            if a.exact:
                ex = [exact_fscore(mesh, gt, (0.005,), num_samples=a.samples, seed=10 + s)["0.5%"] for s in range(a.seeds)]
                row[method]["f05_exact"] = float(np.mean([e["fscore"] for e in ex]))
        rows[name] = row
        o, q = row["ours"], row["poisson"]
        print(
            f"| {name} | {o['f05']:.6f} | {q['f05']:.6f} | {o['f05'] - q['f05']:+.6f} | {max(o['f05_spread'], q['f05_spread']):.6f} | "
            f"{o['nc']:.4f} | {q['nc']:.4f} | {o['nc'] - q['nc']:+.4f} |"
            + (f" {o['f05_exact']:.6f} | {q['f05_exact']:.6f} |" if a.exact else ""),
            flush=True,
        )
    (a.folder / "evaluation.json").write_text(json.dumps({"samples": a.samples, "seeds": a.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
