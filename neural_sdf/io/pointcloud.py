"""Point-cloud files to and from ``PointCloud``.

Parsing is done by libraries: trimesh for ``.ply`` (strict: truncated files raise) and for mesh
files, Open3D's tensor reader for ``.pcd`` (any field layout, ``binary_compressed`` included; the
ASCII header is read here for the sensor's VIEWPOINT), laspy (+ lazrs) for ``.las``/``.laz``, pye57
for ``.e57``, numpy for text point files (``.xyz .txt .csv .pts``, any number of columns, named by
a header line, by ``columns``, or guessed from their count) and ``.npy``/``.npz``. Coordinates are
read as float64 and never pass through float32 (geo-referenced tiles at 1e6 would lose decimetres).
Extra per-point fields (colours, intensity, classification...) become ``PointCloud.attributes``.
Mesh files are sampled into an oriented cloud (area-weighted).
"""

import logging
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ..geometry import PointCloud
from ._atomic import atomic_write
from .files import check_input_file
from .mesh import MESH_EXTENSIONS, _read_trimesh, _validate, mesh_from_object

__all__ = [
    "POINT_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "SCAN_EXTENSIONS",
    "MIN_POINTS",
    "load_points",
    "load_query_points",
    "save_points",
    "clean_points",
]

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = (".xyz", ".txt", ".csv", ".pts")
"""Text point files: one point per row, columns separated by spaces, tabs, commas or semicolons."""

SCAN_EXTENSIONS = (".las", ".laz", ".e57")
"""Scanner formats read with the optional ``scans`` extra (laspy + lazrs, pye57)."""

POINT_EXTENSIONS = (".ply", ".pcd") + TEXT_EXTENSIONS + SCAN_EXTENSIONS + (".npy", ".npz")
"""Extensions read as point clouds (``.ply`` with faces is read as a mesh and sampled)."""

SCANS_EXTRA = "pip install 'neural-sdf[scans]'"

INPUT_EXTENSIONS = tuple(dict.fromkeys(POINT_EXTENSIONS + MESH_EXTENSIONS))

MIN_POINTS = 16
"""Fewest usable points a cloud may have; fewer cannot define a surface."""

PointSource = Union[PathLike, PointCloud, np.ndarray, Any]


def load_points(source: PointSource, num_mesh_samples: int = 100_000, seed: int = 0, columns: str = "") -> PointCloud:
    """Load a point cloud (with normals when present) from a file, array or object.

    Args:
        source: a path (``.ply .pcd .xyz .txt .csv .pts .las .laz .e57 .npy .npz``, or a mesh
            ``.obj .ply .stl .off .glb``), a ``PointCloud``, an ``(N, 3)`` or ``(N, 6)`` array (xyz,
            then normals), a trimesh ``PointCloud``/``Trimesh``, or an Open3D ``PointCloud``/``TriangleMesh``.
        num_mesh_samples: points drawn (area-weighted, with face normals) when the source is a mesh.
        seed: seed of the mesh sampling.
        columns: what the columns of a text point file hold, e.g. ``"x y z nx ny nz"`` or
            ``"x y z r g b a"`` (``-`` skips a column); empty: the file's header line says, or the
            column count (see ``_read_text``). Ignored, with a warning, for other files.

    Returns:
        A ``PointCloud`` in the source's units (float64); non-finite points dropped with a warning,
        normals normalized to unit length; the file's other per-point fields in ``attributes`` and
        the sensor position in ``viewpoint`` when the file gives one (``.pcd``, ``.e57``).

    Raises:
        InputError: missing/empty/malformed file, unknown extension, columns that do not fit the
            file, fewer than ``MIN_POINTS`` usable points, or normals that are all zero-length.
        ImportError: a ``.las .laz .e57`` file without the ``scans`` extra installed.
    """
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    cloud = _read_source(source, num_mesh_samples, seed, columns)
    return clean_points(cloud, name)


