"""bfloat16 against float32 hidden products in the fused SDF step: same surface, less time?

For each shape, ``benchmark_recipe.py`` (the default recipe, 100k samples of the shape or the
given cloud) runs once with ``--precision float32`` and once with ``--precision bfloat16``,
alternating, each in its own process, so both see the same machine; the ratio of their fit times
is printed per shape and the quality (F-score at 0.5% of the diagonal, normal consistency,
Chamfer) of each mesh beside it. Results: ``scripts/results/precision.json`` (table
``precision`` of scripts/README.md).

    python scripts/benchmark_precision.py                       # scorpion, fertility, the sample torus
    python scripts/benchmark_precision.py --shapes armadillo --threads 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _results import write_results

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
TORUS = ["--shape", str(REPO / "data" / "torus_gt.ply"), "--input", str(REPO / "data" / "torus.ply")]


def _run(shape: str, precision: str, threads: int, log: Path) -> dict:
    args = TORUS if shape == "torus" else ["--shape", shape]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(SCRIPTS / "benchmark_recipe.py"), *args, "--precision", precision, "--log", str(log)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=SCRIPTS)
    if proc.returncode != 0:
        raise SystemExit(f"{shape} {precision}: benchmark_recipe.py failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=["scorpion", "fertility", "torus"],
                    help="shapes of ../shared/data/shapes, or 'torus' for data/torus.ply")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each fit")
    ap.add_argument("--out", type=Path, default=SCRIPTS / "results" / "precision.json")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)  # the results' machine stamp names the children's thread count
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes:
            pair = {p: _run(shape, p, a.threads, Path(tmp) / "log.jsonl") for p in ("float32", "bfloat16")}
            row = {"shape": shape, **{p: {k: r[k] for k in ("fit_s", "f05", "nc", "chamfer_rel", "pieces")} for p, r in pair.items()}}
            row["speedup"] = pair["float32"]["fit_s"] / pair["bfloat16"]["fit_s"]
            rows.append(row)
            print(f"{shape:10s} fit {pair['float32']['fit_s']:.1f} s -> {pair['bfloat16']['fit_s']:.1f} s ({row['speedup']:.2f}x); "
                  f"NC {pair['float32']['nc']:.5f} -> {pair['bfloat16']['nc']:.5f}; F@0.5% {pair['float32']['f05']:.5f} -> {pair['bfloat16']['f05']:.5f}")
    write_results(a.out, {"settings": {"shapes": a.shapes, "threads": a.threads}, "rows": rows})


if __name__ == "__main__":
    main()
