"""Files at the edges: whether an input file or an output path can be used, and what a file holds.

One place for these checks, so that every command and the viewer word a missing input or an
unwritable output the same way. Plain Python: no backend is imported.
"""

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Literal, Optional, Sequence

from .._typing import PathLike
from ..errors import InputError

__all__ = [
    "FileKind",
    "MODEL_FORMAT",
    "SPACE_FORMAT",
    "MODEL_EXTENSION",
    "SPACE_EXTENSION",
    "check_input_file",
    "check_writable",
    "check_output_dir",
    "read_format_tag",
    "file_kind",
]

MODEL_FORMAT = "neural_sdf.model/1"
"""Format tag of SDF and scene model files."""

SPACE_FORMAT = "neural_sdf.space/1"
"""Format tag of shape-space files."""

MODEL_EXTENSION = ".nsdf"
"""Suggested extension of model files (files are recognized by their header first)."""

SPACE_EXTENSION = ".nss"
"""Suggested extension of shape-space files."""

FileKind = Literal["model", "space", "mesh", "points"]


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeiou" else "a"


def check_input_file(path: PathLike, allowed: Optional[Sequence[str]] = None, kind: str = "input") -> Path:
    """Return ``path`` as a ``Path`` after checking it is an existing, non-empty file.

    Args:
        path: the file.
        allowed: lower-case extensions it may have (with the dot), or None for any.
        kind: what the file should hold, for messages ("mesh", "image", ...).

    Raises:
        InputError: naming the file and the problem: missing, a folder, another extension, or empty.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected {_article(kind)} {kind} file")
    if allowed is not None and p.suffix.lower() not in allowed:
        raise InputError(f"{p}: unknown {kind} extension {p.suffix or '(none)'!r}; expected one of {', '.join(allowed)}")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def check_writable(path: PathLike) -> Path:
    """Return ``path`` as a ``Path`` after checking that its folder exists and can be written.

    Raises:
        InputError: if the folder is missing, is not a folder, or is not writable, or if ``path``
            is itself a folder.
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise InputError(f"{p}: output path is a directory")
    if not parent.exists():
        raise InputError(f"{p}: output folder {parent} does not exist")
    if not parent.is_dir():
        raise InputError(f"{p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise InputError(f"{p}: output folder {parent} is not writable")
    # os.access says yes to root everywhere (even /proc); creating a file is the honest test.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise InputError(f"{p}: cannot write in output folder {parent} ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(probe)
    return p


def check_output_dir(path: PathLike, *, create: bool = False, parents: bool = True) -> Path:
    """Return ``path`` as a ``Path`` after checking that it can be an output folder.

    An existing folder must be writable. A new one needs a writable nearest existing ancestor
    (``parents=True``: missing folders between are made too) or an existing parent
    (``parents=False``).

    Args:
        path: the folder.
        create: make it (and, with ``parents``, the folders above it) now.
        parents: whether missing folders above it may be made.

    Raises:
        InputError: the path is a file, its parent is missing (``parents=False``), or it cannot be
            written or made.
    """
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{p}: output path exists and is not a folder")
        if not os.access(p, os.W_OK):
            raise InputError(f"{p}: output folder is not writable")
        return p
    parent = p.absolute().parent
    if not parents and not parent.exists():
        raise InputError(f"{p}: parent folder {p.parent} does not exist")
    if create:
        try:
            p.mkdir(parents=parents, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{p}: cannot create output folder ({exc.strerror or exc})") from exc
        if not os.access(p, os.W_OK):
            raise InputError(f"{p}: output folder is not writable")
        return p
    ancestor = next((q for q in p.absolute().parents if q.exists()), None)
    if ancestor is None or not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise InputError(f"{p}: cannot create output folder here")
    return p


def read_format_tag(path: PathLike) -> Optional[str]:
    """Return the ``format`` tag of a safetensors file's header without loading its tensors.

    Returns ``None`` for anything that is not a readable safetensors file with a tag (a missing
    file included), so callers can recognize model files by content rather than by extension.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            if not 2 <= size <= 100_000_000:
                return None
            header = json.loads(fh.read(size))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    fmt = header.get("__metadata__", {}).get("format") if isinstance(header, dict) else None
    return fmt if isinstance(fmt, str) else None


def _ply_face_count(path: Path) -> int:
    """Faces a PLY header declares (0 for a point cloud, or a header that cannot be read)."""
    try:
        with open(path, "rb") as fh:
            if fh.readline().strip() != b"ply":
                return 0
            for _ in range(10_000):
                line = fh.readline()
                if not line or line.strip() == b"end_header":
                    break
                words = line.split()
                if len(words) == 3 and words[0] == b"element" and words[1] == b"face":
                    return int(words[2])
    except (OSError, ValueError):
        return 0
    return 0


def file_kind(path: PathLike) -> FileKind:
    """Tell what a file holds: by its header where it has one, else by its extension.

    Returns:
        ``"model"`` (an SDF or scene model: format tag ``MODEL_FORMAT``, or the ``.nsdf``
        extension), ``"space"`` (a shape space: ``SPACE_FORMAT`` or ``.nss``), ``"mesh"`` (``.obj
        .stl .off .glb``, or a ``.ply`` whose header declares faces) or ``"points"`` (anything
        else: ``load_points`` reads it or says why it cannot). The file is not checked here; the
        loader of its kind does that.
    """
    from .mesh import MESH_EXTENSIONS

    p = Path(path)
    tag = read_format_tag(p) or ""
    if tag.split("/")[0] == MODEL_FORMAT.split("/")[0]:
        return "model"
    if tag.split("/")[0] == SPACE_FORMAT.split("/")[0]:
        return "space"
    ext = p.suffix.lower()
    if ext == MODEL_EXTENSION:
        return "model"
    if ext == SPACE_EXTENSION:
        return "space"
    if ext == ".ply":
        return "mesh" if _ply_face_count(p) > 0 else "points"
    return "mesh" if ext in MESH_EXTENSIONS else "points"
