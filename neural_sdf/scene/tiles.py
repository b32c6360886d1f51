"""Tiled reconstruction of scenes: plan the tiles, fit one SIREN per tile (in parallel, resumable), blend.

A cloud that one network cannot hold (a room, a street, terrain: extent many times the point
spacing, or many points) is split into tiles by a k-d partition: the box is halved along its
longest side, between the 15% and 85% quantiles of its points where the fewest points lie (a gap
between objects), until every tile has at most ``max_points`` points and a side of at most
``TILE_MAX_SPACINGS`` point spacings. Each tile is fitted on the points of its core grown by a margin, in its own
normalization, with the recipe resolved from its own density (``recipe.resolve_recipe``), through
the batch executors (``batch.executors``: local processes or Ray tasks, retries). Finished tiles
are kept as files next to the output, keyed by a fingerprint of their points and settings, so a
rerun of the same command reuses them. The cost grows with the scanned surface (tiles exist only
where points are), not with the volume of the box around it.
"""

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .._typing import PathLike
from ..cleanup import PreparedCloud
from ..config import config_to_dict
from ..errors import InputError
from ..geometry import PointCloud, fit_normalization
from ..recipe import FitOptions
from .field import SceneModel, Tile

__all__ = [
    "reconstruct_scene",
    "check_tiling",
    "TileSpec",
    "TilePlan",
    "plan_tiles",
    "TilingConfig",
    "fit_scene",
    "SceneFit",
    "MAX_TILES",
]

log = logging.getLogger(__name__)

MAX_TILES = 4096
"""More tiles than this is taken for a mistake (a tile size far too small for the extent)."""

AUTO_MAX_POINTS = 250_000
"""``tiles="auto"``: a cloud with more points than this is tiled (one 128-wide SIREN fits 100k
points of an object to Poisson's accuracy in 450 steps; scripts/README.md "Scenes")."""

AUTO_MAX_SPACINGS = 600.0
"""``tiles="auto"``: a cloud whose longest side exceeds this many median point spacings is tiled.
The six benchmark shapes at 100k points measure 200-280; the sample torus 155."""

TILE_MAX_POINTS = 150_000
"""Automatic tiles hold at most this many points of their core."""

TILE_MAX_SPACINGS = 2000.0
"""Automatic tiles span at most this many median point spacings. Measured on the six shapes
standing on a slab (``scripts/benchmark_scene.py``): tiles of about 2.4 units around objects of
unit diagonal (1,600 spacings of the objects' points) fit every object to F@0.5% >= 0.998."""

MARGIN = 0.1
"""Overlap margin of a tile, as a fraction of its core's longest side (at least ``MIN_MARGIN_SPACINGS``
point spacings): the blend runs across it, and the tile's own field is reliable there."""

MIN_MARGIN_SPACINGS = 12.0

VOXEL_SPACINGS = 1.5
"""Default mesh voxel of a tiled scene, in median point spacings (a single object's default grid,
384 over its box, gives about 1.7 spacings at 100k points)..."""

VOXEL_MAX_CELLS = 1536
"""...but at least the scene's longest side over this many cells (Poisson depth 11's finest level is 2048),
so that a scene's mesh stays the size a user can open."""

MIN_TILE_POINTS = 2_000
"""A tile of a regular ``tile_size`` grid with fewer points is merged into its nearest neighbour."""


@dataclass(frozen=True)
class TilingConfig:
    """How a cloud is split into tiles (``--tiles``, ``--tile-size``)."""

    tiles: str = "auto"
    """``auto`` (tile when the cloud is large against its spacing), ``off`` (one network), or a
    number N (split into at least N tiles)."""
    tile_size: float = 0.0
    """Side of the tiles in input units (a regular grid; 0: automatic k-d tiles)."""
    max_points: int = TILE_MAX_POINTS
    """Automatic tiles hold at most this many points."""


