"""Normal estimation, consistent outward orientation, and the check of given normals."""

from pathlib import Path

import numpy as np
import pytest

from neural_sdf.geometry import Mesh
from neural_sdf.normals import check_normals, estimate_normals, orient_normals, outward_fraction, repair_normals
from neural_sdf.sampling import sample_mesh_surface

SHAPES = Path(__file__).resolve().parents[2] / "shared" / "data" / "shapes"


def _torus_cloud(n: int = 6000):
    import trimesh

    tm = trimesh.creation.torus(major_radius=0.4, minor_radius=0.15, major_sections=48, minor_sections=24)
    return sample_mesh_surface(Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)), n, seed=0)


def _thin_box_cloud(n: int, thickness: float, width: float = 1.0):
    import trimesh

    tm = trimesh.creation.box(extents=(1.0, width, thickness))
    return sample_mesh_surface(Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)), n, seed=0)


def _agreement(normals: np.ndarray, truth: np.ndarray) -> float:
    return float((np.sum(normals * truth, axis=1) > 0).mean())


def test_estimated_normals_are_unit_and_parallel_to_truth():
    cloud = _torus_cloud()
    n = estimate_normals(cloud.points)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    # Measured mean |cos| 0.999 on this torus; a margin for other BLAS / Open3D builds.
    assert np.abs(np.sum(n * cloud.normals, axis=1)).mean() > 0.99


def test_orientation_outward_on_torus():
    cloud = _torus_cloud()
    oriented = orient_normals(cloud.points, estimate_normals(cloud.points))
    # Measured 1.0000 (every normal outward); the threshold leaves room for a few edge cases.
    assert _agreement(oriented, cloud.normals) > 0.995


