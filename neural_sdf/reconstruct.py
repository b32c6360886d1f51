"""Point cloud (or mesh) in, fitted SDF model and watertight mesh out: ``fit_sdf`` and ``reconstruct``."""

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ._typing import Device, PathLike
from .cleanup import prepare_cloud
from .config import (
    ExtractConfig,
    LossWeights,
    SamplingConfig,
    ScanConfig,
    SirenConfig,
    TrainConfig,
    config_to_dict,
    default_sdf_sampling,
    default_sdf_siren,
    default_sdf_train,
    default_sdf_weights,
    density_w0_first,
)
from .errors import InputError
from .extract import extract_mesh as _extract
from .fields.sdf import SDFModel, cloud_to_tensors, make_outside_positive, make_sdf_step
from .geometry import Mesh, PointCloud, bounds, fit_normalization, point_spacing
from .io.pointcloud import PointSource
from .nn import Siren
from .sampling import sign_grid
from .train import fit, load_training_state, save_training_state

__all__ = ["FitOptions", "fit_sdf", "extract_mesh", "reconstruct", "ReconstructResult", "SUPPORT_POINTS", "quality_preset", "QUALITY_PRESETS"]

log = logging.getLogger(__name__)

SUPPORT_POINTS = 50_000
"""Input points kept in a model file, for stray-piece clean-up at extraction and for overlays."""


@dataclass(frozen=True)
class FitOptions:
    """Everything that determines a fit (saved with the model).

    The defaults are the ``--quality default`` recipe, chosen by measurement (README, "Choosing
    the defaults"); they differ from the bare configs' defaults (the paper's settings) in network
    width, steps, learning-rate schedule and the share of off-surface samples.
    """

    siren: SirenConfig = field(default_factory=default_sdf_siren)
    train: TrainConfig = field(default_factory=default_sdf_train)
    sampling: SamplingConfig = field(default_factory=default_sdf_sampling)
    weights: LossWeights = field(default_factory=default_sdf_weights)
    scan: ScanConfig = field(default_factory=ScanConfig)
    adapt_w0: bool = True
    """Lower the first-layer ``w0`` toward the paper's 30 on sparse clouds (``density_w0_first``);
    the value used is saved in the model's options. The CLI turns this off when ``--w0-first`` is given."""
    adapt_normal_weight: bool = True
    """Use the paper's normal weight (``LossWeights().normal``, 100) when the normals were not given
    with the input in a consistent state (estimated, or re-oriented because they disagreed): such
    normals are smoothed guesses, and weighting them 10x made a noisy scorpion scan worse (README,
    "Choosing the defaults"). The value used is saved in the model's options. The CLI turns this off
    when ``--weight-normal`` is given."""


TRUSTED_NORMALS = ("given", "given-flipped", "given-repaired")
"""``PreparedCloud.normals_from`` values whose normals get the recipe's full normal weight."""


@dataclass
class ReconstructResult:
    """The outcome of ``reconstruct``.

    Attributes:
        mesh: world-space mesh (input units), outward faces, stray pieces removed.
        model: the fitted SDF.
        fit_seconds: wall time of the fit (this call).
        extract_seconds: wall time of the extraction.
    """

    mesh: Mesh
    model: SDFModel
    fit_seconds: float
    extract_seconds: float


def _fingerprint(cloud: PointCloud, options: FitOptions) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(cloud.points).tobytes())
    if cloud.normals is not None:
        h.update(np.ascontiguousarray(cloud.normals).tobytes())
    h.update(json.dumps(config_to_dict(options), sort_keys=True).encode())
    return h.hexdigest()[:32]