def _read_source(source: PointSource, num_mesh_samples: int, seed: int, columns: str = "") -> PointCloud:
    from ..geometry import sample_mesh_surface

    if isinstance(source, PointCloud):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, "array")
    if not isinstance(source, (str, Path)):
        return _from_object(source, num_mesh_samples, seed)
    path = check_input_file(source, INPUT_EXTENSIONS, "point cloud or mesh")
    ext = path.suffix.lower()
    if columns.strip() and ext not in TEXT_EXTENSIONS:
        log.warning("%s: `columns` applies to text point files (%s) only; ignored", path, " ".join(TEXT_EXTENSIONS))
    if ext in (".npy", ".npz"):
        return _read_numpy(path)
    if ext in TEXT_EXTENSIONS:
        return _read_text(path, columns)
    if ext == ".pcd":
        return _read_pcd(path)
    if ext in (".las", ".laz"):
        return _read_las(path)
    if ext == ".e57":
        return _read_e57(path)
    loaded = _read_trimesh(path)
    faces = getattr(loaded, "faces", None)
    if faces is not None and len(faces) > 0:
        mesh = _validate(mesh_from_object(loaded, str(path)), str(path))
        return sample_mesh_surface(mesh, num_mesh_samples, seed=seed)
    if ext != ".ply":
        raise InputError(f"{path}: no faces (not a triangle mesh, or not a valid {ext} file)")
    return _ply_cloud(path, loaded)


def load_query_points(path: PathLike) -> np.ndarray:
    """Points to query a model at, exactly as the file has them: ``(N, 3)`` float64, input units.

    Reads every point format ``load_points`` reads; a mesh file gives its vertices (not samples).
    Nothing is dropped or reordered, so row ``i`` of a query's answer is point ``i`` of the file.

    Raises:
        InputError: a missing, empty or malformed file, a wrong shape, or non-finite coordinates
            (naming the first bad row).
    """
    p = check_input_file(path, INPUT_EXTENSIONS, "points")
    if p.suffix.lower() in (".ply",) + MESH_EXTENSIONS:
        loaded = _read_trimesh(p)
        pts = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float64)
    else:
        pts = _read_source(p, 0, 0).points
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise InputError(f"{p}: expected (N, 3) points, got shape {pts.shape}")
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        raise InputError(f"{p}: {int(bad.sum())} points have non-finite coordinates (first at row {int(np.argmax(bad))})")
    return pts


def _from_array(arr: np.ndarray, name: str) -> PointCloud:
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] not in (3, 6):
        raise InputError(f"{name}: points must be (N, 3) or (N, 6) (xyz, normals), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: points must be numeric, got {arr.dtype}")
    arr = arr.astype(np.float64)
    return PointCloud(arr[:, :3], arr[:, 3:6] if arr.shape[1] == 6 else None)


def _from_object(obj: Any, num_mesh_samples: int, seed: int) -> PointCloud:
    from ..geometry import sample_mesh_surface

    if hasattr(obj, "faces") or hasattr(obj, "triangles"):
        return sample_mesh_surface(mesh_from_object(obj), num_mesh_samples, seed=seed)
    if hasattr(obj, "points") and hasattr(obj, "has_normals"):  # open3d PointCloud
        pts = np.asarray(obj.points, dtype=np.float64)
        normals = np.asarray(obj.normals, dtype=np.float64) if obj.has_normals() else None
        attributes = {"rgb": np.asarray(obj.colors, dtype=np.float64)} if obj.has_colors() else {}
        return PointCloud(pts, normals, attributes)
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


# ---------------------------------------------------------------------------------------------
# Text point files
# ---------------------------------------------------------------------------------------------

