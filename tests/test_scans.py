"""Raw scans end to end: the normal-free fit, merged partial scans, and bad input on the CLI."""

import numpy as np
import pytest

from neural_sdf.cleanup import ScanConfig
from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig, SamplingConfig, SirenConfig, TrainConfig
from neural_sdf.extract import connected_components
from neural_sdf.geometry import Mesh, PointCloud
from neural_sdf.metrics import evaluate_meshes
from neural_sdf.reconstruct import FitOptions, reconstruct
from neural_sdf.sampling import sample_mesh_surface

TINY = ["--hidden-dim", "32", "--num-hidden-layers", "2", "--steps", "150", "--batch-size", "1000", "--resolution", "40", "--no-checkpoint", "--quiet"]


def _torus() -> Mesh:
    import trimesh

    tm = trimesh.creation.torus(major_radius=0.4, minor_radius=0.15, major_sections=48, minor_sections=24)
    return Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))


def test_normal_free_fit_reaches_chamfer_on_torus():
    # 4.3 s on the 2-core CPU (one thread); it once took 7.6 min at load ~18 and was marked slow.
    gt = _torus()
    cloud = PointCloud(sample_mesh_surface(gt, 4000, seed=0).points)  # no normals
    options = FitOptions(
        siren=SirenConfig(hidden_dim=32, num_hidden_layers=2),
        train=TrainConfig(steps=200, checkpoint_every=0),
        sampling=SamplingConfig(batch_size=1000),
        scan=ScanConfig(normals="none"),
    )
    result = reconstruct(cloud, options, ExtractConfig(resolution=48), progress=False)
    m = evaluate_meshes(result.mesh, gt, num_samples=20_000)
    print(f"normal-free torus: Chamfer-L1 {m.chamfer_l1_rel:.5f} of the diagonal, NC {m.normal_consistency:.4f}")
    # Measured at these tiny settings: Chamfer-L1 0.0116 of the diagonal, normal consistency
    # 0.857, and 2 connected pieces (a double sheet around part of the tube: the normal-free
    # field is partly unsigned after 200 steps). Thresholds with margin; the pieces are only
    # bounded, since one piece is not reached here.
    assert m.chamfer_l1_rel < 0.02, m.chamfer_l1_rel
    assert int(connected_components(result.mesh).max()) + 1 <= 3
    # The sign fix: negative inside the tube, positive in the hole and far out (a flipped or
    # unsigned field would meet the Chamfer bar with the same zero set).
    values = result.model.network_sdf(np.array([[0.4, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.6]]))
    assert values[0] < 0 < min(values[1], values[2]), values


def test_cli_reconstructs_two_partial_scans_without_normals(tmp_path):
    pts = sample_mesh_surface(_torus(), 6000, seed=0).points
    a, b = tmp_path / "left.xyz", tmp_path / "right.xyz"
    np.savetxt(a, pts[pts[:, 0] < 0.05])  # overlapping halves, no normals
    np.savetxt(b, pts[pts[:, 0] > -0.05])
    out = tmp_path / "merged.ply"
    assert main(["reconstruct", str(a), str(b), "-o", str(out), *TINY]) == 0
    from neural_sdf.io import load_mesh

    mesh = load_mesh(out)
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert lo[0] < -0.45 and hi[0] > 0.45  # both halves are in the one mesh


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_cli_plane_is_a_clear_error(tmp_path, capsys):
    src = tmp_path / "flat.xyz"
    np.savetxt(src, np.c_[np.random.default_rng(0).uniform(size=(500, 2)), np.zeros(500)])
    out = tmp_path / "flat.ply"
    assert main(["reconstruct", str(src), "-o", str(out), *TINY]) == 2
    line = _one_error_line(capsys)
    assert "flat.xyz" in line and "plane" in line
    assert not out.exists()


def test_cli_unreadable_second_input_is_named(tmp_path, capsys):
    good, bad = tmp_path / "good.xyz", tmp_path / "bad.xyz"
    np.savetxt(good, sample_mesh_surface(_torus(), 500, seed=0).points)
    bad.write_text("0 0 0\nnot a number\n")
    out = tmp_path / "m.ply"
    assert main(["reconstruct", str(good), str(bad), "-o", str(out), *TINY]) == 2
    assert "bad.xyz" in _one_error_line(capsys)
    assert not out.exists()


def test_cli_zero_normals_with_given_is_an_error(tmp_path, capsys):
    src = tmp_path / "zero.xyz"
    np.savetxt(src, np.c_[sample_mesh_surface(_torus(), 500, seed=0).points, np.zeros((500, 3))])
    out = tmp_path / "m.ply"
    assert main(["reconstruct", str(src), "-o", str(out), "--normals", "given", *TINY]) == 2
    line = _one_error_line(capsys)
    assert "zero.xyz" in line and "normals" in line
    assert not out.exists()


def test_cli_rejects_unknown_normals_mode(tmp_path, capsys):
    src = tmp_path / "t.xyz"
    np.savetxt(src, sample_mesh_surface(_torus(), 500, seed=0).points)
    assert main(["fit", str(src), "-o", str(tmp_path / "m.nsdf"), "--normals", "guess", *TINY[:-4], "--quiet"]) == 2
    assert "normals must be one of" in _one_error_line(capsys)


@pytest.mark.parametrize("flag", ["--denoise", "--no-denoise"])
def test_cli_denoise_flags_parse(flag):
    from neural_sdf.cli import _fit_options, build_parser

    args = build_parser().parse_args(["fit", "x.xyz", "-o", "m.nsdf", flag])
    assert _fit_options(args).scan.denoise is (flag == "--denoise")


def _poisson_depth9(cloud: PointCloud) -> Mesh:
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.normals = o3d.utility.Vector3dVector(cloud.normals)
    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=9)
    dens = np.asarray(dens)
    mesh.remove_vertices_by_mask(dens < np.quantile(dens, 0.05))
    return Mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64))


def test_noisy_thin_plate_with_exact_normals_beats_poisson():
    # A plate 3.3% of its diagonal thick, 30k points with 0.5% noise and the exact face normals,
    # through the whole pipeline as a file would go (--normals auto). The old check compared the
    # normals with re-estimated ones and re-oriented all of them on such input (a thin CAD part
    # came out as a blob three times its volume). Measured: normal consistency 0.984 against
    # Poisson depth 9's 0.925 on the same points (F@0.5% 0.974 against 0.906).
    import dataclasses

    from neural_sdf.synthetic import box_mesh

    gt = box_mesh((0.0, 0.0, 0.0), (1.0, 0.7, 0.04))
    exact = sample_mesh_surface(gt, 30_000, seed=0)
    diag = float(np.linalg.norm(np.ptp(gt.vertices, axis=0)))
    cloud = PointCloud(exact.points + np.random.default_rng(1).normal(0, 0.005 * diag, exact.points.shape), exact.normals)
    options = FitOptions()
    options = dataclasses.replace(options, train=dataclasses.replace(options.train, steps=200, checkpoint_every=0))
    result = reconstruct(cloud, options, ExtractConfig(resolution=128), progress=False)
    ours = evaluate_meshes(result.mesh, gt, num_samples=50_000)
    theirs = evaluate_meshes(_poisson_depth9(cloud), gt, num_samples=50_000)
    assert ours.normal_consistency >= theirs.normal_consistency, (ours.normal_consistency, theirs.normal_consistency)
    assert int(connected_components(result.mesh).max()) + 1 == 1
