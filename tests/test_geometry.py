"""Containers and the normalization convention: one center, one uniform scale, a margin, round trips."""

import json

import numpy as np
import pytest

from neural_sdf.geometry import NORMALIZED_RADIUS, Mesh, Normalization, PointCloud, bounds, fit_normalization


def _scan_in_millimetres(seed: int = 0) -> np.ndarray:
    """A 120 x 80 x 40 mm box-shaped cloud whose center is ~1000 mm from the origin."""
    rng = np.random.default_rng(seed)
    return rng.uniform([-60, -40, -20], [60, 40, 20], size=(5000, 3)) + np.array([600.0, -500.0, 600.0])


def test_normalization_round_trip_at_large_offset_and_scale() -> None:
    pts = _scan_in_millimetres()
    assert np.linalg.norm(pts.mean(0)) > 950
    norm = fit_normalization(pts)
    n = norm.to_normalized(pts)
    # float64 round trip: ~1e-13 mm at 1000 mm.
    np.testing.assert_allclose(norm.to_world(n), pts, rtol=0, atol=1e-9)
    np.testing.assert_allclose(norm.to_normalized(norm.to_world(n)), n, rtol=0, atol=1e-12)


def test_normalization_fits_box_with_margin() -> None:
    pts = _scan_in_millimetres()
    n = fit_normalization(pts).to_normalized(pts)
    lo, hi = n.min(0), n.max(0)
    # The box is centred at the origin and its longest side spans exactly [-r, r] with r < 1: the
    # margin keeps the surface off the [-1, 1]^3 border (the SIREN reference code has none).
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-12)
    assert NORMALIZED_RADIUS < 1.0
    assert float(np.abs(n).max()) == pytest.approx(NORMALIZED_RADIUS, abs=1e-12)
    assert np.all(np.abs(n) <= NORMALIZED_RADIUS + 1e-12)


def test_normalization_is_uniform() -> None:
    pts = _scan_in_millimetres()
    norm = fit_normalization(pts)
    n = norm.to_normalized(pts)
    d_world = np.linalg.norm(pts[1:] - pts[:-1], axis=1)
    d_norm = np.linalg.norm(n[1:] - n[:-1], axis=1)
    # One scale for every axis: all distances shrink by the same factor (no per-axis stretching).
    np.testing.assert_allclose(d_norm, d_world * norm.scale, rtol=1e-10)
    assert norm.scale == pytest.approx(NORMALIZED_RADIUS / 60.0, rel=1e-2)  # longest half-side ~60 mm


def test_normalization_to_dict_json_round_trip() -> None:
    norm = fit_normalization(_scan_in_millimetres())
    again = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert again == norm


@pytest.mark.parametrize(
    "points,match",
    [
        (np.zeros((10, 3)), "no extent"),
        (np.full((10, 3), np.nan), "non-finite"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((10, 2)), r"\(N, 3\)"),
    ],
)
def test_fit_normalization_rejects_degenerate_points(points: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_normalization(points)


def test_normalization_validates() -> None:
    with pytest.raises(ValueError):
        Normalization(center=(0.0, 0.0, 0.0), scale=0.0)
    with pytest.raises(ValueError):
        Normalization(center=(0.0, np.nan, 0.0), scale=1.0)
    with pytest.raises(ValueError):
        Normalization(center=(0.0, 0.0), scale=1.0)  # type: ignore[arg-type]


def test_bounds() -> None:
    pts = np.array([[0.0, 5.0, -1.0], [2.0, -3.0, 4.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(bounds(pts), [[0, -3, -1], [2, 5, 4]])


def test_mesh_validation() -> None:
    v = np.zeros((3, 3))
    with pytest.raises(ValueError, match="out of range"):
        Mesh(v, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match="integers"):
        Mesh(v, np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        Mesh(v, np.array([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        Mesh(np.zeros((3, 2)), np.array([[0, 1, 2]]))
    empty = Mesh(v)
    assert empty.is_empty and empty.faces.shape == (0, 3) and empty.faces.dtype == np.int64
    m = Mesh(v.astype(np.float32), np.array([[0, 1, 2]], dtype=np.int32))
    assert m.vertices.dtype == np.float64 and m.faces.dtype == np.int64 and not m.is_empty


def test_pointcloud_validation_and_subset() -> None:
    pts = np.arange(30, dtype=float).reshape(10, 3)
    with pytest.raises(ValueError, match="match"):
        PointCloud(pts, np.zeros((9, 3)))
    cloud = PointCloud(pts, np.tile([0.0, 0.0, 1.0], (10, 1)))
    assert cloud.has_normals and len(cloud) == 10
    sub = cloud.subset(np.arange(10) % 2 == 0)
    assert len(sub) == 5 and sub.normals is not None and sub.normals.shape == (5, 3)
    np.testing.assert_array_equal(sub.points, pts[::2])
    assert not PointCloud(pts).has_normals


def test_fixture_meshes_face_outward(icosphere: Mesh, box: Mesh, torus: Mesh) -> None:
    # Faces counter-clockwise seen from outside <=> positive signed volume.
    for mesh, expected in [(icosphere, 4 / 3 * np.pi), (box, 6.0), (torus, 2 * np.pi**2 * 0.4 * 0.15**2)]:
        tm = mesh.to_trimesh()
        assert tm.is_watertight
        assert tm.volume == pytest.approx(expected, rel=0.05)
        assert len(tm.vertices) == len(mesh.vertices)  # to_trimesh does no processing


def test_mesh_sample_forwards_to_sampling(icosphere: Mesh) -> None:
    from neural_sdf.sampling import sample_mesh_surface

    a = icosphere.sample(100, seed=5)
    b = sample_mesh_surface(icosphere, 100, seed=5)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.normals, b.normals)


def test_is_closed_on_closed_open_and_flipped_surfaces() -> None:
    """``is_closed``: every directed edge has exactly one reversed twin (checked against trimesh)."""
    import trimesh

    from neural_sdf.geometry import is_closed

    sphere = trimesh.creation.icosphere(subdivisions=3)
    faces = np.asarray(sphere.faces)
    two = np.vstack([faces, faces + len(sphere.vertices)])  # two closed spheres
    flipped = faces.copy()
    flipped[7] = flipped[7, ::-1]
    cases = {"sphere": (faces, True), "two spheres": (two, True), "one face removed": (faces[1:], False),
             "one face flipped": (flipped, False), "a face twice": (np.vstack([faces, faces[:1]]), False)}
    for name, (f, expected) in cases.items():
        assert is_closed(f) is expected, name
        vertices = np.vstack([sphere.vertices, sphere.vertices + 3.0])
        tm = trimesh.Trimesh(vertices, f, process=False)
        if name != "a face twice":  # trimesh counts a repeated face's edges differently
            assert (tm.is_watertight and tm.is_winding_consistent) is expected, name
    assert is_closed(np.zeros((0, 3), dtype=np.int64)) is False