# Column names as they appear in headers (lower case, without "//" or "#") -> their role.
# CloudCompare writes "//X Y Z Rf Gf Bf Af Nx Ny Nz" (float colours) or "//X,Y,Z,R,G,B,A".
_COLUMN_ROLES = {
    **{k: "x" for k in ("x", "px", "pos_x", "point_x", "coord_x", "cartesianx")},
    **{k: "y" for k in ("y", "py", "pos_y", "point_y", "coord_y", "cartesiany")},
    **{k: "z" for k in ("z", "pz", "pos_z", "point_z", "coord_z", "cartesianz")},
    **{k: "nx" for k in ("nx", "normal_x", "normalx", "nxf")},
    **{k: "ny" for k in ("ny", "normal_y", "normaly", "nyf")},
    **{k: "nz" for k in ("nz", "normal_z", "normalz", "nzf")},
    **{k: "r" for k in ("r", "red", "rf", "colorred")},
    **{k: "g" for k in ("g", "green", "gf", "colorgreen")},
    **{k: "b" for k in ("b", "blue", "bf", "colorblue")},
    **{k: "a" for k in ("a", "alpha", "af")},
    **{k: "intensity" for k in ("i", "intensity", "scalar_intensity", "int")},
    "-": "-",
}
_NORMAL_ROLES = ("nx", "ny", "nz")
_UNIT_NORMAL_TOL = 1e-2
"""Six unnamed columns are xyz + normals when ``| |n| - 1 | <=`` this on 99% of the rows (text
normals written with 3 decimals are within 2e-3 of unit length; colours 0-255 never are). Rows
of three zeros count as points without a normal (they are dropped later, with a warning, or the
file is rejected when none has a normal)."""
_SPLIT = re.compile(r"[,;\s]+")


class _TextLayout(NamedTuple):
    header: Optional[list[str]]  # names from the file's header line, or None
    skiprows: int  # lines before the first data row
    delimiter: Optional[str]  # None: whitespace
    num_columns: int


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _tokens(line: str) -> list[str]:
    return [t for t in _SPLIT.split(line.strip()) if t]


def _text_layout(path: Path, max_lines: int = 1000) -> _TextLayout:
    """Find the header line (if any), the first data row, its separator and column count."""
    header: Optional[list[str]] = None
    count_skipped = False
    with open(path, encoding="utf-8", errors="replace") as fh:
        for index, line in enumerate(fh):
            if index >= max_lines:
                break
            text = line.strip()
            if not text:
                continue
            if text.startswith("//") or text.startswith("#"):
                # A comment line names the columns when its words include x, y and z.
                names = _tokens(text.lstrip("/#"))
                if header is None and names and {"x", "y", "z"} <= {_COLUMN_ROLES.get(n.lower()) for n in names}:
                    header = names
                elif header is None and text.startswith("//") and names and not all(_is_number(n) for n in names):
                    header = names
                continue
            tokens = _tokens(text)
            if not all(_is_number(t) for t in tokens):
                if header is not None:
                    raise InputError(f"{path}: line {index + 1} is neither numbers nor the column header: {text[:60]!r}")
                header = tokens
                continue
            if len(tokens) == 1 and re.fullmatch(r"\d+", tokens[0]) and not count_skipped:
                count_skipped = True
                continue  # the point count that .pts files (and some .xyz exports) start with
            delimiter = ";" if ";" in text else "," if "," in text else None
            return _TextLayout(header, index, delimiter, len(tokens))
    raise InputError(f"{path}: no rows of numbers in the first {max_lines} lines (not a text point file?)")


def _parse_columns(spec: str, path: Path, source: str) -> list[str]:
    names = _tokens(spec)
    if not names:
        raise InputError(f"{path}: {source} names no columns")
    return names


