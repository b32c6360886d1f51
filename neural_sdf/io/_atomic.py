"""Atomic output: write to a temporary file in the target folder, then rename over the target."""

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .._typing import PathLike
from ..errors import InputError
from .files import check_writable

__all__ = ["atomic_write", "partial_files", "partial_files_in"]


_TEMP_PATTERN = "{prefix}*.tmp*"
"""Glob of ``atomic_write``'s temporary files: ``.NAME.`` + random part + ``.tmp`` + extension."""


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def partial_files(path: PathLike) -> list[Path]:
    """Temporary files of ``atomic_write(path)`` left behind by a process that was killed mid-write."""
    target = Path(path)
    return sorted(target.parent.glob(_TEMP_PATTERN.format(prefix=glob.escape(_temp_prefix(target)))))


def partial_files_in(folder: PathLike) -> list[Path]:
    """Temporary files of ``atomic_write`` to any file in ``folder``, left behind by a killed process."""
    return sorted(Path(folder).glob(_TEMP_PATTERN.format(prefix=".*.")))


@contextlib.contextmanager
def atomic_write(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The temporary name keeps ``suffix`` (default: the target's extension) so that writers that
    pick a format by extension (trimesh, Open3D) still work. Readers never see a half-written
    file under the final name.
    """
    target = check_writable(path)
    suffix = suffix or target.suffix
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=f".tmp{suffix}", dir=target.parent)
    except OSError as exc:
        raise InputError(f"{target}: cannot write in output folder {target.parent} ({exc.strerror or exc})") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates the file private (0600); give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        if not tmp_path.exists() or tmp_path.stat().st_size == 0:
            raise OSError(f"{target}: writer produced no data")
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
