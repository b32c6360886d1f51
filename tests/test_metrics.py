"""Metrics on shapes with known answers: identical, offset and differently shaped meshes."""

import numpy as np
import pytest
from conftest import make_box, make_icosphere

from neural_sdf.geometry import Mesh
from neural_sdf.metrics import evaluate_meshes, nearest_distances

N = 20_000


def test_identical_meshes() -> None:
    a = make_icosphere(1.0, 4)
    m = evaluate_meshes(a, a, num_samples=N)
    # Sample-to-sample distances have a floor even for identical meshes: measured Chamfer 0.0125
    # and Hausdorff 0.047 with 20k samples on the unit sphere; F@1% 0.9975, normal consistency 0.9996.
    assert m.chamfer_l1 < 0.02 and m.hausdorff < 0.07
    assert m.fscore["1%"] > 0.99
    assert m.normal_consistency > 0.999
    assert m.gt_diagonal == pytest.approx(2 * np.sqrt(3), rel=1e-3)
    assert m.chamfer_l1_rel == pytest.approx(m.chamfer_l1 / m.gt_diagonal)
    assert m.hausdorff_rel == pytest.approx(m.hausdorff / m.gt_diagonal)


def test_concentric_spheres_have_the_known_gap() -> None:
    gt, pred = make_icosphere(1.0, 4), make_icosphere(1.05, 4)
    m = evaluate_meshes(pred, gt, num_samples=N, taus=(0.01, 0.02))
    # Every point of one surface is >= 0.0487 from the other (facets of the r = 1.05 icosphere lie
    # beyond r = 1.0487): tau at 1% of the diagonal (0.0346) accepts nothing, 2% (0.069) nearly all.
    assert m.fscore["1%"] == 0.0 and m.precision["1%"] == 0.0 and m.recall["1%"] == 0.0
    assert m.fscore["2%"] > 0.99
    assert 0.048 < m.chamfer_l1 < 0.06  # measured 0.052
    assert m.normal_consistency > 0.999  # same normals, only offset


def test_normal_consistency_is_orientation_free_but_shape_sensitive() -> None:
    gt = make_icosphere(1.0, 4)
    flipped = Mesh(gt.vertices, gt.faces[:, ::-1].copy())
    assert evaluate_meshes(flipped, gt, num_samples=N).normal_consistency > 0.999
    # A cube against a sphere: measured 0.81.
    assert evaluate_meshes(make_box((1.6, 1.6, 1.6)), gt, num_samples=N).normal_consistency < 0.9


def test_metrics_are_seeded_and_serializable() -> None:
    import json

    a, b = make_icosphere(1.0, 3), make_box((1.5, 1.5, 1.5))
    m1 = evaluate_meshes(a, b, num_samples=2000, seed=3)
    m2 = evaluate_meshes(a, b, num_samples=2000, seed=3)
    assert m1.to_dict() == m2.to_dict()
    d = json.loads(json.dumps(m1.to_dict()))
    assert set(d["fscore"]) == {"0.5%", "1%"} and "2000 points" in d["definition"]


def test_empty_mesh_raises() -> None:
    with pytest.raises(ValueError):
        evaluate_meshes(Mesh(np.zeros((0, 3))), make_icosphere())


def test_nearest_distances_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    src, dst = rng.normal(size=(50, 3)), rng.normal(size=(70, 3))
    dist, idx = nearest_distances(src, dst)
    full = np.linalg.norm(src[:, None] - dst[None], axis=-1)
    np.testing.assert_allclose(dist, full.min(1))
    np.testing.assert_array_equal(idx, full.argmin(1))


def test_exact_fscore_counts_surfaces_not_samples() -> None:
    """Two copies of one sphere sampled sparsely: nearest *samples* lie farther apart than a tight
    tau, so the sample-to-sample F-score is below 1, while every sample lies on the other surface
    (exact F = 1). Shifted by twice tau, no sample is within tau of the other surface (F = 0)."""
    from neural_sdf.metrics import exact_fscore

    sphere = make_icosphere(subdivisions=4)
    sampled = evaluate_meshes(sphere, sphere, num_samples=500, taus=(0.005,))
    assert sampled.fscore["0.5%"] < 0.9  # 500 samples on a unit sphere lie ~0.16 apart; tau is 0.017
    exact = exact_fscore(sphere, sphere, taus=(0.005,), num_samples=500)["0.5%"]
    assert exact["fscore"] == 1.0 and exact["remeasured"] > 0, exact
    diag = float(np.linalg.norm(sphere.vertices.max(0) - sphere.vertices.min(0)))
    shifted = Mesh(sphere.vertices * (1 + 2 * 0.005 * diag), sphere.faces)  # radius grows by 2 tau
    assert exact_fscore(shifted, sphere, taus=(0.005,), num_samples=500)["0.5%"]["fscore"] == 0.0