def _column_roles(names: list[str], path: Path, source: str) -> list[str]:
    """Role of each named column ("x", "nx", "r", "intensity", "-" or the lower-case name itself)."""
    names = [n.strip("\"'") for n in names]
    roles = [_COLUMN_ROLES.get(n.lower(), n.lower()) for n in names]
    missing = [axis for axis in ("x", "y", "z") if axis not in roles]
    if missing:
        raise InputError(
            f"{path}: {source} {' '.join(names)!r} names no {'/'.join(missing)} column; "
            "give the columns with `columns`, e.g. `columns='x y z nx ny nz'`"
        )
    for role in ("x", "y", "z", *_NORMAL_ROLES, "r", "g", "b", "a", "intensity"):
        if roles.count(role) > 1:
            raise InputError(f"{path}: {source} {' '.join(names)!r} names the {role} column twice")
    some_normals = [r for r in _NORMAL_ROLES if r in roles]
    if some_normals and len(some_normals) < 3:
        raise InputError(f"{path}: {source} {' '.join(names)!r} names only {'/'.join(some_normals)} of the normal nx ny nz")
    return roles


def _guess_roles(path: Path, data: np.ndarray) -> list[str]:
    """Roles of unnamed columns from their count (logged unless xyz or xyz + unit normals)."""
    count = data.shape[1]
    if count < 3:
        raise InputError(f"{path}: rows have {count} columns; a point needs at least x y z")
    pts_file = path.suffix.lower() == ".pts"
    roles = ["x", "y", "z"] + [f"column_{j + 1}" for j in range(3, count)]
    if count == 6:
        length = np.linalg.norm(data[:, 3:6], axis=1)
        if float(np.mean((np.abs(length - 1.0) <= _UNIT_NORMAL_TOL) | (length == 0.0))) >= 0.99:
            roles[3:6] = list(_NORMAL_ROLES)
        elif pts_file:
            roles[3:6] = ["r", "g", "b"]
    elif pts_file and count == 4:
        roles[3] = "intensity"
    elif pts_file and count == 7:
        roles[3:7] = ["intensity", "r", "g", "b"]
    if count > 3 and roles[3:] != list(_NORMAL_ROLES):
        # xyz and xyz + unit normals are the usual layouts; anything else is a guess worth a line.
        log.info(
            "%s: no column header; read the %d columns as %s (name them with `columns`, e.g. `columns='x y z nx ny nz'`)",
            path, count, " ".join(roles),
        )
    return roles


def _read_text(path: Path, columns: str = "") -> PointCloud:
    """Read a text point file: one point per row, any number of columns.

    The columns are named, in this order, by ``columns`` (``"x y z r g b a"``, ``-`` skips one),
    by a header line (``//X,Y,Z,R,G,B,A``, ``x y z nx ny nz``, ``X Y Z Intensity``; a comment line
    whose words include x, y and z counts as one), or by their count: 3 are xyz; 6 are xyz +
    normals when the last three have unit length (or are all zero) on 99% of the rows, else xyz +
    3 attributes (``.pts``: r g b); ``.pts`` 4 and 7 are xyz + intensity (+ r g b); others are xyz
    + unnamed attributes ``column_4``... (one info line says what was guessed). A first row
    holding one integer (the ``.pts`` point count) is skipped. Values are parsed as float64.

    Raises:
        InputError: no rows of numbers, rows of unequal length, or names (header or ``columns``)
            without x/y/z, naming a column twice, or not matching the rows' column count.
    """
    layout = _text_layout(path)
    if columns.strip():
        names: Optional[list[str]] = _parse_columns(columns, path, "`columns`")
        source = "`columns`"
    else:
        names, source = layout.header, "the header line"
    if names is not None:
        roles = _column_roles(names, path, source)
        if len(roles) != layout.num_columns:
            raise InputError(
                f"{path}: {source} {' '.join(names)!r} names {len(roles)} columns, but the rows have {layout.num_columns}"
            )
    try:
        data = np.loadtxt(path, dtype=np.float64, ndmin=2, comments="#", delimiter=layout.delimiter, skiprows=layout.skiprows)
    except Exception as exc:
        raise InputError(f"{path}: cannot parse as rows of numbers ({str(exc).splitlines()[0]})") from exc
    if names is None:
        roles = _guess_roles(path, data)
    else:
        log.debug("%s: columns from %s: %s", path, source, " ".join(roles))
    index = {role: j for j, role in enumerate(roles)}
    points = data[:, [index["x"], index["y"], index["z"]]]
    normals = data[:, [index[r] for r in _NORMAL_ROLES]] if "nx" in index else None
    attributes: dict[str, np.ndarray] = {}
    if all(c in index for c in "rgb"):
        attributes["rgb"] = data[:, [index["r"], index["g"], index["b"]]]
    used = {"x", "y", "z", "-", *_NORMAL_ROLES, *(("r", "g", "b") if "rgb" in attributes else ())}
    for j, role in enumerate(roles):
        if role in used:
            continue
        key = {"a": "alpha", "r": "red", "g": "green", "b": "blue"}.get(role, role)
        while key in attributes:
            key += "_"
        attributes[key] = data[:, j]
    return PointCloud(points, normals, attributes)