@dataclass
class TileSpec:
    """One planned tile: its boxes and how many points it will be fitted on.

    Attributes:
        name: ``"t000"``, ``"t001"``, ...
        core: ``(2, 3)`` world box it answers for.
        bounds: ``(2, 3)`` world box it is fitted over (core plus margin).
        num_core: points in the core.
        num_points: points in the bounds (what the tile is fitted on).
    """

    name: str
    core: np.ndarray
    bounds: np.ndarray
    num_core: int
    num_points: int


@dataclass
class TilePlan:
    """The tiles of a cloud (one tile: the cloud is fitted as one object).

    Attributes:
        tiles: the tiles.
        spacing: median nearest-neighbour spacing of the cloud, world units.
        reason: why the cloud was (or was not) tiled, for the plan line.
        voxel_size: default mesh voxel of the scene (``VOXEL_SPACINGS``, ``VOXEL_MAX_CELLS``), world units.
        merged: names of regular-grid cells merged into a neighbour for having too few points.
    """

    tiles: list[TileSpec]
    spacing: float
    reason: str
    voxel_size: float = 0.0
    merged: list[str] = field(default_factory=list)

    @property
    def tiled(self) -> bool:
        return len(self.tiles) > 1

    def describe(self) -> str:
        """One paragraph for the log: tiles, points per tile."""
        counts = [t.num_points for t in self.tiles]
        if not self.tiled:
            return f"1 tile ({self.reason})"
        return (
            f"{len(self.tiles)} tiles ({self.reason}); points per tile {min(counts):,}-{max(counts):,} "
            f"(median {int(np.median(counts)):,}), overlap margins included"
        )


