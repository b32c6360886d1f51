"""Batch throughput: items per hour with ``--jobs 1`` vs ``--jobs 2`` on this machine, in one run.

    python scripts/benchmark_batch.py                      # shapes from ../shared/data/shapes
    python scripts/benchmark_batch.py --items 4 --rounds 2 --out out/benchmark_batch

Each round runs the same items (meshes of ../shared/data/shapes, sampled into oriented clouds by
the loader; generated clouds when that folder is absent) once with 1 job and once with 2 jobs,
into fresh output folders (nothing is reused), alternating the order between rounds so that a
drift in machine load hits both settings alike. It reports items per hour of each setting, their
ratio, the median seconds per item and the peak worker memory, and writes ``benchmark_batch.json``
and ``benchmark_batch.png`` (items per hour per round). The load average before and after is
recorded, since other processes on the machine change the numbers.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _shared import SHAPES_DIR as SHAPES

import neural_sdf as ns
from neural_sdf.batch import reconstruct_batch


def make_inputs(folder: Path, count: int) -> list[Path]:
    """Oriented clouds of ``count`` shapes (real meshes when ../shared is there), 20,000 points each."""
    folder.mkdir(parents=True, exist_ok=True)
    meshes = sorted(p for p in SHAPES.glob("*.obj")) if SHAPES.is_dir() else []
    paths = []
    for i in range(count):
        if meshes:
            cloud = ns.load_points(meshes[i % len(meshes)], num_mesh_samples=20_000, seed=i)
            name = f"{i:02d}_{meshes[i % len(meshes)].stem}"
        else:
            import trimesh

            tm = trimesh.creation.torus(major_radius=1.0, minor_radius=0.2 + 0.05 * i)
            cloud = ns.load_points(tm, num_mesh_samples=20_000, seed=i)
            name = f"{i:02d}_torus"
        path = folder / f"{name}.ply"
        ns.save_points(cloud, path)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=4, help="items per batch (default: 4)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of (jobs 1, jobs 2) (default: 1)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per item (default: 300)")
    parser.add_argument("--hidden-dim", type=int, default=64, help="SIREN width (default: 64)")
    parser.add_argument("--resolution", type=int, default=96, help="extraction grid (default: 96)")
    parser.add_argument("--out", type=Path, default=Path("out/benchmark_batch"), help="working and result folder")
    args = parser.parse_args()

    if args.out.exists():
        shutil.rmtree(args.out)
    inputs = make_inputs(args.out / "inputs", args.items)
    options = ns.FitOptions(
        siren=ns.SirenConfig(hidden_dim=args.hidden_dim, num_hidden_layers=2),
        train=ns.TrainConfig(steps=args.steps, lr=1e-4, checkpoint_every=0),
    )
    extract = ns.ExtractConfig(resolution=args.resolution)
    runs = []
    load_before = os.getloadavg()
    for rnd in range(args.rounds):
        order = (1, 2) if rnd % 2 == 0 else (2, 1)
        for jobs in order:
            out = args.out / f"round{rnd}_jobs{jobs}"
            t0 = time.perf_counter()
            results = reconstruct_batch(inputs, out, options, extract, jobs=jobs, checkpoints=False, progress=True)
            wall = time.perf_counter() - t0
            ok = [r for r in results if r.ok]
            runs.append({
                "round": rnd,
                "jobs": jobs,
                "threads_per_item": max(1, (os.cpu_count() or 1) // jobs),
                "items": len(results),
                "ok": len(ok),
                "wall_seconds": wall,
                "items_per_hour": 3600.0 * len(ok) / wall,
                "median_item_seconds": statistics.median(r.seconds for r in ok) if ok else None,
                "peak_memory_mb": max((r.peak_memory_mb or 0) for r in ok) if ok else None,
            })
            print(f"round {rnd} jobs {jobs}: {len(ok)}/{len(results)} ok in {wall:.1f} s = {runs[-1]['items_per_hour']:.0f} items/h", flush=True)
    load_after = os.getloadavg()

    per_jobs = {j: [r["items_per_hour"] for r in runs if r["jobs"] == j] for j in (1, 2)}
    mean = {j: float(np.mean(v)) for j, v in per_jobs.items()}
    report = {
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "settings": {"items": args.items, "steps": args.steps, "hidden_dim": args.hidden_dim, "resolution": args.resolution,
                     "inputs": [p.name for p in inputs]},
        "runs": runs,
        "items_per_hour": {f"jobs{j}": v for j, v in mean.items()},
        "speedup_jobs2_over_jobs1": mean[2] / mean[1],
    }
    (args.out / "benchmark_batch.json").write_text(json.dumps(report, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for j, color in ((1, "tab:blue"), (2, "tab:orange")):
        xs = [r["round"] + (0.2 if j == 2 else -0.2) for r in runs if r["jobs"] == j]
        ax.bar(xs, per_jobs[j], width=0.4, color=color, label=f"--jobs {j}")
    ax.set_xlabel("round")
    ax.set_ylabel("items per hour")
    ax.set_title(f"batch throughput, {os.cpu_count()} cores (jobs 2 / jobs 1 = {report['speedup_jobs2_over_jobs1']:.2f})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "benchmark_batch.png", dpi=120)
    print(
        f"items per hour: jobs 1 {mean[1]:.0f}, jobs 2 {mean[2]:.0f}, ratio {report['speedup_jobs2_over_jobs1']:.2f} "
        f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after); wrote {args.out / 'benchmark_batch.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
