"""Clean-up of raw scans: far and statistical outliers, duplicates, degenerate clouds, downsampling.

Every step keeps actual input points (it never averages points), so the two sides of a thin
wall are never merged into a phantom middle surface. Steps that drop points log a warning that
says how many and why. ``ScanConfig`` gathers the options of the whole scan pipeline (clean-up,
normal estimation and the normal-free loss) used by ``prepare_cloud`` and ``reconstruct``.
"""

import logging
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from .config import NormalsMode, ScanConfig
from .errors import InputError
from .geometry import PointCloud
from .io.pointcloud import MIN_POINTS

__all__ = [
    "ScanConfig",
    "NormalsMode",
    "CleanupReport",
    "check_degenerate",
    "remove_far_outliers",
    "remove_duplicates",
    "remove_statistical_outliers",
    "voxel_downsample",
    "clean_cloud",
    "PreparedCloud",
    "prepare_cloud",
]

log = logging.getLogger(__name__)

@dataclass
class CleanupReport:
    """What ``clean_cloud`` did (counts of points).

    Attributes:
        num_input: points before clean-up.
        num_far: dropped as far outliers.
        num_duplicates: dropped as exact repeats.
        num_outliers: dropped by the statistical outlier test.
        num_downsampled: dropped by voxel downsampling.
        voxel_size: voxel edge used to downsample (world units), or 0 when not downsampled.
    """

    num_input: int
    num_far: int = 0
    num_duplicates: int = 0
    num_outliers: int = 0
    num_downsampled: int = 0
    voxel_size: float = 0.0

    @property
    def num_output(self) -> int:
        """Points left."""
        return self.num_input - self.num_far - self.num_duplicates - self.num_outliers - self.num_downsampled


class _Extent(NamedTuple):
    singular: np.ndarray
    axes: np.ndarray


def _pca_extent(points: np.ndarray, max_samples: int = 200_000) -> _Extent:
    rng = np.random.default_rng(0)
    sub = points if len(points) <= max_samples else points[rng.choice(len(points), max_samples, replace=False)]
    centered = sub - sub.mean(axis=0)
    _, s, vt = np.linalg.svd(centered / np.sqrt(len(sub)), full_matrices=False)
    return _Extent(s, vt)


def check_degenerate(points: np.ndarray, name: str = "points", rel_tol: float = 1e-4) -> None:
    """Raise when the points cannot bound a volume: all on one line or one plane.

    The test is on the principal standard deviations ``s0 >= s1 >= s2`` of the points: a line has
    ``s1 / s0 < rel_tol``, a plane ``s2 / s0 < rel_tol``.

    Args:
        points: ``(N, 3)`` finite points, any units.
        name: the input's name for the message.
        rel_tol: relative thickness below which a direction counts as flat.

    Raises:
        InputError: naming the degenerate case.
    """
    s = _pca_extent(points).singular
    if not s[0] > 0:
        raise InputError(f"{name}: all points coincide; there is no surface to reconstruct")
    if s[1] / s[0] < rel_tol:
        raise InputError(f"{name}: degenerate cloud, all points lie on a line; there is no surface to reconstruct")
    if s[2] / s[0] < rel_tol:
        raise InputError(
            f"{name}: degenerate cloud, all points lie on a plane (thickness {s[2] / s[0]:.1e} of its size); "
            "a flat patch bounds no volume, so there is no closed surface to reconstruct"
        )


def remove_far_outliers(points: np.ndarray, factor: float = 20.0) -> np.ndarray:
    """Mask of points not absurdly far from the bulk of the cloud.

    A point is dropped when its distance to the coordinate-wise median exceeds ``factor`` times
    the 99th percentile of those distances. This catches stray points at 1e6 (a few of them wreck
    the normalization, and a cluster of them survives the statistical test).

    Args:
        points: ``(N, 3)`` finite points.
        factor: multiple of the 99th-percentile distance (0: keep everything).

    Returns:
        ``(N,)`` bool mask of the points to keep.
    """
    if factor <= 0:
        return np.ones(len(points), dtype=bool)
    dist = np.linalg.norm(points - np.median(points, axis=0), axis=1)
    limit = factor * max(float(np.percentile(dist, 99)), 1e-300)
    return dist <= limit


