"""Fitting: a small torus fit in millimetres far from the origin, resume after interrupt, seeding.

Networks are tiny (``hidden_dim`` 32-64) so that the whole module runs in seconds on 2 idle cores.
"""

import dataclasses
import importlib
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_torus

from neural_sdf.config import ExtractConfig, LossWeights, SamplingConfig, SirenConfig, TrainConfig
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.geometry import Mesh, PointCloud
from neural_sdf.metrics import evaluate_meshes
from neural_sdf.reconstruct import FitOptions, fit_sdf, reconstruct
from neural_sdf.sampling import sample_mesh_surface

# A torus in millimetres (radii 40 and 14 mm) whose center is ~1000 mm from the origin.
OFFSET = np.array([600.0, -500.0, 600.0])
SCALE_MM = 100.0


@pytest.fixture(scope="module")
def torus_mm() -> tuple[Mesh, PointCloud]:
    base = make_torus(major=0.4, minor=0.14)
    mesh = Mesh(base.vertices * SCALE_MM + OFFSET, base.faces)
    return mesh, sample_mesh_surface(mesh, 3000, seed=0)


@pytest.fixture(scope="module")
def fitted(torus_mm):
    mesh, cloud = torus_mm
    options = FitOptions(
        siren=SirenConfig(hidden_dim=64, num_hidden_layers=2),
        train=TrainConfig(steps=150, lr=1e-3, seed=0, checkpoint_every=0),
        sampling=SamplingConfig(batch_size=1000),
    )
    return reconstruct(cloud, options, ExtractConfig(resolution=48), progress=False)


def test_small_fit_reaches_chamfer_threshold(torus_mm, fitted) -> None:
    gt, _ = torus_mm
    m = evaluate_meshes(fitted.mesh, gt, num_samples=20_000)
    # Measured (64 x 2 SIREN, 150 steps, lr 1e-3, 3000 points, resolution 48, seed 0): Chamfer-L1
    # 0.41 % of the diagonal, F@1% 0.997, normal consistency 0.988 (a 2nd set-up, 0.15-radius torus
    # in normalized units: 0.42 %, 0.997, 0.989). Thresholds leave ~2x margin on the error.
    assert m.chamfer_l1_rel < 0.008, m
    assert m.fscore["1%"] > 0.97, m
    assert m.normal_consistency > 0.97, m
    tm = fitted.mesh.to_trimesh()
    assert tm.is_watertight and tm.volume > 0
    assert tm.euler_number == 0  # one torus: genus 1


def test_mesh_comes_back_in_input_coordinates(torus_mm, fitted) -> None:
    gt, cloud = torus_mm
    lo, hi = fitted.mesh.vertices.min(0), fitted.mesh.vertices.max(0)
    glo, ghi = gt.vertices.min(0), gt.vertices.max(0)
    # Within 2 mm (1.6 % of the 108 mm extent) of the ground truth's box, ~1000 mm from the origin.
    np.testing.assert_allclose(lo, glo, atol=2.0)
    np.testing.assert_allclose(hi, ghi, atol=2.0)
    norm = fitted.model.normalization
    np.testing.assert_allclose(norm.center, (cloud.points.min(0) + cloud.points.max(0)) / 2, atol=1.0)


def test_sign_convention_negative_inside(torus_mm, fitted) -> None:
    _, cloud = torus_mm
    model = fitted.model
    pts, nrm = cloud.points[:1000], cloud.normals[:1000]
    inside, outside = model.sdf(pts - 2.0 * nrm), model.sdf(pts + 2.0 * nrm)  # 2 mm off a 14 mm tube
    # Measured (seed 0): 100 % of both have the right sign at 2 mm (99.4 % / 99.1 % at 1 mm); medians -1.69
    # and +2.09 mm.
    assert (inside < 0).mean() > 0.97, (inside < 0).mean()
    assert (outside > 0).mean() > 0.97, (outside > 0).mean()
    # In millimetres: 2 mm off the surface reads about 2, not 2 * scale (normalized units).
    assert 1.0 < np.median(outside) < 3.0 and -3.0 < np.median(inside) < -1.0, (np.median(inside), np.median(outside))


def test_model_file_round_trip(tmp_path: Path, fitted) -> None:
    from neural_sdf.reconstruct import extract_mesh

    path = tmp_path / "torus.whatever"
    fitted.model.save(path)
    loaded = SDFModel.load(path)
    pts = np.random.default_rng(0).uniform(-60, 60, size=(200, 3)) + OFFSET
    np.testing.assert_array_equal(loaded.sdf(pts), fitted.model.sdf(pts))
    assert loaded.normalization == fitted.model.normalization
    assert loaded.network.config == fitted.model.network.config
    again = extract_mesh(loaded, ExtractConfig(resolution=48))
    np.testing.assert_allclose(again.vertices, fitted.mesh.vertices, atol=1e-9)


