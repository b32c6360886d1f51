"""Point cloud (or mesh) in, fitted SDF model and watertight mesh out: ``fit_sdf`` and ``reconstruct``."""

import dataclasses
import hashlib
import json
import logging
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
import torch

from ._typing import Device, PathLike
from .cleanup import PreparedCloud, prepare_cloud
from .config import ExtractConfig, config_to_dict
from .errors import InputError
from .extract import decimate_mesh
from .extract import extract_mesh as _extract
from .fields.sdf import SDFModel, cloud_to_tensors, make_outside_positive, make_sdf_step
from .geometry import Mesh, PointCloud, fit_normalization, point_spacing, within_distance
from .geometry import bounds as bounds_of
from .io.pointcloud import PointSource
from .nn import Siren
from .recipe import FitOptions, resolve_recipe
from .sampling import sign_grid
from .train import fit, load_training_state, save_training_state

__all__ = ["FitOptions", "fit_sdf", "fit_prepared", "extract_mesh", "resolve_extract", "reconstruct_prepared", "reconstruct", "ReconstructResult", "SUPPORT_POINTS", "quality_preset", "QUALITY_PRESETS", "input_coverage", "COVERAGE_WARN", "COVERAGE_FAIL"]

log = logging.getLogger(__name__)

SUPPORT_POINTS = 50_000
"""Input points kept in a model file, for stray-piece clean-up at extraction and for overlays."""


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
    return fit_prepared(prepared, options, device=device, checkpoint=checkpoint, progress=progress, started=t0)


def fit_prepared(
    prepared: PreparedCloud,
    options: FitOptions = FitOptions(),
    *,
    bounds: Optional[np.ndarray] = None,
    device: Device = "cpu",
    checkpoint: Optional[PathLike] = None,
    progress: bool = True,
    started: Optional[float] = None,
) -> SDFModel:
    """Fit a SIREN SDF to a cloud that went through the data stage already (``prepare_cloud``).

    The recipe's "auto" settings are resolved from the data (``recipe.resolve_recipe``); the
    model's normalization maps ``bounds`` (default: the cloud's bounding box) into the network's
    cube, so a scene tile covers its whole box, not only where its points are.

    Args:
        prepared: the cloud, its name and where its normals come from.
        options: as for ``fit_sdf`` (``options.scan`` is not applied again).
        bounds: ``(2, 3)`` world box the model must cover, or None for the cloud's own box.
        device, checkpoint, progress: as for ``fit_sdf``.
        started: ``time.perf_counter()`` when the whole fit began (for ``fit_seconds``).

    Returns:
        The fitted ``SDFModel``.
    """
    t0 = time.perf_counter() if started is None else started
    cloud, name = prepared.cloud, prepared.name
    normal_free = {"divergence_weight": options.scan.divergence_weight, "total_steps": options.train.steps}
    box = bounds_of(cloud.points) if bounds is None else np.asarray(bounds, dtype=np.float64).reshape(2, 3)
    normalization = fit_normalization(box)
    spacing = point_spacing(normalization.to_normalized(cloud.points), seed=options.train.seed) if options.adapt_w0 else 0.0
    options = resolve_recipe(options, spacing=spacing, normals_from=prepared.normals_from)
    torch.manual_seed(options.train.seed)  # initialization only; batches use per-step generators
    network = Siren(options.siren).to(device)
    points, normals = cloud_to_tensors(cloud, normalization, device)
    signs = None
    if cloud.normals is not None and options.weights.sign > 0:
        signs = sign_grid(normalization.to_normalized(cloud.points), cloud.normals, device=device)
    step_fn = make_sdf_step(
        network, points, normals, options.sampling, options.weights, options.train.seed, options.train.step_impl,
        **normal_free, signs=signs, precision=options.train.precision,
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
                    **normal_free, signs=signs, precision=options.train.precision,
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
        "device": str(next(network.parameters()).device),
    }
    model = SDFModel(network, normalization, box, info, support_points=cloud.points[np.sort(keep)])
    info["surface_residual"] = surface_residual(model, model.support_points)
    if info["surface_residual"]["median"] > RESIDUAL_WARNING:
        log.warning(
            "%s: the fit did not converge: median |f| on the input is %.2g%% of the bounding-box diagonal "
            "(converged fits on clean input: below 0.05%%); the mesh will be poor: try a lower `lr` or more `steps`",
            name, 100 * info["surface_residual"]["median"],
        )
    if ckpt is not None and ckpt.exists():
        ckpt.unlink()
    return model