def _terrain(n: int = 8000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A rolling height field over a 2 x 2 square (heights within 0.1): points and their true
    upward normals. Its convex hull has about as many points on its bottom as on its top."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-1, 1, (n, 2))
    z = 0.05 * np.sin(3 * xy[:, 0]) * np.cos(2 * xy[:, 1])
    dzdx = 0.15 * np.cos(3 * xy[:, 0]) * np.cos(2 * xy[:, 1])
    dzdy = -0.1 * np.sin(3 * xy[:, 0]) * np.sin(2 * xy[:, 1])
    normals = np.column_stack([-dzdx, -dzdy, np.ones(n)])
    return np.column_stack([xy, z]), normals / np.linalg.norm(normals, axis=1, keepdims=True)


def test_orientation_of_an_open_terrain_follows_up():
    # An airborne scan's terrain: "out of the hull" cannot tell its top from its bottom, the
    # vertical can (LAS clouds carry up = +z). Measured: 1.0000 agreement with up = +z.
    points, truth = _terrain()
    est = estimate_normals(points)
    assert _agreement(orient_normals(points, est, up=np.array([0.0, 0.0, 1.0])), truth) > 0.995
    assert _agreement(orient_normals(points, est, up=np.array([0.0, 0.0, -1.0])), -truth) > 0.995


def test_orientation_keeps_the_two_sides_of_a_thin_plate_apart():
    # A plate 5% as thick as it is wide, sampled about 5 points across its thickness.
    cloud = _thin_box_cloud(20_000, 0.05)
    oriented = orient_normals(cloud.points, estimate_normals(cloud.points, 16))
    # Measured 1.0. (A plate 3% thick with 8000 points, i.e. under 2 points across, comes out
    # at 0.50: one face flipped, whatever the edge weights; thinner parts need more points.)
    assert _agreement(oriented, cloud.normals) > 0.99


def test_orientation_on_a_subset_spreads_to_every_point():
    cloud = _torus_cloud(20_000)
    oriented = orient_normals(cloud.points, estimate_normals(cloud.points), max_points=2000)
    # Measured 0.9996 with a 10% subset.
    assert _agreement(oriented, cloud.normals) > 0.99


def _random_flips(normals: np.ndarray, share: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    # A seed other than the sampler's (0): with the same seed the "random" flips follow the
    # sampler's face choice, i.e. they flip one contiguous region of the surface.
    flip = np.random.default_rng(seed).random(len(normals)) < share
    out = normals.copy()
    out[flip] *= -1
    return out, flip


def test_check_normals_detects_flipped_and_inconsistent():
    cloud = _torus_cloud()
    good = check_normals(cloud.points, cloud.normals)
    assert not good.flipped and not good.inconsistent and good.consistent_fraction > 0.999
    flipped = check_normals(cloud.points, -cloud.normals)
    assert flipped.flipped and not flipped.inconsistent
    assert outward_fraction(cloud.points, -cloud.normals) < 0.05
    mixed, _ = _random_flips(cloud.normals, 0.2)
    bad = check_normals(cloud.points, mixed)
    # Measured 0.80 consistent: the 20% flipped normals are the inconsistent ones.
    assert bad.inconsistent and 0.75 < bad.consistent_fraction < 0.85


def _noisy(cloud, sigma_of_diagonal: float, seed: int = 2):
    diag = float(np.linalg.norm(np.ptp(cloud.points, axis=0)))
    return cloud.points + np.random.default_rng(seed).normal(0, sigma_of_diagonal * diag, cloud.points.shape)


def test_thin_noisy_plate_keeps_its_exact_normals():
    # A plate 3.3% of its diagonal thick, 100k points, 0.5% noise: the old check compared the
    # normals with re-estimated ones (which mix the two faces) and re-oriented the whole set.
    # Measured: 99.98% kept (a sparser 30k-point plate 1 x 1 x 0.04: 99.91%); the bar is 99.9%.
    cloud = _thin_box_cloud(100_000, 0.04, width=0.7)
    pts = _noisy(cloud, 0.005)
    repair = repair_normals(pts, cloud.normals)
    assert not repair.flipped_all and not repair.unoriented
    assert 1 - repair.changed.mean() >= 0.999
    assert check_normals(pts, cloud.normals).consistent_fraction >= 0.999


def test_random_flips_are_repaired_and_only_they_change():
    cloud = _torus_cloud(20_000)
    mixed, flip = _random_flips(cloud.normals, 0.2)
    repair = repair_normals(cloud.points, mixed)
    # Measured: agreement with the truth 1.0000 (20k points) and 0.998-1.000 on 100k samples of
    # the shared shapes; acceptance: 99%. Normals change sign only, never direction.
    assert _agreement(repair.normals, cloud.normals) >= 0.99
    assert repair.num_changed <= 1.02 * flip.sum()
    np.testing.assert_allclose(np.abs(np.sum(repair.normals * mixed, axis=1)), 1.0, atol=1e-12)
    assert not repair.flipped_all


def test_inward_normals_are_flipped_all_but_not_when_they_face_the_sensor():
    cloud = _torus_cloud()
    repair = repair_normals(cloud.points, -cloud.normals)
    assert repair.flipped_all and repair.changed.all()
    np.testing.assert_array_equal(repair.normals, cloud.normals)
    # A single view into a bowl (lower unit hemisphere) from above: the normals face the camera,
    # i.e. into the hull. Without the viewpoint that reads as "inward"; with it they are kept.
    rng = np.random.default_rng(0)
    p = rng.normal(size=(6000, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    p[:, 2] = -np.abs(p[:, 2])
    towards_camera = -p
    assert repair_normals(p, towards_camera).flipped_all
    kept = repair_normals(p, towards_camera, viewpoint=np.array([0.0, 0.0, 2.0]))
    assert not kept.flipped_all and not kept.changed.any()


def test_unoriented_normals_get_consistent_signs():
    cloud = _torus_cloud(20_000)
    mixed, _ = _random_flips(cloud.normals, 0.5)
    repair = repair_normals(cloud.points, mixed)
    assert repair.unoriented
    assert _agreement(repair.normals, cloud.normals) > 0.99


@pytest.mark.skipif(not SHAPES.is_dir(), reason="../shared/data/shapes is absent")
@pytest.mark.parametrize("shape, noise, threshold", [("scorpion", 0.0, 0.99), ("armadillo", 0.005, 0.98)])
def test_orientation_on_real_shapes(shape, noise, threshold):
    # 100k samples; noise is Gaussian with this fraction of the bounding-box diagonal as sigma.
    # Measured agreement with the true normals: scorpion (thin legs) 0.998, armadillo at 0.5%
    # noise 0.995 (scorpion at 0.5% noise: 0.969). Open3D's orient_normals_consistent_tangent_plane
    # on the clean scorpion: 0.998 with k=10, 0.892 with k=30, and 15-35 s instead of about 1 s.
    from neural_sdf.io import load_points

    cloud = load_points(SHAPES / f"{shape}.obj", num_mesh_samples=100_000)
    diag = float(np.linalg.norm(np.ptp(cloud.points, axis=0)))
    pts = cloud.points + np.random.default_rng(0).normal(0, noise * diag, cloud.points.shape)
    oriented = orient_normals(pts, estimate_normals(pts))
    assert _agreement(oriented, cloud.normals) > threshold
