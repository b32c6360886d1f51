"""``reconstruct`` says how much of the input its mesh describes, and fails when it is little.

Measured case that motivated it: an airborne LiDAR tile (110k points) once gave a 4,634-face mesh
with 0.3% of the points within 2 map units of it, and exit status 0.
"""

from pathlib import Path

import numpy as np
import pytest
import trimesh

from neural_sdf.cli import EXIT_FAILED, EXIT_OK, _report_coverage
from neural_sdf.geometry import Mesh
from neural_sdf.reconstruct import input_coverage


def _sphere() -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))


def _points(on_sphere: int, elsewhere: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(on_sphere, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    plane = np.column_stack([rng.uniform(3, 9, elsewhere), rng.uniform(-3, 3, elsewhere), np.zeros(elsewhere)])
    return np.vstack([d, plane]) + 1e6  # geo-referenced offsets must not matter


def test_input_coverage_counts_the_points_near_the_mesh() -> None:
    mesh = _sphere()
    mesh = Mesh(mesh.vertices + 1e6, mesh.faces)
    share, tolerance = input_coverage(mesh, _points(3000, 7000))
    assert share == pytest.approx(0.3, abs=0.02)
    # 1% of the diagonal of the points' box (0.12 units here), not four spacings (smaller).
    assert 0.1 < tolerance < 0.2
    share, _ = input_coverage(mesh, _points(3000, 0))
    assert share == 1.0


def test_little_coverage_fails_with_one_line_and_some_warns(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> None:
    mesh = _sphere()
    mesh = Mesh(mesh.vertices + 1e6, mesh.faces)
    assert _report_coverage(mesh, _points(3000, 7000), Path("out.ply")) == EXIT_FAILED
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "out.ply" in err[0] and "describes only" in err[0] and "Traceback" not in err[0]
    with caplog.at_level("WARNING"):
        assert _report_coverage(mesh, _points(8000, 2000), Path("out.ply")) == EXIT_OK
    assert any("describes only" in r.message for r in caplog.records)
    assert _report_coverage(mesh, _points(3000, 0), Path("out.ply")) == EXIT_OK


def test_within_distance_matches_exact_point_to_triangle_distances() -> None:
    """The k-d tree shortcut decides most points by their nearest vertex; on a coarse sphere (edges
    of 0.6 units, longer than the tolerance) most points fall in its unsure band and are measured
    exactly: the answer must be the exact one's for every point not within 1e-5 of the tolerance."""
    import open3d.core as o3c

    from neural_sdf.geometry import within_distance

    tm = trimesh.creation.icosphere(subdivisions=1, radius=1.0)
    mesh = Mesh(np.asarray(tm.vertices) + 1e6, np.asarray(tm.faces))
    rng = np.random.default_rng(3)
    d = rng.normal(size=(4000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    pts = d * rng.uniform(0.5, 1.5, size=(4000, 1)) + 1e6
    exact = mesh.raycasting_scene(offset=np.full(3, 1e6)).compute_distance(o3c.Tensor((pts - 1e6).astype(np.float32))).numpy()
    for tolerance in (0.05, 0.2):
        got = within_distance(mesh, pts, tolerance)
        clear = np.abs(exact - tolerance) > 1e-5
        assert np.array_equal(got[clear], exact[clear] <= tolerance)
        assert 0.1 < got.mean() < 0.9  # both answers occur
    assert not within_distance(Mesh(mesh.vertices, mesh.faces[:0]), pts, 0.2).any()
