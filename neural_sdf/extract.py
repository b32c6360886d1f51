"""Meshes from signed distance fields: chunked grid evaluation, marching cubes, world units, clean-up.

The grid covers the data's bounding box plus a margin, in normalized coordinates, with
``indexing="ij"``. Evaluation runs under ``torch.no_grad()`` in fixed-size chunks, so memory
stays bounded by the volume itself plus one chunk. Marching cubes is scikit-image's, at level 0,
with faces oriented outward (positive signed volume). Results are in world units.
"""

import logging
from typing import Callable, Optional

import numpy as np
import torch

from .config import ExtractConfig
from .geometry import Mesh, Normalization
from .sampling import Grid, iter_chunks, make_grid

__all__ = [
    "evaluate_grid",
    "marching_cubes",
    "extraction_grid",
    "extract_mesh",
    "connected_components",
    "remove_stray_components",
]

log = logging.getLogger(__name__)

SDFFunction = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``(N, 3)`` normalized points to ``(N, 1)`` signed distances."""


def extraction_grid(data_bounds_normalized: np.ndarray, config: ExtractConfig) -> Grid:
    """Grid over the normalized data box grown by ``config.padding`` of its largest side.

    The box is clipped to the training domain ``[-1, 1]^3``.
    """
    lo, hi = np.asarray(data_bounds_normalized[0]), np.asarray(data_bounds_normalized[1])
    margin = config.padding * float((hi - lo).max()) + 1e-6
    lo = np.clip(lo - margin, -1.0, 1.0)
    hi = np.clip(hi + margin, -1.0, 1.0)
    return make_grid(lo, hi, config.resolution)


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
    from tqdm.auto import tqdm

    xs, ys, zs = (torch.as_tensor(a, dtype=dtype, device=device) for a in grid.axes())
    nx, ny, nz = grid.shape
    out = np.empty(grid.num_points, dtype=np.float32)
    plane = ny * nz
    with torch.no_grad(), tqdm(total=grid.num_points, desc="extract", unit="pt", unit_scale=True, disable=not progress, leave=False) as bar:
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
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(nv, nv))
    _, vlabel = cc(graph, directed=False)
    return vlabel[f[:, 0]]


def _submesh(mesh: Mesh, face_mask: np.ndarray) -> Mesh:
    faces = mesh.faces[face_mask]
    used = np.unique(faces)
    remap = np.full(len(mesh.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Mesh(mesh.vertices[used], remap[faces])


def remove_stray_components(mesh: Mesh, points: np.ndarray, max_distance: float, keep_fraction: float) -> Mesh:
    """Keep the connected pieces that the data supports; drop phantom shells and sheets.

    A piece is kept when at least ``keep_fraction`` of its vertices lie within ``max_distance``
    of some input point. The rule is local, so shapes made of several separate parts keep all
    of them, while closed shells that the network invents inside the shape or in empty space
    (far from every input point) are removed.

    Args:
        mesh: the extracted mesh (any units).
        points: ``(N, 3)`` input points in the same units.
        max_distance: distance to the input that counts as "near", same units.
        keep_fraction: fraction of near vertices a piece needs.
    """
    from scipy.spatial import cKDTree

    if mesh.is_empty:
        return mesh
    labels = connected_components(mesh)
    num = int(labels.max()) + 1
    if num == 1 and keep_fraction <= 0:
        return mesh
    dist, _ = cKDTree(points).query(mesh.vertices, k=1, distance_upper_bound=max_distance, workers=-1)
    near_vertex = np.isfinite(dist)
    near_face = near_vertex[mesh.faces].mean(axis=1)
    keep = np.zeros(num, dtype=bool)
    for c in range(num):
        keep[c] = near_face[labels == c].mean() >= keep_fraction
    if not keep.any():
        log.warning("no piece of the mesh lies near the input; keeping the mesh unfiltered")
        return mesh
    if keep.all():
        return mesh
    log.info("removed %d of %d connected pieces far from the input", int((~keep).sum()), num)
    return _submesh(mesh, keep[labels])


def extract_mesh(
    fn: SDFFunction,
    normalization: Normalization,
    data_bounds: np.ndarray,
    config: ExtractConfig = ExtractConfig(),
    *,
    support_points: Optional[np.ndarray] = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> Mesh:
    """Mesh the zero level set of a normalized SDF and return it in world coordinates.

    Args:
        fn: normalized SDF, ``(N, 3) -> (N, 1)``.
        normalization: maps the result back to world units.
        data_bounds: ``(2, 3)`` world bounding box of the data; the grid covers it plus padding.
        config: resolution, chunking and clean-up.
        support_points: ``(N, 3)`` world input points for the stray-piece clean-up (skipped if None).
        device: where ``fn`` runs.
        progress: show a progress bar.

    Returns:
        World-space ``Mesh``; empty (with a warning) when the SDF has no zero crossing.
    """
    nb = normalization.to_normalized(np.asarray(data_bounds, dtype=np.float64).reshape(2, 3))
    grid = extraction_grid(nb, config)
    volume = evaluate_grid(fn, grid, config.chunk_size, device=device, progress=progress)
    # The grid's outer layer is forced outside, so every surface closes inside the grid; phantom
    # surfaces reaching the border become closed shells that the clean-up below removes.
    pad = max(float(np.abs(volume).max()), grid.spacing)
    for axis in range(3):
        index = [slice(None)] * 3
        for end in (0, -1):
            index[axis] = end
            volume[tuple(index)] = pad
    mesh = marching_cubes(volume, grid, level=0.0)
    if mesh.is_empty:
        return mesh
    mesh = Mesh(normalization.to_world(mesh.vertices), mesh.faces)
    if support_points is not None and not config.keep_all_components:
        cell_world = grid.spacing / normalization.scale
        mesh = remove_stray_components(mesh, support_points, config.keep_distance * cell_world, config.keep_fraction)
    return mesh
