"""Clean-up of raw scans: far and statistical outliers, duplicates, degenerate clouds, downsampling.

Every step keeps actual input points (it never averages points), so the two sides of a thin
wall are never merged into a phantom middle surface. Steps that drop points log a warning that
says how many and why. ``ScanConfig`` gathers the options of the whole scan pipeline (clean-up,
normal estimation and the normal-free loss) used by ``prepare_cloud`` and ``reconstruct``.
"""

import logging
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np

from .config import NormalsMode, ScanConfig
from .errors import InputError
from .geometry import PointCloud
from .io.pointcloud import MIN_POINTS
from .normals import describe_box

__all__ = [
    "ScanConfig",
    "NormalsMode",
    "CleanupReport",
    "check_degenerate",
    "remove_far_outliers",
    "remove_duplicates",
    "OutlierTest",
    "find_outliers",
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
        num_outliers: dropped by the local outlier test (``find_outliers``).
        outliers_kept: found by that test but kept, because they were more than
            ``ScanConfig.max_outlier_share`` of the cloud.
        num_downsampled: dropped by voxel downsampling.
        voxel_size: voxel edge used to downsample (world units), or 0 when not downsampled.
    """

    num_input: int
    num_far: int = 0
    num_duplicates: int = 0
    num_outliers: int = 0
    outliers_kept: int = 0
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


class OutlierTest(NamedTuple):
    """What ``find_outliers`` found, as ``(N,)`` bool masks (True: outlier).

    Attributes:
        off_surface: lies off the plane of its neighbours, by far more than their noise and
            spacing, and no neighbour's own plane passes through it.
        isolated: its 4th-nearest neighbour is farther than twice the 99th percentile of that
            distance on the scan's flat surface points: sparser than every surface of the scan.
        spacing_limit: that isolation distance, in the points' units (inf when not applied).
    """

    off_surface: np.ndarray
    isolated: np.ndarray
    spacing_limit: float

    @property
    def mask(self) -> np.ndarray:
        """Every outlier: ``off_surface | isolated``."""
        return self.off_surface | self.isolated


class _LocalPlanes(NamedTuple):
    neighbors: np.ndarray  # (N, k) int64
    center: np.ndarray  # (N, 3) centroid of the neighbours
    normal: np.ndarray  # (N, 3) unit normal of their best-fit plane
    offset: np.ndarray  # (N,) distance of the point to that plane
    noise: np.ndarray  # (N,) median distance of the neighbours to it
    flatness: np.ndarray  # (N,) smallest / middle covariance eigenvalue
    spacing: np.ndarray  # (N,) median nearest-neighbour distance of the neighbours
    fourth: np.ndarray  # (N,) distance to the 4th neighbour
    tree: Any  # scipy cKDTree of all the points (built once; the rescues of find_outliers search it too)


def _local_planes(points: np.ndarray, k: int, chunk: int = 25_000, query: Optional[np.ndarray] = None, tree: Any = None) -> _LocalPlanes:
    """Fit a plane to each point's ``k`` nearest neighbours (the point itself left out).

    ``query`` (indices) fits only those points' planes; ``spacing`` then uses the neighbours'
    own nearest-neighbour distances from one more query. ``tree``: the points' k-d tree, when
    the caller has it.
    """
    from scipy.spatial import cKDTree

    n = len(points) if query is None else len(query)
    k = int(min(k, len(points) - 1))
    tree = cKDTree(points) if tree is None else tree
    at = points if query is None else points[query]
    nn = np.empty((n, k), dtype=np.int64)
    center, normal = np.empty((n, 3)), np.empty((n, 3))
    offset, noise, flatness, nearest, fourth = (np.empty(n) for _ in range(5))
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        dist, idx = tree.query(at[sl], k=k + 1, workers=-1)
        dist, idx = dist[:, 1:], idx[:, 1:]
        q = points[idx]
        c = q.mean(axis=1)
        x = q - c[:, None]
        eigval, eigvec = np.linalg.eigh(np.einsum("nki,nkj->nij", x, x) / k)
        m = eigvec[:, :, 0]
        nn[sl], center[sl], normal[sl] = idx, c, m
        offset[sl] = np.abs(np.sum((at[sl] - c) * m, axis=1))
        noise[sl] = np.median(np.abs(np.einsum("nkj,nj->nk", x, m)), axis=1)
        flatness[sl] = eigval[:, 0] / np.maximum(eigval[:, 1], 1e-300)
        nearest[sl] = dist[:, 0]
        fourth[sl] = dist[:, min(3, k - 1)]
    if query is None:
        spacing = np.empty(n)
        for start in range(0, n, chunk):  # (N, k) gathered distances and their sorted copy at once: 2 x 8 N k bytes
            spacing[start : start + chunk] = np.median(nearest[nn[start : start + chunk]], axis=1)
    else:
        own = tree.query(points[np.unique(nn)], k=2, workers=-1)[0][:, 1]
        lookup = np.zeros(len(points))
        lookup[np.unique(nn)] = own
        spacing = np.median(lookup[nn], axis=1)
    return _LocalPlanes(nn, center, normal, offset, noise, flatness, spacing, fourth, tree)


def _on_plane(planes: _LocalPlanes, flat: float = 0.1) -> np.ndarray:
    """Points whose neighbours are flat and whose plane passes through them (3 noise or half a spacing)."""
    return (planes.flatness < flat) & (planes.offset <= np.maximum(3.0 * planes.noise, 0.5 * planes.spacing))


def _supported(points: np.ndarray, planes: _LocalPlanes, candidates: np.ndarray) -> np.ndarray:
    """Which candidates lie on the plane of some point that counts them among its neighbours.

    A point next to a denser surface (the ground under an object's overhang) has only the dense
    surface among its own neighbours, and looks off it; but the sparse points around it count it
    as a neighbour, and their flat planes pass through it. Tolerance: three times that plane's
    noise or half its spacing.
    """
    n, k = planes.neighbors.shape
    supported = np.zeros(n, dtype=bool)
    for start in range(0, n, 25_000):  # (N k) owner / member pairs a chunk of owners at a time
        owner = np.repeat(np.arange(start, min(start + 25_000, n)), k)
        member = planes.neighbors[start : start + 25_000].reshape(-1)
        # Only flat neighbourhoods of points that are not candidates themselves can vouch: a
        # neighbourhood that contains an outlier far off it is not flat, and dust is never flat.
        pick = candidates[member] & ~candidates[owner] & (planes.flatness[owner] < 0.1)
        owner, member = owner[pick], member[pick]
        dist = np.abs(np.sum((points[member] - planes.center[owner]) * planes.normal[owner], axis=1))
        tol = np.maximum(3.0 * planes.noise[owner], 0.5 * planes.spacing[owner])
        supported[member[dist <= tol]] = True
    return supported


def _on_own_surface(
    points: np.ndarray, normals: np.ndarray, planes: _LocalPlanes, candidates: np.ndarray, limit: float, min_count: int = 2
) -> np.ndarray:
    """Which candidates have a surface of their own, as their given normals say.

    A sparse ground point in the crevice under a dense object has only the object among its
    nearest neighbours and looks off it; but within four times that distance lie other ground
    points in its own tangent plane (within 11.5 degrees of it) with normals like its own. A
    surface parallel to an outlier at distance h comes within 11.5 degrees of its tangent plane
    only beyond 5h; the outlier must also lie within 11.5 degrees of the neighbours' tangent
    planes, which a point hovering above a surface never does within 5 times its height, whatever
    its own normal. An outlier's normal has no such surface around it. The search reaches at
    least the isolation distance ``limit`` (within which every surface of the scan has
    neighbours: a ground point at the foot of a dense object can have only the object within 4h)
    and at most twice it, so that far from the data other surfaces crossing the tangent plane do
    not count; a parallel surface is then counted only within 0.4 of ``limit``, closer than the
    sparsest surface's own spacing.
    """
    out = np.zeros(len(points), dtype=bool)
    idx = np.flatnonzero(candidates)
    if not len(idx):
        return out
    tree = planes.tree
    radius = np.clip(4.0 * np.maximum(planes.offset[idx], planes.spacing[idx]), limit, 2.0 * limit)
    for i, r, ball in zip(idx, radius, tree.query_ball_point(points[idx], radius, workers=-1)):
        ball = np.asarray(ball, dtype=np.int64)
        ball = ball[ball != i]
        e = points[ball] - points[i]
        length = 0.2 * np.linalg.norm(e, axis=1)
        alike = (normals[ball] @ normals[i] > 0.7) & (np.abs(e @ normals[i]) < length) & (np.abs(np.sum(e * normals[ball], axis=1)) < length)
        out[i] = int(alike.sum()) >= min_count
    return out


def find_outliers(
    points: np.ndarray,
    normals: Optional[np.ndarray] = None,
    num_neighbors: int = 16,
    threshold: float = 8.0,
    isolation_factor: float = 2.0,
) -> OutlierTest:
    """Find points that no surface of the scan supports, judging each at its own local scale.

    Density varies by orders of magnitude across a real scan (range, grazing angles, a sparse
    ground under dense objects), so no test compares a point with the whole cloud's statistics
    alone. Two tests, each local:

    * **off the surface**: the point lies farther from the plane of its ``num_neighbors``
      neighbours than ``threshold`` times the larger of their noise (median distance to the
      plane) and half their spacing (median nearest-neighbour distance), and no point that counts
      it among its neighbours has a plane through it (``_supported``), and, when normals are
      given, no points with normals like its own lie in its tangent plane nearby
      (``_on_own_surface``);
    * **isolated**: its 4th-nearest neighbour is farther than ``isolation_factor`` times the
      99th percentile of that distance over the flat points (covariance eigenvalue ratio below
      0.1) that passed the first test: it is sparser than the sparsest surface of the scan. Flat
      points give that reference so that a sparse ground or a far-range wall sets it, not the
      dense objects; with under 1% flat points (heavy noise), all points that passed do. A point
      that is that sparse is kept when it lies on the flat plane of its 64 nearest neighbours
      (a surface sampled more sparsely than its thickness: ``_on_plane``), when its neighbours
      are mostly within the distance and it is within the random tail of their spacing (a
      sparse surface's chance gaps: ``_sampling_tail``), when it lies on the plane of its
      neighbours about as sparse as itself (a sparse slab at the foot of dense objects:
      ``_on_sparse_plane``), or when its given normal has a surface of its own around it
      (``_on_own_surface``).

    Measured (``scripts/benchmark_cleanup.py``, ``scripts/benchmark_scene.py``): clean scenes of
    the six shared shapes (and of eight) on a ground slab 10x sparser than them (700k and 876k
    points, exact normals) lose no point (without the normals, 21 of the 876k: slab points at the
    foot of an object); with 0.5% uniform outliers added, 96% of those farther than 3 local
    spacings from the true surface are found, and no valid point.

    Args:
        points: ``(N, 3)`` finite points, world units.
        normals: ``(N, 3)`` given unit normals, or None.
        num_neighbors: neighbours of the local plane.
        threshold: distance to the neighbours' plane, in units of ``max(noise, spacing / 2)``.
        isolation_factor: multiple of the sparsest surface's 4th-neighbour distance.

    Returns:
        ``OutlierTest`` with one mask per test.
    """
    n = len(points)
    if n <= num_neighbors + 1:
        none = np.zeros(n, dtype=bool)
        return OutlierTest(none, none.copy(), float("inf"))
    planes = _local_planes(points, num_neighbors)
    off = planes.offset > threshold * np.maximum(planes.noise, 0.5 * planes.spacing)
    flat = (planes.flatness < 0.1) & ~off
    reference = planes.fourth[flat] if flat.mean() > 0.01 else planes.fourth[~off]
    limit = isolation_factor * float(np.quantile(reference, 0.99)) if len(reference) else float("inf")
    if off.any():
        off &= ~_supported(points, planes, off)
    if off.any() and normals is not None:
        off &= ~_on_own_surface(points, normals, planes, off, limit)
    isolated = planes.fourth > limit
    if isolated.any():
        # A sparse surface can be too sparse to look flat at 16 neighbours (a slab as thick as
        # its point spacing); at 64 it does, and it passes through its own points. Dust does not.
        idx = np.flatnonzero(isolated)
        isolated[idx[_on_plane(_local_planes(points, 4 * num_neighbors, query=idx, tree=planes.tree))]] = False
    if isolated.any():
        isolated &= ~_sampling_tail(planes, isolated, limit)
    if isolated.any():
        isolated &= ~_on_sparse_plane(points, planes, isolated, 4 * num_neighbors)
    if isolated.any() and normals is not None:
        isolated &= ~_on_own_surface(points, normals, planes, isolated, limit)
    return OutlierTest(off, isolated, limit)


SAMPLING_TAIL = 3.0
"""Largest ratio of a surface point's 4th-neighbour distance to the median of its neighbours'
that counts as the chance of random sampling. On a surface sampled at random (a Poisson process)
the squared 4th-neighbour distance is Gamma(4)-distributed: one point in a million lies 2.5 times
the median out. Measured on the eight-object scene of ``scripts/benchmark_scene.py`` (876k exact
points, a slab 10x sparser than the objects): the 1,256 slab points beyond the isolation distance
have ratios of 1.5 (median) and 2.2 (99th percentile)."""


def _on_sparse_plane(
    points: np.ndarray, planes: _LocalPlanes, candidates: np.ndarray, k: int, flat: float = 0.2, chunk: int = 100_000
) -> np.ndarray:
    """Which candidates lie on a plane of points about as sparse as themselves.

    A sparse slab at the foot of dense objects has the objects' points among its ``k`` nearest,
    and they hide its plane; leaving out the neighbours more than 3 times denser (4th-neighbour
    distance) than the candidate, the slab's own points remain, flat at the scale of its width
    (covariance ratio below ``flat``; its two faces make it 0.1-0.2 at a spacing as large as its
    thickness) and through the point (3 noise or half a spacing). Dust has only dust and the
    points of unrelated surfaces about as sparse as itself, which make no plane through it.
    """
    out = np.zeros(len(candidates), dtype=bool)
    tree = planes.tree
    k = int(min(k, len(points) - 1))
    for part in np.array_split(np.flatnonzero(candidates), max(1, int(candidates.sum()) // chunk + 1)):
        dist, nb = tree.query(points[part], k=k + 1, workers=-1)
        dist, nb = dist[:, 1:], nb[:, 1:]
        alike = planes.fourth[nb] >= planes.fourth[part, None] / 3.0
        count = alike.sum(axis=1)
        w = alike / np.maximum(count, 1)[:, None]
        c = np.einsum("nk,nkj->nj", w, points[nb])
        x = points[nb] - c[:, None]
        eigval, eigvec = np.linalg.eigh(np.einsum("nk,nki,nkj->nij", w, x, x))
        m = eigvec[:, :, 0]
        offset = np.abs(np.sum((points[part] - c) * m, axis=1))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no alike neighbour
            noise = np.nanmedian(np.where(alike, np.abs(np.einsum("nkj,nj->nk", x, m)), np.nan), axis=1)
            spacing = np.nanmedian(np.where(alike, dist, np.nan), axis=1)
        flat_enough = eigval[:, 0] < flat * np.maximum(eigval[:, 1], 1e-300)
        out[part[(count >= 12) & flat_enough & (offset <= np.maximum(3.0 * noise, 0.5 * spacing))]] = True
    return out


def _sampling_tail(planes: _LocalPlanes, candidates: np.ndarray, limit: float) -> np.ndarray:
    """Which candidates are a sparse surface's random gaps, not dust.

    The isolation distance comes from one quantile over the whole scan, and a surface much sparser
    than most (a ground slab under dense objects, 1% of the flat points) has its own random tail
    beyond it. Such a point sits among neighbours that are mostly within the distance, and its
    4th-neighbour distance is within ``SAMPLING_TAIL`` of theirs (median); a speck of dust next to
    a surface is many of the surface's spacings from it, and dust in free space has dust around it.
    """
    idx = np.flatnonzero(candidates)
    around = planes.fourth[planes.neighbors[idx]]
    settled = np.mean(around <= limit, axis=1) > 0.5
    tail = planes.fourth[idx] <= SAMPLING_TAIL * np.median(around, axis=1)
    out = np.zeros(len(candidates), dtype=bool)
    out[idx[settled & tail]] = True
    return out


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
    """Clean a finite cloud: far outliers, duplicates, downsampling, local outliers, degeneracy.

    Non-finite points are dropped earlier, by ``io.pointcloud.clean_points``. Downsampling runs
    before the neighbour-based outlier test so that memory and time stay bounded on large clouds.
    Every step that drops points logs one warning with the count and the flag that turns it off;
    ``config.cleanup=False`` turns off every drop except downsampling past ``max_points``. When the
    outlier test would drop more than ``config.max_outlier_share`` of the points, it drops none
    and says so: so many "outliers" more likely mean a scan the test misreads than a dirty one.

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
    if config.cleanup and config.far_factor > 0:
        keep = remove_far_outliers(cloud.points, config.far_factor)
        if not keep.all():
            report.num_far = int((~keep).sum())
            log.warning(
                "%s: dropped %d points absurdly far from the rest (over %gx the 99th-percentile distance; at %s); "
                "`cleanup=False` keeps them", name, report.num_far, config.far_factor, describe_box(cloud.points[~keep]),
            )
            cloud = cloud.subset(keep)
    if config.cleanup and config.dedupe:
        keep = remove_duplicates(cloud.points)
        if not keep.all():
            report.num_duplicates = int((~keep).sum())
            log.warning("%s: dropped %d exact repeats of other points; `dedupe=False` keeps them", name, report.num_duplicates)
            cloud = cloud.subset(keep)
    if len(cloud) > config.max_points:
        idx, edge = voxel_downsample(cloud.points, config.max_points, seed=seed)
        report.num_downsampled = len(cloud) - len(idx)
        report.voxel_size = edge
        log.warning(
            "%s: downsampled %d -> %d points (one input point kept per %.3g voxel); `max_points` sets the limit",
            name, len(cloud), len(idx), edge,
        )
        cloud = cloud.subset(idx)
    if config.cleanup and config.denoise:
        test = find_outliers(cloud.points, cloud.normals, config.outlier_neighbors, config.outlier_threshold, config.isolation_factor)
        drop = test.mask
        share = float(drop.mean())
        if share > config.max_outlier_share:
            report.outliers_kept = int(drop.sum())
            log.warning(
                "%s: %d points (%.1f%%) look like outliers (%d off the surface, %d isolated), more than the %.0f%% "
                "that `max_outlier_share` allows: kept them all; check the scan, or raise `max_outlier_share`",
                name, report.outliers_kept, 100 * share, int(test.off_surface.sum()), int((test.isolated & ~test.off_surface).sum()),
                100 * config.max_outlier_share,
            )
        elif drop.any():
            report.num_outliers = int(drop.sum())
            log.warning(
                "%s: dropped %d outliers (%.2f%%): %d off the surface their neighbours define, %d isolated (no 4 "
                "neighbours within %.3g, twice the sparsest surface's spacing); `denoise=False` keeps them",
                name, report.num_outliers, 100 * share, int(test.off_surface.sum()), int((test.isolated & ~test.off_surface).sum()),
                test.spacing_limit,
            )
            cloud = cloud.subset(~drop)
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
        normals_from: where the normals come from: "given" (kept as they are), "given-repaired" (a
            few locally inconsistent ones flipped), "given-flipped" (all flipped: they pointed
            inward), "given-oriented" (no usable signs: signs chosen by propagation, directions
            kept), "estimated", or "none".
    """

    cloud: PointCloud
    name: str
    report: CleanupReport
    normals_from: str


def _given_normals_label(repair) -> str:  # repair: normals.NormalRepair
    if repair.unoriented:
        return "given-oriented"
    if repair.flipped_all:
        return "given-flipped" if repair.num_changed == len(repair.changed) else "given-repaired"
    return "given-repaired" if repair.num_changed else "given"


def _source_name(source: object) -> str:
    from pathlib import Path

    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


def _load_one(source: object, mode: str, num_mesh_samples: int, seed: int, columns: str = "") -> PointCloud:
    """Read one source; drop its normals unless ``mode`` wants them and they are usable.

    ``columns`` names the columns of a text point file (``ScanConfig.columns``).
    """
    from .io.pointcloud import _read_source, clean_points

    name = _source_name(source)
    raw = _read_source(source, num_mesh_samples, seed, columns)
    if raw.normals is not None and mode in ("estimate", "none"):
        raw = raw.with_normals(None)
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
            raw = raw.with_normals(None)
    elif raw.normals is None and mode == "given":
        raise InputError(f"{name}: `normals='given'`, but the input has no normals (use auto or estimate)")
    return clean_points(raw, name)


def _merge(clouds: list[PointCloud], name: str) -> PointCloud:
    """Concatenate clouds in one frame: normals when all have them, the attributes all of them have
    (same trailing shape), and the viewpoint (and up) only when every input has the same one."""
    if len(clouds) == 1:
        return clouds[0]
    normals = np.concatenate([c.normals for c in clouds]) if all(c.normals is not None for c in clouds) else None
    attributes = {}
    for key, first in clouds[0].attributes.items():
        values = [c.attributes.get(key) for c in clouds]
        if all(v is not None and v.shape[1:] == first.shape[1:] for v in values):
            attributes[key] = np.concatenate(values)
    viewpoint = _shared_vector([c.viewpoint for c in clouds])
    if viewpoint is None and any(c.viewpoint is not None for c in clouds):
        log.info("%s: the inputs do not share one sensor position; merged without a viewpoint", name)
    up = _shared_vector([c.up for c in clouds])
    return PointCloud(np.concatenate([c.points for c in clouds]), normals, attributes, viewpoint, up)


def _shared_vector(values: list[Optional[np.ndarray]]) -> Optional[np.ndarray]:
    """The vector every input gives, or None when one gives none or they differ."""
    first = values[0]
    return first if all(v is not None and np.array_equal(v, first) for v in values) else None


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
    ``config.normals``: "auto" keeps the inputs' normals when every input has usable ones, and
    changes them only on evidence found in the normals themselves (``normals.repair_normals``:
    locally inconsistent ones flipped, or all flipped when they point inward, with one warning
    per change), otherwise estimates and orients them; "given" requires them and keeps them
    untouched; "estimate" always estimates; "none" drops them. Estimated normals face the sensor
    (``normals.orient_towards``) when the cloud's viewpoint is known (a ``.pcd`` VIEWPOINT or an
    organized frame, an E57 scan's pose; merged inputs only when they all share it), and are
    oriented outward by propagation (``normals.orient_normals``) otherwise; given normals facing
    a known sensor are never flipped all at once (``normals.fix_given_normals``). The columns of
    text point files follow ``config.columns``.

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

    from .normals import estimate_normals, fix_given_normals, orient_normals, orient_towards
    from .progress import progress_bar

    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise InputError("no input given")
    name = "+".join(_source_name(s) for s in items)
    mode = config.normals
    t0 = time.perf_counter()
    # The first input is read before the bar starts, so a bad file gives one error line and no bar.
    clouds = [_load_one(items[0], mode, num_mesh_samples, seed, config.columns)]
    bar = progress_bar(total=len(items) + 2, initial=1, desc="load", unit="stage", disable=not progress, leave=False)
    try:
        for src in items[1:]:
            bar.set_description(f"load {_source_name(src)}")
            clouds.append(_load_one(src, mode, num_mesh_samples, seed, config.columns))
            bar.update(1)
        with_normals = [c.normals is not None for c in clouds]
        if mode == "auto" and any(with_normals) and not all(with_normals):
            log.warning("%s: only some inputs have normals; estimating normals for all of them", name)
            clouds = [c.with_normals(None) for c in clouds]
        cloud = _merge(clouds, name)
        log.info("loaded %s: %d points in %.1f s", name, len(cloud), time.perf_counter() - t0)

        t0 = time.perf_counter()
        bar.set_description("clean-up")
        cloud, report = clean_cloud(cloud, config, name, seed=seed)
        bar.update(1)
        log.info("clean-up: %d -> %d points in %.1f s", report.num_input, len(cloud), time.perf_counter() - t0)

        t0 = time.perf_counter()
        bar.set_description("normals")
        if mode == "none":
            cloud, normals_from = cloud.with_normals(None), "none"
        elif cloud.normals is not None and mode == "given":
            normals_from = "given"
        elif cloud.normals is not None:
            cloud, repair = fix_given_normals(cloud, name, viewpoint=cloud.viewpoint, seed=seed)
            normals_from = _given_normals_label(repair)
        else:
            est = estimate_normals(cloud.points, config.normal_neighbors)
            if cloud.viewpoint is not None:
                log.info(
                    "%s: orienting the estimated normals towards the sensor at (%s), which the file gives",
                    name, ", ".join(f"{c:.6g}" for c in cloud.viewpoint),
                )
                cloud = cloud.with_normals(orient_towards(cloud.points, est, cloud.viewpoint))
            else:
                if cloud.up is not None:
                    log.info(
                        "%s: orienting the estimated normals upwards (%s), as the format's vertical and an airborne or mobile scanner give it",
                        name, ", ".join(f"{c:.3g}" for c in cloud.up),
                    )
                cloud = cloud.with_normals(orient_normals(cloud.points, est, config.orient_neighbors, config.orient_points, seed=seed, up=cloud.up))
            normals_from = "estimated"
        bar.update(1)
        log.info("normals: %s in %.1f s", normals_from, time.perf_counter() - t0)
    finally:
        bar.close()
    return PreparedCloud(cloud, name, report, normals_from)