# ---------------------------------------------------------------------------------------------
# PCD
# ---------------------------------------------------------------------------------------------

_DEFAULT_PCD_VIEWPOINT = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


class _PcdHeader(NamedTuple):
    fields: list[str]
    width: int
    height: int
    points: int
    viewpoint: tuple[float, ...]  # tx ty tz qw qx qy qz
    data: str


def _read_pcd_header(path: Path, max_lines: int = 64) -> _PcdHeader:
    """Parse the ASCII header of a ``.pcd`` file (ASCII for every DATA kind, binary ones too)."""
    entries: dict[str, list[str]] = {}
    with open(path, "rb") as fh:
        for _ in range(max_lines):
            raw = fh.readline(4096)
            if not raw:
                break
            line = raw.decode("ascii", errors="replace").strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition(" ")
            entries[key.upper()] = value.split()
            if key.upper() == "DATA":
                break
    if "DATA" not in entries or "FIELDS" not in entries:
        raise InputError(f"{path}: cannot parse (no PCD header with FIELDS and DATA lines)")
    try:
        width = int(entries.get("WIDTH", ["0"])[0])
        height = int(entries.get("HEIGHT", ["1"])[0])
        count = int(entries.get("POINTS", [str(width * height)])[0])
        viewpoint = tuple(float(v) for v in entries.get("VIEWPOINT", _DEFAULT_PCD_VIEWPOINT))
    except (ValueError, IndexError) as exc:
        raise InputError(f"{path}: cannot parse the PCD header ({exc})") from exc
    if len(viewpoint) != 7 or not all(np.isfinite(viewpoint)):
        raise InputError(f"{path}: cannot parse the PCD header (VIEWPOINT must be 7 numbers: tx ty tz qw qx qy qz)")
    return _PcdHeader(entries["FIELDS"], width, height, count, viewpoint, entries["DATA"][0].lower() if entries["DATA"] else "")


def _read_pcd(path: Path) -> PointCloud:
    """Read a ``.pcd`` with Open3D's tensor reader (keeps float64 and every field) and its VIEWPOINT.

    The viewpoint is known when the header's VIEWPOINT is not PCL's default ``0 0 0 1 0 0 0``, or
    when the cloud is organized (``HEIGHT > 1``): a depth frame in the camera's frame, sensor at
    the origin. An organized frame's pixels without depth (NaN points) are dropped here.
    """
    import open3d as o3d

    header = _read_pcd_header(path)
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)  # we report failures ourselves
    # Open3D's legacy reader turns binary float64 coordinates into zeros; the tensor one reads them.
    try:
        pcd = o3d.t.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
    except Exception as exc:
        raise InputError(f"{path}: cannot parse ({_first_line(exc)})") from exc
    fields = {key: pcd.point[key].numpy() for key in pcd.point}
    points = fields.pop("positions", np.zeros((0, 3)))
    if len(points) == 0:
        # Open3D reports parse failures only as a log line and an empty cloud.
        raise InputError(f"{path}: cannot parse, or no points in file (fields {' '.join(header.fields)}, DATA {header.data})")
    points = points.astype(np.float64)
    normals = fields.pop("normals", None)
    attributes = {("rgb" if key == "colors" else key): (v[:, 0] if v.ndim == 2 and v.shape[1] == 1 else v) for key, v in fields.items()}
    organized = header.height > 1
    known = organized or header.viewpoint != _DEFAULT_PCD_VIEWPOINT
    cloud = PointCloud(points, None if normals is None else normals.astype(np.float64), attributes, header.viewpoint[:3] if known else None)
    if organized:
        finite = np.all(np.isfinite(cloud.points), axis=1)
        if not finite.all():
            log.info(
                "%s: organized %dx%d frame: dropped %d pixels without depth (NaN); %d points left",
                path, header.width, header.height, int((~finite).sum()), int(finite.sum()),
            )
            cloud = cloud.subset(finite)
    return cloud