def fit_sdf(
    source: Union[PointSource, Sequence[PointSource]],
    options: FitOptions = FitOptions(),
    *,
    device: Device = "cpu",
    checkpoint: Optional[PathLike] = None,
    progress: bool = True,
) -> SDFModel:
    """Fit a SIREN SDF to an oriented point cloud (or a mesh, sampled area-weighted).

    Args:
        source: path, array, ``PointCloud``, or trimesh/Open3D object (see ``load_points``), or a
            list of them (partial scans in one frame, merged).
        options: network, training, sampling, loss and scan settings (clean-up and normals:
            ``cleanup.prepare_cloud``; ``scan.normals="none"`` fits without normals).
        device: torch device (the CLI resolves "auto").
        checkpoint: file for resumable checkpoints. If it exists and was written by a fit of the
            same input and options, the fit resumes from it; it is deleted when the fit completes.
        progress: show a progress bar with loss and ETA.

    Returns:
        The fitted ``SDFModel`` (normalization, data bounds and training record included).

    Raises:
        InputError: unusable input (see ``load_points`` and ``cleanup.prepare_cloud``).
    """
    t0 = time.perf_counter()
    prepared = prepare_cloud(source, options.scan, seed=options.train.seed, progress=progress)
    cloud, name = prepared.cloud, prepared.name
    normal_free = {"divergence_weight": options.scan.divergence_weight, "total_steps": options.train.steps}
    normalization = fit_normalization(cloud.points)
    if options.adapt_w0:
        spacing = point_spacing(normalization.to_normalized(cloud.points), seed=options.train.seed)
        w0_first = density_w0_first(spacing, options.siren.w0_first)
        if w0_first != options.siren.w0_first:
            log.info("sparse cloud (median spacing %.4f of the normalized cube): first-layer w0 %.1f instead of %.1f",
                     spacing, w0_first, options.siren.w0_first)
            options = dataclasses.replace(options, siren=dataclasses.replace(options.siren, w0_first=w0_first))
    paper_normal = LossWeights().normal
    if options.adapt_normal_weight and prepared.normals_from not in TRUSTED_NORMALS and options.weights.normal > paper_normal:
        log.info("normals %s, not given: normal weight %g instead of %g", prepared.normals_from, paper_normal, options.weights.normal)
        options = dataclasses.replace(options, weights=dataclasses.replace(options.weights, normal=paper_normal))
    torch.manual_seed(options.train.seed)  # initialization only; batches use per-step generators
    network = Siren(options.siren).to(device)
    points, normals = cloud_to_tensors(cloud, normalization, device)
    signs = None
    if cloud.normals is not None and options.weights.sign > 0:
        signs = sign_grid(normalization.to_normalized(cloud.points), cloud.normals, device=device)
    step_fn = make_sdf_step(
        network, points, normals, options.sampling, options.weights, options.train.seed, options.train.step_impl,
        **normal_free, signs=signs,
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=options.train.lr)
    fingerprint = _fingerprint(cloud, options)
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        try:
            step, meta = load_training_state(ckpt, network, optimizer)
        except InputError as exc:
            log.warning("ignoring unreadable checkpoint %s (%s)", ckpt, exc)
        else:
            if meta.get("fingerprint") == fingerprint:
                start = step
                log.info("resuming from %s at step %d", ckpt, step)
            else:
                log.warning("checkpoint %s belongs to another input or settings; starting afresh", ckpt)
                torch.manual_seed(options.train.seed)
                network = Siren(options.siren).to(device)
                step_fn = make_sdf_step(
                    network, points, normals, options.sampling, options.weights, options.train.seed, options.train.step_impl,
                    **normal_free, signs=signs,
                )
                optimizer = torch.optim.Adam(network.parameters(), lr=options.train.lr)

    def on_checkpoint(done: int, opt: torch.optim.Optimizer) -> None:
        assert ckpt is not None
        save_training_state(ckpt, network, opt, done, {"fingerprint": fingerprint})

    result = fit(
        network,
        step_fn,
        options.train,
        optimizer=optimizer,
        start_step=start,
        on_checkpoint=on_checkpoint if ckpt is not None else None,
        progress=progress,
        desc="fit",
    )
    network.eval()
    if cloud.normals is None:
        make_outside_positive(network, seed=options.train.seed)
    rng = np.random.default_rng(options.train.seed)
    keep = rng.choice(len(cloud), size=min(SUPPORT_POINTS, len(cloud)), replace=False)
    info: dict[str, Any] = {
        "source": name,
        "num_points": len(cloud),
        "normals_from": prepared.normals_from,
        "cleanup": dataclasses.asdict(prepared.report),
        "options": config_to_dict(options),
        "fit_seconds": time.perf_counter() - t0,
        "train_seconds": result.seconds,
        "resumed_from": result.resumed_from,
        "history": result.history,
        "fingerprint": fingerprint,
    }
    model = SDFModel(network, normalization, bounds(cloud.points), info, support_points=cloud.points[np.sort(keep)])
    info["surface_residual"] = surface_residual(model, model.support_points)
    if info["surface_residual"]["median"] > RESIDUAL_WARNING:
        log.warning(
            "%s: the fit did not converge: median |f| on the input is %.2g%% of the bounding-box diagonal "
            "(converged fits on clean input: below 0.05%%); the mesh will be poor: try a lower --lr or more --steps",
            name, 100 * info["surface_residual"]["median"],
        )
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return model


