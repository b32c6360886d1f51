"""Shape interpolation: blends of two fitted SDFs, and paths through a learned shape space.

**Blending** (``blend_sdf``, ``blend_mesh``) works for any two fitted ``SDFModel``s, whatever
their network configurations, because it mixes signed distance *values*, never weights:

    f_t(x) = (1 - t) f_A(x) + t f_B(x),  t in [0, 1].

*Common frame.* With ``align=True`` (default) both SDFs are evaluated in their own normalized
frames, which ``fit_normalization`` already aligns: each shape's bounding-box centre sits at the
origin and its longest side spans ``2 * NORMALIZED_RADIUS``. So centres and scales are matched
before blending, and ``f_t`` is a normalized distance. The mesh of frame ``t`` is returned in a
world frame whose centre and size move linearly from A's (``t = 0``) to B's (``t = 1``):
``center_t = (1 - t) c_A + t c_B`` and ``1 / scale_t = (1 - t) / s_A + t / s_B``. With
``align=False`` both SDFs are evaluated in world units at the same world point, and the mesh is
in that shared world frame (both inputs must then be in the same units and roughly overlap; each
network is only trustworthy inside its own ``[-1, 1]^3`` training domain).

*What blending can and cannot do.* A convex combination of two signed distance functions is
continuous in ``t`` and equals each endpoint exactly at ``t = 0`` and ``t = 1``. Each endpoint
enters as ``SDFModel.field()``, a distance everywhere (its network near the surface, the distance
to its mesh away from it), since the raw networks are distances only near their surfaces and
their blend breaks into floating pieces. Every frame is
meshed on a grid whose border is forced outside, so every frame is a closed (watertight) surface
whenever it is non-empty. It is *not* a signed distance itself (``|grad f_t| <= 1``), and it
knows nothing about parts: an arm of A does not travel to the arm of B, it shrinks away while
B's arm grows elsewhere; two shapes that do not overlap pass through a state where the blend is
positive everywhere (an empty frame) or splits into pieces. Aligning centres and scales avoids
most of this for shapes of similar extent. For part-aware paths use a learned shape space
(``method="latent"``).

**Latent interpolation** decodes ``(1 - t) z_A + t z_B`` through a ``ShapeSpace`` (see
``fields.shape_space``); each frame is baked into an ordinary ``SDFModel``.
"""

import logging
import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from .config import ExtractConfig
from .errors import InputError
from .extract import extract_mesh as _extract
from .fields.sdf import SDFModel
from .fields.shape_space import ShapeSpace, latent_of
from .geometry import Mesh, Normalization

__all__ = [
    "BlendedSDF",
    "blend_sdf",
    "blend_mesh",
    "frame_times",
    "interpolated_normalization",
    "latent_model",
    "interpolate_meshes",
    "InterpolationFrame",
]

log = logging.getLogger(__name__)

Method = Literal["blend", "latent"]


def _check_t(t: float) -> float:
    t = float(t)
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise ValueError(f"t must be in [0, 1], got {t}")
    return t


def frame_times(num_frames: int) -> np.ndarray:
    """Return ``num_frames`` evenly spaced times from 0 to 1 inclusive: ``(K,)`` float64.

    Raises:
        ValueError: if ``num_frames < 2`` (a path needs both endpoints).
    """
    if int(num_frames) != num_frames or num_frames < 2:
        raise ValueError(f"frames must be an integer >= 2 (both endpoints), got {num_frames}")
    times = np.linspace(0.0, 1.0, int(num_frames))
    times[0], times[-1] = 0.0, 1.0
    return times


def interpolated_normalization(a: Normalization, b: Normalization, t: float) -> Normalization:
    """World frame of frame ``t``: centre and size move linearly from ``a`` (t=0) to ``b`` (t=1).

    ``center_t = (1 - t) c_a + t c_b``; the world size ``1 / scale`` is interpolated linearly.
    ``t = 0`` and ``t = 1`` return ``a`` and ``b`` themselves.
    """
    t = _check_t(t)
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    ca, cb = np.asarray(a.center), np.asarray(b.center)
    center = (1.0 - t) * ca + t * cb
    size = (1.0 - t) / a.scale + t / b.scale
    return Normalization(center=(float(center[0]), float(center[1]), float(center[2])), scale=1.0 / size)


