"""Point-cloud files to and from ``PointCloud``.

Parsing is done by libraries: trimesh for ``.ply`` (strict: truncated files raise) and for mesh
files, Open3D for ``.pcd`` and ``.pts``, numpy for ``.xyz`` (3 or 6 columns, the SIREN paper's
format) and ``.npy``/``.npz``. Mesh files are sampled into an oriented cloud (area-weighted).
"""

import logging
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ..geometry import PointCloud
from ._atomic import atomic_write
from .mesh import MESH_EXTENSIONS, _read_trimesh, _validate, check_input_file, mesh_from_object

__all__ = ["POINT_EXTENSIONS", "MIN_POINTS", "load_points", "save_points", "clean_points"]

log = logging.getLogger(__name__)

POINT_EXTENSIONS = (".ply", ".pcd", ".xyz", ".pts", ".npy", ".npz")
"""Extensions read as point clouds (``.ply`` with faces is read as a mesh and sampled)."""

INPUT_EXTENSIONS = tuple(dict.fromkeys(POINT_EXTENSIONS + MESH_EXTENSIONS))

MIN_POINTS = 16
"""Fewest usable points a cloud may have; fewer cannot define a surface."""

PointSource = Union[PathLike, PointCloud, np.ndarray, Any]


def load_points(source: PointSource, num_mesh_samples: int = 100_000, seed: int = 0) -> PointCloud:
    """Load a point cloud (with normals when present) from a file, array or object.

    Args:
        source: a path (``.ply .pcd .xyz .pts .npy .npz``, or a mesh ``.obj .ply .stl .off .glb``),
            a ``PointCloud``, an ``(N, 3)`` or ``(N, 6)`` array (xyz, then normals), a trimesh
            ``PointCloud``/``Trimesh``, or an Open3D ``PointCloud``/``TriangleMesh``.
        num_mesh_samples: points drawn (area-weighted, with face normals) when the source is a mesh.
        seed: seed of the mesh sampling.

    Returns:
        A ``PointCloud`` in the source's units; non-finite points dropped with a warning, normals
        normalized to unit length.

    Raises:
        InputError: missing/empty/malformed file, unknown extension, fewer than ``MIN_POINTS``
            usable points, or normals that are all zero-length.
    """
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    cloud = _read_source(source, num_mesh_samples, seed)
    return clean_points(cloud, name)


def _read_source(source: PointSource, num_mesh_samples: int, seed: int) -> PointCloud:
    from ..sampling import sample_mesh_surface

    if isinstance(source, PointCloud):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, "array")
    if not isinstance(source, (str, Path)):
        return _from_object(source, num_mesh_samples, seed)
    path = check_input_file(source, INPUT_EXTENSIONS, "point cloud or mesh")
    ext = path.suffix.lower()
    if ext in (".npy", ".npz"):
        return _read_numpy(path)
    if ext == ".xyz":
        return _read_xyz(path)
    if ext in (".pcd", ".pts"):
        return _read_open3d(path)
    loaded = _read_trimesh(path)
    faces = getattr(loaded, "faces", None)
    if faces is not None and len(faces) > 0:
        mesh = _validate(mesh_from_object(loaded, str(path)), str(path))
        return sample_mesh_surface(mesh, num_mesh_samples, seed=seed)
    if ext != ".ply":
        raise InputError(f"{path}: no faces (not a triangle mesh, or not a valid {ext} file)")
    return _ply_cloud(path, loaded)


def _from_array(arr: np.ndarray, name: str) -> PointCloud:
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] not in (3, 6):
        raise InputError(f"{name}: points must be (N, 3) or (N, 6) (xyz, normals), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: points must be numeric, got {arr.dtype}")
    arr = arr.astype(np.float64)
    return PointCloud(arr[:, :3], arr[:, 3:6] if arr.shape[1] == 6 else None)


def _from_object(obj: Any, num_mesh_samples: int, seed: int) -> PointCloud:
    from ..sampling import sample_mesh_surface

    if hasattr(obj, "faces") or hasattr(obj, "triangles"):
        return sample_mesh_surface(mesh_from_object(obj), num_mesh_samples, seed=seed)
    if hasattr(obj, "points") and hasattr(obj, "has_normals"):  # open3d PointCloud
        pts = np.asarray(obj.points, dtype=np.float64)
        normals = np.asarray(obj.normals, dtype=np.float64) if obj.has_normals() else None
        return PointCloud(pts, normals)
    if hasattr(obj, "vertices"):  # trimesh PointCloud
        return PointCloud(np.asarray(obj.vertices, dtype=np.float64))
    raise TypeError(f"source: expected a path, array, PointCloud, trimesh or Open3D object, got {type(obj).__name__}")


