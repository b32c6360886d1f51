"""Sparse coarse-to-fine extraction (``extract.sparse_marching_cubes``) against the dense reference."""

import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig, SamplingConfig, SirenConfig, TrainConfig
from neural_sdf.extract import (
    BORDER_VALUE,
    evaluate_grid,
    extract_mesh,
    extraction_grid,
    marching_cubes,
    sparse_marching_cubes,
)
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.geometry import Mesh
from neural_sdf.nn.fused import make_fast_forward
from neural_sdf.reconstruct import FitOptions, fit_sdf
from neural_sdf.sampling import make_grid, sample_mesh_surface


def _two_spheres(x: torch.Tensor) -> torch.Tensor:
    a = (x - x.new_tensor([0.1, -0.05, 0.02])).norm(dim=-1, keepdim=True) - 0.5
    b = (x - x.new_tensor([0.55, 0.3, 0.0])).norm(dim=-1, keepdim=True) - 0.25
    return torch.minimum(a, b)


def _dense(fn, grid) -> Mesh:
    """The dense reference exactly as ``extract_mesh`` runs it (outer layer forced outside)."""
    volume = evaluate_grid(fn, grid)
    for axis in range(3):
        index = [slice(None)] * 3
        for end in (0, -1):
            index[axis] = end
            volume[tuple(index)] = BORDER_VALUE
    return marching_cubes(volume, grid)


def _canonical_faces(faces: np.ndarray) -> set[tuple[int, int, int]]:
    """Faces as a set of index triples rotated to start at their smallest index (orientation kept)."""
    out = set()
    for f in faces.tolist():
        k = f.index(min(f))
        out.add(tuple(f[k:] + f[:k]))
    return out


def assert_same_mesh(sparse: Mesh, dense: Mesh, tol: float) -> None:
    """Same vertices (one-to-one, within ``tol``) and the same oriented faces."""
    assert len(sparse.vertices) == len(dense.vertices)
    assert len(sparse.faces) == len(dense.faces)
    dist, match = cKDTree(dense.vertices).query(sparse.vertices)
    assert dist.max() <= tol, dist.max()
    assert len(np.unique(match)) == len(match)  # one-to-one
    assert _canonical_faces(match[sparse.faces]) == _canonical_faces(dense.faces)


# Tolerance on vertices: both paths interpolate the same two float32 values on the same edge;
# scikit-image rounds the position in float32 in its block's local index frame, so positions
# differ by float32 rounding of indices < 256: measured at most 3.8e-6 cells; 1e-4 cells is safe.
TOL_CELLS = 1e-4


@pytest.mark.parametrize(
    "name, fn, lipschitz",
    [
        ("two spheres", _two_spheres, 1.0),
        # Cut open by the grid's box: the forced outer layer closes it (border repair).
        ("cut sphere", lambda x: x.norm(dim=-1, keepdim=True) - 1.0, 1.0),
        # Negative everywhere: the only surface is the forced outer layer.
        ("all inside", lambda x: x.norm(dim=-1, keepdim=True) - 2.0, 1.0),
        # |grad f| = 3 breaks the assumed bound of 1: the repairs must still find every cell.
        ("steep", lambda x: 3 * (x.norm(dim=-1, keepdim=True) - 0.5), 1.0),
        # A wavy sphere with |grad f| up to about 1.4.
        ("wavy", lambda x: x.norm(dim=-1, keepdim=True) - 0.5 - 0.05 * torch.sin(20 * x[:, :1]) * torch.sin(20 * x[:, 1:2]), 1.0),
    ],
)
@pytest.mark.parametrize("resolution", [40, 71])
def test_sparse_matches_dense_on_analytic_sdfs(name, fn, lipschitz, resolution):
    grid = make_grid(np.array([-0.9, -0.8, -0.85]), np.array([0.9, 0.85, 0.8]), resolution)
    dense = _dense(fn, grid)
    result = sparse_marching_cubes(fn, grid, lipschitz=lipschitz)
    assert len(dense.faces) > 0
    assert_same_mesh(result.mesh, dense, TOL_CELLS * grid.spacing)


def test_sparse_evaluation_count_below_measured_bound():
    # Sphere of radius 0.5 on a 128^3 grid over [-1, 1]^3: measured 53,338 evaluations (2.5 % of
    # the 2,097,152 dense ones) with lipschitz 1 (88,772 with 2); the bound leaves 20 %. (Before
    # the last level tested grid points instead of whole cells: 57,235 and 134,811.)
    grid = make_grid(np.full(3, -1.0), np.full(3, 1.0), 128)
    sphere = lambda x: x.norm(dim=-1, keepdim=True) - 0.5  # noqa: E731
    result = sparse_marching_cubes(sphere, grid, lipschitz=1.0)
    assert result.num_evaluations < 64_000
    assert result.num_evaluations < grid.num_points / 30
    # A larger assumed bound is safer and costs more evaluations, never fewer.
    wider = sparse_marching_cubes(sphere, grid, lipschitz=2.0)
    assert wider.num_evaluations > result.num_evaluations
    assert len(wider.mesh.faces) == len(result.mesh.faces)