def _in_box(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return np.all((points >= box[0]) & (points <= box[1]), axis=1)


def _quiet_cut(values: np.ndarray, lo: float, hi: float, max_points: int = 0) -> float:
    """Where to halve a box along one axis: between the 15% and 85% quantiles of the points, where
    the fewest points lie within 2% of the box's side (a gap between objects, so that tiles cut
    through as little surface as possible), a cut farther from the median paying up to twice as
    many points; the median's side wins ties. ``max_points``: when two halves can hold the points,
    only cuts that leave both halves at most this many are considered, so that a quiet cut does
    not cost a third tile (one object on a slab, 199k points: a cut at 15% left 168k on one side,
    3 tiles, two rounds of fits on two workers)."""
    first, last = 0.15, 0.85
    n = len(values)
    if 0 < max_points < n <= 2 * max_points:
        first, last = max(first, 1.0 - max_points / n), min(last, max_points / n)
    fractions = np.linspace(first, last, 57)
    candidates = np.quantile(values, fractions)
    width = 0.02 * (hi - lo)
    ordered = np.sort(values)
    near = np.searchsorted(ordered, candidates + width) - np.searchsorted(ordered, candidates - width)
    score = near * (1.0 + 2.0 * np.abs(fractions - 0.5) / 0.35)
    best = np.flatnonzero(score == score.min())
    cut = float(candidates[best[np.argmin(np.abs(fractions[best] - 0.5))]])
    return cut if lo < cut < hi else (lo + hi) / 2


def _kd_split(points: np.ndarray, box: np.ndarray, max_points: int, max_extent: float, min_tiles: int) -> list[np.ndarray]:
    """Leaf boxes of a k-d split at the median along the longest side."""
    leaves: list[tuple[np.ndarray, np.ndarray]] = [(box, np.arange(len(points)))]
    done: list[tuple[np.ndarray, np.ndarray]] = []
    while leaves:
        # Split the most crowded leaf first, so that a tile count target splits evenly.
        leaves.sort(key=lambda item: -len(item[1]))
        b, idx = leaves.pop(0)
        size = b[1] - b[0]
        needs = len(idx) > max_points or size.max() > max_extent or len(done) + len(leaves) + 1 < min_tiles
        if not needs or len(idx) < 2:
            done.append((b, idx))
            continue
        axis = int(np.argmax(size))
        cut = _quiet_cut(points[idx, axis], float(b[0][axis]), float(b[1][axis]), max_points)
        left = points[idx, axis] <= cut
        lo_box, hi_box = b.copy(), b.copy()
        lo_box[1][axis] = cut
        hi_box[0][axis] = cut
        leaves += [(lo_box, idx[left]), (hi_box, idx[~left])]
    return [b for b, idx in done if len(idx)]


def _grid_cells(points: np.ndarray, box: np.ndarray, size: float) -> tuple[list[np.ndarray], list[str]]:
    """Cells of a regular grid of side ``size`` holding points; small ones merged into the nearest big one."""
    counts_per_axis = np.maximum(np.ceil((box[1] - box[0]) / size).astype(int), 1)
    if int(np.prod(counts_per_axis)) > 50 * MAX_TILES:
        raise InputError(f"`tile_size={size:g}`: {int(np.prod(counts_per_axis)):,} cells for an extent of {np.ptp(box, axis=0).round(3).tolist()}; use a larger tile size")
    key = np.minimum(((points - box[0]) / size).astype(np.int64), counts_per_axis - 1)
    cells, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    boxes = [np.stack([box[0] + c * size, np.minimum(box[0] + (c + 1) * size, box[1])]) for c in cells]
    big = np.flatnonzero(counts >= MIN_TILE_POINTS)
    merged: list[str] = []
    if not len(big):
        return [box.copy()], [f"all {len(cells)} cells"]
    centres = np.array([(b[0] + b[1]) / 2 for b in boxes])
    for i in np.flatnonzero(counts < MIN_TILE_POINTS):
        j = big[np.argmin(np.linalg.norm(centres[big] - centres[i], axis=1))]
        pts = points[inverse.reshape(-1) == i]
        boxes[j] = np.stack([np.minimum(boxes[j][0], pts.min(axis=0)), np.maximum(boxes[j][1], pts.max(axis=0))])
        merged.append(f"cell {tuple(int(v) for v in cells[i])} ({counts[i]} points)")
    return [boxes[j] for j in big], merged


def check_tiling(config: TilingConfig) -> tuple[str, int]:
    """Check the tiling options alone (before any data is read).

    Returns:
        ``(mode, count)``: "auto", "off" or "count", and the tile count (0 unless a count).

    Raises:
        InputError: ``tiles`` neither auto, off nor a count in ``[1, MAX_TILES]``, or a tile size that
            is negative or not finite.
    """
    mode = str(config.tiles).strip().lower()
    count = 0
    if mode not in ("auto", "off"):
        try:
            count = int(mode)
        except ValueError:
            raise InputError(f"`tiles={config.tiles}`: expected auto, off or a number of tiles") from None
        if count < 1 or count > MAX_TILES:
            raise InputError(f"`tiles={count}`: expected a number of tiles from 1 to {MAX_TILES}")
        mode = "count"
    if not (config.tile_size >= 0 and math.isfinite(config.tile_size)):
        raise InputError(f"`tile_size={config.tile_size:g}`: must be a positive length in the input's units (0: automatic tiles)")
    return mode, count


def plan_tiles(points: np.ndarray, config: TilingConfig = TilingConfig(), spacing: Optional[float] = None) -> TilePlan:
    """Split a cloud into tiles (or not), as ``config`` says.

    Args:
        points: ``(N, 3)`` world points (cleaned).
        config: ``tiles`` (auto, off, or a count), ``tile_size`` (world units), ``max_points``.
        spacing: the cloud's median nearest-neighbour spacing (measured when None).

    Returns:
        The ``TilePlan``; with one tile its core and bounds are the cloud's box.

    Raises:
        InputError: a tile size that is not positive, or more than ``MAX_TILES`` tiles.
    """
    from ..geometry import point_spacing

    points = np.asarray(points, dtype=np.float64)
    box = np.stack([points.min(axis=0), points.max(axis=0)])
    extent = float(np.ptp(points, axis=0).max())
    if spacing is None:
        spacing = point_spacing(points)
    spacing = max(float(spacing), 1e-12 * max(extent, 1e-300))
    mode, count = check_tiling(config)
    spans = extent / spacing
    voxel = max(VOXEL_SPACINGS * spacing, extent / VOXEL_MAX_CELLS)
    if config.tile_size > 0:
        core_boxes, merged = _grid_cells(points, box, config.tile_size)
        reason = f"`tile_size={config.tile_size:g}`"
    elif mode == "off" or count == 1 or (mode == "auto" and len(points) <= AUTO_MAX_POINTS and spans <= AUTO_MAX_SPACINGS):
        why = "`tiles=off`" if mode == "off" or count == 1 else f"{len(points):,} points over {spans:.0f} spacings: one object"
        return TilePlan([TileSpec("t000", box.copy(), box.copy(), len(points), len(points))], spacing, why, voxel)
    else:
        # A cloud auto-tiled for its extent alone (a LiDAR tile of few points) gets at least two tiles.
        core_boxes = _kd_split(points, box, config.max_points, TILE_MAX_SPACINGS * spacing, count or 2)
        merged = []
        reason = f"`tiles={count}`" if count else f"{len(points):,} points over {spans:.0f} spacings"
    if len(core_boxes) > MAX_TILES:
        raise InputError(f"{len(core_boxes):,} tiles for this cloud exceeds {MAX_TILES}; use a larger `tile_size`")
    tiles = []
    for i, core in enumerate(core_boxes):
        margin = max(MARGIN * float(np.ptp(core, axis=0).max()), MIN_MARGIN_SPACINGS * spacing)
        bounds = np.stack([core[0] - margin, core[1] + margin])
        tiles.append(TileSpec(f"t{i:03d}", core, bounds, int(_in_box(points, core).sum()), int(_in_box(points, bounds).sum())))
    if merged:
        log.warning("%d small cells merged into their nearest tile (fewer than %d points each): %s",
                    len(merged), MIN_TILE_POINTS, "; ".join(merged[:5]) + (" ..." if len(merged) > 5 else ""))
    return TilePlan(tiles, spacing, reason, voxel, merged)


# ----------------------------------------------------------------------------- fitting the tiles
@dataclass
class _TileTask:
    """What a worker needs to fit one tile (pickled to a process or a Ray task)."""

    name: str
    scene: str
    points: np.ndarray
    normals: Optional[np.ndarray]
    normals_from: str
    core: np.ndarray
    bounds: np.ndarray
    options: FitOptions
    fingerprint: str


def _fit_tile(task: _TileTask, device: str, threads: int) -> dict[str, Any]:
    """Worker: fit one tile; returns its model file's bytes (never raises for the tile's own failure)."""
    import tempfile

    from ..batch.executors import one_line
    from ..cleanup import CleanupReport
    from ..reconstruct import fit_prepared

    try:
        prepared = PreparedCloud(PointCloud(task.points, task.normals), f"{task.scene} tile {task.name}", CleanupReport(len(task.points)), task.normals_from)
        model = fit_prepared(prepared, task.options, bounds=task.bounds, device=device, progress=False)
        model.info["tile"] = {"name": task.name, "fingerprint": task.fingerprint, "core": task.core.tolist()}
        with tempfile.TemporaryDirectory(prefix="neural_sdf_tile_") as tmp:
            path = Path(tmp) / f"{task.name}.nsdf"
            model.save(path)
            return {"ok": True, "model_bytes": path.read_bytes(), "fit_seconds": model.info.get("fit_seconds", 0.0)}
    except InputError as exc:
        return {"ok": False, "error": one_line(exc)}


@dataclass
class SceneFit:
    """The outcome of ``fit_scene``.

    Attributes:
        model: the blended scene (all tiles).
        plan: the tiles it was fitted with.
        reused: names of tiles taken from an earlier run's work files.
        fit_seconds: wall time of the fit (this call).
    """

    model: SceneModel
    plan: TilePlan
    reused: list[str]
    fit_seconds: float


def _tile_fingerprint(points: np.ndarray, normals: Optional[np.ndarray], bounds: np.ndarray, options: FitOptions) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(points).tobytes())
    if normals is not None:
        h.update(np.ascontiguousarray(normals).tobytes())
    h.update(np.ascontiguousarray(bounds, dtype=np.float64).tobytes())
    h.update(json.dumps(config_to_dict(options), sort_keys=True).encode())
    return h.hexdigest()[:32]