# ---------------------------------------------------------------------------------------------
# LAS / LAZ and E57 (the "scans" extra)
# ---------------------------------------------------------------------------------------------


def _import_backend(module: str, path: Path) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{path}: reading {path.suffix.lower()} files needs {module}: {SCANS_EXTRA}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_las(path: Path) -> PointCloud:
    """Read ``.las``/``.laz`` with laspy: scaled float64 coordinates (``las.x``: offset + scale * int).

    LAS gives no sensor position, but its z is elevation: the cloud's ``up`` is +z.

    Kept as attributes where the point format has them: intensity, classification,
    return_number, rgb ``(N, 3)`` uint16, and the file's extra-bytes dimensions by name.
    """
    laspy = _import_backend("laspy", path)
    if path.suffix.lower() == ".laz" and not laspy.LazBackend.detect_available():
        raise ImportError(f"{path}: reading .laz files needs a LAZ backend (lazrs): {SCANS_EXTRA}")
    try:
        las = laspy.read(str(path))
    except Exception as exc:  # laspy and lazrs raise ValueError, LaspyException, LazrsError...
        if "LazBackend" in str(exc):
            raise ImportError(f"{path}: compressed LAS data needs a LAZ backend (lazrs): {SCANS_EXTRA}") from exc
        raise InputError(f"{path}: cannot parse as LAS/LAZ ({_first_line(exc)})") from exc
    expected = int(las.header.point_count)
    if len(las.points) != expected:
        raise InputError(f"{path}: the header says {expected} points, the file holds {len(las.points)} (truncated?)")
    points = np.column_stack([np.asarray(las.x, dtype=np.float64), np.asarray(las.y, dtype=np.float64), np.asarray(las.z, dtype=np.float64)])
    dims = set(las.point_format.dimension_names)
    attributes: dict[str, np.ndarray] = {}
    for key in ("intensity", "classification", "return_number"):
        if key in dims:
            attributes[key] = np.asarray(las[key])
    if {"red", "green", "blue"} <= dims:
        attributes["rgb"] = np.column_stack([np.asarray(las[c]) for c in ("red", "green", "blue")])
    for key in las.point_format.extra_dimension_names:
        attributes.setdefault(key, np.asarray(las[key]))
    return PointCloud(points, None, attributes, up=np.array([0.0, 0.0, 1.0]))