RESIDUAL_WARNING = 0.01
"""Median |f| on the input, as a fraction of the data's bounding-box diagonal, above which ``fit_sdf``
warns that the fit failed: the F-score's 1% tolerance, so that sensor noise (0.5% of the diagonal
gives a median of about 0.34%) does not trigger it. Converged fits on clean input measure about
1e-4 (README, "Choosing the defaults")."""


def surface_residual(model: SDFModel, points: np.ndarray) -> dict[str, float]:
    """How far the zero level set misses ``(N, 3)`` world points that lie on the surface.

    Returns:
        ``{"median": ..., "p99": ...}`` of ``|f(points)|``, as fractions of the diagonal of the
        model's data bounding box (unitless).
    """
    diag = float(np.linalg.norm(model.data_bounds[1] - model.data_bounds[0]))
    values = np.abs(model.sdf(points)) / max(diag, 1e-300)
    return {"median": float(np.median(values)), "p99": float(np.quantile(values, 0.99))}


def extract_mesh(model: SDFModel, config: ExtractConfig = ExtractConfig(), *, progress: bool = False) -> Mesh:
    """Mesh a fitted model's zero level set in its input's coordinates (see ``extract.extract_mesh``)."""
    return _extract(
        model.network,
        model.normalization,
        model.data_bounds,
        config,
        support_points=model.support_points,
        device=model.device,
        progress=progress,
    )


def reconstruct(
    source: Union[PointSource, Sequence[PointSource]],
    options: FitOptions = FitOptions(),
    extract: ExtractConfig = ExtractConfig(),
    *,
    device: Device = "cpu",
    checkpoint: Optional[PathLike] = None,
    progress: bool = True,
) -> ReconstructResult:
    """Fit an SDF to ``source`` and extract its mesh, in the input's coordinates.

    Raises:
        InputError: unusable input, or a fit whose SDF has no zero crossing.
    """
    t0 = time.perf_counter()
    model = fit_sdf(source, options, device=device, checkpoint=checkpoint, progress=progress)
    t1 = time.perf_counter()
    mesh = extract_mesh(model, extract, progress=progress)
    t2 = time.perf_counter()
    if mesh.is_empty:
        raise InputError(f"{source if isinstance(source, (str, Path)) else 'input'}: the fitted SDF has no zero crossing; no surface to extract")
    return ReconstructResult(mesh, model, t1 - t0, t2 - t1)


QualityPreset = Literal["fast", "default", "high"]
QUALITY_PRESETS: tuple[str, ...] = ("fast", "default", "high")


def quality_preset(name: str) -> tuple[FitOptions, ExtractConfig]:
    """Return the fit and extraction settings of a ``--quality`` preset.

    ``default`` is ``FitOptions()`` and ``ExtractConfig()`` (SIREN 128 wide, 450 steps, grid 384);
    ``fast`` runs 200 steps and meshes at 256, ``high`` runs 1,500 steps and meshes at 512. The
    README's "Choosing the defaults" gives what each costs and gives (armadillo, 100k points).

    Raises:
        ValueError: for an unknown name (the message lists the presets).
    """
    if name not in QUALITY_PRESETS:
        raise ValueError(f"quality must be one of {list(QUALITY_PRESETS)}, got {name!r}")
    options, extract = FitOptions(), ExtractConfig()
    steps, resolution = {"fast": (200, 256), "default": (options.train.steps, extract.resolution), "high": (1500, 512)}[name]
    options = dataclasses.replace(options, train=dataclasses.replace(options.train, steps=steps))
    extract = dataclasses.replace(extract, resolution=resolution)
    return options, extract
