"""Start-up cost of the command line, this tree against an older commit, side by side.

For each command (``--help``, a one-step ``reconstruct`` of the sample torus, a small ``render``)
both versions run alternately ``--repeats`` times with ``PYTHONPROFILEIMPORTTIME=1`` (so child
processes report their imports too). Per version: the median wall time, the median total import
time (the sum of every process's top-level cumulative import times) and which heavy libraries the
command imported at all. The older version runs from a ``git worktree`` of ``--before`` with the
same virtual environment (run from its tree, which ``python -c`` puts first on ``sys.path``).

    python scripts/benchmark_startup.py --before 23e1e82^      # the commit before the lazy imports

Results: ``scripts/results/startup.json`` (table ``startup`` in ``scripts/README.md``).
"""

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import RESULTS_DIR, write_results

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "open3d", "trimesh", "skimage", "scipy", "torch._dynamo")
RUN = "import sys; sys.argv[0] = 'neural-sdf'; from neural_sdf.cli import main; sys.exit(main())"
log = logging.getLogger("benchmark_startup")


def commands(work: Path) -> dict[str, list[str]]:
    """The measured command lines (arguments after ``neural-sdf``), writing under ``work``."""
    torus = str(ROOT / "data" / "torus.ply")
    return {
        "--help": ["--help"],
        "reconstruct": ["reconstruct", torus, "-o", str(work / "torus.ply"), "--steps", "1", "--resolution", "32", "--no-checkpoint", "--quiet"],
        "render": ["render", torus, "-o", str(work / "torus.png"), "--size", "64x48"],
    }


def parse_importtime(stderr: str) -> tuple[float, set[str]]:
    """Total top-level cumulative import time (seconds) and the set of modules imported.

    Lines read ``import time: SELF | CUMULATIVE | NAME``, nested imports indented under NAME; the
    top-level ones (one space of indentation) add up to a process's import time.
    """
    total, names = 0.0, set()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        names.add(name.strip())
        if len(name) - len(name.lstrip(" ")) == 1:
            total += int(parts[1]) / 1e6
    return total, names


def run_once(pythonpath: str, args: list[str]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1", PYTHONPATH=pythonpath, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    # cwd too: "python -c" puts the working directory first on sys.path
    proc = subprocess.run([sys.executable, "-c", RUN, *args], env=env, capture_output=True, text=True, cwd=pythonpath)
    wall = time.perf_counter() - t0
    imports, names = parse_importtime(proc.stderr)
    return {"rc": proc.returncode, "wall": wall, "imports": imports, "heavy": sorted(h for h in HEAVY if h in names)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="23e1e82^", help="git commit to compare with (default: the one before the lazy imports)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "startup.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="startup_") as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.before], cwd=ROOT, check=True, capture_output=True)
        try:
            before = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
            versions = {"before": str(old_tree), "now": str(ROOT)}
            rows = []
            for name, argv in commands(tmp).items():
                runs: dict[str, list[dict[str, Any]]] = {v: [] for v in versions}
                for i in range(args.repeats):
                    for version, path in versions.items():  # alternate, so drift hits both alike
                        runs[version].append(run_once(path, argv))
                row: dict[str, Any] = {"command": "neural-sdf " + " ".join(a if not a.startswith("/") else Path(a).name for a in argv)}
                for version, rs in runs.items():
                    row[version] = {
                        "rc": [r["rc"] for r in rs],
                        "wall_s": statistics.median(r["wall"] for r in rs),
                        "import_s": statistics.median(r["imports"] for r in rs),
                        "heavy": rs[-1]["heavy"],
                    }
                row["wall_ratio"] = row["before"]["wall_s"] / row["now"]["wall_s"]
                log.info("%s: wall %.2f s -> %.2f s (x%.1f), imports %.2f s -> %.2f s", name, row["before"]["wall_s"], row["now"]["wall_s"],
                         row["wall_ratio"], row["before"]["import_s"], row["now"]["import_s"])
                rows.append(row)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, capture_output=True)
    write_results(args.out, {"settings": {"before": args.before, "before_commit": before, "repeats": args.repeats}, "rows": rows})
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
