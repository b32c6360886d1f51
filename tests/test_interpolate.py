"""Tests of SDF blending (``neural_sdf.interpolate``) and the ``interpolate`` command.

The endpoint models are exact one-layer SIRENs built by hand (no training), so these tests are
fast and deterministic: with ``w0_first = 1``, first-layer weights ``diag(k)`` and phases ``pi/2``,
the network is ``f(x) = c - sum_i cos(k_i x_i)``, whose zero set is a closed convex surface close
to the ellipsoid ``sum_i k_i^2 x_i^2 = 2 (3 - c)`` (normalized units).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig, SirenConfig
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.geometry import Normalization
from neural_sdf.interpolate import blend_mesh, blend_sdf, frame_times, interpolate_meshes, interpolated_normalization
from neural_sdf.nn import Siren
from neural_sdf.reconstruct import extract_mesh

RES = 32
"""Grid resolution of the tests' extractions (cells of ~0.06 normalized units)."""


def cosine_model(k: tuple[float, float, float], c: float, center: tuple[float, float, float], scale: float, hidden: int = 3) -> SDFModel:
    """A hand-built SIREN SDF ``c - sum cos(k_i x_i)`` (normalized frame) placed in the world by ``center``, ``scale``.

    ``hidden > 3`` pads the network with inert units, to give two models different configurations.
    """
    net = Siren(SirenConfig(hidden_dim=hidden, num_hidden_layers=0, w0_first=1.0))
    with torch.no_grad():
        net.layers[0].linear.weight.zero_()
        net.layers[0].linear.bias.fill_(math.pi / 2)
        net.layers[0].linear.weight[:3, :3] = torch.diag(torch.tensor(k))
        net.last.weight.zero_()
        net.last.weight[0, :3] = -1.0
        net.last.bias.fill_(c)
    norm = Normalization(center=center, scale=scale)
    # Half-extents of the surface in normalized units (small-angle estimate, plus margin).
    half = np.sqrt(2 * (3 - c)) / np.asarray(k) + 0.1
    box = norm.to_world(np.stack([-half, half]))
    return SDFModel(net.eval(), norm, box, {"source": "analytic"})


@pytest.fixture
def model_a() -> SDFModel:
    """A near-sphere of radius ~0.6 normalized units, at the world origin, 1 world unit = 1 normalized."""
    return cosine_model((1.0, 1.0, 1.0), 3 - 0.18, (0.0, 0.0, 0.0), 1.0)


@pytest.fixture
def model_b() -> SDFModel:
    """A flattened ellipsoid in another world frame (centre (5, 0, 0), half the scale) and a wider network."""
    return cosine_model((1.0, 1.5, 2.5), 3 - 0.18, (5.0, 0.0, 0.0), 0.5, hidden=8)


def _points(n: int = 500, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 3))


def test_blend_endpoints_equal_models_exactly(model_a: SDFModel, model_b: SDFModel) -> None:
    x = torch.as_tensor(_points(), dtype=torch.float32)
    for align in (True, False):
        b0, b1 = blend_sdf(model_a, model_b, 0.0, align), blend_sdf(model_a, model_b, 1.0, align)
        with torch.no_grad():
            assert torch.equal(b0(x), model_a.field()(x))
            assert torch.equal(b1(x), model_b.field()(x))
        world_a = model_a.normalization.to_world(_points())
        world_b = model_b.normalization.to_world(_points())
        np.testing.assert_array_equal(b0.sdf(world_a), model_a.sdf(world_a))
        np.testing.assert_array_equal(b1.sdf(world_b), model_b.sdf(world_b))
        assert b0.normalization == model_a.normalization and b1.normalization == model_b.normalization


def test_blend_is_convex_combination_in_aligned_frame(model_a: SDFModel, model_b: SDFModel) -> None:
    x = torch.as_tensor(_points(), dtype=torch.float32)
    t = 0.3
    with torch.no_grad():
        expected = 0.7 * model_a.field()(x) + 0.3 * model_b.field()(x)
        torch.testing.assert_close(blend_sdf(model_a, model_b, t)(x), expected)


def test_blend_in_world_frame_mixes_world_distances(model_a: SDFModel) -> None:
    # Same world region, different normalizations: the world blend mixes world distances.
    other = cosine_model((1.0, 1.5, 2.5), 3 - 0.18, (0.1, 0.0, 0.0), 0.8)
    blend = blend_sdf(model_a, other, 0.4, align=False)
    pts = np.random.default_rng(1).uniform(-0.5, 0.5, (300, 3))
    expected = 0.6 * model_a.sdf(pts) + 0.4 * other.sdf(pts)
    # float32 networks; 1e-5 world units is ~100x their rounding here.
    np.testing.assert_allclose(blend.sdf(pts), expected, atol=1e-5)


def test_blend_mesh_endpoints_equal_extracted_models(model_a: SDFModel, model_b: SDFModel) -> None:
    cfg = ExtractConfig(resolution=RES)
    for t, m in ((0.0, model_a), (1.0, model_b)):
        got, want = blend_mesh(model_a, model_b, t, cfg), extract_mesh(m, cfg)
        np.testing.assert_array_equal(got.vertices, want.vertices)
        np.testing.assert_array_equal(got.faces, want.faces)


