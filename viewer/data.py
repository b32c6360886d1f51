"""The viewer's model layer: loaded items and the heavy computations behind the UI (no GUI here).

Everything in this module is plain numpy plus the public ``neural_sdf`` API, so that it runs in
worker threads and can be tested without a window.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np

import neural_sdf as ns

log = logging.getLogger(__name__)

ItemKind = Literal["mesh", "points", "model"]
SliceAxis = Literal["x", "y", "z"]
AXES: tuple[str, ...] = ("x", "y", "z")


@dataclass
class Item:
    """One thing given on the command line.

    Attributes:
        path: file it came from.
        kind: ``"mesh"``, ``"points"`` or ``"model"``.
        mesh: world-space mesh (for a model: its extracted mesh, once the worker is done).
        cloud: world-space points, for point clouds; for a model, its input subsample.
        model: the fitted SDF, for model files.
    """

    path: Path
    kind: ItemKind
    mesh: Optional[ns.Mesh] = None
    cloud: Optional[ns.PointCloud] = None
    model: Optional[ns.SDFModel] = None
    info: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Short display name (the file name)."""
        return self.path.name


def load_item(path: Path) -> Item:
    """Load a mesh, point cloud or model file (models are not meshed here; see ``extract``).

    What a file holds is told by ``neural_sdf.file_kind`` (a model by its header, not its extension).

    Raises:
        InputError: the file is missing or cannot be read, or is a shape space.
    """
    from neural_sdf.io import check_input_file

    path = check_input_file(path, kind="mesh, point cloud or model")
    kind = ns.file_kind(path)
    if kind == "model":
        model = ns.load_model(path)  # a single model or a tiled scene
        cloud = None if model.support_points is None else ns.PointCloud(model.support_points)
        return Item(path, "model", model=model, cloud=cloud)
    if kind == "space":
        raise ns.InputError(f"{path}: is a shape-space file; decode its shapes into model files first (fit-space --models DIR)")
    if kind == "mesh":
        return Item(path, "mesh", mesh=ns.load_mesh(path))
    return Item(path, "points", cloud=ns.load_points(path))


def extract(model: ns.SDFModel, resolution: int) -> ns.Mesh:
    """Mesh a model with ``neural_sdf.extract_mesh`` at ``resolution`` (heavy: run it in a worker)."""
    return ns.extract_mesh(model, ns.ExtractConfig(resolution=resolution))


