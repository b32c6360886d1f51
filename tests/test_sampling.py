"""Sampling: surface samples on the surface with outward normals, SDF batches, grids, chunks."""

import numpy as np
import pytest
import torch

from neural_sdf.config import SamplingConfig
from neural_sdf.geometry import Mesh
from neural_sdf.sampling import Grid, iter_chunks, make_grid, sample_mesh_surface, sample_sdf_batch, step_generator


def test_surface_samples_lie_on_the_surface_with_outward_normals(icosphere: Mesh, torus: Mesh) -> None:
    import trimesh

    for mesh in (icosphere, torus):
        cloud = sample_mesh_surface(mesh, 2000, seed=0)
        _, dist, _ = trimesh.proximity.closest_point(mesh.to_trimesh(), cloud.points)
        assert dist.max() < 1e-9
        np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0)
        # A step outward along the normal leaves the solid, a step inward enters it.
        tm = mesh.to_trimesh()
        assert not tm.contains(cloud.points[:300] + 1e-3 * cloud.normals[:300]).any()
        assert tm.contains(cloud.points[:300] - 1e-3 * cloud.normals[:300]).all()


def test_surface_samples_are_area_weighted(box: Mesh) -> None:
    # Box 1 x 2 x 3: the faces normal to x, y, z have areas 2*6, 2*3, 2*2 of a total 22.
    cloud = sample_mesh_surface(box, 22_000, seed=0)
    axis = np.abs(cloud.normals).argmax(axis=1)
    counts = np.bincount(axis, minlength=3)
    # Binomial std ~ sqrt(22000 * p * (1 - p)) <= 74: allow 4 sigma = 300.
    np.testing.assert_allclose(counts, [12_000, 6_000, 4_000], atol=300)
    # Inside each face, uniform: the mean of the +z face's samples is its centre.
    top = cloud.points[(axis == 2) & (cloud.normals[:, 2] > 0)]
    np.testing.assert_allclose(top[:, :2].mean(0), [0, 0], atol=0.05)


def test_surface_sampling_is_seeded(icosphere: Mesh) -> None:
    a = sample_mesh_surface(icosphere, 100, seed=1)
    b = sample_mesh_surface(icosphere, 100, seed=1)
    c = sample_mesh_surface(icosphere, 100, seed=2)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.allclose(a.points, c.points)


def test_surface_sampling_rejects_bad_requests(icosphere: Mesh) -> None:
    with pytest.raises(ValueError, match="num_points"):
        sample_mesh_surface(icosphere, 0)
    with pytest.raises(ValueError, match="positive"):
        sample_mesh_surface(Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]])), 10)


def _cloud_tensors(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 3, generator=g)
    p = p / p.norm(dim=-1, keepdim=True)
    return 0.5 * p, p.clone()


def test_sdf_batch_layout_and_masks() -> None:
    pts, nrm = _cloud_tensors()
    cfg = SamplingConfig(batch_size=100, off_surface_ratio=1.5, near_surface_ratio=0.5)
    b = sample_sdf_batch(pts, nrm, cfg, step_generator(0, 0, pts.device))
    assert b.coords.shape == (100 + 150 + 50, 3)
    assert int(b.on_surface.sum()) == 100 and int(b.off_surface.sum()) == 150
    assert not (b.on_surface & b.off_surface).any()
    # Surface samples are cloud points with their own normals; other rows carry zero normals.
    on = b.coords[b.on_surface]
    same = (on[:, None, :] == pts[None, :, :]).all(dim=-1)  # exact copies of cloud points
    assert bool(same.any(dim=1).all())
    idx = same.float().argmax(dim=1)
    torch.testing.assert_close(b.normals[b.on_surface], nrm[idx])
    assert float(b.normals[~b.on_surface].abs().max()) == 0.0
    # Uniform samples fill [-1, 1]^3 (the network's cube).
    off = b.coords[b.off_surface]
    assert float(off.abs().max()) <= 1.0 and float(off.abs().max()) > 0.9
    assert b.coords.dtype == pts.dtype


def test_batch_larger_than_cloud_still_trains() -> None:
    # Reference-code trap: a batch larger than the cloud gave zero batches per epoch, so zero steps.
    pts, nrm = _cloud_tensors(n=20)
    b = sample_sdf_batch(pts, nrm, SamplingConfig(batch_size=5000), step_generator(0, 0, pts.device))
    assert int(b.on_surface.sum()) == 20 and int(b.off_surface.sum()) == 20


def test_batches_depend_only_on_seed_and_step() -> None:
    pts, nrm = _cloud_tensors()
    cfg = SamplingConfig(batch_size=50)
    a = sample_sdf_batch(pts, nrm, cfg, step_generator(7, 3, pts.device))
    sample_sdf_batch(pts, nrm, cfg, step_generator(7, 2, pts.device))  # history must not matter
    b = sample_sdf_batch(pts, nrm, cfg, step_generator(7, 3, pts.device))
    c = sample_sdf_batch(pts, nrm, cfg, step_generator(7, 4, pts.device))
    d = sample_sdf_batch(pts, nrm, cfg, step_generator(8, 3, pts.device))
    torch.testing.assert_close(a.coords, b.coords)
    assert not torch.allclose(a.coords, c.coords) and not torch.allclose(a.coords, d.coords)


def test_grid_points_are_exactly_origin_plus_index_times_spacing() -> None:
    # Reference-code trap: grid coordinates by integer division shift samples by up to a voxel.
    grid = make_grid(np.array([-0.7, -0.31, 0.05]), np.array([0.9, 0.4, 0.33]), 97)
    axes = grid.axes()
    for a in range(3):
        i = np.arange(grid.shape[a])
        np.testing.assert_array_equal(axes[a], grid.origin[a] + i * grid.spacing)
    # Cubic cells, the longest side has exactly `resolution` points spanning the box.
    assert grid.shape[0] == 97
    assert axes[0][0] == pytest.approx(-0.7, abs=1e-12) and axes[0][-1] == pytest.approx(0.9, abs=1e-12)
    assert grid.spacing == pytest.approx(1.6 / 96)
    for a, (lo, hi) in enumerate([(-0.7, 0.9), (-0.31, 0.4), (0.05, 0.33)]):
        assert axes[a][0] <= lo + 1e-12 and axes[a][-1] >= hi - 1e-12  # shorter sides covered too
        assert axes[a][0] > lo - grid.spacing and axes[a][-1] < hi + grid.spacing
        np.testing.assert_allclose((axes[a][0] + axes[a][-1]) / 2, (lo + hi) / 2, atol=1e-12)
    assert grid.num_points == int(np.prod(grid.shape))


def test_grid_rejects_bad_boxes() -> None:
    with pytest.raises(ValueError):
        make_grid(np.zeros(3), np.ones(3), 1)
    with pytest.raises(ValueError):
        make_grid(np.zeros(3), np.array([1.0, 0.0, 1.0]), 10)


def test_iter_chunks_cover_exactly() -> None:
    for n, c in [(0, 3), (10, 3), (9, 3), (5, 100)]:
        chunks = list(iter_chunks(n, c))
        covered = np.concatenate([np.arange(n)[s] for s in chunks]) if chunks else np.zeros(0)
        np.testing.assert_array_equal(covered, np.arange(n))
        assert all(s.stop - s.start <= c for s in chunks)
    with pytest.raises(ValueError):
        list(iter_chunks(5, 0))


def test_grid_is_frozen() -> None:
    grid = Grid((0.0, 0.0, 0.0), 0.1, (2, 2, 2))
    with pytest.raises(AttributeError):
        grid.spacing = 0.2  # type: ignore[misc]
