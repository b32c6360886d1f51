"""The benchmarks' peak memory of a command is the command's own, not the benchmark's.

Measured case that motivated it: the scene table reported the reconstruction of the four-object
scene at 1,226 MB, to the megabyte the Poisson run's peak before it: both were the benchmark
process's own size, which a child's ``ru_maxrss`` starts from on Linux.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from _shared import run_measured  # noqa: E402


def test_a_small_command_started_from_a_big_process_reports_its_own_peak() -> None:
    ballast = np.ones(600 * 2**20 // 8)  # 600 MB resident in this process
    proc, seconds, peak = run_measured([sys.executable, "-c", "import sys; print('ok'); print('warn', file=sys.stderr)"])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok" and proc.stderr.strip() == "warn" and seconds > 0
    # A bare interpreter is about 10 MB; the ballast would make it 600+.
    assert peak < 100, peak
    # And a command that does use memory reports it: 300 MB touched.
    _, _, peak = run_measured([sys.executable, "-c", "import numpy as np; a = np.ones(300 * 2**20 // 8); print(a.sum())"])
    assert 300 < peak < 500, peak
    assert ballast.sum() > 0
    proc, _, _ = run_measured([sys.executable, "-c", "raise SystemExit(3)"])
    assert proc.returncode == 3