def _normalized_box(model: SDFModel) -> np.ndarray:
    return model.normalization.to_normalized(np.asarray(model.data_bounds, dtype=np.float64).reshape(2, 3))


@dataclass
class BlendedSDF:
    """A blend of two SDF models at time ``t``: a callable normalized SDF plus its frame.

    Call it on ``(N, 3)`` points in the blend's normalized frame (``normalization``) to get
    ``(N, 1)`` blended distances in normalized units of that frame; ``sdf`` takes world points.
    ``normalization`` and ``data_bounds`` make it a drop-in for ``extract.extract_mesh``.

    Attributes:
        a, b: the endpoint models.
        t: blend time in ``[0, 1]``.
        align: whether centres and scales were aligned (see the module docstring).
        normalization: world <-> normalized frame of the blend (the world frame of its meshes).
        data_bounds: ``(2, 3)`` world box the extraction grid covers (both shapes' boxes, mapped
            into this frame).
    """

    a: SDFModel
    b: SDFModel
    t: float
    align: bool
    normalization: Normalization
    data_bounds: np.ndarray

    def _endpoint(self, model: SDFModel, x: torch.Tensor) -> torch.Tensor:
        """Normalized SDF of ``model`` at normalized blend-frame points ``x``, in blend-frame units."""
        param = next(model.network.parameters())
        # A distance everywhere (network near the surface, distances to its mesh away from it): a
        # blend of raw networks, which are distances only near their surfaces, breaks into pieces.
        field = model.field()
        if self.align:
            # Aligned: the blend frame's normalized coordinates are each model's own.
            return field(x.to(device=param.device, dtype=param.dtype)).to(device=x.device, dtype=x.dtype)
        # World blend: x_n(blend) -> world -> x_n(model); distances scale by s_blend / s_model.
        s, c = self.normalization.scale, x.new_tensor(self.normalization.center)
        sm, cm = model.normalization.scale, x.new_tensor(model.normalization.center)
        xm = (x / s + c - cm) * sm
        f = field(xm.to(device=param.device, dtype=param.dtype)).to(device=x.device, dtype=x.dtype)
        return f * (s / sm)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Blended normalized SDF ``(N, 1)`` at normalized points ``x`` ``(N, 3)``."""
        if self.t == 0.0:
            return self._endpoint(self.a, x)
        if self.t == 1.0:
            return self._endpoint(self.b, x)
        return (1.0 - self.t) * self._endpoint(self.a, x) + self.t * self._endpoint(self.b, x)

    def sdf(self, points: np.ndarray, chunk_size: int = 65536) -> np.ndarray:
        """Blended signed distance at world points ``(N, 3)`` of this frame; ``(N,)`` world units."""
        from .sampling import iter_chunks

        pts = self.normalization.to_normalized(points)
        out = np.empty(len(pts), dtype=np.float64)
        with torch.no_grad():
            for sl in iter_chunks(len(pts), chunk_size):
                x = torch.as_tensor(pts[sl], dtype=torch.float32)
                out[sl] = self(x)[:, 0].double().numpy()
        return out / self.normalization.scale


def blend_sdf(a: SDFModel, b: SDFModel, t: float, align: bool = True) -> BlendedSDF:
    """Blend two fitted SDFs: ``f_t = (1 - t) f_A + t f_B`` in a common frame.

    Args:
        a: model at ``t = 0``.
        b: model at ``t = 1`` (any network configuration; only values are mixed).
        t: blend time in ``[0, 1]``.
        align: evaluate both in their own normalized frames (centres and scales aligned); if
            False, evaluate both at the same world point (see the module docstring).

    Returns:
        ``BlendedSDF``: callable on normalized ``(N, 3)`` points of its ``normalization``, giving
        ``(N, 1)`` distances. At ``t = 0`` (``t = 1``) it is A (B) exactly: same values, frame
        and data bounds.

    Raises:
        ValueError: ``t`` outside ``[0, 1]``.
    """
    t = _check_t(t)
    if t in (0.0, 1.0):
        m = a if t == 0.0 else b
        return BlendedSDF(a, b, t, True, m.normalization, np.asarray(m.data_bounds, dtype=np.float64).reshape(2, 3))
    if align:
        norm = interpolated_normalization(a.normalization, b.normalization, t)
        nb = np.concatenate([_normalized_box(a), _normalized_box(b)])
        box = np.stack([nb.min(axis=0), nb.max(axis=0)])
        return BlendedSDF(a, b, t, True, norm, norm.to_world(box))
    from .geometry import fit_normalization

    corners = np.concatenate([np.asarray(a.data_bounds).reshape(2, 3), np.asarray(b.data_bounds).reshape(2, 3)])
    world_box = np.stack([corners.min(axis=0), corners.max(axis=0)])
    return BlendedSDF(a, b, t, False, fit_normalization(world_box), world_box)


def _frame_support(blend: BlendedSDF) -> Optional[np.ndarray]:
    """Support points for the stray-piece clean-up: only at the endpoints, where they are the data."""
    if blend.t == 0.0:
        return blend.a.support_points
    if blend.t == 1.0:
        return blend.b.support_points
    return None


def blend_mesh(
    a: SDFModel,
    b: SDFModel,
    t: float,
    config: ExtractConfig = ExtractConfig(),
    align: bool = True,
    *,
    progress: bool = False,
) -> Mesh:
    """Mesh the blend of two SDFs at time ``t`` (see ``blend_sdf``).

    The frame ``t = 0`` is meshed exactly as ``reconstruct.extract_mesh(a, config)`` (same
    grid, same clean-up of stray pieces); likewise ``t = 1`` for B. In-between frames keep every
    connected piece but specks below ``MIN_PIECE_SHARE`` of the frame's area.

    Args:
        a, b: the endpoint models.
        t: blend time in ``[0, 1]``.
        config: extraction grid and clean-up.
        align: align centres and scales first (see ``blend_sdf``).
        progress: show a progress bar for the grid evaluation.

    Returns:
        World-space mesh in the frame described by ``blend_sdf`` (A's world frame at t=0, B's at
        t=1, linearly moving centre and size in between with ``align=True``); empty, with a
        warning, when the blend has no zero crossing.
    """
    blend = blend_sdf(a, b, t, align)
    # The endpoints go through the extractor exactly as the models themselves do (it may use a
    # faster, equivalent forward for a plain Siren), so frames 0 and 1 equal ``extract_mesh``'s.
    fn = a.network if blend.t == 0.0 else b.network if blend.t == 1.0 else blend
    mesh = _extract(
        fn,
        blend.normalization,
        blend.data_bounds,
        config,
        support_points=_frame_support(blend),
        device="cpu" if a.device != b.device else a.device,
        progress=progress,
    )
    if blend.t in (0.0, 1.0) or mesh.is_empty:
        return mesh
    return drop_specks(mesh, MIN_PIECE_SHARE)


MIN_PIECE_SHARE = 1e-3
"""In-between frames drop pieces smaller than this share of the frame's area: a part of one shape
that is vanishing leaves specks of 0.003-0.03% of the area for a frame or two (measured on two
shared-shape pairs, ``scripts/benchmark_distance.py``'s models); no input point describes them."""


def drop_specks(mesh: Mesh, share: float) -> Mesh:
    """``mesh`` without its connected pieces smaller than ``share`` of its total area."""
    from .extract import connected_components, piece_areas

    labels = connected_components(mesh)
    areas = piece_areas(mesh)
    small = areas < share * areas.sum()
    if not small.any():
        return mesh
    log.info("dropped %d speck(s) below %.1g of the frame's area", int(small.sum()), share)
    keep = ~small[labels]
    used, faces = np.unique(mesh.faces[keep], return_inverse=True)
    return Mesh(mesh.vertices[used], faces.reshape(-1, 3))


def _latent_endpoint(model: SDFModel, space: ShapeSpace, name: str) -> torch.Tensor:
    found = latent_of(model)
    if found is None:
        raise InputError(
            f"{name}: was not fitted through a shape space (no latent code); use `method='blend'`, "
            "or fit it in that space first (`fit_latent`)"
        )
    code, fingerprint = found
    if fingerprint and fingerprint != space.fingerprint:
        raise InputError(f"{name}: was fitted through a different shape space than the one given")
    if code.numel() != space.latent_dim:
        raise InputError(f"{name}: latent code has {code.numel()} entries, the space expects {space.latent_dim}")
    return code


def latent_model(space: ShapeSpace, a: SDFModel, b: SDFModel, t: float, *, names: tuple[str, str] = ("A", "B")) -> SDFModel:
    """Decode the code ``(1 - t) z_A + t z_B`` of two models fitted through ``space``.

    ``a`` and ``b`` are models decoded from ``space`` (``ShapeSpace.shape_model`` or
    ``fit_latent``), which record their codes. The frame's world placement moves linearly from
    A's to B's exactly as for blends (``interpolated_normalization``); the extraction box is both
    shapes' normalized boxes. ``t = 0`` and ``t = 1`` return ``a`` and ``b`` themselves.

    Raises:
        InputError: a model without a code, or from another space.
        ValueError: ``t`` outside ``[0, 1]``.
    """
    t = _check_t(t)
    za = _latent_endpoint(a, space, names[0])
    zb = _latent_endpoint(b, space, names[1])
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    norm = interpolated_normalization(a.normalization, b.normalization, t)
    nb = np.concatenate([_normalized_box(a), _normalized_box(b)])
    box = np.stack([nb.min(axis=0), nb.max(axis=0)])
    z = ((1.0 - t) * za + t * zb).to(space.latents.device)
    return space.decode(z, norm, norm.to_world(box), {"source": f"latent {names[0]} -> {names[1]} at t={t:.4g}"})


@dataclass
class InterpolationFrame:
    """One frame of an interpolation.

    Attributes:
        t: time in ``[0, 1]``.
        mesh: world-space mesh (frame placement as in ``blend_sdf``); empty if the frame has no surface.
    """

    t: float
    mesh: Mesh


def interpolate_meshes(
    a: SDFModel,
    b: SDFModel,
    num_frames: int,
    config: ExtractConfig = ExtractConfig(),
    *,
    method: Method = "blend",
    space: Optional[ShapeSpace] = None,
    align: bool = True,
    progress: bool = True,
) -> list[InterpolationFrame]:
    """Mesh ``num_frames`` evenly spaced frames from A (t=0) to B (t=1), with a progress bar.

    Args:
        a, b: endpoint models.
        num_frames: frames including both endpoints (>= 2).
        config: extraction settings of every frame.
        method: "blend" (``blend_mesh``) or "latent" (``latent_model``; needs ``space``).
        space: the shape space ``a`` and ``b`` were fitted through (method "latent").
        align: align centres and scales before blending (method "blend" only; latent frames are
            always aligned).
        progress: show a progress bar over frames.

    Raises:
        ValueError: bad ``method`` or ``num_frames``, or "latent" without a space.
        InputError: (latent) models without codes or from another space.
    """
    from .progress import progress_bar

    if method not in ("blend", "latent"):
        raise ValueError(f"method must be one of ['blend', 'latent'], got {method!r}")
    times = frame_times(num_frames)
    if method == "latent":
        if space is None:
            raise ValueError("method 'latent' needs the shape space")
        _latent_endpoint(a, space, "A")
        _latent_endpoint(b, space, "B")
    frames = []
    for t in progress_bar(times, desc="frames", unit="frame", disable=not progress, leave=False):
        if method == "blend":
            mesh = blend_mesh(a, b, float(t), config, align)
        else:
            assert space is not None
            m = latent_model(space, a, b, float(t))
            support = m.support_points if float(t) in (0.0, 1.0) else None
            mesh = _extract(m.network, m.normalization, m.data_bounds, config, support_points=support, device=m.device)
        if mesh.is_empty:
            log.warning("frame t=%.4g has no surface", t)
        frames.append(InterpolationFrame(float(t), mesh))
    return frames