RESIDUAL_WARNING = 0.01
"""Median |f| on the input, as a fraction of the data's bounding-box diagonal, above which ``fit_sdf``
warns that the fit failed: the F-score's 1% tolerance, so that sensor noise (0.5% of the diagonal
gives a median of about 0.34%) does not trigger it. Converged fits on clean input measure about
1e-4 (scripts/README.md, "Choosing the defaults")."""


def surface_residual(model: SDFModel, points: np.ndarray) -> dict[str, float]:
    """How far the zero level set misses ``(N, 3)`` world points that lie on the surface.

    Returns:
        ``{"median": ..., "p99": ...}`` of ``|f(points)|``, as fractions of the diagonal of the
        model's data bounding box (unitless).
    """
    diag = float(np.linalg.norm(model.data_bounds[1] - model.data_bounds[0]))
    values = np.abs(model.network_sdf(points)) / max(diag, 1e-300)
    return {"median": float(np.median(values)), "p99": float(np.quantile(values, 0.99))}


COVERAGE_WARN = 0.9
"""Share of the input points near the mesh (``input_coverage``) below which ``reconstruct`` warns."""

COVERAGE_FAIL = 0.5
"""Share below which the command says the reconstruction failed (exit status 1): the mesh then
describes less than half of what the user gave."""


