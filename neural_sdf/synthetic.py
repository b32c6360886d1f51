"""Synthetic test scenes with known geometry: objects standing on a ground slab, and shells with holes.

Used by the scene and clean-up benchmarks and tests: every point comes with the exact normal of the
face it was drawn from, so any change to the normals or any dropped point is measurable.
"""

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .geometry import Mesh, PointCloud
from .sampling import sample_mesh_surface

__all__ = ["SyntheticScene", "box_mesh", "tabletop_scene", "cut_holes"]


def box_mesh(lo: Sequence[float], hi: Sequence[float]) -> Mesh:
    """An axis-aligned box from corner ``lo`` to corner ``hi`` (12 triangles, outward faces)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    corners = np.array([[(hi if (i >> b) & 1 else lo)[b] for b in range(3)] for i in range(8)])
    # Corner i has x from bit 0, y from bit 1, z from bit 2; each face counter-clockwise from outside.
    faces = np.array([
        [0, 2, 1], [1, 2, 3],  # z = lo
        [4, 5, 6], [5, 7, 6],  # z = hi
        [0, 1, 4], [1, 5, 4],  # y = lo
        [2, 6, 3], [3, 6, 7],  # y = hi
        [0, 4, 2], [2, 4, 6],  # x = lo
        [1, 3, 5], [3, 7, 5],  # x = hi
    ], dtype=np.int64)
    return Mesh(corners, faces)


@dataclass
class SyntheticScene:
    """Objects on a ground slab, sampled with exact normals.

    Attributes:
        cloud: all samples (objects first, then the slab) with their face normals, world units.
        label: ``(N,)`` int, the object index of each sample, ``-1`` for the slab.
        objects: each object's mesh where it stands in the scene.
        ground: the slab's mesh.
    """

    cloud: PointCloud
    label: np.ndarray
    objects: list[Mesh]
    ground: Mesh

    def object_bounds(self, index: int) -> np.ndarray:
        """``(2, 3)`` bounding box of object ``index`` in the scene."""
        v = self.objects[index].vertices
        return np.stack([v.min(axis=0), v.max(axis=0)])


def tabletop_scene(
    meshes: Sequence[Mesh],
    *,
    spacing: float = 2.0,
    points_per_object: int = 100_000,
    ground_points: int = 100_000,
    ground_thickness: float = 0.05,
    ground_margin: float = 1.0,
    columns: int = 3,
    contact_gap: float = 0.01,
    seed: int = 0,
) -> SyntheticScene:
    """Scale each mesh to a unit bounding-box diagonal and stand it on a thin slab, in a grid.

    Objects stand ``spacing`` apart (centre to centre) in rows of ``columns``, their lowest point on
    the slab's top face (z = 0). The slab reaches ``ground_margin`` beyond the outer objects' centres
    (six objects at the defaults: 6 x 4 x 0.05). Samples are area-weighted with exact face normals,
    so the slab is far sparser than the objects (its area is many times theirs). Where an object
    meets the slab, the gap narrower than ``contact_gap`` is not sampled on either side
    (``_contact``): a scanner cannot see into it, and sampled, its sides would be opposite
    surfaces closer than the points' spacing.

    Args:
        meshes: the objects (closed meshes, outward faces), any units.
        spacing: distance between neighbouring objects' centres.
        points_per_object: samples on each object.
        ground_points: samples on the whole slab (top, bottom and rim).
        ground_thickness: the slab's thickness.
        ground_margin: slab beyond the outer centres.
        columns: objects per row.
        contact_gap: object samples lower than this above the slab (in units of the objects'
            diagonal, 1) are hidden, and the slab under them.
        seed: seed of the sampling.

    Returns:
        The ``SyntheticScene``.
    """
    if not meshes:
        raise ValueError("meshes must not be empty")
    placed: list[Mesh] = []
    for i, mesh in enumerate(meshes):
        v = mesh.vertices
        lo, hi = v.min(axis=0), v.max(axis=0)
        v = (v - (lo + hi) / 2) / float(np.linalg.norm(hi - lo))
        v[:, 2] -= v[:, 2].min()
        row, col = divmod(i, columns)
        placed.append(Mesh(v + np.array([col * spacing, row * spacing, 0.0]), mesh.faces))
    rows = (len(meshes) + columns - 1) // columns
    cols = min(columns, len(meshes))
    ground = box_mesh(
        (-ground_margin, -ground_margin, -ground_thickness),
        ((cols - 1) * spacing + ground_margin, (rows - 1) * spacing + ground_margin, 0.0),
    )
    parts = [sample_mesh_surface(m, points_per_object, seed=seed + i) for i, m in enumerate(placed)]
    parts.append(sample_mesh_surface(ground, ground_points, seed=seed + len(placed)))
    label = np.concatenate([np.full(points_per_object, i) for i in range(len(placed))] + [np.full(ground_points, -1)])
    cloud = PointCloud(np.concatenate([p.points for p in parts]), np.concatenate([p.normals for p in parts]))
    hidden = _contact(cloud, label, contact_gap)
    return SyntheticScene(cloud.subset(~hidden), label[~hidden], placed, ground)


def _contact(cloud: PointCloud, label: np.ndarray, gap: float) -> np.ndarray:
    """Samples in the narrow gap where an object meets the slab: the object's samples lower than
    ``gap`` above the slab's top (z = 0), and the slab's top under them. No scanner
    sees into such a gap; sampled, its two sides are opposite surfaces closer than the points'
    spacing, which no normal check can tell from flipped normals."""
    from scipy.spatial import cKDTree

    p, n = cloud.points, cloud.normals
    assert n is not None
    low = (label >= 0) & (p[:, 2] < gap)
    hidden = low.copy()
    top = (label < 0) & (np.abs(p[:, 2]) < 1e-9)
    if low.any() and top.any():
        # Three slab spacings: the object's samples leave random gaps, and a slab point left in
        # one would stand alone above the slab's bottom face.
        spacing = float(np.median(cKDTree(p[top, :2]).query(p[top, :2], k=2)[0][:, 1]))
        dist, _ = cKDTree(p[low, :2]).query(p[top, :2], k=1, distance_upper_bound=3 * spacing)
        hidden[np.flatnonzero(top)[np.isfinite(dist)]] = True
    return hidden


def cut_holes(mesh: Mesh, num_holes: int, hole_fraction: float, seed: int = 0) -> Mesh:
    """Delete ``num_holes`` round patches of faces, each about ``hole_fraction`` of the mesh's area.

    Patch centres are faces drawn at random, at least three patch radii apart; a patch is the
    faces whose centroid lies within the radius that holds ``hole_fraction`` of the area.

    Returns:
        The mesh without those faces (unused vertices kept; they carry no surface).
    """
    v, f = mesh.vertices, mesh.faces
    centroid = v[f].mean(axis=1)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    rng = np.random.default_rng(seed)
    remove = np.zeros(len(f), dtype=bool)
    centres: list[np.ndarray] = []
    for candidate in rng.permutation(len(f)):
        if len(centres) == num_holes:
            break
        c = centroid[candidate]
        dist = np.linalg.norm(centroid - c, axis=1)
        order = np.argsort(dist)
        radius = dist[order[np.searchsorted(np.cumsum(area[order]), hole_fraction * area.sum())]]
        if any(np.linalg.norm(c - other) < 3 * radius for other in centres):
            continue
        centres.append(c)
        remove |= dist <= radius
    return Mesh(v, f[~remove])