def _read_e57(path: Path) -> PointCloud:
    """Read every scan of an ``.e57`` with pye57, in the file's common frame, and concatenate them.

    Each scan's points are moved by its pose (rotation quaternion, translation) into the file's
    frame; points whose ``cartesianInvalidState`` (or spherical one) is not 0 are dropped. Kept as
    attributes: intensity, rgb ``(N, 3)`` uint8 (those every scan has), and ``scan_index`` when
    there are several scans. A scan's scanner position is its pose's translation (a scan in
    spherical coordinates without a pose: its origin); a Cartesian scan without a pose gives no
    position. The viewpoint is that position when every scan has one and they all share it (one
    scan, usually); else None.
    """
    pye57 = _import_backend("pye57", path)
    try:
        e57 = pye57.E57(str(path))
    except Exception as exc:  # libe57 raises E57Exception with a multi-line report
        raise InputError(f"{path}: cannot parse as E57 ({_first_line(exc)})") from exc
    colour_fields = ("colorRed", "colorGreen", "colorBlue")
    parts: list[dict[str, np.ndarray]] = []
    positions: list[Optional[np.ndarray]] = []
    with e57:
        num_scans = int(e57.scan_count)
        if num_scans == 0:
            raise InputError(f"{path}: no scans in the file (no 3D data)")
        for i in range(num_scans):
            try:
                header = e57.get_header(i)
                fields = set(header.point_fields)
                # Spherical coordinates are measured from the scanner, so it sits at the scan's origin.
                at_origin = header.has_pose() or "sphericalRange" in fields
                positions.append(np.asarray(header.translation, dtype=np.float64) if at_origin else None)
                if header.point_count == 0:
                    continue
                data = e57.read_scan(
                    i, ignore_missing_fields=True, intensity="intensity" in fields, colors=set(colour_fields) <= fields
                )
            except Exception as exc:
                raise InputError(f"{path}: cannot read scan {i} of {num_scans} ({_first_line(exc)})") from exc
            part = {"points": np.column_stack([np.asarray(data[k], dtype=np.float64) for k in ("cartesianX", "cartesianY", "cartesianZ")])}
            if "intensity" in data:
                part["intensity"] = np.asarray(data["intensity"])
            if all(c in data for c in colour_fields):
                part["rgb"] = np.column_stack([np.asarray(data[c]) for c in colour_fields])
            part["scan_index"] = np.full(len(part["points"]), i, dtype=np.int32)
            parts.append(part)
    total = sum(len(p["points"]) for p in parts)
    if total == 0:
        raise InputError(f"{path}: no valid points in its {num_scans} scan(s)")
    shared = set.intersection(*(set(p) for p in parts)) - {"points"}
    if num_scans == 1:
        shared.discard("scan_index")
    attributes = {key: np.concatenate([p[key] for p in parts]) for key in sorted(shared)}
    viewpoint = None
    if all(v is not None for v in positions) and all(np.array_equal(v, positions[0]) for v in positions):
        viewpoint = positions[0]
    if num_scans > 1:
        where = "; ".join("unknown" if v is None else " ".join(f"{c:.6g}" for c in v) for v in positions)
        log.info("%s: %d scans merged in the file's frame (%d valid points); scanner positions: %s", path, num_scans, total, where)
    return PointCloud(np.concatenate([p["points"] for p in parts]), None, attributes, viewpoint)


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
    return PointCloud(pts, normals, _ply_attributes(vertex, names or (), len(pts)))


_PLY_COLOURS = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))


def _ply_attributes(vertex: Any, names: tuple[str, ...], count: int) -> dict[str, np.ndarray]:
    """The vertex properties other than position and normal: ``rgb`` ``(N, 3)``, ``alpha``, others by name."""
    columns: dict[str, np.ndarray] = {}
    for key in names:
        if key in ("x", "y", "z", "nx", "ny", "nz"):
            continue
        value = np.asarray(vertex[key])
        value = value.reshape(len(value), -1)[:, 0] if value.ndim == 2 and value.shape[1] == 1 else value
        if value.ndim == 1 and len(value) == count and np.issubdtype(value.dtype, np.number):
            columns[key] = value  # list properties (object arrays) are left out
    attributes: dict[str, np.ndarray] = {}
    for triple in _PLY_COLOURS:
        if all(c in columns for c in triple):
            attributes["rgb"] = np.column_stack([columns.pop(c) for c in triple])
            break
    for key, value in columns.items():
        attributes["alpha" if key in ("alpha", "a", "diffuse_alpha") and "alpha" not in attributes else key] = value
    return attributes


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
        cloud = cloud.with_normals(cloud.normals / length[:, None])
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