def remove_duplicates(points: np.ndarray) -> np.ndarray:
    """Mask keeping the first of each group of exactly equal points: ``(N,)`` bool."""
    _, first = np.unique(points, axis=0, return_index=True)
    keep = np.zeros(len(points), dtype=bool)
    keep[first] = True
    return keep


def _knn_mean_distance(points: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    out = np.empty(len(points))
    k = min(k, len(points) - 1)
    for start in range(0, len(points), chunk):
        d, _ = tree.query(points[start : start + chunk], k=k + 1, workers=-1)
        out[start : start + chunk] = d[:, 1:].mean(axis=1)
    return out


def remove_statistical_outliers(points: np.ndarray, num_neighbors: int = 16, threshold: float = 6.0) -> np.ndarray:
    """Mask of points whose neighbourhood is as dense as the rest of the cloud.

    For each point the mean distance to its ``num_neighbors`` nearest neighbours is computed; the
    point is an outlier when that exceeds ``median + threshold * 1.4826 * MAD`` of all those means.
    Median and MAD (rather than Open3D's mean and standard deviation) keep the threshold put when
    the outliers themselves are many and far: 1% of points spread over the bounding box inflate
    the standard deviation enough that Open3D's rule keeps a part of them.

    Args:
        points: ``(N, 3)`` finite points.
        num_neighbors: neighbours per point.
        threshold: robust sigmas above the median.

    Returns:
        ``(N,)`` bool mask of the points to keep.
    """
    if len(points) <= num_neighbors + 1:
        return np.ones(len(points), dtype=bool)
    mean_d = _knn_mean_distance(points, num_neighbors)
    med = float(np.median(mean_d))
    mad = float(np.median(np.abs(mean_d - med))) * 1.4826
    return mean_d <= med + threshold * max(mad, 1e-12 * max(med, 1e-300))


def voxel_downsample(points: np.ndarray, max_points: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Indices of about ``max_points`` points, one input point per occupied voxel.

    The voxel edge is searched so that the number of occupied voxels is close to ``max_points``
    (a surface's count scales as ``1 / edge^2``). Keeping one real point per voxel, not the
    voxel's mean, keeps the two sides of a thin part apart: an averaged point would sit between
    them and become a phantom surface.

    Args:
        points: ``(N, 3)`` finite points.
        max_points: target count (no-op when ``N <= max_points``).
        seed: chooses which point of a voxel is kept.

    Returns:
        ``(indices (M,) int64 sorted, voxel edge in the points' units)``; edge 0 when not downsampled.
    """
    n = len(points)
    if n <= max_points:
        return np.arange(n), 0.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    lo = points.min(axis=0)
    extent = float((points.max(axis=0) - lo).max())
    # Start from the edge at which a closed surface of the box's size would give max_points cells.
    edge = extent * np.sqrt(6.0 / max_points)
    best: Optional[np.ndarray] = None
    for _ in range(8):
        keys = np.floor((points[order] - lo) / edge).astype(np.int64)
        dims = keys.max(axis=0) + 1
        flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, first = np.unique(flat, return_index=True)
        count = len(first)
        if count <= max_points and (best is None or count > len(best)):
            best = first
        if 0.9 * max_points <= count <= max_points:
            break
        edge *= np.sqrt(count / (0.95 * max_points))
    if best is None:
        best = first[rng.choice(len(first), max_points, replace=False)]
    return np.sort(order[best]), float(edge)


def clean_cloud(cloud: PointCloud, config: ScanConfig = ScanConfig(), name: str = "points", seed: int = 0) -> tuple[PointCloud, CleanupReport]:
    """Clean a finite cloud: far outliers, duplicates, downsampling, statistical outliers, degeneracy.

    Non-finite points are dropped earlier, by ``io.pointcloud.clean_points``. Downsampling runs
    before the neighbour-based outlier test so that memory and time stay bounded on large clouds.

    Args:
        cloud: ``(N, 3)`` finite points (and normals), world units.
        config: which steps run, and their parameters.
        name: the input's name for messages.
        seed: seed of the downsampling.

    Returns:
        ``(cleaned cloud, report)``.

    Raises:
        InputError: fewer than ``MIN_POINTS`` points survive, or the cloud is degenerate.
    """
    report = CleanupReport(num_input=len(cloud))
    keep = remove_far_outliers(cloud.points, config.far_factor)
    if not keep.all():
        report.num_far = int((~keep).sum())
        log.warning("%s: dropped %d points absurdly far from the rest (over %gx the 99th-percentile distance)", name, report.num_far, config.far_factor)
        cloud = cloud.subset(keep)
    if config.dedupe:
        keep = remove_duplicates(cloud.points)
        if not keep.all():
            report.num_duplicates = int((~keep).sum())
            log.info("%s: dropped %d duplicate points", name, report.num_duplicates)
            cloud = cloud.subset(keep)
    if len(cloud) > config.max_points:
        idx, edge = voxel_downsample(cloud.points, config.max_points, seed=seed)
        report.num_downsampled = len(cloud) - len(idx)
        report.voxel_size = edge
        log.info("%s: downsampled %d -> %d points (one input point per %.3g voxel)", name, len(cloud), len(idx), edge)
        cloud = cloud.subset(idx)
    if config.denoise:
        keep = remove_statistical_outliers(cloud.points, config.outlier_neighbors, config.outlier_threshold)
        if not keep.all():
            report.num_outliers = int((~keep).sum())
            level = logging.WARNING if report.num_outliers > 0.005 * len(cloud) else logging.INFO
            log.log(level, "%s: dropped %d statistical outliers (%.2f%%)", name, report.num_outliers, 100 * report.num_outliers / len(cloud))
            cloud = cloud.subset(keep)
    if len(cloud) < MIN_POINTS:
        raise InputError(f"{name}: only {len(cloud)} points left after clean-up (need at least {MIN_POINTS})")
    check_degenerate(cloud.points, name)
    return cloud, report


@dataclass
class PreparedCloud:
    """A scan ready to fit: merged, cleaned, with normals as ``ScanConfig.normals`` asks.

    Attributes:
        cloud: the cloud (world units); ``normals`` is None for a normal-free fit.
        name: the input's name (file names joined with "+" for several inputs).
        report: what the clean-up dropped.
        normals_from: "given", "given-flipped", "given-reoriented", "estimated" or "none".
    """

    cloud: PointCloud
    name: str
    report: CleanupReport
    normals_from: str


def _source_name(source: object) -> str:
    from pathlib import Path

    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def _load_one(source: object, mode: str, num_mesh_samples: int, seed: int) -> PointCloud:
    """Read one source; drop its normals unless ``mode`` wants them and they are usable."""
    from .io.pointcloud import _read_source, clean_points

    name = _source_name(source)
    raw = _read_source(source, num_mesh_samples, seed)
    if raw.normals is not None and mode in ("estimate", "none"):
        raw = PointCloud(raw.points)
    elif raw.normals is not None and mode == "auto":
        finite = np.all(np.isfinite(raw.points), axis=1)
        length = np.linalg.norm(raw.normals[finite], axis=1)
        # No finite point at all: leave the verdict to clean_points (one error, no normals warning).
        usable = float((np.isfinite(length) & (length > 1e-12)).mean()) if finite.any() else 1.0
        if usable < 0.9:
            log.warning(
                "%s: only %.0f%% of the file's normals are usable (zero-length or non-finite); ignoring them and estimating normals",
                name, 100 * usable,
            )
            raw = PointCloud(raw.points)
    elif raw.normals is None and mode == "given":
        raise InputError(f"{name}: --normals given, but the input has no normals (use auto or estimate)")
    return clean_points(raw, name)


def prepare_cloud(
    sources: object,
    config: ScanConfig = ScanConfig(),
    *,
    num_mesh_samples: int = 100_000,
    seed: int = 0,
    progress: bool = True,
) -> PreparedCloud:
    """Load one or several scans, merge them, clean them, and give them normals (or not).

    Stages (each reported with a progress bar and a log line): loading, clean-up, normals.
    Several inputs must already be in one frame; they are concatenated. Normals follow
    ``config.normals``: "auto" keeps the inputs' normals when every input has usable ones
    (checked, and flipped or re-oriented with a warning when wrong), otherwise estimates and
    orients them; "given" requires them; "estimate" always estimates; "none" drops them.

    Args:
        sources: a path, array, ``PointCloud``, trimesh/Open3D object, or a list of them.
        config: clean-up and normal options.
        num_mesh_samples: samples drawn from each mesh input.
        seed: seed of mesh sampling, downsampling and orientation subsets.
        progress: show the stage progress bar.

    Raises:
        InputError: an unreadable input (named), too few points, a degenerate cloud, or missing
            normals with ``normals="given"``.
    """
    import time

    from tqdm.auto import tqdm

    from .normals import _fix_given_normals, estimate_normals, orient_normals

    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise InputError("no input given")
    name = "+".join(_source_name(s) for s in items)
    mode = config.normals
    t0 = time.perf_counter()
    # The first input is read before the bar starts, so a bad file gives one error line and no bar.
    clouds = [_load_one(items[0], mode, num_mesh_samples, seed)]
    bar = tqdm(total=len(items) + 2, initial=1, desc="load", unit="stage", disable=not progress, leave=False)
    try:
        for src in items[1:]:
            bar.set_description(f"load {_source_name(src)}")
            clouds.append(_load_one(src, mode, num_mesh_samples, seed))
            bar.update(1)
        with_normals = [c.normals is not None for c in clouds]
        if mode == "auto" and any(with_normals) and not all(with_normals):
            log.warning("%s: only some inputs have normals; estimating normals for all of them", name)
            clouds = [PointCloud(c.points) for c in clouds]
        if len(clouds) == 1:
            cloud = clouds[0]
        else:
            normals = np.concatenate([c.normals for c in clouds]) if all(c.normals is not None for c in clouds) else None
            cloud = PointCloud(np.concatenate([c.points for c in clouds]), normals)
        log.info("loaded %s: %d points in %.1f s", name, len(cloud), time.perf_counter() - t0)

        t0 = time.perf_counter()
        bar.set_description("clean-up")
        cloud, report = clean_cloud(cloud, config, name, seed=seed)
        bar.update(1)
        log.info("clean-up: %d -> %d points in %.1f s", report.num_input, len(cloud), time.perf_counter() - t0)

        t0 = time.perf_counter()
        bar.set_description("normals")
        if mode == "none":
            cloud, normals_from = PointCloud(cloud.points), "none"
        elif cloud.normals is not None:
            fixed = _fix_given_normals(cloud, name, config.orient_neighbors, config.orient_points, seed)
            normals_from = "given" if fixed is cloud else ("given-flipped" if fixed.normals is not None and np.array_equal(fixed.normals, -cloud.normals) else "given-reoriented")
            cloud = fixed
        else:
            est = estimate_normals(cloud.points, config.normal_neighbors)
            cloud = PointCloud(cloud.points, orient_normals(cloud.points, est, config.orient_neighbors, config.orient_points, seed=seed))
            normals_from = "estimated"
        bar.update(1)
        log.info("normals: %s in %.1f s", normals_from, time.perf_counter() - t0)
    finally:
        bar.close()
    return PreparedCloud(cloud, name, report, normals_from)
