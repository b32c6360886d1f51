"""Benchmark results as JSON files under ``scripts/results/``, each stamped with where it was measured.

Every benchmark writes its numbers with ``write_results``; the tables in ``scripts/README.md`` are
made from these files (``scripts/make_tables.py``), so no number there is typed by hand.
"""

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Where and when a result was measured: date, commit, CPU, threads."""
    import torch

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commit": _commit(),
        "cpu": _cpu(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` plus a ``machine`` stamp as JSON, atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def plot_curves(curves: dict[str, list], path: Path, title: str, ylabel: str = "PSNR (dB)", log: bool = False) -> Path:
    """Curves ``{label: [(step, seconds, value), ...]}`` against seconds, as a PNG (matplotlib)."""
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8, 5), dpi=100, layout="constrained")
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot([p[1] for p in curve], [p[2] for p in curve], marker=".", label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path)
    return path
