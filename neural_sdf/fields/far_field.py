"""Signed distances away from the surface: a grid of exact distances to the extracted mesh.

A fitted SIREN is a signed distance only in a band around the data: its eikonal term sees too few
samples far away in the default budget, so a few percent of the diagonal out its values fall to a
third of the true distance, and pockets of the wrong sign can sit inside a shape (measured in
``scripts/benchmark_distance.py``). The product's surface is the mesh extracted from the field, so
the distance a user asks for is the distance to that mesh: ``FarField`` holds it on a regular
grid over the model's box (``build_far_field``: exact near the mesh, to dense surface samples
beyond), signed by connectivity where the mesh is closed and by the network where it is open.

``corrected_field`` returns the network's value within ``band`` of the surface (where its zero set
is the extracted surface, and where it holds parts thinner than a grid cell) and the grid's value
beyond ``2 * band``, with a C1 blend between. The grid's value is the distance from the point to
the nearest of its 8 surrounding nodes' closest surface points (stored per node), signed by the
grid: a distance to real surface points, so its gradient has unit length and the medial axes stay
sharp, where interpolating distances would round them off. Outside the grid's box it is the
distance to samples of the mesh.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..geometry import Mesh, Normalization, is_closed

__all__ = ["FarField", "build_far_field", "corrected_field", "padded_box", "FAR_FIELD_RESOLUTION", "FAR_FIELD_BAND", "FAR_FIELD_PAD"]

FAR_FIELD_RESOLUTION = 64
"""Grid points per side of the box: cells of about 4% of the normalized cube. Measured on
armadillo (``scripts/benchmark_distance.py``'s model): with distances to the corner nodes' closest
points (``FarField.lookup``) 64 per side gives a 95th-percentile error of 0.2% of the diagonal
near the surface and |grad| within 0.05 of 1 on 99.4% of the box, 96 per side 0.13% and 99.6%
at 2.4x the build time and 3.4x the file size (2.6 MB against 8.8 MB). Interpolating the
distances instead left 8.5% of the box off in |grad| at 96 per side (medial axes, curved parts)."""

FAR_FIELD_BAND = 0.002
"""Normalized distance (0.1% of the normalized cube's side) within which the network's own value is
used; the grid takes over from twice that. The network's |grad| is within 0.05 of 1 on 97% of the
points within 0.002 of the surface but on only 50% at 0.005-0.01 (torus, default fit); the network
keeps the zero set exactly the extracted surface's, and parts thinner than a grid cell right."""

FAR_FIELD_PAD = 0.2
"""The grid covers the data's box grown by this fraction of its longest side on every side; beyond
it the value grows with the distance to the grid (``FarField.lookup``)."""

FAR_SAMPLES = 30_000
"""Points sampled on the mesh to find the grid cells it crosses (``build_far_field``)."""

RELAX_STEPS = (4, 2, 1)
"""Neighbour offsets, in cells, of the passes that refine the far nodes' closest points."""

OUTSIDE_SAMPLES = 4096
"""Mesh samples kept with the grid for distances beyond it (at least ``FAR_FIELD_PAD`` of the
shape's size away, where their spacing costs under 0.2% of the normalized cube)."""

EXACT_CELLS = 4.0
"""Nodes within this many grid cells of the mesh get exact point-to-triangle distances."""

SIGN_CELLS = 0.6
"""Nodes farther than this many cells from the mesh are signed by connectivity on a closed mesh
(half a cell is the least that keeps the surface from passing between two 6-neighbours)."""



@dataclass
class FarField:
    """Signed distances to a model's mesh on a grid, in the model's normalized coordinates.

    Attributes:
        values: ``(R, R, R)`` float32 signed distances (``indexing="ij"``), normalized units.
        origin: ``(3,)`` normalized position of node ``[0, 0, 0]``.
        spacing: node spacing, normalized units.
        band: normalized distance below which the network's value is used (``corrected_field``).
        surface: ``(K, 3)`` float32 normalized points on the mesh, for distances beyond the grid.
        offsets: ``(R, R, R, 3)`` float16, each node minus its closest point on the mesh.
        exact_from: normalized distance beyond which ``lookup`` measures the distance to the 8
            surrounding nodes' closest points rather than interpolating (0: never).
    """

    values: np.ndarray
    origin: np.ndarray
    spacing: float
    band: float = FAR_FIELD_BAND
    surface: Optional[np.ndarray] = None
    offsets: Optional[np.ndarray] = None
    exact_from: float = 0.0

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """The grid as named tensors for a model file (``far.`` prefix)."""
        meta = torch.tensor([*np.asarray(self.origin, dtype=np.float64), self.spacing, self.band, self.exact_from], dtype=torch.float64)
        out = {"far.values": torch.as_tensor(np.ascontiguousarray(self.values, dtype=np.float32)), "far.meta": meta}
        if self.surface is not None:
            out["far.surface"] = torch.as_tensor(np.ascontiguousarray(self.surface, dtype=np.float32))
        if self.offsets is not None:
            out["far.offsets"] = torch.as_tensor(np.ascontiguousarray(self.offsets, dtype=np.float16))
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "FarField | None":
        """Inverse of ``to_tensors``; None when the file has no far field."""
        if "far.values" not in tensors or "far.meta" not in tensors:
            return None
        meta = tensors["far.meta"].double().numpy()
        surface = tensors["far.surface"].float().numpy() if "far.surface" in tensors else None
        offsets = tensors["far.offsets"].numpy() if "far.offsets" in tensors else None
        exact_from = float(meta[5]) if len(meta) > 5 else 0.0
        return cls(tensors["far.values"].float().numpy(), meta[:3].copy(), float(meta[3]), float(meta[4]), surface, offsets, exact_from)

    def lookup(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance at ``(N, 3)`` normalized points: ``(N,)``, differentiable in ``x``.

        Inside the grid, trilinear interpolation; outside it (which is outside the shape), the
        distance to ``surface``, the mesh's samples.
        """
        values = torch.as_tensor(self.values, device=x.device, dtype=x.dtype)
        origin = torch.as_tensor(self.origin, device=x.device, dtype=x.dtype)
        size = torch.tensor(values.shape, device=x.device, dtype=x.dtype) - 1
        hi = origin + size * self.spacing
        inside = torch.minimum(torch.maximum(x, origin), hi)
        u = (inside - origin) / self.spacing
        i0 = torch.clamp(torch.floor(u), min=torch.zeros_like(size), max=size - 1).long()
        t = u - i0.to(x.dtype)
        out = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for corner in range(8):
            bits = [(corner >> 2) & 1, (corner >> 1) & 1, corner & 1]
            w = torch.ones(len(x), device=x.device, dtype=x.dtype)
            idx = []
            for axis, b in enumerate(bits):
                w = w * (t[:, axis] if b else 1 - t[:, axis])
                idx.append(i0[:, axis] + b)
            out = out + w * values[idx[0], idx[1], idx[2]]
        if self.offsets is not None and self.exact_from > 0:
            out = self._corner_distances(x, inside, i0, out)
        beyond = torch.nonzero((x != inside).any(dim=-1)).squeeze(-1)
        if len(beyond) and self.surface is not None:
            surface = torch.as_tensor(self.surface, device=x.device, dtype=x.dtype)
            far = torch.cat([torch.cdist(x[rows], surface).amin(dim=-1) for rows in beyond.split(4096)])
            out = out.index_put((beyond,), far)
        return out


    def _corner_distances(self, x: torch.Tensor, inside: torch.Tensor, i0: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Where ``|out| > exact_from``: the distance from ``x`` to the nearest of the 8 surrounding
        nodes' closest surface points, signed as ``out`` (a distance to real surface points, whose
        gradient has unit length, where trilinear interpolation rounds off the medial axes)."""
        rows = torch.nonzero(out.abs() > self.exact_from).squeeze(-1)
        if not len(rows):
            return out
        offsets = torch.as_tensor(self.offsets, device=x.device)
        origin = torch.as_tensor(self.origin, device=x.device, dtype=x.dtype)
        xr, ir = inside[rows], i0[rows]
        best = torch.full((len(rows),), float("inf"), device=x.device, dtype=x.dtype)
        for corner in range(8):
            idx = ir + torch.tensor([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1], device=x.device)
            node = origin + idx.to(x.dtype) * self.spacing
            closest = node - offsets[idx[:, 0], idx[:, 1], idx[:, 2]].to(x.dtype)
            best = torch.minimum(best, torch.linalg.vector_norm(xr - closest, dim=-1))
        return out.index_put((rows,), torch.sign(out[rows]) * best)


def padded_box(normalization: "Normalization", data_bounds: np.ndarray) -> np.ndarray:
    """The normalized ``(2, 3)`` box a far field covers: the data's box grown by ``FAR_FIELD_PAD``
    of its longest side on every side."""
    box = normalization.to_normalized(np.asarray(data_bounds, dtype=np.float64).reshape(2, 3))
    pad = FAR_FIELD_PAD * float((box[1] - box[0]).max())
    return np.stack([box[0] - pad, box[1] + pad])


def build_far_field(
    mesh_normalized: Mesh,
    sign_from: Callable[[np.ndarray], np.ndarray],
    box: np.ndarray,
    resolution: int = FAR_FIELD_RESOLUTION,
) -> FarField:
    """Distances from a grid over ``box`` to a mesh, with signs.

    Unsigned distances: exact closest points on the triangles (Open3D ``RaycastingScene``) for
    nodes within ``EXACT_CELLS`` cells of the mesh; every other node measures its distance to the
    closest point of its nearest such node (a Euclidean feature transform of the band; an upper
    bound that is tight away from the medial axes). Signs: a node farther than ``SIGN_CELLS`` cells from the mesh cannot be
    separated from a 6-neighbour as far out by the surface, so on a closed mesh the connected sets of
    such nodes are each wholly inside or outside: outside when they reach the grid's border, inside
    otherwise (which also removes the network's closed pockets of the wrong sign inside a shape).
    Nodes nearer the mesh, and every node of an open mesh, take the network's sign.

    Args:
        mesh_normalized: the extracted mesh in the model's normalized coordinates.
        sign_from: ``(K, 3) normalized points -> (K,)`` values whose sign is used near the mesh and
            where the mesh is not closed (the network).
        box: ``(2, 3)`` normalized box the grid covers (a cube around its centre).
        resolution: nodes per side.

    Returns:
        The ``FarField``.
    """
    import open3d.core as o3c
    from scipy import ndimage

    from ..sampling import sample_mesh_surface

    box = np.asarray(box, dtype=np.float64)
    side = float((box[1] - box[0]).max())
    spacing = side / (resolution - 1)
    center = (box[0] + box[1]) / 2
    origin = center - spacing * (resolution - 1) / 2
    axis = [origin[a] + spacing * np.arange(resolution) for a in range(3)]
    nodes = np.stack(np.meshgrid(*axis, indexing="ij"), -1).reshape(-1, 3)

    shape = (resolution,) * 3
    samples = sample_mesh_surface(mesh_normalized, FAR_SAMPLES, seed=0).points
    cells = np.clip(np.rint((np.vstack([samples, mesh_normalized.vertices]) - origin) / spacing).astype(np.int64), 0, resolution - 1)
    seeded = np.zeros(shape, dtype=bool)
    seeded[cells[:, 0], cells[:, 1], cells[:, 2]] = True
    band = ndimage.distance_transform_edt(~seeded) <= EXACT_CELLS
    scene = mesh_normalized.raycasting_scene()
    closest = np.zeros((*shape, 3))
    closest[band] = scene.compute_closest_points(o3c.Tensor(nodes[band.reshape(-1)].astype(np.float32)))["points"].numpy()
    # Every other node: the closest surface point of its nearest band node (an upper bound on its
    # distance, tight beyond a few cells: the band is EXACT_CELLS cells thick).
    _, nearest = ndimage.distance_transform_edt(~band, return_indices=True)
    closest = closest[nearest[0], nearest[1], nearest[2]]
    grid = nodes.reshape(*shape, 3)
    dist = np.linalg.norm(grid - closest, axis=-1)
    # Then let each node try its neighbours' closest points (jump-flooding passes): this removes
    # most of the feature transform's overestimate where the nearest surface changes side.
    for step in RELAX_STEPS:
        for offset in np.ndindex(3, 3, 3):
            shift = tuple(step * (o - 1) for o in offset)
            if shift == (0, 0, 0):
                continue
            candidate = np.roll(closest, shift, axis=(0, 1, 2))
            d = np.linalg.norm(grid - candidate, axis=-1)
            better = d < dist
            dist[better] = d[better]
            closest[better] = candidate[better]

    sign = np.ones(dist.shape)
    apart = dist > SIGN_CELLS * spacing
    closed = is_closed(mesh_normalized.faces)
    ask = ~apart if closed else np.ones(dist.shape, dtype=bool)
    if ask.any():
        sign[ask] = np.where(np.asarray(sign_from(nodes[ask.reshape(-1)].astype(np.float32))) < 0, -1.0, 1.0)
    if closed:
        labels, _ = ndimage.label(apart)
        border = np.unique(np.concatenate([
            labels[[0, -1], :, :].ravel(), labels[:, [0, -1], :].ravel(), labels[:, :, [0, -1]].ravel()
        ]))
        outside = np.isin(labels, border[border > 0])
        sign[apart] = np.where(outside[apart], 1.0, -1.0)
    offsets = (grid - closest).astype(np.float16)
    return FarField(
        (dist * sign).astype(np.float32), origin, spacing, surface=samples[:OUTSIDE_SAMPLES].astype(np.float32),
        offsets=offsets, exact_from=2 * FAR_FIELD_BAND,
    )


def corrected_field(network: Callable[[torch.Tensor], torch.Tensor], far: "FarField | None") -> Callable[[torch.Tensor], torch.Tensor]:
    """The network near the surface, the far field's distances away from it: ``(N, 3) -> (N, 1)``.

    The weight of the grid is ``smoothstep((|g| - band) / band)`` with ``g`` the grid's value: 0 within
    ``band`` of the mesh, 1 from ``2 * band``. Without a far field, the network itself.
    """
    if far is None:
        return network

    def field(x: torch.Tensor) -> torch.Tensor:
        f = network(x)
        g = far.lookup(x.to(f.dtype)).unsqueeze(-1)
        u = torch.clamp((g.abs() - far.band) / far.band, 0.0, 1.0)
        w = u * u * (3 - 2 * u)
        return (1 - w) * f + w * g

    return field