def _reusable(path: Path, fingerprint: str) -> Optional[Any]:
    from ..fields.sdf import SDFModel

    if not path.is_file():
        return None
    try:
        model = SDFModel.load(path)
    except InputError:
        return None
    return model if model.info.get("tile", {}).get("fingerprint") == fingerprint else None


SCENE_SUPPORT_POINTS = 200_000
"""Input points kept in a scene's model file (clean-up, trimming and overlays when re-extracting)."""


def fit_scene(
    prepared: PreparedCloud,
    options: FitOptions,
    plan: TilePlan,
    *,
    work_dir: Optional[PathLike] = None,
    processes: int = 1,
    ray: Optional[str] = None,
    retries: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> SceneFit:
    """Fit every tile of ``plan`` and blend them into one ``SceneModel``.

    Tiles run through the batch executors: ``processes`` local processes (each with its share of
    the cores), or one Ray task per tile when ``ray`` is given ("" starts a local Ray instance,
    ``HOST:PORT`` or ``auto`` joins a cluster; tiles run on CUDA where the cluster has GPUs). A
    finished tile is written to ``work_dir`` at once; a rerun with the same points and settings
    reuses it. A tile that fails is retried ``retries`` times, then reported by name.

    Args:
        prepared: the scene's cloud after the data stage (clean-up, normals).
        options: the recipe; each tile resolves its own density-dependent settings.
        plan: the tiles (``plan_tiles``).
        work_dir: folder for the finished tiles (None: keep them in memory only, no resume).
        processes: local worker processes (ignored with ``ray``).
        ray: Ray address, "" for a local instance, or None for local processes.
        retries: attempts after the first for a failing tile.
        device: device of local workers ("cpu", "cuda", "cuda:N").
        progress: one progress bar over the tiles, with ETA.

    Returns:
        ``SceneFit``.

    Raises:
        InputError: some tiles failed on every attempt (named; finished tiles stay in ``work_dir``).
    """
    from ..batch import executors
    from ..fields.sdf import SDFModel
    from ..progress import progress_bar

    t0 = time.perf_counter()
    cloud = prepared.cloud
    work = Path(work_dir) if work_dir is not None else None
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    models: dict[str, SDFModel] = {}
    jobs: list[executors.Job] = []
    reused: list[str] = []
    for i, spec in enumerate(plan.tiles):
        inside = _in_box(cloud.points, spec.bounds)
        pts = cloud.points[inside]
        nrm = None if cloud.normals is None else cloud.normals[inside]
        fingerprint = _tile_fingerprint(pts, nrm, spec.bounds, options)
        if work is not None:
            model = _reusable(work / f"{spec.name}.nsdf", fingerprint)
            if model is not None:
                models[spec.name] = model
                reused.append(spec.name)
                continue
        task = _TileTask(spec.name, prepared.name, pts, nrm, prepared.normals_from, spec.core, spec.bounds, options, fingerprint)
        jobs.append(executors.Job(i, spec.name, task))
    if reused:
        log.info("reusing %d finished tiles from %s", len(reused), work)
    bar = progress_bar(total=len(plan.tiles), initial=len(reused), desc="tiles", unit="tile", disable=not progress)
    errors: dict[str, str] = {}

    def on_result(job: executors.Job, message: dict[str, Any], attempts: int) -> None:
        name = job.name
        if not message.get("ok"):
            errors[name] = str(message.get("error", "failed"))
            return
        blob = message["model_bytes"]
        if work is not None:
            from ..io import atomic_write

            with atomic_write(work / f"{name}.nsdf", suffix=".tmp") as tmp:
                tmp.write_bytes(blob)
            models[name] = SDFModel.load(work / f"{name}.nsdf", device=device if not device.startswith("cuda") else "cpu")
        else:
            import tempfile

            with tempfile.TemporaryDirectory() as tmpdir:
                path = Path(tmpdir) / f"{name}.nsdf"
                path.write_bytes(blob)
                models[name] = SDFModel.load(path)
        errors.pop(name, None)
        bar.update(1)

    try:
        remaining = jobs
        for attempt in range(retries + 1):
            if not remaining:
                break
            if attempt:
                log.warning("retrying %d failed tiles: %s", len(remaining), ", ".join(j.name for j in remaining))
            if ray is not None:
                started = executors.connect_ray(ray or None)
                executors.run_ray(_fit_tile, remaining, threads=None, retries=0, started=started, on_result=on_result)
            else:
                threads = max(1, executors.cpu_count() // max(1, processes))
                executors.run_local(
                    _fit_tile, remaining, processes=max(1, min(processes, len(remaining))), threads=threads,
                    devices=[device], retries=0, on_result=on_result,
                )
            remaining = [j for j in remaining if j.name in errors]
    finally:
        bar.close()
    if errors:
        listed = "; ".join(f"{name}: {err}" for name, err in sorted(errors.items()))
        kept = f"; the {len(models)} finished tiles are in {work} and a rerun reuses them" if work is not None else ""
        raise InputError(f"{prepared.name}: {len(errors)} of {len(plan.tiles)} tiles failed after {retries + 1} attempts ({listed}){kept}")
    tiles = [Tile(spec.name, spec.core, spec.bounds, models[spec.name].to("cpu")) for spec in plan.tiles]
    box = np.stack([cloud.points.min(axis=0), cloud.points.max(axis=0)])
    rng = np.random.default_rng(options.train.seed)
    keep = np.sort(rng.choice(len(cloud), size=min(SCENE_SUPPORT_POINTS, len(cloud)), replace=False))
    info = {
        "source": prepared.name,
        "num_points": len(cloud),
        "normals_from": prepared.normals_from,
        "cleanup": dataclasses.asdict(prepared.report),
        "options": config_to_dict(options),
        "plan": {"reason": plan.reason, "spacing": plan.spacing, "voxel_size": plan.voxel_size, "tiles": len(plan.tiles), "merged": plan.merged},
        "fit_seconds": time.perf_counter() - t0,
        "reused_tiles": reused,
    }
    model = SceneModel(tiles, fit_normalization(box), box, info, support_points=cloud.points[keep])
    return SceneFit(model, plan, reused, time.perf_counter() - t0)


def reconstruct_scene(
    prepared: PreparedCloud,
    options: FitOptions,
    extract: Any,
    plan: TilePlan,
    *,
    work_dir: Optional[PathLike] = None,
    processes: int = 1,
    ray: Optional[str] = None,
    retries: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> Any:
    """Fit a scene's tiles (``fit_scene``) and mesh the blended field in the input's coordinates.

    The mesh is extracted once from the blended field (one surface: no seams between tiles) by
    the sparse extractor, at ``extract.voxel_size`` or the point spacing (adaptively coarser where
    the points are sparse: ``extract.adaptive_marching_cubes``), trimmed to the data
    (``extract.trim``: auto is on for scenes), with every input point as support.

    Returns:
        ``reconstruct.ReconstructResult`` whose ``model`` is the ``SceneModel``.

    Raises:
        InputError: failed tiles (see ``fit_scene``), a voxel size too small for the extent, or a
            field with no zero crossing.
    """
    from ..extract import decimate_mesh
    from ..reconstruct import ReconstructResult, extract_mesh

    fit = fit_scene(prepared, options, plan, work_dir=work_dir, processes=processes, ray=ray, retries=retries, device=device, progress=progress)
    t1 = time.perf_counter()
    mesh = extract_mesh(fit.model, dataclasses.replace(extract, target_faces=0), support_points=prepared.cloud.points, progress=progress)
    if mesh.is_empty:
        raise InputError(f"{prepared.name}: the fitted scene has no zero crossing; no surface to extract")
    fit.model.attach_far_fields(mesh)  # distances away from the surface: to this (full) mesh, per tile
    mesh = decimate_mesh(mesh, extract.target_faces)
    t2 = time.perf_counter()
    return ReconstructResult(mesh, fit.model, fit.fit_seconds, t2 - t1)
