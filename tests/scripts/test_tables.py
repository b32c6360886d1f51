"""The tables of scripts/README.md agree with the JSON results they are generated from."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKE_TABLES = ROOT / "scripts" / "make_tables.py"
README = ROOT / "scripts" / "README.md"


def _check(readme: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MAKE_TABLES), "--check", "--readme", str(readme), "--results", str(ROOT / "scripts" / "results")],
        capture_output=True, text=True, timeout=120,
    )


def test_tables_match_their_json():
    result = _check(README)
    assert result.returncode == 0, f"scripts/README.md is stale; run python scripts/make_tables.py\n{result.stderr}"
    assert "<!-- table:distance -->" in README.read_text()


def test_check_catches_an_edited_cell(tmp_path):
    copy = tmp_path / "README.md"
    shutil.copyfile(README, copy)
    text = copy.read_text()
    start = text.index("<!-- table:distance -->")
    row = text.index("\n| torus |", start) + 1
    cells = text[row:text.index("\n", row)].split(" | ")
    cells[1] = "9.99e-01"  # the network's p95 error near the surface
    copy.write_text(text[:row] + " | ".join(cells) + text[text.index("\n", row):])
    result = _check(copy)
    assert result.returncode == 1
    assert "table:distance" in result.stderr
    assert "table:cleanup" not in result.stderr


def test_rewrite_restores_the_edited_table(tmp_path):
    copy = tmp_path / "README.md"
    original = README.read_text()
    # Change one cell of the clean-up table (noisy spot: points dropped) to another number.
    start = original.index("<!-- table:cleanup -->")
    row = original.index("\n| spot | 0.5 % |", start) + 1
    cells = original[row:original.index("\n", row)].split(" | ")
    cells[2] = str(int(cells[2]) + 1)
    copy.write_text(original[:row] + " | ".join(cells) + original[original.index("\n", row):])
    assert copy.read_text() != original
    result = subprocess.run([sys.executable, str(MAKE_TABLES), "--readme", str(copy)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert copy.read_text() == original
