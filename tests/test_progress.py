"""Progress output: plain whole lines when stderr is not a terminal (logs, CI), nothing when quiet."""

import subprocess
import sys
from pathlib import Path

import pytest

from neural_sdf import progress
from neural_sdf.progress import PlainProgress, progress_bar

ROOT = Path(__file__).resolve().parents[1]


def test_plain_progress_prints_a_line_per_tenth_with_an_eta(capsys: pytest.CaptureFixture) -> None:
    with PlainProgress(total=1000, desc="fit", unit="step") as bar:
        for _ in range(1000):
            bar.update(1)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err
    assert len(lines) == 10, lines  # one per tenth, the last at 1000/1000
    assert lines[0].startswith("fit: 100/1000 step") and "left" in lines[0]
    assert lines[-1].startswith("fit: 1000/1000 step") and "left" not in lines[-1]


def test_plain_progress_waits_at_most_its_interval(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    clock = iter(range(0, 10_000, 20))  # 20 s per update
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    bar = PlainProgress(total=1_000_000, desc="extract")
    for _ in range(4):
        bar.update(1)
    # 0, 20, 40, 60, 80 s: lines at 40 s and 80 s (30 s apart at most), not at every update
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_disabled_and_iterable_forms(capsys: pytest.CaptureFixture) -> None:
    assert list(progress_bar(range(5), desc="x", disable=True)) == list(range(5))
    assert capsys.readouterr().err == ""
    assert list(progress_bar(range(3), desc="frames", unit="frame")) == [0, 1, 2]
    assert capsys.readouterr().err.splitlines()[-1].startswith("frames: 3/3 frame")


def test_reconstruct_log_to_a_file_has_no_carriage_returns(tmp_path: Path) -> None:
    # The quick start's command with fewer steps and a coarse grid, its stderr a file (as in CI).
    log = tmp_path / "log"
    with open(log, "w") as fh:
        rc = subprocess.run(
            [sys.executable, "-m", "neural_sdf.cli", "reconstruct", str(ROOT / "data" / "torus.ply"), "-o", str(tmp_path / "t.ply"),
             "--steps", "40", "--hidden-dim", "32", "--resolution", "48"],
            stderr=fh, stdout=subprocess.DEVNULL, timeout=600,
        ).returncode
    text = log.read_text()
    assert rc == 0, text
    assert "\r" not in text
    # Measured: 25 lines for the default grid (a line per tenth of each stage, plus the messages).
    assert len(text.splitlines()) <= 40, text