# ----------------------------------------------------------------------------- resume and seeding
def _tiny_options(steps: int = 40, checkpoint_every: int = 0, seed: int = 0, batch_size: int = 300) -> FitOptions:
    return FitOptions(
        siren=SirenConfig(hidden_dim=32, num_hidden_layers=1),
        train=TrainConfig(steps=steps, lr=1e-3, seed=seed, checkpoint_every=checkpoint_every),
        sampling=SamplingConfig(batch_size=batch_size),
    )


def _weights(model: SDFModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.network.state_dict().items()}


def test_resume_after_interrupt_equals_uninterrupted_fit(tmp_path: Path, torus_cloud, monkeypatch) -> None:
    rec = importlib.import_module("neural_sdf.reconstruct")  # the package attribute is the function

    options = _tiny_options(steps=40, checkpoint_every=10)
    reference = _weights(fit_sdf(torus_cloud, options, progress=False))

    ckpt = tmp_path / "fit.ckpt"
    real_save = rec.save_training_state
    seen: list[int] = []

    def save_then_die(path, module, optimizer, step, meta):
        real_save(path, module, optimizer, step, meta)
        seen.append(step)
        if step == 20:
            raise KeyboardInterrupt  # the process is killed right after the checkpoint at step 20

    monkeypatch.setattr(rec, "save_training_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit_sdf(torus_cloud, options, checkpoint=ckpt, progress=False)
    assert seen == [10, 20] and ckpt.exists()
    monkeypatch.setattr(rec, "save_training_state", real_save)

    resumed = fit_sdf(torus_cloud, options, checkpoint=ckpt, progress=False)
    assert resumed.info["resumed_from"] == 20
    assert not ckpt.exists()  # removed once the fit completes
    weights = _weights(resumed)
    for k in reference:
        # Per-step batch generators and the restored Adam state make the runs identical on the CPU.
        torch.testing.assert_close(weights[k], reference[k], rtol=0, atol=0)


def test_checkpoint_of_other_settings_is_ignored(tmp_path: Path, torus_cloud, caplog) -> None:
    rec = importlib.import_module("neural_sdf.reconstruct")  # the package attribute is the function

    ckpt = tmp_path / "fit.ckpt"
    other = fit_sdf(torus_cloud, _tiny_options(steps=5, seed=1), progress=False)
    opt = torch.optim.Adam(other.network.parameters())
    rec.save_training_state(ckpt, other.network, opt, 3, {"fingerprint": "not this fit"})
    with caplog.at_level(logging.WARNING):
        model = fit_sdf(torus_cloud, _tiny_options(steps=10), checkpoint=ckpt, progress=False)
    assert model.info["resumed_from"] == 0 and "starting afresh" in caplog.text
    reference = fit_sdf(torus_cloud, _tiny_options(steps=10), progress=False)
    for k, v in _weights(reference).items():
        torch.testing.assert_close(_weights(model)[k], v, rtol=0, atol=0)


def test_seeded_fits_repeat(torus_cloud) -> None:
    a = _weights(fit_sdf(torus_cloud, _tiny_options(steps=10), progress=False))
    b = _weights(fit_sdf(torus_cloud, _tiny_options(steps=10), progress=False))
    c = _weights(fit_sdf(torus_cloud, _tiny_options(steps=10, seed=1), progress=False))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_batch_larger_than_cloud_trains(icosphere: Mesh) -> None:
    # Reference-code trap: batch_size > len(cloud) silently ran zero steps.
    cloud = sample_mesh_surface(icosphere, 100, seed=0)
    options = _tiny_options(steps=10, batch_size=5000)
    torch.manual_seed(0)
    from neural_sdf.nn import Siren

    init = {k: v.clone() for k, v in Siren(options.siren).state_dict().items()}
    model = fit_sdf(cloud, FitOptions(options.siren, TrainConfig(steps=10, lr=1e-3, seed=0, checkpoint_every=0, log_every=1),
                                      options.sampling, options.weights), progress=False)
    history = model.info["history"]
    assert [h["step"] for h in history] == list(range(1, 11))
    assert history[-1]["loss"] < history[0]["loss"]
    assert any(not torch.equal(init[k], v) for k, v in model.network.state_dict().items())


def test_fit_needs_normals_when_asked_for_them() -> None:
    from neural_sdf.cleanup import ScanConfig
    from neural_sdf.errors import InputError

    pts = np.random.default_rng(0).normal(size=(200, 3))
    options = FitOptions(_tiny_options().siren, _tiny_options().train, _tiny_options().sampling, scan=ScanConfig(normals="given"))
    with pytest.raises(InputError, match="normals"):
        fit_sdf(pts, options, progress=False)


def test_first_layer_w0_is_lowered_on_sparse_clouds_only(icosphere: Mesh) -> None:
    # The recipe's first-layer w0 45 is kept for dense clouds and lowered to the paper's 30 on sparse
    # ones (config.density_w0_first); an explicit choice (adapt_w0=False) is kept as given.
    from neural_sdf.config import DENSE_SPACING, SPARSE_SPACING, density_w0_first

    assert density_w0_first(DENSE_SPACING, 45.0) == 45.0 and density_w0_first(0.001, 45.0) == 45.0
    assert density_w0_first(SPARSE_SPACING, 45.0) == 30.0 and density_w0_first(0.05, 45.0) == 30.0
    assert 30.0 < density_w0_first((DENSE_SPACING + SPARSE_SPACING) / 2, 45.0) < 45.0
    assert density_w0_first(0.05, 20.0) == 20.0  # never raised

    short = FitOptions(train=dataclasses.replace(FitOptions().train, steps=2, checkpoint_every=0))
    sparse = sample_mesh_surface(icosphere, 2000, seed=0)  # ~0.04 apart in the normalized cube
    dense = sample_mesh_surface(icosphere, 200_000, seed=0)  # ~0.004 apart
    used = lambda m: m.info["options"]["siren"]["w0_first"]  # noqa: E731
    assert used(fit_sdf(sparse, short)) == 30.0
    assert used(fit_sdf(dense, short)) == 45.0
    assert used(fit_sdf(sparse, dataclasses.replace(short, adapt_w0=False))) == 45.0


def test_normal_weight_is_the_papers_for_normals_not_given(icosphere: Mesh) -> None:
    # The recipe weights given normals 300 (config.default_sdf_weights); normals the pipeline had to
    # estimate keep the paper's 100 (FitOptions.adapt_normal_weight); an explicit choice is kept.
    short = FitOptions(train=dataclasses.replace(FitOptions().train, steps=2, checkpoint_every=0))
    oriented = sample_mesh_surface(icosphere, 5000, seed=0)
    used = lambda m: m.info["options"]["weights"]["normal"]  # noqa: E731
    assert FitOptions().weights.normal == 300.0 and LossWeights().normal == 100.0
    assert used(fit_sdf(oriented, short)) == 300.0
    assert used(fit_sdf(oriented.points, short)) == 100.0  # no normals: estimated
    assert used(fit_sdf(oriented.points, dataclasses.replace(short, adapt_normal_weight=False))) == 300.0


def _holed_sphere_fit(sign_weight: float, precision: str = "float32", steps: int = 120, batch_size: int = 2000):
    """A sphere shell with 4 holes of 1% of its area each (a scan that missed four patches),
    20k exact oriented points, reconstructed with the recipe's network at a small budget.

    Float32 by default: at this 120-step budget, bfloat16 products with 2 threads left one bubble of a
    single grid cell (area 0.00225, 0.02% of the sphere) beside the shell at grid 64 (measured; one
    piece with 1 thread, at grid 128, and at the default 450 steps, which the bfloat16 test fits)."""
    import trimesh

    from neural_sdf.synthetic import cut_holes

    tm = trimesh.creation.icosphere(subdivisions=4)
    closed = Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))
    cloud = sample_mesh_surface(cut_holes(closed, 4, 0.01, seed=0), 20_000, seed=0)
    options = FitOptions()
    options = dataclasses.replace(
        options,
        train=dataclasses.replace(options.train, steps=steps, checkpoint_every=0, precision=precision),
        sampling=dataclasses.replace(options.sampling, batch_size=batch_size),
        weights=dataclasses.replace(options.weights, sign=sign_weight),
    )
    result = reconstruct(cloud, options, ExtractConfig(resolution=64), progress=False)
    return result.mesh, cloud, float(tm.area)


