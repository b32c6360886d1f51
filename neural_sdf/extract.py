"""Meshes from signed distance fields: chunked grid evaluation, marching cubes, world units, clean-up.

The grid covers the data's bounding box plus a margin, in normalized coordinates, with
``indexing="ij"``. Evaluation runs under ``torch.no_grad()`` in fixed-size chunks, so memory
stays bounded by the volume itself plus one chunk. Marching cubes is scikit-image's, at level 0,
with faces oriented outward (positive signed volume). Results are in world units.
"""

import logging
import math
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch

from .config import ExtractConfig
from .geometry import Mesh, Normalization, is_closed
from .nn.fused import inference_forward
from .sampling import Grid, iter_chunks, make_grid

__all__ = [
    "evaluate_grid",
    "marching_cubes",
    "extraction_grid",
    "extract_mesh",
    "connected_components",
    "remove_stray_components",
    "remove_untouched_pieces",
    "trim_mesh",
    "near_input",
    "InputSupport",
    "MAX_RESOLUTION",
    "sparse_marching_cubes",
    "sparse_stride",
    "SparseExtraction",
    "BORDER_VALUE",
    "decimate_mesh",
    "piece_areas",
]

log = logging.getLogger(__name__)

SDFFunction = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``(N, 3)`` normalized points to ``(N, 1)`` signed distances."""


MAX_RESOLUTION = 4096
"""Most grid points along the longest side of an extraction grid."""


def extraction_grid(data_bounds_normalized: np.ndarray, config: ExtractConfig, scale: float = 1.0) -> Grid:
    """Grid over the normalized data box grown by ``config.padding`` of its largest side.

    The box is clipped to the training domain ``[-1, 1]^3``. With ``config.voxel_size`` (world
    units; ``scale`` is the normalization's, normalized units per world unit) the grid's cells have
    that edge; otherwise it has ``config.resolution`` points along the longest side.

    Raises:
        InputError: a voxel size that needs more than ``MAX_RESOLUTION`` points along a side.
    """
    lo, hi = np.asarray(data_bounds_normalized[0]), np.asarray(data_bounds_normalized[1])
    margin = config.padding * float((hi - lo).max()) + 1e-6
    lo = np.clip(lo - margin, -1.0, 1.0)
    hi = np.clip(hi + margin, -1.0, 1.0)
    resolution = config.resolution
    if config.voxel_size > 0:
        resolution = int(np.ceil(float((hi - lo).max()) / (config.voxel_size * scale))) + 1
        if resolution > MAX_RESOLUTION:
            from .errors import InputError

            raise InputError(
                f"`voxel_size={config.voxel_size:g}`: {resolution:,} grid points along the longest side "
                f"(extent {float((hi - lo).max()) / scale:.4g}); at most {MAX_RESOLUTION} fit, use a voxel of at least "
                f"{float((hi - lo).max()) / scale / (MAX_RESOLUTION - 1):.3g}"
            )
        resolution = max(resolution, 8)
    return make_grid(lo, hi, resolution)


def evaluate_grid(
    fn: SDFFunction,
    grid: Grid,
    chunk_size: int = 65536,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
) -> np.ndarray:
    """Evaluate ``fn`` at every grid point, chunk by chunk, without autograd.

    Returns:
        ``grid.shape`` float32 volume, ``volume[i, j, k] = fn((x_i, y_j, z_k))`` (``indexing="ij"``).
    """
    from .progress import progress_bar

    xs, ys, zs = (torch.as_tensor(a, dtype=dtype, device=device) for a in grid.axes())
    nx, ny, nz = grid.shape
    out = np.empty(grid.num_points, dtype=np.float32)
    plane = ny * nz
    with torch.no_grad(), progress_bar(total=grid.num_points, desc="extract", unit="pt", unit_scale=True, disable=not progress, leave=False) as bar:
        for sl in iter_chunks(grid.num_points, chunk_size):
            idx = torch.arange(sl.start, sl.stop, device=device)
            coords = torch.stack([xs[idx // plane], ys[(idx // nz) % ny], zs[idx % nz]], dim=-1)
            out[sl] = fn(coords)[:, 0].float().cpu().numpy()
            bar.update(sl.stop - sl.start)
    return out.reshape(grid.shape)


def marching_cubes(volume: np.ndarray, grid: Grid, level: float = 0.0) -> Mesh:
    """Extract the ``level`` isosurface of an SDF volume (negative inside) as an outward mesh.

    Args:
        volume: ``grid.shape`` values, ``indexing="ij"``.
        grid: where the values lie.
        level: isovalue (default 0, not scikit-image's mid-range default).

    Returns:
        ``Mesh`` in the grid's coordinates, faces counter-clockwise seen from outside; an empty
        mesh (with a warning) when the volume has no crossing of ``level``.
    """
    from skimage.measure import marching_cubes as sk_marching_cubes

    vmin, vmax = float(np.nanmin(volume)), float(np.nanmax(volume))
    if not np.all(np.isfinite(volume)):
        raise ValueError("volume contains non-finite values")
    if not vmin < level < vmax:
        log.warning("no zero crossing: SDF values lie in [%.4g, %.4g]", vmin, vmax)
        return Mesh(np.zeros((0, 3)))
    h = grid.spacing
    verts, faces, _, _ = sk_marching_cubes(volume, level=level, spacing=(h, h, h), allow_degenerate=True)
    verts = verts.astype(np.float64) + np.asarray(grid.origin)
    # With values increasing outward (an SDF), scikit-image's default gradient_direction="descent"
    # already winds triangles counter-clockwise seen from outside: normals point outward as they
    # are (tests/test_extract.py checks the signed volume is positive).
    faces = faces.astype(np.int64)
    return Mesh(verts, np.ascontiguousarray(faces))


def connected_components(mesh: Mesh) -> np.ndarray:
    """Label each face with the index of its connected component (sharing vertices): ``(F,)`` int."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    f = mesh.faces
    nv = len(mesh.vertices)
    # Two edges per face connect its three vertices; int32 indices (as csgraph uses) halve the memory.
    index = np.int32 if nv < 2**31 else np.int64
    rows = np.concatenate([f[:, 0], f[:, 1]]).astype(index)
    cols = np.concatenate([f[:, 1], f[:, 2]]).astype(index)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(nv, nv))
    del rows, cols
    _, vlabel = cc(graph, directed=False)
    return vlabel[f[:, 0]]


def piece_areas(mesh: Mesh) -> np.ndarray:
    """Area of each connected piece (``connected_components``): ``(K,)``, in squared input units."""
    return np.bincount(connected_components(mesh), weights=mesh.face_areas())


def _submesh(mesh: Mesh, face_mask: np.ndarray) -> Mesh:
    """The faces of ``face_mask`` and the vertices they use, in their order (a mask and a running
    count instead of ``np.unique``: the same result, 25 s less on an 8M-face scene mesh)."""
    faces = mesh.faces[face_mask]
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used, dtype=np.int64) - 1
    return Mesh(mesh.vertices[used], remap[faces])


class InputSupport:
    """The input points with their k-d tree and local spacings, built once for every clean-up step
    of ``extract_mesh`` (``remove_stray_components``, ``trim_mesh`` and the trimming reach all ask
    the same questions of the same points).

    Attributes:
        points: ``(N, 3)`` float64 input points.
        local: ``(N,)`` local spacing of each point: half the distance to its 8th neighbour (0 for
            a cloud of one point).
    """

    def __init__(self, points: np.ndarray) -> None:
        from scipy.spatial import cKDTree

        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        self.tree = cKDTree(self.points) if len(self.points) else None
        self.local = np.zeros(len(self.points))
        if len(self.points) > 1:
            self.local = self.tree.query(self.points, k=min(9, len(self.points)), workers=-1)[0][:, -1] / 2.0

    def __len__(self) -> int:
        return len(self.points)

    def near(self, vertices: np.ndarray, spacings: float, min_distance: float = 0.0, cap_quantile: Optional[float] = None) -> np.ndarray:
        """``near_input`` for these points: a ``(V,)`` bool mask of the vertices near them."""
        if not len(self.points) or not len(vertices):
            return np.zeros(len(vertices), dtype=bool)
        local = self.local
        if cap_quantile is not None:
            local = np.minimum(local, np.quantile(local, cap_quantile))
        dist, nearest = self.tree.query(vertices, k=1, workers=-1)
        return dist <= np.maximum(spacings * local[nearest], min_distance)


def as_support(points: Union[np.ndarray, InputSupport]) -> InputSupport:
    """``points`` as an ``InputSupport`` (built here from an ``(N, 3)`` array)."""
    return points if isinstance(points, InputSupport) else InputSupport(points)


def near_input(
    vertices: np.ndarray, points: Union[np.ndarray, InputSupport], spacings: float, min_distance: float = 0.0,
    cap_quantile: Optional[float] = None,
) -> np.ndarray:
    """Which ``(V, 3)`` vertices lie near the input: within ``max(spacings * s, min_distance)`` of
    an input point, with ``s`` the local spacing at that point (half the distance to its 8th
    neighbour), so that "near" follows the density where each point is (a scan's sparse ground as
    much as its dense objects). ``cap_quantile``: ``s`` is at most this quantile of the local
    spacings, so a few isolated points do not each support a wide patch. ``points``: ``(N, 3)``
    or an ``InputSupport`` built once for several calls. Returns a ``(V,)`` bool mask."""
    return as_support(points).near(vertices, spacings, min_distance, cap_quantile)


