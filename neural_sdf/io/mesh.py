"""Mesh files (.obj .ply .stl .off .glb) to and from ``Mesh``, parsed and written by trimesh."""

import logging
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ..geometry import Mesh
from ._atomic import atomic_write
from .files import check_input_file, file_kind

__all__ = ["MESH_EXTENSIONS", "load_mesh", "load_ply", "save_mesh", "mesh_from_object"]

log = logging.getLogger(__name__)

MESH_EXTENSIONS = (".obj", ".ply", ".stl", ".off", ".glb")
"""Extensions read and written as meshes."""

MeshSource = Union[PathLike, Mesh, Any]


def _read_trimesh(path: Path) -> Any:
    """Parse a mesh or point-cloud file with trimesh; vertices merged as the file means them.

    Returns a ``trimesh.Trimesh`` (scenes are flattened), or a ``trimesh.PointCloud`` for a
    ``.ply`` without faces.
    """
    import trimesh

    try:
        # merge_norm/merge_tex: OBJ files with per-corner normal or UV indices (e.g. "f v//n")
        # would otherwise be split into disconnected triangles and lose watertightness.
        # PLY is read as what it is (mesh or cloud); other formats are flattened to one mesh.
        force = None if path.suffix.lower() == ".ply" else "mesh"
        loaded = trimesh.load(str(path), force=force, process=False, merge_norm=True, merge_tex=True)
    except Exception as exc:  # trimesh raises many types for malformed files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot parse ({reason})") from exc
    if path.suffix.lower() == ".ply":
        _check_ply_complete(path, loaded)
    return loaded


def _check_ply_complete(path: Path, loaded: Any) -> None:
    """Raise if a parsed PLY holds fewer elements than its header declares.

    trimesh reads a truncated *ASCII* PLY without complaint, returning the rows it found (binary
    PLYs are checked by trimesh itself), so a cut-off file would silently lose points or faces.
    """
    raw = getattr(loaded, "metadata", {}).get("_ply_raw")
    if not isinstance(raw, dict):
        return
    for name, element in raw.items():
        if not isinstance(element, dict) or "length" not in element:
            continue
        declared, data = int(element["length"]), element.get("data")
        columns = list(data.values()) if isinstance(data, dict) else [data] if data is not None else []
        found = min((len(c) for c in columns), default=declared)
        if found < declared:
            raise InputError(f"{path}: truncated file (header declares {declared} {name} elements, found {found})")


def mesh_from_object(obj: Any, name: str = "mesh") -> Mesh:
    """Convert a ``Mesh``, ``trimesh.Trimesh`` or ``open3d.geometry.TriangleMesh`` to ``Mesh``."""
    if isinstance(obj, Mesh):
        return obj
    vertices = faces = None
    if hasattr(obj, "vertices") and hasattr(obj, "faces"):  # trimesh
        vertices, faces = np.asarray(obj.vertices), np.asarray(obj.faces)
    elif hasattr(obj, "vertices") and hasattr(obj, "triangles"):  # open3d
        vertices, faces = np.asarray(obj.vertices), np.asarray(obj.triangles)
    if vertices is None:
        raise TypeError(f"{name}: expected a path, Mesh, trimesh.Trimesh or open3d TriangleMesh, got {type(obj).__name__}")
    return Mesh(vertices.astype(np.float64), faces.astype(np.int64).reshape(-1, 3))


def load_ply(path: PathLike) -> Any:
    """A ``.ply`` file as what it holds: a ``Mesh`` when it has faces, else a ``PointCloud``.

    Raises:
        InputError: a missing, empty or malformed file (naming it).
    """
    from .pointcloud import load_points

    p = check_input_file(path, (".ply",), "mesh or point cloud")
    return load_mesh(p) if file_kind(p) == "mesh" else load_points(p)


def load_mesh(source: MeshSource) -> Mesh:
    """Load a triangle mesh from a file or convert a mesh object.

    Vertices are merged only where the file itself shares them; no face is dropped.

    Args:
        source: path to ``.obj .ply .stl .off .glb``, or a ``Mesh``/trimesh/Open3D mesh.

    Returns:
        ``Mesh`` with float64 vertices in the file's units and int64 faces.

    Raises:
        InputError: the file is missing, empty, malformed, has no faces, or has non-finite vertices.
    """
    if not isinstance(source, (str, Path)):
        return _validate(mesh_from_object(source), "mesh")
    path = check_input_file(source, MESH_EXTENSIONS, "mesh")
    loaded = _read_trimesh(path)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))))
    if len(faces) == 0:
        raise InputError(f"{path}: no faces (not a triangle mesh, or not a valid {path.suffix} file)")
    return _validate(mesh_from_object(loaded, str(path)), str(path))


def _validate(mesh: Mesh, name: str) -> Mesh:
    if mesh.is_empty:
        raise InputError(f"{name}: mesh has no faces")
    if not np.all(np.isfinite(mesh.vertices)):
        raise InputError(f"{name}: mesh has non-finite vertex coordinates")
    tri = mesh.vertices[mesh.faces]
    if not np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum() > 0:
        raise InputError(f"{name}: mesh has no faces of positive area")
    return mesh


def save_mesh(mesh: Mesh, path: PathLike) -> Path:
    """Write ``mesh`` atomically, in the format given by the extension of ``path``.

    Raises:
        InputError: unknown extension, empty mesh, or an output folder that is missing or read-only.
    """
    p = Path(path)
    if p.suffix.lower() not in MESH_EXTENSIONS:
        raise InputError(
            f"{p}: unknown mesh extension {p.suffix or '(none)'!r}; expected one of {', '.join(MESH_EXTENSIONS)}"
        )
    if mesh.is_empty:
        raise InputError(f"{p}: refusing to write an empty mesh")
    with atomic_write(p) as tmp:
        mesh.to_trimesh().export(str(tmp), file_type=p.suffix.lower().lstrip("."))
    return p