def test_no_phantom_sheet_inside_a_shell_with_holes() -> None:
    _check_holed_sphere(*_holed_sphere_fit(FitOptions().weights.sign))


def test_shell_with_holes_with_the_default_recipe_in_bfloat16() -> None:
    # The default recipe as shipped (precision auto: bfloat16 on CPUs that have it), 450 steps of
    # 5,000 surface samples: measured area 1.000x, one piece, with 1 and 2 threads.
    _check_holed_sphere(*_holed_sphere_fit(FitOptions().weights.sign, "auto", FitOptions().train.steps, FitOptions().sampling.batch_size))


def _check_holed_sphere(mesh: Mesh, cloud, closed_area: float) -> None:
    from scipy.spatial import cKDTree

    from neural_sdf.extract import connected_components

    samples = sample_mesh_surface(mesh, 100_000, seed=1).points
    dist, _ = cKDTree(cloud.points).query(samples)
    diag = 2.0 * np.sqrt(3.0)
    area = float(mesh.to_trimesh().area)
    # Without the free-space sign term the inside of the shell, open through the holes, came out
    # positive behind a second wall: area 1.86x the sphere's, 52% of it near the input. With it,
    # measured: area 1.001x (the holes capped), 96.7% within 1% of the diagonal of an input point
    # (the caps, about 4% of the sphere, are the rest); one piece.
    assert abs(area / closed_area - 1.0) <= 0.05, area / closed_area
    assert (dist <= 0.01 * diag).mean() >= 0.95
    assert int(connected_components(mesh).max()) + 1 == 1