def normal_colors(normals: np.ndarray) -> np.ndarray:
    """Map ``(N, 3)`` unit normals to ``(N, 3)`` RGB in ``[0, 1]``: ``(n + 1) / 2``."""
    return np.clip((np.asarray(normals, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


def vertex_normals(mesh: ns.Mesh) -> np.ndarray:
    """Area-weighted ``(V, 3)`` unit vertex normals of a mesh (outward for CCW faces)."""
    v, f = mesh.vertices, mesh.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.where(norm > 0, norm, 1.0)


def normal_glyphs(
    points: np.ndarray, normals: np.ndarray, length: float, max_glyphs: int = 20_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Short line segments along normals, on at most ``max_glyphs`` randomly chosen points.

    Subsampling keeps a million-point cloud interactive: drawing cost depends on ``max_glyphs``
    only.

    Args:
        points: ``(N, 3)`` world positions.
        normals: ``(N, 3)`` unit normals.
        length: glyph length, world units.
        max_glyphs: most glyphs drawn.
        seed: subsampling seed.

    Returns:
        ``(2K, 3)`` segment end points and ``(K, 2)`` int32 line indices, ``K <= max_glyphs``.
    """
    n = len(points)
    if n > max_glyphs:
        idx = np.random.default_rng(seed).choice(n, max_glyphs, replace=False)
        points, normals = points[idx], normals[idx]
    k = len(points)
    ends = np.empty((2 * k, 3))
    ends[0::2] = points
    ends[1::2] = points + length * normals
    lines = np.stack([np.arange(0, 2 * k, 2), np.arange(1, 2 * k, 2)], axis=1).astype(np.int32)
    return ends, lines


def padded_bounds(box: np.ndarray, padding: float = 0.1) -> np.ndarray:
    """Grow a ``(2, 3)`` box by ``padding`` times its longest side on every side."""
    box = np.asarray(box, dtype=np.float64)
    pad = padding * float((box[1] - box[0]).max())
    return np.stack([box[0] - pad, box[1] + pad])


@dataclass
class SdfSlice:
    """An axis-aligned cross-section of an SDF.

    Attributes:
        vertices: ``(R*R, 3)`` world positions of the grid on the plane.
        triangles: ``(2*(R-1)^2, 3)`` int32 grid triangles.
        colors: ``(R*R, 3)`` RGB in ``[0, 1]`` (see ``distance_colors``).
        values: ``(R, R)`` signed distances, world units (``indexing="ij"`` over the two in-plane axes).
        zero_lines: ``(2M, 3)`` end points of the zero-level contour segments (world).
        position: world coordinate of the plane along its axis.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    values: np.ndarray
    zero_lines: np.ndarray
    position: float


def distance_colors(d: np.ndarray, scale: float) -> np.ndarray:
    """Colour signed distances: blue inside, red outside, white near zero; ``|d| >= scale`` saturates.

    Thin dark bands every ``scale / 4`` show the level sets. Returns ``(..., 3)`` RGB in [0, 1].
    """
    s = np.clip(np.asarray(d, dtype=np.float64) / scale, -1.0, 1.0)[..., None]
    inside = np.array([0.05, 0.25, 0.80])
    outside = np.array([0.85, 0.15, 0.05])
    white = np.ones(3)
    # The square root saturates quickly away from zero: with a linear ramp most of a slice near a
    # surface stayed almost white (and the renderer's tone mapping pales colours further).
    t = np.sqrt(np.abs(s))
    rgb = np.where(s < 0, white + t * (inside - white), white + t * (outside - white))
    bands = np.abs(np.asarray(d) / (scale / 4.0)) % 1.0
    rgb *= np.where(bands[..., None] < 0.08, 0.8, 1.0)
    return np.clip(rgb, 0.0, 1.0)


def sdf_slice(sdf, box: np.ndarray, axis: str, offset: float, resolution: int = 128) -> SdfSlice:
    """Evaluate an SDF on an axis-aligned plane through a box (heavy: run it in a worker).

    Args:
        sdf: anything with ``.sdf((N, 3) world points) -> (N,)`` (an ``SDFModel`` or a blend).
        box: ``(2, 3)`` world box the plane spans.
        axis: ``"x"``, ``"y"`` or ``"z"``, the plane's normal.
        offset: plane position in ``[-1, 1]``: -1 at the box's minimum, 1 at its maximum.
        resolution: grid points per side.

    Returns:
        The slice, with a colour map scaled to a fifth of the box's longest side and the zero-level
        contour as line segments (marching squares, ``skimage.measure.find_contours``).
    """
    from skimage import measure

    if axis not in AXES:
        raise ValueError(f"axis must be one of {list(AXES)}, got {axis!r}")
    if not -1.0 <= offset <= 1.0:
        raise ValueError(f"offset must be in [-1, 1], got {offset}")
    a = AXES.index(axis)
    u, v = [k for k in range(3) if k != a]
    box = np.asarray(box, dtype=np.float64)
    pos = box[0, a] + (offset + 1.0) / 2.0 * (box[1, a] - box[0, a])
    us = np.linspace(box[0, u], box[1, u], resolution)
    vs = np.linspace(box[0, v], box[1, v], resolution)
    gu, gv = np.meshgrid(us, vs, indexing="ij")
    pts = np.empty((resolution * resolution, 3))
    pts[:, a] = pos
    pts[:, u] = gu.ravel()
    pts[:, v] = gv.ravel()
    values = np.asarray(sdf.sdf(pts), dtype=np.float64).reshape(resolution, resolution)
    scale = float((box[1] - box[0]).max()) / 5.0
    colors = distance_colors(values.ravel(), scale)
    i = np.arange(resolution - 1)
    ii, jj = np.meshgrid(i, i, indexing="ij")
    base = (ii * resolution + jj).ravel()
    tris = np.concatenate(
        [np.stack([base, base + resolution, base + resolution + 1], 1), np.stack([base, base + resolution + 1, base + 1], 1)]
    ).astype(np.int32)
    segs = []
    if values.min() < 0 < values.max():
        for c in measure.find_contours(values, 0.0):
            p = np.empty((len(c), 3))
            p[:, a] = pos
            p[:, u] = np.interp(c[:, 0], np.arange(resolution), us)
            p[:, v] = np.interp(c[:, 1], np.arange(resolution), vs)
            seg = np.empty((2 * (len(p) - 1), 3))
            seg[0::2], seg[1::2] = p[:-1], p[1:]
            segs.append(seg)
    zero = np.concatenate(segs) if segs else np.zeros((0, 3))
    return SdfSlice(pts, tris, colors, values, zero, float(pos))


def mesh_summary(mesh: ns.Mesh) -> dict:
    """Counts, bounding box and watertightness of a mesh (cheap enough for the UI thread)."""
    if mesh.is_empty:
        return {"vertices": len(mesh.vertices), "faces": 0, "watertight": False, "bounds": None}
    tm = mesh.to_trimesh()
    return {
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "watertight": bool(tm.is_watertight),
        "bounds": box_of(mesh.vertices),
    }


def box_of(points: np.ndarray) -> np.ndarray:
    """``(2, 3)`` bounding box of ``(N, 3)`` points."""
    return np.stack([points.min(axis=0), points.max(axis=0)])


def format_box(box: Optional[np.ndarray]) -> str:
    """One-line text of a ``(2, 3)`` box."""
    if box is None:
        return "-"
    lo, hi = box
    return "[" + ", ".join(f"{a:.3g}" for a in lo) + "] .. [" + ", ".join(f"{b:.3g}" for b in hi) + "]"


class InterpolationCache:
    """Meshes of the blend of two models at slider times, computed once each.

    Times are snapped to ``1 / steps`` so that nearby slider positions share a frame.
    """

    def __init__(self, a: ns.SDFModel, b: ns.SDFModel, resolution: int, steps: int = 20) -> None:
        self.a, self.b, self.resolution, self.steps = a, b, resolution, steps
        self._frames: dict[int, ns.Mesh] = {}

    def key(self, t: float) -> int:
        """Cache key of time ``t`` (its index on the ``steps`` grid)."""
        return int(round(float(np.clip(t, 0.0, 1.0)) * self.steps))

    def get(self, t: float) -> Optional[ns.Mesh]:
        """The cached mesh at ``t``, or None."""
        return self._frames.get(self.key(t))

    def compute(self, t: float) -> ns.Mesh:
        """Mesh of the blend at ``t`` (heavy; cached)."""
        k = self.key(t)
        if k not in self._frames:
            self._frames[k] = ns.blend_mesh(self.a, self.b, k / self.steps, ns.ExtractConfig(resolution=self.resolution))
        return self._frames[k]

    def blend(self, t: float):
        """The blended SDF at ``t`` (for slices); see ``neural_sdf.interpolate.blend_sdf``."""
        return ns.blend_sdf(self.a, self.b, self.key(t) / self.steps)