@pytest.fixture(scope="module")
def trained_torus():
    """A small SIREN fitted to a torus (300 steps, fused step): a real, imperfect network SDF."""
    import trimesh

    tm = trimesh.creation.torus(0.4, 0.15)
    cloud = sample_mesh_surface(Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)), 3000, seed=0)
    options = FitOptions(
        siren=SirenConfig(hidden_dim=32, num_hidden_layers=2),
        train=TrainConfig(steps=300, lr=1e-3, checkpoint_every=0),
        sampling=SamplingConfig(batch_size=1000),
    )
    return fit_sdf(cloud, options, progress=False)


@pytest.mark.parametrize("resolution", [48, 96])
def test_sparse_matches_dense_on_trained_model(trained_torus, resolution):
    model = trained_torus
    fn = make_fast_forward(model.network)
    grid = extraction_grid(model.normalization.to_normalized(model.data_bounds), ExtractConfig(resolution=resolution))
    dense = _dense(fn, grid)
    result = sparse_marching_cubes(fn, grid, lipschitz=1.0)
    assert_same_mesh(result.mesh, dense, TOL_CELLS * grid.spacing)
    # Measured: 22,568 of 39,168 points (58 %) at 48 and 87,660 of 313,344 (28 %) at 96 (sparse
    # pays off with resolution: the surface grows as n^2, the grid as n^3); bounds leave ~20 %.
    assert result.num_evaluations < (0.7 if resolution == 48 else 0.34) * grid.num_points


def test_sparse_matches_dense_where_phantom_surfaces_reach_the_border():
    # tests/data/torus_border.nsdf is the quick start's fit (`neural-sdf reconstruct data/torus.ply
    # --model ...`, 2026-11-29 defaults, training history dropped): its field has phantom negative
    # regions that reach the grid's outer layer. There the dense path's forcing makes cells along
    # the layer change sign although their raw values do not; before the repair flood used the
    # forced signs, sparse extraction left holes there (measured at 128: 75,129 faces against the
    # dense path's 75,144).
    model = SDFModel.load(Path(__file__).parent / "data" / "torus_border.nsdf")
    fn = make_fast_forward(model.network)
    grid = extraction_grid(model.normalization.to_normalized(model.data_bounds), ExtractConfig(resolution=128))
    dense = _dense(fn, grid)
    result = sparse_marching_cubes(fn, grid, lipschitz=1.0)
    assert_same_mesh(result.mesh, dense, TOL_CELLS * grid.spacing)


def test_extract_mesh_sparse_default_equals_dense_option(trained_torus):
    model = trained_torus
    kwargs = dict(support_points=model.support_points)
    sparse = extract_mesh(model.network, model.normalization, model.data_bounds, ExtractConfig(resolution=64), **kwargs)
    dense = extract_mesh(model.network, model.normalization, model.data_bounds, ExtractConfig(resolution=64, dense=True), **kwargs)
    cell = extraction_grid(model.normalization.to_normalized(model.data_bounds), ExtractConfig(resolution=64)).spacing
    assert_same_mesh(sparse, dense, TOL_CELLS * cell / model.normalization.scale)


def test_cli_extract_dense_flag(trained_torus, tmp_path, capsys):
    path = tmp_path / "torus.nsdf"
    trained_torus.save(path)
    for flag in ([], ["--dense"]):
        out = tmp_path / f"m{len(flag)}.ply"
        assert main(["extract", str(path), "-o", str(out), "--resolution", "40", "--quiet", "--device", "cpu", *flag]) == 0
        assert out.exists()
    assert main(["extract", str(path), "-o", str(tmp_path / "x.ply"), "--lipschitz", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "lipschitz" in err and "Traceback" not in err
    assert not (tmp_path / "x.ply").exists()


def test_sparse_rejects_bad_lipschitz():
    grid = make_grid(np.full(3, -1.0), np.full(3, 1.0), 16)
    with pytest.raises(ValueError, match="lipschitz"):
        sparse_marching_cubes(_two_spheres, grid, lipschitz=0.0)
    with pytest.raises(ValueError, match="lipschitz"):
        ExtractConfig(lipschitz=-1.0)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads ru_maxrss in KiB (Linux)")
def test_sparse_1024_memory_bounded():
    # Resolution 1024 (the dense volume alone would take 4.3 GB): a sphere, evaluated sparsely.
    # Measured: 3.37 M evaluations (319x fewer), 2.47 M faces, peak RSS growth 0.52 GB (two slabs of
    # 33 planes of 1025^2 + the mesh); bound 1 GB.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    grid = make_grid(np.full(3, -1.0), np.full(3, 1.0), 1024)
    result = sparse_marching_cubes(lambda x: x.norm(dim=-1, keepdim=True) - 0.5, grid, lipschitz=1.0)
    grown_gb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**20
    assert len(result.mesh.faces) > 1_000_000
    assert result.num_evaluations < grid.num_points / 50
    assert grown_gb < 1.0, grown_gb