def input_coverage(mesh: Mesh, points: np.ndarray, max_points: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """How much of the input the mesh describes: the share of ``(N, 3)`` world points within a
    tolerance of the mesh, on a random subset of at most ``max_points``.

    The tolerance is the larger of 1% of the points' bounding-box diagonal (twice the noise of a
    typical scan, 0.5% of the diagonal, so that noise alone costs under 5% of the share) and four
    median point spacings (sparse clouds).

    Returns:
        ``(share, tolerance)``: share in ``[0, 1]``, tolerance in world units.
    """
    pts = np.asarray(points, dtype=np.float64)
    if mesh.is_empty or len(pts) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    sample = pts[rng.choice(len(pts), size=min(max_points, len(pts)), replace=False)]
    spacing = point_spacing(pts, max_points=2000, seed=seed)
    diag = float(np.linalg.norm(np.ptp(pts, axis=0)))
    tolerance = max(0.01 * diag, 4.0 * spacing)
    return float(np.mean(within_distance(mesh, sample, tolerance))), tolerance


def resolve_extract(model: Any, config: ExtractConfig) -> ExtractConfig:
    """Resolve a model's "auto" extraction settings.

    A scene (a model with ``tiles``) is meshed at ``config.voxel_size`` or, when that is 0 and the
    resolution is the default one, at the voxel its plan chose from the point spacing
    (``info["plan"]["voxel_size"]``; a preview that asks for another resolution gets it). Trimming
    ("auto") is on for scenes and for single-view scans (the input gave a sensor position), whose
    unseen sides are no surface, and off for objects, whose holes are capped. Adaptive meshing
    ("auto") is on for scenes, whose density varies across the cloud, and off for objects.
    """
    changes: dict[str, Any] = {}
    scene = hasattr(model, "tiles")
    if scene and config.voxel_size <= 0 and config.resolution == ExtractConfig().resolution:
        changes["voxel_size"] = float(model.info.get("plan", {}).get("voxel_size", 0.0))
    if config.trim == "auto":
        changes["trim"] = "on" if scene or model.info.get("viewpoint") is not None else "off"
    if config.adaptive == "auto":
        changes["adaptive"] = "on" if scene else "off"
    return dataclasses.replace(config, **changes) if changes else config


def extract_mesh(model: Any, config: ExtractConfig = ExtractConfig(), *, support_points: Optional[np.ndarray] = None, progress: bool = False) -> Mesh:
    """Mesh a fitted model's zero level set in its input's coordinates (see ``extract.extract_mesh``).

    Args:
        model: an ``SDFModel`` or a ``scene.SceneModel``.
        config: grid and clean-up (``resolve_extract`` resolves its "auto" settings for the model).
        support_points: ``(N, 3)`` world input points for the clean-up and trimming (default: the
            subsample kept in the model, whose sparser spacing adaptive meshing corrects for).
        progress: show a progress bar.
    """
    share = 1.0
    if support_points is None and model.support_points is not None:
        # The model keeps a subsample of its input: the input is denser than it looks.
        share = len(model.support_points) / max(int(model.info.get("num_points", 0)), len(model.support_points), 1)
    mesh = _extract(
        model.network,
        model.normalization,
        model.data_bounds,
        resolve_extract(model, config),
        support_points=model.support_points if support_points is None else support_points,
        support_share=share,
        device=model.device,
        progress=progress,
    )
    return decimate_mesh(mesh, config.target_faces)


def reconstruct_prepared(
    prepared: PreparedCloud,
    options: FitOptions = FitOptions(),
    extract: ExtractConfig = ExtractConfig(),
    *,
    device: Device = "cpu",
    checkpoint: Optional[PathLike] = None,
    progress: bool = True,
    started: Optional[float] = None,
) -> ReconstructResult:
    """Fit one SDF to a prepared cloud and extract its mesh (see ``reconstruct``)."""
    t0 = time.perf_counter() if started is None else started
    model = fit_prepared(prepared, options, device=device, checkpoint=checkpoint, progress=progress, started=t0)
    if prepared.cloud.viewpoint is not None:
        model.info["viewpoint"] = [float(v) for v in prepared.cloud.viewpoint]
    t1 = time.perf_counter()
    mesh = extract_mesh(model, dataclasses.replace(extract, target_faces=0), progress=progress)
    if mesh.is_empty:
        raise InputError(f"{prepared.name}: the fitted SDF has no zero crossing; no surface to extract")
    model.attach_far_field(mesh)  # distances away from the surface: to this (full) mesh
    mesh = decimate_mesh(mesh, extract.target_faces)
    t2 = time.perf_counter()
    return ReconstructResult(mesh, model, t1 - t0, t2 - t1)


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

    One network for the whole cloud; ``scene.reconstruct_scene`` tiles clouds one network cannot
    hold.

    Raises:
        InputError: unusable input, or a fit whose SDF has no zero crossing.
    """
    t0 = time.perf_counter()
    prepared = prepare_cloud(source, options.scan, seed=options.train.seed, progress=progress)
    return reconstruct_prepared(prepared, options, extract, device=device, checkpoint=checkpoint, progress=progress, started=t0)


QualityPreset = Literal["fast", "default", "high"]
QUALITY_PRESETS: tuple[str, ...] = ("fast", "default", "high")


def quality_preset(name: str) -> tuple[FitOptions, ExtractConfig]:
    """Return the fit and extraction settings of a ``--quality`` preset.

    ``default`` is ``FitOptions()`` and ``ExtractConfig()`` (SIREN 128 wide, 450 steps, grid 384);
    ``fast`` runs 200 steps and meshes at 256, ``high`` runs 1,500 steps and meshes at 512. The
    scripts/README.md's "Choosing the defaults" gives what each costs and gives (armadillo, 100k points).

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


class _CallableModule(types.ModuleType):
    """This module, callable: ``neural_sdf.reconstruct(...)`` runs ``reconstruct`` whether the
    package attribute holds the function or (once the submodule is imported) the module."""

    def __call__(self, *args: Any, **kwargs: Any) -> ReconstructResult:
        return reconstruct(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