def test_blend_frames_are_closed_and_move_between_frames(model_a: SDFModel, model_b: SDFModel) -> None:
    cfg = ExtractConfig(resolution=RES)
    frames = interpolate_meshes(model_a, model_b, 5, cfg, progress=False)
    assert [f.t for f in frames] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for f in frames:
        tm = f.mesh.to_trimesh()
        assert not f.mesh.is_empty, f.t
        assert tm.is_watertight, f"frame t={f.t} is not closed"
        # The frame's world placement follows interpolated_normalization: its centre moves on
        # the line from A's centre (0,0,0) to B's (5,0,0), within a grid cell (both shapes are
        # symmetric about their centres).
        centre = tm.bounds.mean(axis=0)
        norm = interpolated_normalization(model_a.normalization, model_b.normalization, f.t)
        cell = 2.0 / (RES - 1) / norm.scale
        np.testing.assert_allclose(centre, [5.0 * f.t, 0.0, 0.0], atol=cell)


def test_blend_handles_different_network_configurations(model_a: SDFModel, model_b: SDFModel) -> None:
    assert model_a.network.config != model_b.network.config
    mesh = blend_mesh(model_a, model_b, 0.5, ExtractConfig(resolution=RES))
    assert not mesh.is_empty and mesh.to_trimesh().is_watertight


def test_blend_and_frames_reject_bad_arguments(model_a: SDFModel, model_b: SDFModel) -> None:
    for t in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="t must be in"):
            blend_sdf(model_a, model_b, t)
    for k in (0, 1):
        with pytest.raises(ValueError, match="frames"):
            frame_times(k)
    with pytest.raises(ValueError, match="method"):
        interpolate_meshes(model_a, model_b, 3, method="warp")  # type: ignore[arg-type]


def test_blend_without_latent_codes_cannot_walk_a_space(model_a: SDFModel, model_b: SDFModel) -> None:
    with pytest.raises(ValueError, match="needs the shape space"):
        interpolate_meshes(model_a, model_b, 3, method="latent")


# ----------------------------------------------------------------------------- command line
@pytest.fixture
def model_files(tmp_path: Path, model_a: SDFModel, model_b: SDFModel) -> tuple[Path, Path]:
    a, b = tmp_path / "a.nsdf", tmp_path / "b.nsdf"
    model_a.save(a)
    model_b.save(b)
    return a, b


def test_cli_interpolate_writes_k_closed_meshes(tmp_path: Path, model_files: tuple[Path, Path]) -> None:
    import trimesh

    out = tmp_path / "frames"
    rc = main(["interpolate", str(model_files[0]), str(model_files[1]), "-o", str(out), "--frames", "4", "--resolution", str(RES), "--quiet"])
    assert rc == 0
    meshes = sorted(out.glob("frame_*.ply"))
    assert [m.name for m in meshes] == [f"frame_{i:03d}.ply" for i in range(4)]
    for m in meshes:
        tm = trimesh.load(m, process=False)
        assert len(tm.faces) > 0 and tm.is_watertight
    record = json.loads((out / "frames.json").read_text())
    assert [f["t"] for f in record["frames"]] == pytest.approx([0, 1 / 3, 2 / 3, 1])


@pytest.mark.parametrize("frames", ["0", "1"])
def test_cli_interpolate_rejects_too_few_frames(tmp_path: Path, model_files: tuple[Path, Path], frames: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "frames"
    rc = main(["interpolate", str(model_files[0]), str(model_files[1]), "-o", str(out), "--frames", frames])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and f"--frames {frames}" in err[0]
    assert not out.exists()


def test_cli_interpolate_rejects_missing_and_non_model_files(tmp_path: Path, model_files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "frames"
    missing = tmp_path / "nope.nsdf"
    assert main(["interpolate", str(missing), str(model_files[1]), "-o", str(out)]) == 2
    assert "nope.nsdf: no such file" in capsys.readouterr().err
    junk = tmp_path / "junk.nsdf"
    junk.write_bytes(b"not a model")
    assert main(["interpolate", str(model_files[0]), str(junk), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.nsdf" in err[0]
    assert not out.exists()


def test_cli_latent_method_needs_models_from_a_space(tmp_path: Path, model_files: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "frames"
    rc = main(["interpolate", str(model_files[0]), str(model_files[1]), "-o", str(out), "--method", "latent"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no latent code" in err[0] and "a.nsdf" in err[0]
    assert not out.exists()


def test_cli_interpolate_render_writes_pictures_and_gif(tmp_path: Path, model_files: tuple[Path, Path]) -> None:
    """Renders through Open3D, each picture in a fresh watched child process (21-25 s for the test
    here, 2026-11-29; was slow while all frames shared one process, where the CPU driver hangs)."""
    import imageio.v3 as iio

    out = tmp_path / "frames"
    rc = main(["interpolate", str(model_files[0]), str(model_files[1]), "-o", str(out), "--frames", "3", "--resolution", str(RES), "--render", "--size", "96x72", "--quiet"])
    assert rc == 0
    pngs = sorted(out.glob("frame_*.png"))
    assert len(pngs) == 3
    gif = iio.imread(out / "interpolation.gif", index=None)
    assert gif.shape[0] == 4 and gif.shape[1:3] == (72, 96)  # forth and back: 0 1 2 1
    # Something was drawn: not every pixel is the white background.
    assert (iio.imread(pngs[1])[..., :3] < 250).any()