def _read_numpy(path: Path) -> PointCloud:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot parse ({str(exc).splitlines()[0]})") from exc
    if isinstance(data, np.ndarray):
        return _from_array(data, str(path))
    with data:
        if "points" not in data:
            raise InputError(f"{path}: .npz must hold an array named 'points' (and optionally 'normals')")
        pts = _from_array(data["points"], f"{path}:points")
        if "normals" in data:
            normals = np.asarray(data["normals"], dtype=np.float64)
            if normals.shape != pts.points.shape:
                raise InputError(f"{path}: 'normals' must match 'points' {pts.points.shape}, got {normals.shape}")
            return PointCloud(pts.points, normals)
        return pts


def _read_xyz(path: Path) -> PointCloud:
    try:
        arr = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#")
    except Exception as exc:
        raise InputError(f"{path}: cannot parse as whitespace-separated numbers ({str(exc).splitlines()[0]})") from exc
    return _from_array(arr, str(path))


def _read_open3d(path: Path) -> PointCloud:
    import open3d as o3d

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)  # we report failures ourselves
    pcd = o3d.io.read_point_cloud(str(path), format="auto", remove_nan_points=False, remove_infinite_points=False)
    if len(pcd.points) == 0:
        # Open3D reports parse failures only as a log line and an empty cloud.
        raise InputError(f"{path}: cannot parse, or no points in file")
    return _from_object(pcd, 0, 0)


def _ply_cloud(path: Path, loaded: Any) -> PointCloud:
    pts = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    normals = None
    raw = getattr(loaded, "metadata", {}).get("_ply_raw", {})
    vertex = raw.get("vertex", {}).get("data") if isinstance(raw, dict) else None
    # trimesh keeps binary PLY vertices as a structured array and ASCII ones as a dict of (N, 1) columns.
    names = vertex.dtype.names if isinstance(vertex, np.ndarray) else tuple(vertex) if isinstance(vertex, dict) else None
    if names and {"nx", "ny", "nz"} <= set(names):
        normals = np.stack([np.asarray(vertex[k], dtype=np.float64).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)
        if normals.shape != pts.shape:
            normals = None
    return PointCloud(pts, normals)


def clean_points(cloud: PointCloud, name: str = "points") -> PointCloud:
    """Drop non-finite points and unusable normals, and normalize normals to unit length.

    Points whose normal is zero-length or non-finite lose their point (with a warning), since a
    mixed cloud would bias the normal loss; if *every* normal is unusable the cloud is rejected.

    Raises:
        InputError: fewer than ``MIN_POINTS`` finite points, or every normal unusable.
    """
    n_in = len(cloud)
    if n_in == 0:
        raise InputError(f"{name}: no points")
    finite = np.all(np.isfinite(cloud.points), axis=1)
    if finite.sum() < MIN_POINTS:
        raise InputError(
            f"{name}: only {int(finite.sum())} of {n_in} points have finite coordinates (need at least {MIN_POINTS})"
        )
    if not finite.all():
        log.warning("%s: dropped %d of %d points with non-finite coordinates", name, int((~finite).sum()), n_in)
    cloud = cloud.subset(finite)
    if cloud.normals is not None:
        length = np.linalg.norm(cloud.normals, axis=1)
        usable = np.isfinite(length) & (length > 1e-12)
        if usable.sum() < MIN_POINTS:
            raise InputError(
                f"{name}: only {int(usable.sum())} of {len(cloud)} normals are usable (zero-length or non-finite otherwise)"
            )
        if not usable.all():
            log.warning("%s: dropped %d points whose normals are zero-length or non-finite", name, int((~usable).sum()))
            cloud = cloud.subset(usable)
            length = length[usable]
        cloud = PointCloud(cloud.points, cloud.normals / length[:, None])
    return cloud


def save_points(cloud: PointCloud, path: PathLike) -> Path:
    """Write a cloud atomically: ``.ply`` (binary, with normals), ``.xyz`` (3 or 6 columns) or ``.npz``."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".ply", ".xyz", ".npz"):
        raise InputError(f"{p}: cannot write point clouds as {ext or '(none)'!r}; use .ply, .xyz or .npz")
    with atomic_write(p) as tmp:
        if ext == ".npz":
            arrays = {"points": cloud.points}
            if cloud.normals is not None:
                arrays["normals"] = cloud.normals
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        elif ext == ".xyz":
            data = cloud.points if cloud.normals is None else np.hstack([cloud.points, cloud.normals])
            np.savetxt(tmp, data, fmt="%.9g")
        else:
            _export_ply_with_normals(cloud, tmp)
    return p


def _export_ply_with_normals(cloud: PointCloud, path: Path) -> None:
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    if cloud.normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(cloud.normals)
    if not o3d.io.write_point_cloud(str(path), pcd, write_ascii=False):
        raise OSError(f"{path}: Open3D failed to write the point cloud")
