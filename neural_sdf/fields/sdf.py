"""Signed distance fields: a SIREN plus its normalization, the SDF loss, and model files.

Sign convention: negative inside, positive outside, zero on the surface (``tests/fields/test_fit.py`` checks a fit's sign in millimetres far from the origin; ``tests/test_extract.py`` that meshes face outward).
"""

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from .._typing import ArrayLike, Device, PathLike
from ..config import LossWeights, SamplingConfig, SirenConfig, config_from_dict, config_to_dict
from ..errors import InputError
from ..geometry import Mesh, Normalization, PointCloud, bounds
from ..io.checkpoint import MODEL_FORMAT, load_model_file, save_model_file
from ..losses import divergence_loss, eikonal_loss, normal_alignment_loss, sdf_off_surface_loss, sdf_sign_loss, sdf_surface_loss
from ..nn import Siren, divergence, gradient, resolve_precision
from ..nn.fused import inference_forward, supports_fused
from ..sampling import SDFBatch, SignGrid, iter_chunks, sample_sdf_batch, step_generator
from ..train import StepFn
from .far_field import FarField, build_far_field, corrected_field, padded_box
from .fused_sdf import DEFAULT_ROW_CHUNK, fused_sdf_loss_backward

__all__ = [
    "SDFModel",
    "sdf_loss",
    "sdf_loss_normal_free",
    "divergence_weight_at",
    "make_sdf_step",
    "sdf_step_precision",
    "make_outside_positive",
    "cloud_to_tensors",
]

log = logging.getLogger(__name__)


