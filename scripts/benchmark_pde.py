"""Solve the Helmholtz (PML), Poisson and 2-D wave problems with the ``pde`` command's presets, SIREN
against the relu, relu-pe, relu-ff and tanh baselines; tabulate errors and time.

The SIREN paper (Sec. 4.3, Fig. 5) reports Helmholtz errors far lower for SIREN than for ReLU
(whose second derivatives vanish) and tanh. Each row runs ``solve_pde`` with the preset of
``--quality`` and only the activation changed (same network size, steps, batches and optimizer;
the seconds are in the table). Writes ``scripts/results/pde_<quality>.json``, or
``pde_<quality>_<steps>steps.json`` when ``--steps`` shortens the budget, or ``--name``
(``_results.write_results``), ``error_<problem>.png`` (error over time per activation),
``error_<problem>_steps.png`` (error over steps: wall seconds mislead on a shared machine) and each
run's outputs under ``--out``. ``--reuse RESULT.json`` takes the rows of an earlier run at the same
budget (same problem, activation and steps, seed 0) instead of fitting them again.

    python scripts/benchmark_pde.py --problems helmholtz --quality default --threads 1 --out out/pde
    python scripts/benchmark_pde.py --problems helmholtz --steps 1000 --threads 1 --out out/pde_1000
    python scripts/benchmark_pde.py --problems helmholtz --threads 1 --out out/pde_hz \
        --reuse scripts/results/pde_helmholtz_default.json --name pde_helmholtz_baselines.json
"""

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch
from _results import RESULTS_DIR, plot_curves, write_results

import neural_sdf as ns
from neural_sdf.apps.presets import pde_preset

ACTIVATIONS = ("sine", "relu", "relu-pe", "relu-ff", "tanh")
ROW_KEYS = ("problem", "activation", "relative_error", "residual_rms", "steps", "seconds", "cpu_seconds", "curve", "reference_error")


def reused_rows(paths: list[Path]) -> dict[tuple[str, str, int], dict]:
    """Rows of earlier result files (``rows`` or ``runs``), seed 0, keyed by (problem, activation, steps)."""
    found = {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        for row in data.get("rows", data.get("runs", [])):
            if row.get("seed", row.get("train", {}).get("seed", 0)) != 0:
                continue
            key = (row["problem"], row["activation"], int(row["steps"]))
            found.setdefault(key, {**{k: row[k] for k in ROW_KEYS if k in row}, "reused_from": str(path)})
    return found


def plot_steps(curves: dict[str, list], path: Path, title: str) -> None:
    """Relative error against steps (log scale), one line per activation."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot([p[0] for p in curve], [p[2] for p in curve], marker=".", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("relative L2 error")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/pde"))
    parser.add_argument("--problems", default="helmholtz,wave,poisson")
    parser.add_argument("--quality", default="default")
    parser.add_argument("--activations", default=",".join(ACTIVATIONS), help="comma-separated; every problem gets each")
    parser.add_argument("--steps", type=int, default=0, help="override the preset's steps (0: keep)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--reuse", type=Path, action="append", default=[],
                        help="earlier result JSON whose rows at the same budget (seed 0) stand in for fits (repeatable)")
    parser.add_argument("--name", default="", help="results file name under scripts/results (default: pde_<quality>[_<steps>steps].json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    runs = []
    reuse = reused_rows(args.reuse)
    for problem in args.problems.split(","):
        preset = pde_preset(problem, args.quality)
        train = dataclasses.replace(preset.train, steps=args.steps) if args.steps else preset.train
        curves = {}
        for act in args.activations.split(","):
            if (problem, act, train.steps) in reuse:
                row = reuse[(problem, act, train.steps)]
                runs.append(row)
                curves[act] = row["curve"]
                print(f"{problem:9s} {act:8s} error {row['relative_error']:.4f} (from {row['reused_from']})", flush=True)
                continue
            config = dataclasses.replace(preset.config, activation=act)
            r = ns.solve_pde(problem, args.out / f"{problem}_{act}", config=config, siren=preset.siren, train=train, progress=False)
            runs.append({"problem": problem, "activation": act, "relative_error": r.relative_error, "residual_rms": r.residual_rms,
                         "steps": r.steps, "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "curve": r.curve, "reference_error": r.info["reference_error"]})
            curves[act] = r.curve
            print(f"{problem:9s} {act:8s} error {r.relative_error:.4f} residual {r.residual_rms:.4f} {r.steps} steps ({r.seconds:.0f} s)", flush=True)
        plot_curves(curves, args.out / f"error_{problem}.png", f"{problem}, --quality {args.quality}", "relative L2 error", log=True)
        plot_steps(curves, args.out / f"error_{problem}_steps.png", f"{problem}, --quality {args.quality}, {train.steps} steps")
    name = args.name or (f"pde_{args.quality}_{args.steps}steps.json" if args.steps else f"pde_{args.quality}.json")
    write_results(RESULTS_DIR / name, {
        "command": "scripts/benchmark_pde.py " + " ".join(sys.argv[1:]), "threads": torch.get_num_threads(), "runs": runs})


if __name__ == "__main__":
    main()
