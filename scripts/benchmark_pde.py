"""Solve the Helmholtz (PML), Poisson and 2-D wave problems with the ``pde`` command's presets, SIREN
against the relu, relu-pe, relu-ff and tanh baselines; tabulate errors and time.

The SIREN paper (Sec. 4.3, Fig. 5) reports Helmholtz errors far lower for SIREN than for ReLU
(whose second derivatives vanish) and tanh. Each row runs ``solve_pde`` with the preset of
``--quality`` and only the activation changed (same network size, steps, batches and optimizer;
the seconds are in the table). Writes ``scripts/results/pde_<quality>.json``, or
``pde_<quality>_<steps>steps.json`` when ``--steps`` shortens the budget (``_results.write_results``), ``error_<problem>.png`` (error over time per activation) and each
run's outputs under ``--out``.

    python scripts/benchmark_pde.py --problems helmholtz --quality default --threads 1 --out out/pde
    python scripts/benchmark_pde.py --problems helmholtz --steps 1000 --threads 1 --out out/pde_1000
"""

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch
from _results import RESULTS_DIR, plot_curves, write_results

import neural_sdf as ns
from neural_sdf.apps.presets import pde_preset

ACTIVATIONS = ("sine", "relu", "relu-pe", "relu-ff", "tanh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/pde"))
    parser.add_argument("--problems", default="helmholtz,wave,poisson")
    parser.add_argument("--quality", default="default")
    parser.add_argument("--activations", default=",".join(ACTIVATIONS), help="comma-separated; every problem gets each")
    parser.add_argument("--steps", type=int, default=0, help="override the preset's steps (0: keep)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    runs = []
    for problem in args.problems.split(","):
        preset = pde_preset(problem, args.quality)
        train = dataclasses.replace(preset.train, steps=args.steps) if args.steps else preset.train
        curves = {}
        for act in args.activations.split(","):
            config = dataclasses.replace(preset.config, activation=act)
            r = ns.solve_pde(problem, args.out / f"{problem}_{act}", config=config, siren=preset.siren, train=train, progress=False)
            runs.append({"problem": problem, "activation": act, "relative_error": r.relative_error, "residual_rms": r.residual_rms,
                         "steps": r.steps, "seconds": r.seconds, "cpu_seconds": r.info["cpu_seconds"], "curve": r.curve, "reference_error": r.info["reference_error"]})
            curves[act] = r.curve
            print(f"{problem:9s} {act:8s} error {r.relative_error:.4f} residual {r.residual_rms:.4f} {r.steps} steps ({r.seconds:.0f} s)", flush=True)
        plot_curves(curves, args.out / f"error_{problem}.png", f"{problem}, --quality {args.quality}", "relative L2 error", log=True)
    name = f"pde_{args.quality}_{args.steps}steps.json" if args.steps else f"pde_{args.quality}.json"
    write_results(RESULTS_DIR / name, {
        "command": "scripts/benchmark_pde.py " + " ".join(sys.argv[1:]), "threads": torch.get_num_threads(), "runs": runs})


if __name__ == "__main__":
    main()