@dataclass
class SDFModel:
    """A fitted signed distance function.

    ``network`` is the fitted SIREN: a signed distance near the data (its zero set is the surface;
    extraction meshes it). ``sdf`` and ``gradient`` answer with distances everywhere: within 0.002
    normalized units (0.1% of the normalized cube) of the surface the network's own value, beyond
    twice that the distance to the extracted mesh (``far_field``: to the closest surface points of
    a 64^3 grid's nodes), blended smoothly between. Measured on the six shared shapes and the torus
    (``scripts/benchmark_distance.py``, default fits): the 95th percentile of the error against the
    true surface's distance is at most 0.2% of the diagonal, the sign right on every point farther
    than 0.5% of the diagonal, and |grad| within 0.05 of 1 on about 99% of the box.

    Attributes:
        network: SIREN mapping normalized ``(N, 3)`` points to ``(N, 1)`` normalized distances.
        normalization: world <-> normalized transform (saved with the model).
        data_bounds: ``(2, 3)`` world bounding box of the data it was fitted to (extraction grid).
        info: free-form JSON-able record (training settings, input name, timings).
        support_points: ``(K, 3)`` world subsample of the input (for clean-up and overlays), or None.
        far_field: distances to the extracted mesh away from the surface, or None (then built on
            first use of ``sdf``, from a mesh extracted at grid 128).
    """

    network: Siren
    normalization: Normalization
    data_bounds: np.ndarray
    info: dict[str, Any]
    support_points: Optional[np.ndarray] = None
    far_field: Optional[FarField] = None

    @property
    def device(self) -> torch.device:
        """Device of the network's parameters."""
        return next(self.network.parameters()).device

    def attach_far_field(self, mesh: Mesh, sign_from: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        """Build ``far_field`` from the model's extracted mesh (world units) over its padded box.

        ``sign_from``: ``(K, 3)`` world points -> values whose sign says inside (< 0) or outside,
        used near the mesh and everywhere when it is open (default: the network's own sign).
        """
        import time

        t0 = time.perf_counter()
        pts = self.normalization.to_normalized(mesh.vertices)
        box = padded_box(self.normalization, self.data_bounds)

        param = next(self.network.parameters())
        forward = inference_forward(self.network)  # an open mesh asks the network at every node

        def network_sign(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return np.concatenate([
                    forward(torch.as_tensor(x[sl], dtype=param.dtype, device=param.device))[:, 0].cpu().numpy()
                    for sl in iter_chunks(len(x), 65536)
                ])

        def given_sign(x: np.ndarray) -> np.ndarray:
            assert sign_from is not None
            return np.asarray(sign_from(self.normalization.to_world(x)))

        self.far_field = build_far_field(Mesh(pts, mesh.faces), network_sign if sign_from is None else given_sign, box)
        self.info["far_field_seconds"] = time.perf_counter() - t0

    def ensure_far_field(self, resolution: int = 128) -> None:
        """Build ``far_field`` (from a mesh extracted at ``resolution``) unless the model has one."""
        if self.far_field is not None:
            return
        from ..config import ExtractConfig
        from ..extract import extract_mesh

        log.info("building the model's far-field distances (grid %d)", resolution)
        mesh = extract_mesh(self.network, self.normalization, self.data_bounds, ExtractConfig(resolution=resolution), support_points=self.support_points, device=self.device)
        if not mesh.is_empty:
            self.attach_far_field(mesh)

    def field(self) -> Any:
        """The signed distance in normalized coordinates, ``(N, 3) -> (N, 1)``: the network near the
        surface, the far field away from it (``fields.far_field.corrected_field``)."""
        self.ensure_far_field()
        return corrected_field(self.network, self.far_field)

    def sdf(self, points: ArrayLike, chunk_size: int = 65536) -> np.ndarray:
        """Signed distance at world points ``(N, 3)``: ``(N,)`` world units, negative inside.

        A distance everywhere (see the class docstring), not only near the surface.
        """
        return self._evaluate(self.field(), points, chunk_size)

    def network_sdf(self, points: ArrayLike, chunk_size: int = 65536) -> np.ndarray:
        """The fitted network's value at world points ``(N, 3)``: ``(N,)`` world units. Equal to
        ``sdf`` within about 1% of the normalized cube of the surface; not a distance farther out."""
        return self._evaluate(self.network, points, chunk_size)

    def _evaluate(self, fn: Any, points: ArrayLike, chunk_size: int) -> np.ndarray:
        pts = self.normalization.to_normalized(points)
        out = np.empty(len(pts), dtype=np.float64)
        param = next(self.network.parameters())
        with torch.no_grad():
            for sl in iter_chunks(len(pts), chunk_size):
                x = torch.as_tensor(pts[sl], dtype=param.dtype, device=param.device)
                out[sl] = fn(x)[:, 0].double().cpu().numpy()
        return out / self.normalization.scale

    def gradient(self, points: ArrayLike, chunk_size: int = 65536) -> np.ndarray:
        """Gradient of ``sdf`` at world points ``(N, 3)``: ``(N, 3)``, unitless (unit length where
        the field is a distance; the outward normal on the surface)."""
        pts = self.normalization.to_normalized(points)
        out = np.empty((len(pts), 3), dtype=np.float64)
        param = next(self.network.parameters())
        fn = self.field()
        for sl in iter_chunks(len(pts), chunk_size):
            x = torch.as_tensor(pts[sl], dtype=param.dtype, device=param.device)
            with torch.enable_grad():
                x.requires_grad_(True)
                out[sl] = gradient(fn(x), x).detach().double().cpu().numpy()
        return out

    def to(self, device: Device) -> "SDFModel":
        """Move the network to ``device`` (in place) and return self."""
        self.network.to(device)
        return self

    def save(self, path: PathLike) -> None:
        """Write one self-contained model file (weights, network config, normalization); atomic."""
        meta = {
            "kind": "sdf",
            "siren": config_to_dict(self.network.config),
            "normalization": self.normalization.to_dict(),
            "data_bounds": np.asarray(self.data_bounds, dtype=float).tolist(),
            "info": self.info,
        }
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        if self.support_points is not None:
            normalized = self.normalization.to_normalized(self.support_points)
            tensors["support_points"] = torch.as_tensor(normalized, dtype=torch.float32)
        if self.far_field is not None:
            tensors.update(self.far_field.to_tensors())
        save_model_file(path, tensors, meta, format=MODEL_FORMAT)

    @classmethod
    def load(cls, path: PathLike, device: Device = "cpu") -> "SDFModel":
        """Load a model file written by ``save``; no code is executed.

        Raises:
            InputError: the file is not a neural_sdf SDF model.
        """
        tensors, meta = load_model_file(path)
        if meta.get("kind") != "sdf":
            raise InputError(f"{path}: model file holds a {meta.get('kind', 'unknown')!r} model, expected an SDF model")
        try:
            network = Siren(config_from_dict(SirenConfig, meta["siren"]))
            network.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            normalization = Normalization.from_dict(meta["normalization"])
            support = tensors.get("support_points")
            model = cls(
                network=network.to(device).eval(),
                normalization=normalization,
                data_bounds=np.asarray(meta["data_bounds"], dtype=np.float64).reshape(2, 3),
                info=meta.get("info", {}),
                support_points=None if support is None else normalization.to_world(support.double().numpy()),
                far_field=FarField.from_tensors(tensors),
            )
        except (KeyError, ValueError, RuntimeError) as exc:
            raise InputError(f"{path}: corrupt model file ({str(exc).splitlines()[0][:120]})") from exc
        return model


def cloud_to_tensors(
    cloud: PointCloud, normalization: Normalization, device: Device, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Normalize a cloud and move it to ``device``: ``(N, 3)`` points and unit normals (or None).

    This is where float64 I/O data becomes float32 training data, once.
    """
    pts = torch.as_tensor(normalization.to_normalized(cloud.points), dtype=dtype, device=device)
    if cloud.normals is None:
        return pts, None
    nrm = torch.as_tensor(cloud.normals, dtype=dtype, device=device)
    return pts, nrm


def _value_gradient_terms(
    network: Siren, batch: SDFBatch, weights: LossWeights
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Evaluate ``f`` and ``grad f`` on a batch (with graph) and the terms every SDF loss shares."""
    coords = batch.coords.detach().requires_grad_(True)
    f = network(coords)
    grad = gradient(f, coords, create_graph=True)
    terms = {
        "surface": sdf_surface_loss(f, batch.on_surface),
        "off_surface": sdf_off_surface_loss(f, batch.off_surface, weights.alpha),
        "eikonal": eikonal_loss(grad),
    }
    if batch.sign is not None and weights.sign > 0:
        terms["sign"] = sdf_sign_loss(f, batch.sign)
    return coords, f, grad, terms


def sdf_loss(
    network: Siren, batch: SDFBatch, weights: LossWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SIREN SDF loss (paper Eq. 6) by plain autograd: the reference implementation.

    When the batch carries sign targets and ``weights.sign > 0``, the free-space sign term
    (``losses.sdf_sign_loss``) is added: it keeps pockets of the wrong sign, the phantom sheets
    inside shells with holes, from forming where the oriented input says which side is which.

    Returns:
        ``(loss, terms)``: the weighted scalar loss (with graph) and each unweighted term.
    """
    coords, f, grad, terms = _value_gradient_terms(network, batch, weights)
    terms["normal"] = normal_alignment_loss(grad, batch.normals, batch.on_surface)
    loss = (
        weights.surface * terms["surface"]
        + weights.off_surface * terms["off_surface"]
        + weights.normal * terms["normal"]
        + weights.eikonal * terms["eikonal"]
    )
    if "sign" in terms:
        loss = loss + weights.sign * terms["sign"]
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def divergence_weight_at(step: int, total_steps: int, weight: float) -> float:
    """Annealed weight of the divergence term: ``weight`` for the first 20% of the steps, then a
    linear decay to 0 at 50%, then 0 (DiGS's linear schedule: the term shapes the field early and
    must vanish so it does not smooth away detail)."""
    t = step / max(total_steps, 1)
    if t < 0.2:
        return weight
    return weight * max(0.0, (0.5 - t) / 0.3)


def sdf_loss_normal_free(
    network: Siren, batch: SDFBatch, weights: LossWeights, divergence_weight: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """SDF loss without normals: the SIREN terms minus normal alignment, plus DiGS's divergence.

    ``surface * |f| + off_surface * exp(-alpha |f|) + eikonal * | |grad f| - 1 | +
    divergence_weight * |lap f|`` (Ben-Shabat et al., "DiGS", CVPR 2022, Eq. 7, with the SIREN
    network and weights of Eq. 6). The divergence is taken on the off-surface samples only: on
    the data it would fight sharp features. It is skipped (not computed) once its weight is 0.

    Returns:
        ``(loss, terms)``: the weighted scalar loss (with graph) and each unweighted term.
    """
    coords, f, grad, terms = _value_gradient_terms(network, batch, weights)
    loss = weights.surface * terms["surface"] + weights.off_surface * terms["off_surface"] + weights.eikonal * terms["eikonal"]
    if divergence_weight > 0:
        terms["divergence"] = divergence_loss(divergence(grad, coords, create_graph=True), batch.off_surface)
        loss = loss + divergence_weight * terms["divergence"]
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def make_outside_positive(network: Siren, num_samples: int = 4096, seed: int = 0) -> bool:
    """Negate a normal-free fit whose sign came out inverted; returns whether it was negated.

    Without normals the loss is symmetric in the sign of f. The border of the normalized domain
    ``[-1, 1]^3`` lies outside the data (which fits in ``[-0.9, 0.9]^3``), so f must be positive
    there; when most border samples are negative, the last layer's weights and bias are negated.
    """
    g = torch.Generator().manual_seed(seed)
    param = next(network.parameters())
    pts = torch.rand((num_samples, 3), generator=g) * 2 - 1
    axis = torch.randint(3, (num_samples,), generator=g)
    pts[torch.arange(num_samples), axis] = torch.where(torch.rand(num_samples, generator=g) < 0.5, -1.0, 1.0)
    with torch.no_grad():
        f = network(pts.to(device=param.device, dtype=param.dtype))[:, 0]
        negative = float((f < 0).float().mean())
        if negative <= 0.5:
            return False
        network.last.weight.neg_()
        network.last.bias.neg_()
    log.info("normal-free fit came out inside-out (%.0f%% of the domain border negative); negated it", 100 * negative)
    return True


BFLOAT16_MIN_WIDTH = 64
"""``precision="auto"`` keeps narrower networks in float32: one thread, fused step per 600 rows,
float32 against bfloat16: 32 wide 2.1-2.4 ms against 2.9 (the casts cost more than the products
save), 64 wide 5.9-6.0 against 4.7-5.2, 128 wide 19-26 against 13-14, 256 wide 67-74 against 41-43."""


def sdf_step_precision(precision: str, device: Device, hidden_dim: int) -> torch.dtype:
    """The fused SDF step's dtype for its hidden products (``TrainConfig.precision``).

    "float32" and "bfloat16" as given; "auto" is ``nn.resolve_precision``'s choice on a CPU (bfloat16
    where oneDNN runs it natively) for networks at least ``BFLOAT16_MIN_WIDTH`` wide, and float32
    otherwise, CUDA included (not measured there).
    """
    if precision == "auto" and (torch.device(device).type != "cpu" or hidden_dim < BFLOAT16_MIN_WIDTH):
        return torch.float32
    return resolve_precision(precision, device)


def make_sdf_step(
    network: Siren,
    points: torch.Tensor,
    normals: Optional[torch.Tensor],
    sampling: SamplingConfig,
    weights: LossWeights,
    seed: int,
    step_impl: str = "fused",
    *,
    divergence_weight: float = 0.0,
    total_steps: int = 1,
    signs: Optional[SignGrid] = None,
    precision: str = "float32",
) -> StepFn:
    """Return a ``StepFn`` that draws the batch of each step from ``(seed, step)`` and backpropagates.

    Args:
        step_impl: "fused" uses ``fields.fused_sdf.fused_sdf_loss_backward`` (closed-form SIREN gradient
            and backward; same loss and gradients as ``sdf_loss``) when ``supports_fused(network)``,
            and falls back to the autograd reference otherwise; "autograd" always uses ``sdf_loss``.
        normals: ``None`` for a normal-free fit: the step uses ``sdf_loss_normal_free`` (autograd),
            its divergence weight annealed from ``divergence_weight`` over ``total_steps``.
        signs: which side each free-space sample lies on (``sampling.sign_grid``), for the sign
            term weighted ``weights.sign``; None leaves it out.
        precision: the fused step's hidden products (``TrainConfig.precision``, resolved by
            ``sdf_step_precision``). The autograd step is always exact.
    """
    if normals is None:
        zeros = torch.zeros_like(points)

        def normal_free_step(step: int) -> dict[str, float]:
            batch = sample_sdf_batch(points, zeros, sampling, step_generator(seed, step, points.device))
            w_div = divergence_weight_at(step, total_steps, divergence_weight)
            loss, terms = sdf_loss_normal_free(network, batch, weights, w_div)
            loss.backward()
            return {"loss": float(loss.detach()), **terms}

        return normal_free_step
    if step_impl not in ("fused", "autograd"):
        raise ValueError(f"step_impl must be one of ['fused', 'autograd'], got {step_impl!r}")
    use_fused = step_impl == "fused" and supports_fused(network)
    if step_impl == "fused" and not use_fused:
        log.info("network is not a plain sine SIREN; using the autograd SDF step")
    matmul_dtype = sdf_step_precision(precision, points.device, network.config.hidden_dim)
    if use_fused and matmul_dtype != torch.float32:
        log.info("fused step: hidden layers' products in bfloat16 (`precision=float32` for exact float32)")
    def row_chunk() -> Optional[int]:
        # Cache-sized row chunks help one CPU thread (measured 1.25x less CPU time); with several
        # threads each extra op costs a synchronization, and one chunk per step was 2x faster on a
        # loaded 2-core machine; a GPU wants one big batch.
        return DEFAULT_ROW_CHUNK if points.device.type == "cpu" and torch.get_num_threads() == 1 else None

    def step_fn(step: int) -> dict[str, float]:
        batch = sample_sdf_batch(points, normals, sampling, step_generator(seed, step, points.device), signs)
        if use_fused:
            result = fused_sdf_loss_backward(
                network, batch.coords, batch.normals, batch.on_surface, batch.off_surface, weights, row_chunk(), batch.sign,
                matmul_dtype,
            )
            return {"loss": float(result.loss), **result.terms}
        loss, terms = sdf_loss(network, batch, weights)
        loss.backward()
        return {"loss": float(loss.detach()), **terms}

    return step_fn


def data_bounds_of(cloud: PointCloud) -> np.ndarray:
    """World bounding box ``(2, 3)`` of a cloud (used for the extraction grid)."""
    return bounds(cloud.points)