CARRIER_SHARE = 0.005
"""``remove_stray_components`` keeps a piece that is the nearest surface of this share of the input
points. On an airborne terrain (Autzen) the terrain is one piece of which 28 % is near the points
(the rest: unseen sheets of the field) but the nearest surface of 98 % of them, and a building
joined to sheets 10 % and 1 %; phantom shells lie behind the true surface and are nearest to
almost none."""


def _vertex_pieces(mesh: Mesh, labels: np.ndarray) -> np.ndarray:
    """``(V,)`` the piece of each vertex, from the faces' ``(F,)`` piece labels (``connected_components``)."""
    vertex_piece = np.zeros(len(mesh.vertices), dtype=np.int64)
    vertex_piece[mesh.faces.reshape(-1)] = np.repeat(labels, 3)
    return vertex_piece


def _point_shares(mesh: Mesh, labels: np.ndarray, num: int, points: np.ndarray, max_points: int = 100_000) -> np.ndarray:
    """``(num,)`` share of the input points (a subsample of at most ``max_points``) whose nearest
    mesh vertex lies in each piece."""
    from scipy.spatial import cKDTree

    vertex_piece = _vertex_pieces(mesh, labels)
    sample = points[:: max(1, len(points) // max_points)]
    _, nearest = cKDTree(mesh.vertices).query(sample, workers=-1)
    return np.bincount(vertex_piece[nearest], minlength=num) / len(sample)


def remove_stray_components(
    mesh: Mesh, points: Union[np.ndarray, InputSupport], max_distance: float, keep_fraction: float, spacings: float = 0.0
) -> Mesh:
    """Keep the connected pieces that the data supports; drop phantom shells and sheets.

    A piece is kept when at least ``keep_fraction`` of its vertices lie near some input point:
    within ``max_distance``, or within ``spacings`` local point spacings of it (``near_input``).
    The rule is local, so shapes made of several separate parts keep all of them, while closed
    shells that the network invents inside the shape or in empty space (far from every input
    point) are removed. A piece that is the nearest surface of at least ``CARRIER_SHARE`` of the
    input points is kept however much else it holds: an open scan's surface is often joined, in
    one piece, to sheets no sensor saw (the far side of its field), and trimming, not this test,
    removes those.

    Args:
        mesh: the extracted mesh (any units).
        points: ``(N, 3)`` input points in the same units (or their ``InputSupport``).
        max_distance: distance to the input that always counts as "near", same units.
        keep_fraction: fraction of near vertices a piece needs.
        spacings: local point spacings that count as "near" too (0: only ``max_distance``).
    """
    if mesh.is_empty:
        return mesh
    labels = connected_components(mesh)
    num = int(labels.max()) + 1
    if num == 1 and keep_fraction <= 0:
        return mesh
    support = as_support(points)
    near_vertex = support.near(mesh.vertices, spacings, max_distance)
    near_face = near_vertex[mesh.faces].mean(axis=1)
    # Per-piece mean of near_face, vectorized: marching cubes on a noisy field can make
    # thousands of tiny pieces, and a Python loop over them would be quadratic.
    sums = np.bincount(labels, weights=near_face, minlength=num)
    counts = np.bincount(labels, minlength=num)
    keep = sums / np.maximum(counts, 1) >= keep_fraction
    if not keep.all() and len(support):
        keep |= _point_shares(mesh, labels, num, support.points) >= CARRIER_SHARE
    if not keep.any():
        log.warning("no piece of the mesh lies near the input; keeping the mesh unfiltered")
        return mesh
    if keep.all():
        return mesh
    log.info("removed %d of %d connected pieces far from the input", int((~keep).sum()), num)
    return _submesh(mesh, keep[labels])


TOUCH_CELLS = 2.0
TOUCH_SPACINGS = 0.5
"""``remove_untouched_pieces`` keeps a piece with an input point within ``max(TOUCH_CELLS`` grid
cells, ``TOUCH_SPACINGS`` local point spacings) of one of its vertices: a surface through the
points passes within half a cell's diagonal of each, so every piece the data supports has
vertices far closer than that."""


def remove_untouched_pieces(mesh: Mesh, points: Union[np.ndarray, InputSupport], cell: float) -> Mesh:
    """Drop the pieces that no input point touches (run after ``trim_mesh``).

    Trimming keeps faces within a few local spacings of the input; where the network's surface
    wanders inside a thin solid under the data (under an object standing on a slab, on the
    eight-object table-top scene: 3 pieces of 20-136 faces, 0.02-0.03 from the nearest point,
    inside the slab, cut loose from the surface they hung from by the trim), what is left is a
    loose remnant that lies near points but passes through none: surface the data does not
    support. A piece is kept when one of its vertices lies within ``max(TOUCH_CELLS * cell,
    TOUCH_SPACINGS * s)`` of an input point (``s`` that point's local spacing).

    Args:
        mesh: the trimmed mesh (any units).
        points: ``(N, 3)`` input points in the same units (or their ``InputSupport``).
        cell: the extraction's grid cell, same units.
    """
    if mesh.is_empty:
        return mesh
    support = as_support(points)
    labels = connected_components(mesh)
    num = int(labels.max()) + 1
    if num < 2 or not len(support):
        return mesh
    touched = np.bincount(_vertex_pieces(mesh, labels), weights=support.near(mesh.vertices, TOUCH_SPACINGS, TOUCH_CELLS * cell), minlength=num) > 0
    if touched.all():
        return mesh
    if not touched.any():
        log.warning("no piece of the mesh passes through the input; keeping the mesh unfiltered")
        return mesh
    drop = ~touched
    log.info(
        "removed %d loose pieces (%d faces) that no input point touches (none within %g grid cells or %g of its local spacing)",
        int(drop.sum()), int(drop[labels].sum()), TOUCH_CELLS, TOUCH_SPACINGS,
    )
    return _submesh(mesh, touched[labels])


def extract_mesh(
    fn: SDFFunction,
    normalization: Normalization,
    data_bounds: np.ndarray,
    config: ExtractConfig = ExtractConfig(),
    *,
    support_points: Optional[np.ndarray] = None,
    support_share: float = 1.0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Mesh:
    """Mesh the zero level set of a normalized SDF and return it in world coordinates.

    Args:
        fn: normalized SDF, ``(N, 3) -> (N, 1)``.
        normalization: maps the result back to world units.
        data_bounds: ``(2, 3)`` world bounding box of the data; the grid covers it plus padding.
        config: resolution, chunking, sparse or dense evaluation, and clean-up.
        support_points: ``(N, 3)`` world input points for the stray-piece clean-up (skipped if None).
        support_share: ``support_points`` are this share of the input (a random subsample, as a
            model keeps), so their local spacings are ``1 / sqrt(share)`` times the input's on a
            surface; adaptive meshing corrects for it and coarsens where the input, not the
            subsample, is sparse.
        device: where ``fn`` runs.
        progress: show a progress bar.

    Returns:
        World-space ``Mesh``; empty (with a warning) when the SDF has no zero crossing.
    """
    nb = normalization.to_normalized(np.asarray(data_bounds, dtype=np.float64).reshape(2, 3))
    grid = extraction_grid(nb, config, normalization.scale)
    fn = inference_forward(fn)  # the folded-w0 forward for plain sine SIRENs
    cleaning = support_points is not None and (config.trim == "on" or not config.keep_all_components)
    support = InputSupport(support_points) if cleaning else None  # one k-d tree for every clean-up step
    if config.dense:
        volume = evaluate_grid(fn, grid, config.chunk_size, device=device, progress=progress)
        # The grid's outer layer is forced outside, so every surface closes inside the grid; phantom
        # surfaces reaching the border become closed shells that the clean-up below removes.
        for axis in range(3):
            index = [slice(None)] * 3
            for end in (0, -1):
                index[axis] = end
                volume[tuple(index)] = BORDER_VALUE
        mesh = marching_cubes(volume, grid, level=0.0)
    else:
        # Same mesh as the dense path (same cells, same values, same forcing), far fewer evaluations;
        # when trimming, only near the data (what lies farther is trimmed anyway).
        near = None
        if support_points is not None and config.trim == "on":
            pts = normalization.to_normalized(support_points)
            near = (pts, _trim_reach(support, config.trim_factor) * normalization.scale + 2 * grid.spacing)
        if near is not None and config.adaptive == "on":
            # Coarser where the points are sparse (a scene's ground), one closed surface throughout.
            mesh = adaptive_marching_cubes(
                fn, grid, near[0], support.local * math.sqrt(min(max(support_share, 1e-12), 1.0)) * normalization.scale, near[1],
                lipschitz=config.lipschitz, chunk_size=config.chunk_size, device=device, progress=progress,
            ).mesh
        else:
            mesh = sparse_marching_cubes(
                fn, grid, lipschitz=config.lipschitz, chunk_size=config.chunk_size, device=device, progress=progress, near=near
            ).mesh
    if mesh.is_empty:
        return mesh
    mesh = Mesh(normalization.to_world(mesh.vertices), mesh.faces)
    cell_world = grid.spacing / normalization.scale
    if support_points is not None and not config.keep_all_components:
        # "Near" scales with the grid and with the cloud's density: at a fine grid a sparse cloud's
        # points lie several cells apart, and a cells-only rule would call its true surface stray.
        mesh = remove_stray_components(mesh, support, config.keep_distance * cell_world, config.keep_fraction, config.keep_distance)
    if support_points is not None and config.trim == "on":
        mesh = trim_mesh(mesh, support, config.trim_factor, 2.0 * cell_world)
        if not config.keep_all_components:
            mesh = remove_untouched_pieces(mesh, support, cell_world)
    return mesh


def _trim_reach(support: InputSupport, factor: float) -> float:
    """Farthest a supported vertex can lie from the input under ``trim_mesh`` (world units): ``factor``
    times the largest local spacing (99.9th percentile, so a few isolated points do not set it)."""
    return factor * float(np.quantile(support.local, 0.999)) if len(support) > 1 else 0.0


def decimate_mesh(mesh: Mesh, target_faces: int) -> Mesh:
    """Quadric decimation (Open3D) of ``mesh`` to about ``target_faces`` triangles.

    Degenerate and duplicated triangles and unused vertices are removed afterwards; a warning says
    so when a closed mesh came out open or in more pieces. A mesh already that small is returned
    as it is.
    """

    if target_faces <= 0 or len(mesh.faces) <= target_faces:
        return mesh
    small = mesh.to_open3d().simplify_quadric_decimation(target_number_of_triangles=int(target_faces))
    small.remove_degenerate_triangles()
    small.remove_duplicated_triangles()
    small.remove_duplicated_vertices()
    small.remove_unreferenced_vertices()
    out = Mesh(np.asarray(small.vertices, dtype=np.float64), np.asarray(small.triangles, dtype=np.int64))
    before = (is_closed(mesh.faces), len(np.unique(connected_components(mesh))))
    after = (is_closed(out.faces), len(np.unique(connected_components(out))))
    if before[0] and not after[0] or after[1] > before[1]:
        log.warning("simplifying to %d faces left the mesh %s in %d pieces (was %s, %d)", len(out.faces),
                    "closed" if after[0] else "open", after[1], "closed" if before[0] else "open", before[1])
    log.info("simplified the mesh from %d to %d faces", len(mesh.faces), len(out.faces))
    return out


TRIM_SPACING_QUANTILE = 0.99
"""``trim_mesh`` measures each point's reach with its local spacing, capped at this quantile of the
cloud's local spacings. Uncapped, the sparsest returns of an airborne tile (local spacing up to 18
units against a median of 1.7) each kept the field's unseen sheets up to 56 units away."""


def trim_mesh(mesh: Mesh, points: Union[np.ndarray, InputSupport], factor: float = 3.0, min_distance: float = 0.0) -> Mesh:
    """Remove the surface that no input point supports: what a scan's sensor never saw.

    A vertex is supported when it lies near the input (``near_input``: within ``factor`` local
    point spacings of a point, the spacing capped at ``TRIM_SPACING_QUANTILE``, or
    ``min_distance``). Faces with an unsupported vertex are removed.

    Args:
        mesh: world-space mesh.
        points: ``(N, 3)`` world input points (or their ``InputSupport``).
        factor: distance allowed, in local spacings.
        min_distance: distance always allowed (world units; two grid cells keep marching cubes'
            own discretization from being cut).

    Returns:
        The trimmed mesh (open where it was cut).
    """
    if mesh.is_empty or not len(points):
        return mesh
    keep = near_input(mesh.vertices, points, factor, min_distance, cap_quantile=TRIM_SPACING_QUANTILE)[mesh.faces].all(axis=1)
    if keep.all():
        return mesh
    log.info("trimmed %d of %d faces farther than %g local spacings from the input", int((~keep).sum()), len(keep), factor)
    return _submesh(mesh, keep)


# ----------------------------------------------------------------------------- sparse extraction
BORDER_VALUE = 2.0 * math.sqrt(3.0)
"""Value forced onto the grid's outer layer (normalized units): the diameter of ``[-1, 1]^3``, so
it exceeds every distance in the domain. A constant (not the volume's maximum) so that the dense
and the sparse path close open surfaces identically."""

# Corner ``c`` of a cell and child ``q`` of a cell are numbered ``4 * x + 2 * y + z`` with bits in
# {0, 1}. ``_CHILD_FAR[c, q]``: distance from parent corner ``c`` to the farthest point of child
# ``q``, in child sides (per axis: 1 when ``c`` and ``q`` lie on the same side, else 2).
_BITS = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], dtype=np.int64)
_CHILD_FAR = np.sqrt(np.where(_BITS[:, None, :] == _BITS[None, :, :], 1.0, 4.0).sum(-1))


# The last level splits cubes of 2 cells and looks at their 27 grid points: ``_LATTICE`` holds
# their offsets in {0, 1, 2}^3, ``_LATTICE_DIST[c, u]`` the distance from corner ``c`` (``_BITS``
# order) to point ``u`` in cells, ``_CHILD_MEMBER[q, u]`` 1.0 where ``u`` is a corner of child
# ``q``, ``_LATTICE_CORNER[c]`` the index of corner ``c`` in ``_LATTICE`` and ``_IS_CORNER`` the
# same as a mask.
_LATTICE = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
_LATTICE_DIST = np.linalg.norm(2 * _BITS[:, None, :] - _LATTICE[None], axis=-1)
_CHILD_MEMBER = np.all((_LATTICE[None] >= _BITS[:, None, :]) & (_LATTICE[None] <= _BITS[:, None, :] + 1), axis=-1).astype(np.float32)
_LATTICE_CORNER = (2 * _BITS) @ np.array([9, 3, 1])
_IS_CORNER = np.isin(np.arange(len(_LATTICE)), _LATTICE_CORNER)


def _children_may_change_sign(vals: np.ndarray, step: float) -> np.ndarray:
    """Which children of cubes of 2 cells may hold grid points of both signs.

    Marching cubes meshes only cells whose corners change sign, so a child matters only if it may
    hold grid points of both signs. With ``|grad f| <= step / spacing``, grid point ``u`` can be
    negative only if every positive corner ``c`` has ``f(c) <= step * |c - u|`` (in cells), and
    positive likewise; known corners count as what they are.

    Args:
        vals: ``(r, 8)`` SDF values at the cubes' corners (``_BITS`` order).
        step: assumed Lipschitz bound times the grid spacing (SDF units per cell).

    Returns:
        ``(r, 8)`` bool over the children.
    """
    reach = step * _LATTICE_DIST * (1 + 1e-6)  # (8, 27)
    pos = vals >= 0
    may_neg = np.all(~pos[:, :, None] | (vals[:, :, None] <= reach[None]), axis=1)  # (r, 27)
    may_pos = np.all(pos[:, :, None] | (-vals[:, :, None] <= reach[None]), axis=1)
    may_neg[:, _LATTICE_CORNER] |= ~pos
    may_pos[:, _LATTICE_CORNER] |= pos
    return ((may_neg.astype(np.float32) @ _CHILD_MEMBER.T) > 0) & ((may_pos.astype(np.float32) @ _CHILD_MEMBER.T) > 0)


class SparseExtraction(NamedTuple):
    """What ``sparse_marching_cubes`` produced.

    Attributes:
        mesh: ``Mesh`` in the grid's coordinates, faces outward (same convention as ``marching_cubes``).
        num_evaluations: SDF evaluations made (a dense grid makes ``grid.num_points``).
        num_cells: fine cells that marching cubes visited (those that may hold a zero crossing).
    """

    mesh: Mesh
    num_evaluations: int
    num_cells: int


def sparse_stride(grid: Grid) -> int:
    """Side (in grid cells) of the coarsest cells and of the slabs of ``sparse_marching_cubes``.

    A power of two between 8 and 64, about an eighth of the longest side, and at most 32 above
    resolution 512 so that one slab of the fine grid (``stride + 1`` planes) stays small in memory.
    """
    n = max(grid.shape) - 1
    stride = 2 ** int(np.clip(round(math.log2(max(n / 8, 1))), 3, 6))
    return min(stride, 32) if n > 512 else stride


def sparse_marching_cubes(
    fn: SDFFunction,
    grid: Grid,
    *,
    lipschitz: float = 1.0,
    border_value: Optional[float] = BORDER_VALUE,
    chunk_size: int = 65536,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: bool = False,
    near: Optional[tuple[np.ndarray, float]] = None,
    blocks: Optional[tuple[np.ndarray, int]] = None,
    interface: Optional["_Interface"] = None,
    seeds: Optional[Union[np.ndarray, "_FaceSeeds"]] = None,
) -> SparseExtraction:
    """Mesh the zero level set of ``fn`` on ``grid`` by coarse-to-fine evaluation.

    The grid is covered by cubes of ``sparse_stride(grid)`` cells whose corners are evaluated
    first. A cube is split into its 8 children, and only the children that may hold a zero are
    kept: with ``|grad f| <= lipschitz``, a zero in child ``q`` needs ``|f(c)| <= lipschitz *
    far(c, q)`` for every corner ``c`` of the parent, where ``far`` is the distance to the farthest
    point of ``q`` (a tighter test than "``|f|`` below the cell's diagonal"). Only the corners of
    kept children are evaluated, down to cubes of 2 cells; their single cells are found by a test
    on grid points (``_SparseState._last_level``), since marching cubes needs only the cells
    whose corners change sign. Scikit-image's marching cubes then runs, in blocks, on exactly
    the kept cells (its ``mask``), so every cell that the dense path meshes is meshed from the
    same eight values: the result has the dense path's vertices and faces wherever the bound
    holds. Two repairs catch cells that a violated bound skipped: a kept cell whose face changes
    sign (the outer layer counted as forced outside) pulls in its neighbour across that face
    (repeatedly), and children certified negative next to the grid's outer layer are meshed
    there, since that layer is forced outside (``border_value``).

    Memory is bounded by one slab of ``stride + 1`` grid planes (float32 values, boolean marks),
    never the whole volume: at 1024^3 (a 4.3 GB dense volume) a sphere took 0.52 GB, mesh included.

    Args:
        fn: normalized SDF, ``(N, 3) -> (N, 1)``; called under ``torch.no_grad()``.
        grid: the fine grid (``indexing="ij"``).
        lipschitz: assumed bound on ``|grad f|`` (eikonal training makes it close to 1 near the
            surface); larger is safer and evaluates more points.
        border_value: value forced onto the grid's outer layer, so surfaces close inside the
            grid (None: no forcing).
        chunk_size: points per call of ``fn``.
        device: where ``fn`` runs.
        dtype: dtype of the coordinates passed to ``fn``.
        progress: show a progress bar over slabs.
        near: ``(points (N, 3) in the grid's coordinates, distance)``: mesh only the coarsest cubes
            within ``distance`` of a point (a scan's data), and nothing in the space no sensor saw,
            where an open scan's field may hold any number of surfaces (they would be trimmed
            anyway; meshing them first can cost most of the time).
        blocks: ``(mask, side)``: mesh exactly the cells whose block of ``side`` cells (per axis,
            from the grid's origin) is True in ``mask``, and nothing else (one region of an
            adaptive extraction, ``adaptive_marching_cubes``). Replaces ``near``.
        interface: grid points on the faces of its coarse blocks take the trilinear interpolant
            of the coarse lattice's values instead of ``fn``'s (``adaptive_marching_cubes``).
        seeds: ``(K, 3)`` grid cell origins always examined (and followed across sign-changing
            faces), whatever the bound says: where an adaptive extraction's coarse region meets
            this one, the interpolated face can change sign where ``fn`` does not (there, a
            ``_FaceSeeds``, which hands them out slab by slab).

    Returns:
        ``SparseExtraction``: the mesh in grid coordinates (empty, with a warning, when no cell
        holds a zero crossing), the number of evaluations and of meshed cells.
    """
    if lipschitz <= 0:
        raise ValueError(f"lipschitz must be > 0, got {lipschitz}")
    shape = np.asarray(grid.shape, dtype=np.int64)
    stride = sparse_stride(grid)
    cells = -(-(shape - 1) // stride)  # coarse cubes per axis
    top = cells * stride  # last virtual grid index per axis (>= shape - 1)
    state = _SparseState(fn, grid, shape, top, stride, lipschitz, border_value, chunk_size, device, dtype)
    if blocks is not None:
        state.set_blocks(*blocks)
    elif near is not None:
        state.active = _active_cubes(grid, cells, stride, *near)
    state.interface = interface
    if seeds is not None:
        state.seeds = seeds if isinstance(seeds, (_CellSeeds, _FaceSeeds)) else _CellSeeds(seeds)

    # Corners of the coarsest cubes: one small regular grid (points past the grid's end included).
    axes = [np.arange(0, t + 1, stride) for t in top]
    coarse_idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    coarse = state.evaluate(coarse_idx).reshape(len(axes[0]), len(axes[1]), len(axes[2]))

    parts, num_cells = state.run(coarse, progress)
    if not parts:
        log.warning("no zero crossing: no grid cell holds a sign change of the SDF")
        return SparseExtraction(Mesh(np.zeros((0, 3))), state.num_evaluations, num_cells)
    mesh = _merge_block_meshes(parts, grid, stride)
    return SparseExtraction(mesh, state.num_evaluations, num_cells)


def _active_cubes(grid: Grid, cells: np.ndarray, stride: int, points: np.ndarray, distance: float) -> np.ndarray:
    """Coarsest cubes (``cells`` per axis, ``stride`` grid cells each) within ``distance`` of a point."""
    from scipy.ndimage import binary_dilation

    active = np.zeros(tuple(int(c) for c in cells), dtype=bool)
    idx = np.floor((np.asarray(points) - np.asarray(grid.origin)) / (grid.spacing * stride)).astype(np.int64)
    idx = idx[np.all((idx >= 0) & (idx < cells), axis=1)]
    active[tuple(idx.T)] = True
    reach = int(np.ceil(distance / (grid.spacing * stride)))
    if reach > 0:
        active = binary_dilation(active, iterations=reach)
    return active


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """``np.unique(rows, axis=0)`` for ``(K, 3)`` integer cell indices (same sorted result), via one
    int64 key per row: a 1D sort instead of ``axis=0``'s lexicographic one (several times faster)."""
    if len(rows) < 2:
        return rows
    lo = rows.min(0)
    span = rows.max(0) - lo + 1
    key = ((rows[:, 0] - lo[0]) * span[1] + (rows[:, 1] - lo[1])) * span[2] + (rows[:, 2] - lo[2])
    _, first = np.unique(key, return_index=True)
    return rows[first]


class _Slab(NamedTuple):
    """One slab of ``stride`` grid cells along x: values and marks of its ``stride + 1`` planes."""

    values: np.ndarray  # (stride + 1, top_y + 1, top_z + 1) float32 SDF values where ``known``
    known: np.ndarray  # same shape, bool: evaluated (or forced) points
    cellmask: np.ndarray  # (stride, top_y, top_z) bool: cells that may hold a zero (meshed)
    offset: np.ndarray  # (3,) int: global index of local point (0, 0, 0)
    negative_border: list  # [(origins (k, 3) local, side)]: cubes certified negative at the outer layer


class _SparseState:
    """Evaluation, per-slab refinement, repair and meshing for ``sparse_marching_cubes``."""

    def __init__(self, fn, grid, shape, top, stride, lipschitz, border_value, chunk_size, device, dtype) -> None:
        self.fn, self.grid, self.shape, self.top, self.stride = fn, grid, shape, top, stride
        self.lipschitz, self.border_value, self.chunk_size = lipschitz, border_value, chunk_size
        self.device, self.dtype = device, dtype
        self.last_cell = shape - 2  # largest origin of a real grid cell, per axis
        self.num_evaluations = 0
        self.active: Optional[np.ndarray] = None  # coarsest cubes that may be meshed (None: all)
        self.blocks: Optional[np.ndarray] = None  # exact region: blocks of ``block`` cells (None: ``active``)
        self.block = stride
        self.interface: Optional[_Interface] = None
        self.seeds: Any = None  # cell origins always examined (_CellSeeds or _FaceSeeds), or None

    def set_blocks(self, mask: np.ndarray, side: int) -> None:
        """Mesh only the cells of the True blocks of ``mask`` (``side`` cells per block and axis)."""
        if side < 1 or self.stride % side:
            raise ValueError(f"block side {side} must divide the stride {self.stride}")
        self.blocks, self.block = np.asarray(mask, dtype=bool), side
        # A coarsest cube is refined when any of its blocks is meshed.
        pool = self.stride // side
        cubes = -(-(self.top // self.stride))
        padded = np.zeros(tuple(int(c) * pool for c in cubes), dtype=bool)
        sub = tuple(slice(0, min(int(a), int(b))) for a, b in zip(mask.shape, padded.shape))
        padded[sub] = mask[sub]
        self.active = padded.reshape(cubes[0], pool, cubes[1], pool, cubes[2], pool).any(axis=(1, 3, 5))

    def _in_active(self, cells: np.ndarray) -> np.ndarray:
        """Which global cell origins ``(K, 3)`` lie in an active coarsest cube (in an active block
        when ``blocks`` are set)."""
        if self.blocks is None:
            return self._in_active_cube(cells)
        c = cells // self.block
        inside = np.all((c >= 0) & (c < np.asarray(self.blocks.shape)), axis=1)
        out = np.zeros(len(cells), dtype=bool)
        out[inside] = self.blocks[tuple(c[inside].T)]
        return out

    def _in_active_cube(self, cells: np.ndarray) -> np.ndarray:
        """Which global cell origins ``(K, 3)`` lie in a coarsest cube that is refined."""
        if self.active is None:
            return np.ones(len(cells), dtype=bool)
        c = np.minimum(cells // self.stride, np.asarray(self.active.shape) - 1)
        return self.active[tuple(c.T)]

    def evaluate(self, idx: np.ndarray) -> np.ndarray:
        """SDF at integer grid indices ``(K, 3)``; returns ``(K,)`` float32 (on the faces of coarse
        blocks, the coarse lattice's interpolant when ``interface`` is set)."""
        if self.interface is None:
            return self._evaluate(idx)
        on = self.interface.on_faces(idx)
        if not on.any():
            return self._evaluate(idx)
        out = np.empty(len(idx), dtype=np.float32)
        out[~on] = self._evaluate(idx[~on])
        out[on] = self.interface.interpolate(idx[on], self._evaluate)
        return out

    def _evaluate(self, idx: np.ndarray) -> np.ndarray:
        """``fn`` at integer grid indices ``(K, 3)``; returns ``(K,)`` float32."""
        out = np.empty(len(idx), dtype=np.float32)
        origin = np.asarray(self.grid.origin, dtype=np.float64)
        with torch.no_grad():
            for sl in iter_chunks(len(idx), self.chunk_size):
                # Same arithmetic as Grid.axes (origin + index * spacing in float64, then cast), so
                # both paths feed the network bit-identical coordinates.
                pts = origin + idx[sl].astype(np.float64) * self.grid.spacing
                x = torch.as_tensor(pts, dtype=self.dtype, device=self.device)
                out[sl] = self.fn(x)[:, 0].float().cpu().numpy()
        self.num_evaluations += len(idx)
        return out

    def run(self, coarse: np.ndarray, progress: bool) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
        """Refine, repair and mesh every slab; two slabs are held so leaks can cross slab faces."""
        from .progress import progress_bar

        parts: list[tuple[np.ndarray, np.ndarray]] = []
        num_cells = 0
        prev: Optional[_Slab] = None
        carry = np.zeros((0, 3), dtype=np.int64)
        num_slabs = int(coarse.shape[0] - 1)
        for bx in progress_bar(range(num_slabs), desc="extract", unit="slab", disable=not progress, leave=False):
            cur = self._refine(bx, coarse[bx : bx + 2])
            seeds = np.concatenate([np.argwhere(cur.cellmask) + cur.offset, carry, self._seeds(bx)])
            back, fwd = self._repair(cur, seeds, flood_all=True)
            for _ in range(100):
                if prev is None or not len(back):
                    break
                _, to_cur = self._repair(prev, back)
                if not len(to_cur):
                    break
                back, more = self._repair(cur, to_cur)
                fwd = np.concatenate([fwd, more])
            if prev is not None:
                num_cells += self._mesh(prev, parts)
            prev, carry = cur, fwd
        if prev is not None:
            num_cells += self._mesh(prev, parts)
        return parts, num_cells

    def _seeds(self, bx: int) -> np.ndarray:
        """The always-examined cells of slab ``bx`` that lie in the grid and the meshed region."""
        if self.seeds is None:
            return np.zeros((0, 3), dtype=np.int64)
        cells = self.seeds.cells(bx * self.stride, (bx + 1) * self.stride)
        return cells[np.all((cells >= 0) & (cells <= self.last_cell), axis=1) & self._in_active(cells)]

    def _refine(self, bx: int, coarse: np.ndarray) -> _Slab:
        """Coarse-to-fine refinement of slab ``bx`` from its coarse corner values ``(2, ny, nz)``."""
        s0 = self.stride
        size = (s0 + 1, int(self.top[1]) + 1, int(self.top[2]) + 1)
        slab = _Slab(
            np.zeros(size, dtype=np.float32),
            np.zeros(size, dtype=bool),
            np.zeros((s0, size[1] - 1, size[2] - 1), dtype=bool),
            np.array([bx * s0, 0, 0], dtype=np.int64),
            [],
        )
        slab.values[0, ::s0, ::s0], slab.values[s0, ::s0, ::s0] = coarse[0], coarse[1]
        slab.known[0, ::s0, ::s0] = slab.known[s0, ::s0, ::s0] = True
        # Coarsest cubes of the slab that hold real grid cells.
        jy, jz = np.meshgrid(np.arange(0, self.top[1], s0), np.arange(0, self.top[2], s0), indexing="ij")
        org = np.stack([np.zeros(jy.size, dtype=np.int64), jy.ravel(), jz.ravel()], -1)
        org = org[np.all(org + slab.offset <= self.last_cell, axis=1)]
        org = org[self._in_active_cube(org + slab.offset)]
        side = s0
        while side > 2 and len(org):
            vals = slab.values[tuple((org[:, None, :] + _BITS[None] * side).transpose(2, 0, 1))]  # (r, 8)
            half = side // 2
            reach = self.lipschitz * self.grid.spacing * half * _CHILD_FAR  # (8 corners, 8 children)
            absv = np.abs(vals)
            # Child q may hold a zero only if every parent corner is within reach of it.
            maybe = np.all(absv[:, :, None] <= reach[None] * (1 + 1e-6), axis=1)  # (r, 8)
            # A sign change guarantees a zero: if the bound cleared every child, it is violated
            # here, so keep them all (the leak repair then follows the surface).
            lost = (vals.min(1) < 0) & (vals.max(1) > 0) & ~maybe.any(1)
            maybe[lost] = True
            if self.border_value is not None and not maybe.all():
                # A child that cannot hold a zero has the sign of the corner with the widest margin.
                best = np.argmax(absv[:, :, None] - reach[None], axis=1)  # (r, child)
                negative = np.take_along_axis(vals, best, axis=1) < 0
                self._note_negative_border(slab, org, ~maybe & negative, half)
            child = (org[:, None, :] + _BITS[None] * half)[maybe]
            child = child[np.all(child + slab.offset <= self.last_cell, axis=1)]
            self._fill(slab, child, half)
            org, side = child, half
        if len(org):  # cubes of side 2 (the stride is a power of two >= 8)
            self._last_level(slab, org)
        for cubes, cube_side in slab.negative_border:
            self._add_border_cells(slab, cubes, cube_side)
        return slab

    def _last_level(self, slab: _Slab, org: np.ndarray) -> None:
        """Split cells of side 2 (slab-local origins ``org``) into the grid cells that marching cubes needs.

        Marching cubes makes triangles only in cells whose corners change sign, so the tests here
        are on grid points. In a parent whose corners change sign, the children that may hold
        points of both signs (``_children_may_change_sign``) are evaluated. In a parent of one
        sign, a point ``u`` is evaluated only if every corner ``c`` allows the other sign there
        (``|f(c)| <= lipschitz * |c - u|``); the other points are certified of the parent's sign.
        A child is kept when its corners change sign, or when it touches the grid's outer layer
        (forced outside) and its parent has a negative corner. Wherever the bound holds, the kept
        children are the dense path's sign-changing cells, from far fewer evaluations than
        keeping every child within reach of the surface.
        """
        strides = np.array([slab.known.shape[1] * slab.known.shape[2], slab.known.shape[2], 1], dtype=np.int64)
        flat = (org @ strides)[:, None] + (_LATTICE @ strides)[None]  # (r, 27) flat slab indices
        vals = slab.values.ravel()[flat[:, _LATTICE_CORNER]]  # (r, 8) in _BITS order
        neg = vals < 0
        mixed = neg.any(1) & ~neg.all(1)
        child = org[:, None, :] + _BITS[None]  # (r, 8, 3)
        g = child + slab.offset
        real = np.all(g <= self.last_cell, axis=-1)
        # Parents of mixed sign: the children that may change sign, all corners.
        may_change = _children_may_change_sign(vals[mixed], self.lipschitz * self.grid.spacing)
        may_change[~may_change.any(1)] = True  # the bound is violated here: take every child
        self._fill(slab, child[mixed][may_change & real[mixed]], 1)
        # Parents of one sign: the points that may have the other sign.
        uniform = ~mixed
        reach = self.lipschitz * self.grid.spacing * _LATTICE_DIST * (1 + 1e-6)  # (8, 27)
        maybe = np.all(np.abs(vals[uniform])[:, :, None] <= reach[None], axis=1) & ~_IS_CORNER  # (u, 27)
        points = (org[uniform][:, None, :] + _LATTICE[None])[maybe]
        self._fill_points(slab, points[np.all(points + slab.offset <= self.shape - 1, axis=1)])
        # Signs of the points; in a parent of one sign, points left unevaluated are certified of
        # that sign; in a parent of mixed sign, children with an unevaluated corner are dropped.
        known = slab.known.ravel()[flat]
        below = np.where(known, slab.values.ravel()[flat] < 0, neg[:, :1])  # (r, 27)
        num_neg = below.astype(np.float32) @ _CHILD_MEMBER.T  # (r, 8 children)
        keep = (num_neg > 0) & (num_neg < 8)
        keep[mixed] &= (known[mixed].astype(np.float32) @ _CHILD_MEMBER.T) == 8
        if self.border_value is not None:
            touches = np.any((g == 0) | (g == self.last_cell), axis=-1)
            keep |= touches & neg.any(1, keepdims=True)
        child = child[keep & real]
        self._fill(slab, child, 1)
        slab.cellmask[tuple(child.T)] = True

    def _fill_points(self, slab: _Slab, points: np.ndarray) -> None:
        """Evaluate the unknown ones of ``points`` (slab-local ``(K, 3)`` grid indices)."""
        if not len(points):
            return
        flat = np.ravel_multi_index(tuple(points.T), slab.known.shape)
        flat = flat[~slab.known.ravel()[flat]]
        if not len(flat):
            return
        # De-duplicate without sorting: write each index's position into the (unknown, about to be
        # overwritten) values seen as int32 and evaluate the copy whose position stayed.
        stamp, order = slab.values.ravel().view(np.int32), np.arange(len(flat), dtype=np.int32)
        stamp[flat] = order
        flat = flat[stamp[flat] == order]
        local = np.stack(np.unravel_index(flat, slab.known.shape), -1)
        slab.values.ravel()[flat] = self.evaluate(local + slab.offset)
        slab.known.ravel()[flat] = True

    def _fill(self, slab: _Slab, org: np.ndarray, side: int) -> None:
        """Evaluate the unknown corners of cells ``org`` (slab-local origins) of side ``side``."""
        if len(org):
            self._fill_points(slab, (org[:, None, :] + _BITS[None] * side).reshape(-1, 3))

    def _note_negative_border(self, slab: _Slab, org: np.ndarray, negative: np.ndarray, half: int) -> None:
        """Remember children certified negative (``negative``, ``(r, 8)``) that touch the outer layer."""
        if not negative.any():
            return
        child = org[:, None, :] + _BITS[None] * half + slab.offset  # global origins (r, 8, 3)
        touches = np.any((child == 0) | ((child <= self.shape - 1) & (child + half >= self.shape - 1)), axis=-1)
        sel = negative & touches
        if sel.any():
            slab.negative_border.append((child[sel] - slab.offset, half))

    def _add_border_cells(self, slab: _Slab, cubes: np.ndarray, cube_side: int) -> None:
        """Keep the grid cells next to the forced outer layer inside cubes certified negative.

        The outer layer is forced positive, so those cells hold the surface that closes the shape
        at the grid's boundary, although the SDF has no zero there.
        """
        new = []
        for c in cubes + slab.offset:
            lo = np.maximum(c, 0)
            hi = np.minimum(c + cube_side - 1, self.last_cell)  # inclusive range of cell origins
            if np.any(hi < lo):
                continue
            ranges = [np.arange(lo[a], hi[a] + 1) for a in range(3)]
            for a in range(3):
                for layer in (0, int(self.last_cell[a])):
                    if lo[a] <= layer <= hi[a]:
                        r = list(ranges)
                        r[a] = np.array([layer])
                        new.append(np.stack(np.meshgrid(*r, indexing="ij"), -1).reshape(-1, 3))
        if new:
            cells = _unique_rows(np.concatenate(new)) - slab.offset
            cells = cells[~slab.cellmask[tuple(cells.T)]]
            self._fill(slab, cells, 1)
            slab.cellmask[tuple(cells.T)] = True

    def _repair(self, slab: _Slab, seeds: np.ndarray, flood_all: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Keep ``seeds`` (global cell origins) and flood across sign-changing faces of kept cells.

        A face whose corners change sign holds a zero, so the cell on its other side holds one too;
        if the bound cleared that cell, it was violated there. Returns the cells the flood reached
        before and after this slab (global origins), for the neighbouring slabs. ``flood_all``
        also follows the faces of seeds that are already kept (the first pass over a slab).
        """
        s0 = self.stride
        out: list[np.ndarray] = []
        front = seeds
        for _ in range(100_000):
            if not len(front):
                break
            inside = (front[:, 0] >= slab.offset[0]) & (front[:, 0] < slab.offset[0] + s0)
            out.append(front[~inside])
            local = front[inside] - slab.offset
            local = local[np.all((local + slab.offset >= 0) & (local + slab.offset <= self.last_cell), axis=1)]
            is_new = ~slab.cellmask[tuple(local.T)]
            if not flood_all:
                local = local[is_new]  # kept cells' neighbours were followed when they were kept
                is_new = np.ones(len(local), dtype=bool)
            flood_all = False
            self._fill(slab, local[is_new], 1)
            slab.cellmask[tuple(local.T)] = True
            corners = local[:, None, :] + _BITS[None]  # (r, 8, 3)
            neg = slab.values[tuple(corners.transpose(2, 0, 1))] < 0  # (r, 8)
            if self.border_value is not None:
                # Signs as marching cubes will see them: the outer layer is forced outside, so
                # negative cells along it have sign-changing faces there too.
                g = corners + slab.offset
                neg &= ~np.any((g == 0) | (g == self.shape - 1), axis=-1)
            new = []
            for a in range(3):
                for end in (0, 1):
                    f = neg[:, _BITS[:, a] == end]
                    crosses = f.any(1) & ~f.all(1)
                    if crosses.any():
                        nb = local[crosses].copy()
                        nb[:, a] += 1 if end else -1
                        new.append(nb)
            if not new:
                break
            nb = _unique_rows(np.concatenate(new))
            g = nb + slab.offset
            nb = nb[np.all((g >= 0) & (g <= self.last_cell), axis=1) & self._in_active(g)]
            inside = (nb[:, 0] >= 0) & (nb[:, 0] < s0)
            keep = ~inside
            keep[inside] = ~slab.cellmask[tuple(nb[inside].T)]
            front = nb[keep] + slab.offset
            if len(front):
                log.debug("sparse extraction: %d cells added across sign-changing faces", len(front))
        reached = np.concatenate(out) if out else np.zeros((0, 3), dtype=np.int64)
        before = reached[reached[:, 0] < slab.offset[0]]
        after = reached[reached[:, 0] >= slab.offset[0] + s0]
        return before, after

    def _mesh(self, slab: _Slab, parts: list[tuple[np.ndarray, np.ndarray]]) -> int:
        """Run marching cubes on the kept cells of a slab, block by block; returns the cell count."""
        from skimage.measure import marching_cubes as sk_marching_cubes

        s0 = self.stride
        values, cellmask, offset = slab.values, slab.cellmask, slab.offset
        if self.blocks is not None:
            # Exactly this region's cells (the border repair may have added others).
            cells = np.argwhere(cellmask)
            drop = cells[~self._in_active(cells + offset)]
            cellmask[tuple(drop.T)] = False
        num_cells = int(cellmask.sum())
        if not num_cells:
            return 0
        if self.border_value is not None:
            # The dense path's forcing: the grid's outer layer (and anything past it) is outside.
            for a, g in enumerate((np.arange(values.shape[0]) + offset[0], np.arange(values.shape[1]), np.arange(values.shape[2]))):
                index: list[Any] = [slice(None)] * 3
                index[a] = (g <= 0) | (g >= self.shape[a] - 1)
                values[tuple(index)] = self.border_value
        by, bz = np.nonzero(cellmask.reshape(s0, cellmask.shape[1] // s0, s0, cellmask.shape[2] // s0, s0).any(axis=(0, 2, 4)))
        for jy, jz in zip(by.tolist(), bz.tolist()):
            vol = np.ascontiguousarray(values[:, jy * s0 : jy * s0 + s0 + 1, jz * s0 : jz * s0 + s0 + 1])
            if not float(vol.min()) < 0.0 < float(vol.max()):
                continue
            mask = np.zeros(vol.shape, dtype=bool)
            # scikit-image's mask[i, j, k] selects the cube whose far corner is (i, j, k).
            mask[1:, 1:, 1:] = cellmask[:, jy * s0 : jy * s0 + s0, jz * s0 : jz * s0 + s0]
            try:
                verts, faces, _, _ = sk_marching_cubes(vol, level=0.0, mask=mask, allow_degenerate=True)
            except RuntimeError:  # no surface in the selected cells
                continue
            parts.append((verts.astype(np.float64) + np.array([offset[0], jy * s0, jz * s0], dtype=np.float64), faces.astype(np.int64)))
        return num_cells


# ----------------------------------------------------------------------------- adaptive extraction
COARSE_FACTORS = (2, 4)
"""Coarse voxels that ``adaptive_marching_cubes`` may use, in fine voxels. At most 4: on the
synthetic table-top scene the ground slab is 0.05 thick, and a voxel of 4 x 0.0039 leaves it 3
cells thick (8 x would leave it 1.6 and break it)."""


class _Interface:
    """Grid points on the faces of coarse blocks, seen from the fine region of an adaptive extraction.

    On such a face the fine pass takes the trilinear interpolant of the coarse lattice (every
    ``factor``-th grid point), which is what the coarse pass's marching cubes sees there, so both
    sides cut the face at the same points of its coarse edges (``_fill_lenses`` closes the rest).
    """

    def __init__(self, coarse: np.ndarray, side: int, factor: int) -> None:
        self.coarse, self.side, self.factor = coarse, side, factor

    def on_faces(self, idx: np.ndarray) -> np.ndarray:
        """``(K,)`` bool: which global grid points ``(K, 3)`` lie on the boundary of a coarse block."""
        on_plane = idx % self.side == 0
        hit = np.zeros(len(idx), dtype=bool)
        cand = np.flatnonzero(on_plane.any(axis=1))
        if not len(cand):
            return hit
        block, plane = idx[cand] // self.side, on_plane[cand]
        shape = np.asarray(self.coarse.shape)
        for step in _BITS:  # the (up to 8) blocks a point touches: step back on axes where it is on a plane
            if np.any(step & ~plane.any(axis=0)):
                continue
            ok = np.all(plane | (step == 0), axis=1)
            b = block - step
            ok &= np.all((b >= 0) & (b < shape), axis=1)
            sel = np.flatnonzero(ok)
            hit[cand[sel]] |= self.coarse[tuple(b[sel].T)]
        return hit

    def interpolate(self, idx: np.ndarray, evaluate: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Trilinear interpolant of the coarse lattice at grid points ``(K, 3)`` (``evaluate``: values
        at grid indices); ``(K,)`` float32."""
        f = self.factor
        base = (idx // f) * f
        frac = (idx - base) / f  # (K, 3) in [0, 1)
        corners = (base[:, None, :] + f * _BITS[None]).reshape(-1, 3)
        weights = np.prod(np.where(_BITS[None] == 1, frac[:, None, :], 1.0 - frac[:, None, :]), axis=-1)  # (K, 8)
        needed = weights.reshape(-1) > 0
        unique, inverse = np.unique(corners[needed], axis=0, return_inverse=True)
        values = np.zeros(len(corners), dtype=np.float64)
        values[needed] = evaluate(unique)[inverse.reshape(-1)]
        return (weights * values.reshape(-1, 8)).sum(axis=1).astype(np.float32)


class AdaptiveExtraction(NamedTuple):
    """What ``adaptive_marching_cubes`` produced.

    Attributes:
        mesh: ``Mesh`` in the grid's coordinates, faces outward.
        factor: the coarse voxel in fine voxels (1: no region was coarse, a plain sparse extraction).
        coarse_share: share of the meshed blocks meshed on the coarse grid.
        lenses: gaps along the regions' common faces that were closed.
        open_lenses: gaps left open (not planar, or not a simple loop).
        num_evaluations: SDF evaluations made.
    """

    mesh: Mesh
    factor: int
    coarse_share: float
    lenses: int
    open_lenses: int
    num_evaluations: int


def coarse_blocks(
    grid: Grid, side: int, points: np.ndarray, local: np.ndarray, active: np.ndarray, factors: tuple[int, ...] = COARSE_FACTORS
) -> tuple[np.ndarray, int]:
    """Blocks of ``grid`` (``side`` cells each) that may be meshed at a coarser voxel, and how coarse.

    A block may be coarse at factor ``f`` when the median local spacing of the input points in
    every block of its 3 x 3 x 3 neighbourhood that holds points is at least ``f`` grid cells: the
    field there has no detail finer than the points' spacing (the voxel rule a single object
    follows everywhere), and the fine region keeps a block's margin around every dense part. The
    factor with the fewest estimated cells is chosen (fine blocks count 1, coarse ones ``1 / f^2``).

    Args:
        grid: the fine grid (normalized units).
        side: cells per block and axis.
        points: ``(N, 3)`` input points in the grid's coordinates.
        local: ``(N,)`` their local spacings (``InputSupport.local``), same units.
        active: ``(bx, by, bz)`` bool, the blocks meshed at all.
        factors: coarse factors to try (powers of two dividing ``side``).

    Returns:
        ``(coarse, factor)``: ``coarse`` a bool mask like ``active`` (all False with factor 1).
    """
    from scipy import ndimage

    shape = active.shape
    idx = np.floor((np.asarray(points) - np.asarray(grid.origin)) / (grid.spacing * side)).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
    idx, loc = idx[inside], np.asarray(local, dtype=np.float64)[inside] / grid.spacing
    flat = np.ravel_multi_index(tuple(idx.T), shape)
    median = np.full(int(np.prod(shape)), np.inf)
    if len(flat):
        order = np.lexsort((loc, flat))
        flat, loc = flat[order], loc[order]
        starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
        counts = np.diff(np.r_[starts, len(flat)])
        median[flat[starts]] = loc[starts + counts // 2]
    finest = ndimage.minimum_filter(median.reshape(shape), size=3, mode="nearest")
    best, best_cost, best_mask = 1, float(active.sum()), np.zeros(shape, dtype=bool)
    for f in factors:
        if side % f:
            continue
        mask = active & (finest >= f)
        cost = float((active & ~mask).sum()) + float(mask.sum()) / f**2
        if mask.any() and cost < best_cost:
            best, best_cost, best_mask = f, cost, mask
    return best_mask, best


def adaptive_marching_cubes(
    fn: SDFFunction,
    grid: Grid,
    points: np.ndarray,
    local: np.ndarray,
    distance: float,
    *,
    lipschitz: float = 1.0,
    border_value: Optional[float] = BORDER_VALUE,
    chunk_size: int = 65536,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> AdaptiveExtraction:
    """Mesh the zero level set of ``fn`` near the input, coarser where the input is sparse.

    The grid's blocks (``sparse_stride`` cells) within ``distance`` of a point are split by
    ``coarse_blocks`` into a fine region and a coarse one (``factor`` times the voxel) and each is
    meshed by ``sparse_marching_cubes`` on its own grid, on exactly its own cells. The fine pass
    takes, on the faces it shares with coarse blocks, the coarse lattice's interpolant
    (``_Interface``), so both meshes cut each coarse edge of a common face at the same point: their
    vertices there are welded, and what is left between them on that face (a coarse segment
    against the fine pass's polyline along the same curve, a flat convex gap) is closed by
    ``_fill_lenses``. The result is one surface, closed wherever the single-voxel mesh is.

    Args:
        fn: normalized SDF, ``(N, 3) -> (N, 1)``.
        grid: the fine grid (``indexing="ij"``); it is grown by up to ``factor - 1`` points per
            axis so that the coarse lattice ends where it does.
        points: ``(N, 3)`` input points in the grid's coordinates; ``local``: their local spacings.
        distance: mesh only blocks within this distance of a point (as ``sparse_marching_cubes``'s
            ``near``).
        lipschitz, border_value, chunk_size, device, progress: as ``sparse_marching_cubes``.

    Returns:
        ``AdaptiveExtraction``.
    """
    # The coarse lattice is every f-th point of a grid whose sides are multiples of every f.
    grow = max(COARSE_FACTORS)
    shape = (np.asarray(grid.shape, dtype=np.int64) - 1 + grow - 1) // grow * grow + 1
    fine = Grid(grid.origin, grid.spacing, tuple(int(n) for n in shape))
    stride = sparse_stride(fine)
    active = _active_cubes(fine, -(-(shape - 1) // stride), stride, points, distance)
    coarse, factor = coarse_blocks(fine, stride, points, local, active)
    common = dict(lipschitz=lipschitz, border_value=border_value, chunk_size=chunk_size, device=device, progress=progress)
    if factor == 1:
        result = sparse_marching_cubes(fn, grid, near=(points, distance), **common)
        return AdaptiveExtraction(result.mesh, 1, 0.0, 0, 0, result.num_evaluations)
    lattice = Grid(grid.origin, grid.spacing * factor, tuple(int(n) for n in (shape - 1) // factor + 1))
    share = float(coarse.sum() / max(active.sum(), 1))
    log.info("adaptive extraction: %.0f%% of the blocks at %d x the voxel", 100.0 * share, factor)
    coarse_pass = sparse_marching_cubes(fn, lattice, blocks=(coarse, stride // factor), **common)
    seeds = _seeds_along_faces(coarse_pass.mesh, fine, stride, factor)
    fine_pass = sparse_marching_cubes(
        fn, fine, blocks=(active & ~coarse, stride), interface=_Interface(coarse, stride, factor), seeds=seeds, **common
    )
    mesh, lenses, left = _join_regions(fine_pass.mesh, coarse_pass.mesh, fine, stride, factor, active & ~coarse)
    if left:
        log.warning("adaptive extraction: %d gaps between the fine and the coarse region left open (of %d)", left, lenses + left)
    else:
        log.debug("adaptive extraction: %d gaps between the regions closed", lenses)
    return AdaptiveExtraction(mesh, factor, share, lenses, left, fine_pass.num_evaluations + coarse_pass.num_evaluations)


def _block_planes(vertices: np.ndarray, grid: Grid, side: int) -> np.ndarray:
    """``(V, 3)`` int: per axis, the index of the block plane (every ``side`` cells of ``grid``) a
    vertex lies on, to a thousandth of a cell; -1 where it lies on none."""
    u = (vertices - np.asarray(grid.origin)) / (grid.spacing * side)
    r = np.round(u)
    return np.where(np.abs(u - r) < 1e-3 / side, r, -1).astype(np.int64)


class _CellSeeds:
    """Grid cell origins that the sparse extractor always examines, handed out slab by slab."""

    def __init__(self, cells: np.ndarray) -> None:
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 3)
        self.cells_by_x = cells[np.argsort(cells[:, 0], kind="stable")]

    def cells(self, lo: int, hi: int) -> np.ndarray:
        """``(K, 3)`` seeds whose x index is in ``[lo, hi)``."""
        a, b = np.searchsorted(self.cells_by_x[:, 0], [lo, hi])
        return self.cells_by_x[a:b]


class _FaceSeeds:
    """The fine cells on both sides of the block planes next to the coarse mesh's vertices there
    (``_seeds_along_faces``), kept as one base cell and plane per vertex and expanded slab by slab:
    expanded at once they are 2 (2 factor + 1)^2 cells a vertex (1.2 GB on the eight-object scene)."""

    def __init__(self, base: np.ndarray, axis: np.ndarray, factor: int) -> None:
        order = np.argsort(base[:, 0], kind="stable")
        self.base, self.axis, self.factor = base[order], axis[order], factor
        span = np.arange(-factor, factor + 1)
        self.offsets = []
        for a in range(3):
            ranges = [span if b != a else np.array([-1, 0]) for b in range(3)]
            self.offsets.append(np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 3))

    def cells(self, lo: int, hi: int) -> np.ndarray:
        """``(K, 3)`` distinct seed cells whose x index is in ``[lo, hi)``, in lexicographic order."""
        a, b = np.searchsorted(self.base[:, 0], [lo - self.factor, hi + self.factor])
        base, axis = self.base[a:b], self.axis[a:b]
        cells = np.concatenate([(base[axis == k][:, None, :] + self.offsets[k][None]).reshape(-1, 3) for k in range(3)])
        return _unique_rows(cells[(cells[:, 0] >= lo) & (cells[:, 0] < hi)])


def _seeds_along_faces(coarse: Mesh, grid: Grid, side: int, factor: int) -> _FaceSeeds:
    """Fine cells on both sides of the block planes next to the coarse mesh's vertices there.

    Where the surface runs almost along a common face, the interpolated face can change sign where
    the network one cell away does not, so the fine pass's bound would skip the cells that close
    the coarse mesh; they are examined whatever the bound says.
    """
    if coarse.is_empty:
        return _FaceSeeds(np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64), factor)
    index = (coarse.vertices - np.asarray(grid.origin)) / grid.spacing
    on = _block_planes(coarse.vertices, grid, side) >= 0
    bases, axes = [], []
    for axis in range(3):
        rows = index[on[:, axis]]
        base = np.floor(rows).astype(np.int64)
        base[:, axis] = np.round(rows[:, axis]).astype(np.int64)
        bases.append(base)
        axes.append(np.full(len(base), axis))
    return _FaceSeeds(np.concatenate(bases), np.concatenate(axes), factor)


def _join_regions(
    fine: Mesh, coarse: Mesh, grid: Grid, side: int, factor: int, fine_blocks: Optional[np.ndarray] = None
) -> tuple[Mesh, int, int]:
    """Weld the two regions' meshes along their common faces and close the gaps left there
    (``fine_blocks``: the fine region's blocks of ``side`` cells, for telling gaps from borders of
    unmeshed space).

    Returns ``(mesh, lenses closed, lenses left open)``.
    """
    from scipy.spatial import cKDTree

    if fine.is_empty or coarse.is_empty:
        return (coarse if fine.is_empty else fine), 0, 0
    nf = len(fine.vertices)
    vertices = np.vstack([fine.vertices, coarse.vertices])
    plane = _block_planes(vertices, grid, side)
    on = np.flatnonzero(np.any(plane >= 0, axis=1))
    fine_on, coarse_on = on[on < nf], on[on >= nf] - nf
    target = np.arange(len(vertices))
    if len(fine_on) and len(coarse_on):
        tol = 2e-3 * grid.spacing
        dist, nearest = cKDTree(fine.vertices[fine_on]).query(coarse.vertices[coarse_on], distance_upper_bound=tol)
        twin = np.isfinite(dist)
        target[nf + coarse_on[twin]] = fine_on[nearest[twin]]
    keep = target == np.arange(len(target))
    rank = np.cumsum(keep) - 1
    vertices, plane = vertices[keep], plane[keep]  # a welded vertex keeps the fine one's position
    faces = rank[target[np.vstack([fine.faces, coarse.faces + nf])]]
    from_coarse = np.arange(len(faces)) >= len(fine.faces)
    proper = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
    faces, from_coarse = faces[proper], from_coarse[proper]
    # Only faces with two vertices on block planes can hold a gap's edge (and its twin).
    near = np.flatnonzero(np.any(plane >= 0, axis=1)[faces].sum(axis=1) >= 2)
    fill, closed, left = _fill_lenses(
        (vertices - np.asarray(grid.origin)) / grid.spacing, faces[near], from_coarse[near], plane, factor, None if fine_blocks is None else (fine_blocks, side)
    )
    return Mesh(vertices, np.vstack([faces, fill])), closed, left


def _fill_lenses(
    index: np.ndarray, faces: np.ndarray, from_coarse: np.ndarray, plane: np.ndarray, factor: int,
    fine_blocks: Optional[tuple[np.ndarray, int]] = None,
) -> tuple[np.ndarray, int, int]:
    """Close the flat gaps between two regions' meshes on their common faces.

    A coarse face cell's contour is one segment ``B -> A`` of the coarse mesh's boundary; the fine
    mesh follows the same contour (sampled finer) from ``A`` to ``B`` along its own boundary, in
    the same face cell. The gap between them is convex (a chord against points of a bilinear
    contour; flat, of zero area, where the contour is straight), so a fan from ``A`` closes it,
    oriented against both.

    Args:
        index: ``(V, 3)`` welded vertices in fine grid indices; ``faces``: ``(F, 3)``;
            ``from_coarse``: ``(F,)`` bool, the faces of the coarse region.
        plane: ``(V, 3)`` int, per axis the index of the block plane a vertex lies on (-1: none).
        factor: coarse cells are ``factor`` fine cells.
        fine_blocks: ``(mask, side)``, the fine region's blocks: a coarse boundary edge with no
            fine block across its plane borders space meshed by neither region (as the plain
            sparse path leaves it), and is no gap.

    Returns:
        ``(faces (K, 3), gaps closed, gaps left open)``.
    """
    n = len(index)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    coarse_edge = np.tile(from_coarse, 3)
    forward = np.sort(edges[:, 0] * n + edges[:, 1])
    backward = edges[:, 1] * n + edges[:, 0]
    pos = np.clip(np.searchsorted(forward, backward), 0, len(forward) - 1)
    # Boundary edges lying in a block plane (``common[e, axis]``: both ends on the same plane).
    pa, pb = plane[edges[:, 0]], plane[edges[:, 1]]
    common = (pa >= 0) & (pa == pb)
    boundary = np.flatnonzero((forward[pos] != backward) & common.any(axis=1))
    edges, common, coarse_edge = edges[boundary], common[boundary], coarse_edge[boundary]
    # The coarse face cell each edge lies in (its midpoint's cell; the plane's own axis zeroed).
    cell = np.floor((index[edges[:, 0]] + index[edges[:, 1]]) / (2 * factor)).astype(np.int64)
    successor: dict[tuple[int, ...], int] = {}
    for e in np.flatnonzero(~coarse_edge).tolist():
        for axis in np.flatnonzero(common[e]).tolist():
            c = cell[e].copy()
            c[axis] = plane[edges[e, 0], axis]
            successor[(int(edges[e, 0]), axis, *c.tolist())] = int(edges[e, 1])
    fill: list[tuple[int, int, int]] = []
    closed = left = 0
    for e in np.flatnonzero(coarse_edge).tolist():
        b, a = int(edges[e, 0]), int(edges[e, 1])  # the chord runs B -> A; the fine path A -> B
        path: list[int] = []
        for axis in np.flatnonzero(common[e]).tolist():
            c = cell[e].copy()
            c[axis] = plane[a, axis]
            key = (axis, *c.tolist())
            path, v = [a], a
            while v != b and len(path) <= 4 * factor and (v, *key) in successor:
                v = successor[(v, *key)]
                path.append(v)
            if v == b and len(path) >= 3:
                break
        if not path or path[-1] != b or len(path) < 3:
            left += int(fine_blocks is None or _fine_across(index[[a, b]].mean(axis=0), common[e], plane[a], *fine_blocks))
            continue
        closed += 1
        fill.extend((a, path[i + 1], path[i]) for i in range(1, len(path) - 1))
    return np.asarray(fill, dtype=np.int64).reshape(-1, 3), closed, left


def _fine_across(point: np.ndarray, axes: np.ndarray, plane: np.ndarray, mask: np.ndarray, side: int) -> bool:
    """Whether a fine block touches the block plane(s) ``axes`` at ``point`` (fine grid indices)."""
    block = np.floor(point / side).astype(np.int64)
    for axis in np.flatnonzero(axes).tolist():
        for b in (plane[axis] - 1, plane[axis]):
            c = block.copy()
            c[axis] = b
            if np.all((c >= 0) & (c < np.asarray(mask.shape))) and mask[tuple(c)]:
                return True
    return False


def _merge_block_meshes(parts: list[tuple[np.ndarray, np.ndarray]], grid: Grid, stride: int) -> Mesh:
    """Join per-block meshes (global grid-index vertices), welding the vertices that blocks share.

    Marching cubes puts each vertex on a grid edge: two of its index coordinates are integers, the
    third is fractional (all three are integers for a vertex on a grid point). Two blocks meet on
    planes whose index is a multiple of ``stride``; a vertex on such a plane is computed by both,
    possibly rounded differently, so those vertices are welded by their edge, not their position.
    """
    verts = np.concatenate([v for v, _ in parts])
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    faces = np.concatenate([f + o for (_, f), o in zip(parts, offsets)])
    # Only vertices on a block plane can be shared; the key and the sort run over those alone
    # (a few percent of the vertices), which keeps the merge's memory near the mesh's own.
    rounded = np.round(verts)
    is_int = verts == rounded
    shared = np.flatnonzero(np.any(is_int & (np.mod(rounded, stride) == 0), axis=1))
    del rounded
    keep = np.ones(len(verts), dtype=bool)
    target = np.arange(len(verts))
    if len(shared):
        sv, si = verts[shared], is_int[shared]
        axis = np.where(si.all(1), 3, np.argmin(si, axis=1))
        lower = np.floor(sv).astype(np.int64) + 1  # >= 0: vertices lie in [0, top]
        dims = lower.max(0) + 1
        key = (((lower[:, 0] * dims[1] + lower[:, 1]) * dims[2] + lower[:, 2]) * 4 + axis)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        # Each shared vertex maps to the first-seen vertex of its edge; the others are dropped.
        keep[shared] = False
        keep[shared[first]] = True
        target[shared] = shared[first[inverse.ravel()]]
    del is_int
    # Welded vertices numbered in first-seen order (deterministic output).
    rank = np.cumsum(keep, dtype=np.int64) - 1
    np.take(rank[target], faces, out=faces)
    verts = verts[keep]
    verts = verts * grid.spacing + np.asarray(grid.origin)
    # Same winding as ``marching_cubes`` (scikit-image's, outward for an SDF).
    return Mesh(verts, np.ascontiguousarray(faces))
