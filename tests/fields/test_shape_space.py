"""Tests of learned shape spaces (``neural_sdf.fields.shape_space``), latent interpolation and their commands."""

from pathlib import Path

import numpy as np
import pytest
import torch

from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig, SamplingConfig, ShapeSpaceConfig, SirenConfig, TrainConfig
from neural_sdf.errors import InputError
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.fields.shape_space import ModulatedSiren, ShapeSpace, SpaceOptions, fit_latent, fit_shape_space, latent_of
from neural_sdf.geometry import Mesh, Normalization, PointCloud, fit_normalization
from neural_sdf.interpolate import interpolate_meshes, latent_model
from neural_sdf.reconstruct import extract_mesh

TINY_SIREN = SirenConfig(hidden_dim=32, num_hidden_layers=1)
TINY_SPACE = ShapeSpaceConfig(latent_dim=8, mapping_hidden_dim=32)


def _cloud(tm, n: int = 2000) -> PointCloud:
    return Mesh(tm.vertices, tm.faces).sample(n, seed=0)


def analytic_clouds() -> dict[str, PointCloud]:
    """Oriented clouds of a sphere, a cube and a torus, made in code."""
    import trimesh

    return {
        "sphere": _cloud(trimesh.creation.icosphere(3, 1.0)),
        "box": _cloud(trimesh.creation.box((1.5, 1.5, 1.5))),
        "torus": _cloud(trimesh.creation.torus(0.4, 0.15)),
    }


def random_space(num_shapes: int = 2, seed: int = 0) -> ShapeSpace:
    """An untrained space (random weights and codes): enough for file and baking properties."""
    torch.manual_seed(seed)
    net = ModulatedSiren(TINY_SIREN, TINY_SPACE).eval()
    with torch.no_grad():
        net.mapping[-1].bias.normal_(0.0, 0.5)
    latents = torch.randn(num_shapes, TINY_SPACE.latent_dim)
    norms = [Normalization((float(i), 0.0, 0.0), 1.0 + i) for i in range(num_shapes)]
    box = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])
    return ShapeSpace(net, latents, [f"s{i}" for i in range(num_shapes)], norms, np.stack([n.to_world(box) for n in norms]), {})


def test_bake_matches_modulated_network() -> None:
    space = random_space()
    x = torch.rand(200, 3) * 2 - 1
    for z in space.latents:
        with torch.no_grad():
            want = space.network(x, z)
            got = space.network.bake(z)(x)
        # Baking moves shift/w0 into the bias: equal up to float32 rounding of w0 * (b + s / w0).
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The conditioned network is the Siren core itself, not a copy of its code.
    assert type(space.network.siren).__name__ == "Siren"


def test_space_file_round_trip_and_kind_checks(tmp_path: Path) -> None:
    space = random_space(3)
    path = tmp_path / "s.nss"
    space.save(path)
    loaded = ShapeSpace.load(path)
    assert loaded.names == space.names and loaded.fingerprint == space.fingerprint
    torch.testing.assert_close(loaded.latents, space.latents)
    x = torch.rand(50, 3)
    with torch.no_grad():
        torch.testing.assert_close(loaded.network(x, loaded.latents[1]), space.network(x, space.latents[1]))
    # A shape decoded from the space is a plain SDF model that records its code.
    model = loaded.shape_model("s2")
    mpath = tmp_path / "m.nsdf"
    model.save(mpath)
    again = SDFModel.load(mpath)
    code, fingerprint = latent_of(again)
    torch.testing.assert_close(code, space.latents[2])
    assert fingerprint == space.fingerprint
    # The wrong kind of file, both ways.
    with pytest.raises(InputError, match="is an SDF model file, expected a shape space"):
        ShapeSpace.load(mpath)
    with pytest.raises(InputError, match="m.nss|s.nss"):
        SDFModel.load(path)
    with pytest.raises(InputError, match="no shape"):
        loaded.index("nope")


def test_fit_space_needs_two_shapes() -> None:
    cloud = analytic_clouds()["sphere"]
    with pytest.raises(InputError, match="at least 2 shapes"):
        fit_shape_space([cloud], progress=False)


def test_fit_latent_changes_only_the_code() -> None:
    space = random_space()
    before = {k: v.clone() for k, v in space.network.state_dict().items()}
    cloud = analytic_clouds()["torus"]
    model = fit_latent(cloud, space, TrainConfig(steps=5, lr=1e-3, checkpoint_every=0, log_every=1), SamplingConfig(batch_size=200), progress=False)
    for k, v in space.network.state_dict().items():
        assert torch.equal(v, before[k]), k
    code, _ = latent_of(model)
    assert not torch.allclose(code, space.latents.mean(dim=0))
    assert model.normalization == fit_normalization(cloud.points)
    assert all(p.requires_grad for p in space.network.parameters())


# ----------------------------------------------------------------------------- a trained tiny space
# Size measured on the 2-core development machine (shared, loaded): 3 shapes x 250 surface +
# 250 free-space samples per step, SIREN 32 wide with 1 hidden layer, latent size 8; 400 steps at
# lr 1e-3 take ~40 s of CPU time.
TRAIN = TrainConfig(steps=400, lr=1e-3, checkpoint_every=0, log_every=50)


@pytest.fixture(scope="module")
def trained_space() -> ShapeSpace:
    clouds = analytic_clouds()
    options = SpaceOptions(siren=TINY_SIREN, train=TRAIN, sampling=SamplingConfig(batch_size=250), space=TINY_SPACE)
    return fit_shape_space(list(clouds.values()), options, names=list(clouds), progress=False)


def _normalized_volume(model: SDFModel, res: int = 40) -> float:
    mesh = extract_mesh(model, ExtractConfig(resolution=res))
    assert not mesh.is_empty and mesh.to_trimesh().is_watertight
    # |volume|: the orientation of extracted faces is the core's business (tests/test_extract).
    return abs(float(mesh.to_trimesh().volume)) * model.normalization.scale**3


def test_trained_space_reproduces_its_shapes(trained_space: ShapeSpace) -> None:
    # Each shape is normalized so its longest side spans 1.8: the sphere's volume is then
    # 4/3 pi 0.9^3 = 3.05, the cube's 1.8^3 = 5.83, and the torus' 2 pi^2 R r^2 = 0.79
    # (R = 0.4, r = 0.15 scaled by 0.9 / 0.55).
    s = 0.9 / 0.55
    truth = {"sphere": 4 / 3 * np.pi * 0.9**3, "box": 1.8**3, "torus": 2 * np.pi**2 * 0.4 * s * (0.15 * s) ** 2}
    for name, want in truth.items():
        got = _normalized_volume(trained_space.shape_model(name))
        # Measured with this fixture: sphere 2.60 (-15 %), box 5.39 (-8 %), torus 0.87 (+10 %)
        # (a tiny network, briefly trained); 40 % leaves room for platform differences.
        assert abs(got - want) < 0.4 * want, (name, got, want)


@pytest.mark.parametrize("pair", [("sphere", "box"), ("sphere", "torus")])
def test_latent_interpolation_volumes_move_monotonically(trained_space: ShapeSpace, pair: tuple[str, str]) -> None:
    a, b = (trained_space.shape_model(n) for n in pair)
    # Measured with this fixture: sphere->box 2.60 3.19 3.97 4.69 5.39; sphere->torus 2.60 2.44
    # 2.06 1.71 0.87 (smallest step 0.16, against volumes accurate to a few 0.01 at resolution 40).
    volumes = [_normalized_volume(latent_model(trained_space, a, b, float(t))) for t in np.linspace(0, 1, 5)]
    steps = np.diff(volumes) * np.sign(volumes[-1] - volumes[0])
    assert np.all(steps > 0), volumes


def test_latent_frames_are_closed_surfaces(trained_space: ShapeSpace) -> None:
    a, b = trained_space.shape_model("box"), trained_space.shape_model("torus")
    frames = interpolate_meshes(a, b, 4, ExtractConfig(resolution=32), method="latent", space=trained_space, progress=False)
    for f in frames:
        assert not f.mesh.is_empty and f.mesh.to_trimesh().is_watertight, f.t


def test_latent_interpolation_rejects_models_of_another_space(trained_space: ShapeSpace) -> None:
    other = random_space().shape_model(0)
    with pytest.raises(InputError, match="different shape space"):
        latent_model(trained_space, trained_space.shape_model(0), other, 0.5)


# ----------------------------------------------------------------------------- command line
def _write_clouds(tmp_path: Path, names: list[str]) -> list[Path]:
    clouds = analytic_clouds()
    paths = []
    for n in names:
        p = tmp_path / f"{n}.npy"
        np.save(p, np.hstack([clouds[n].points, clouds[n].normals]))
        paths.append(p)
    return paths


def test_cli_fit_space_fit_latent_and_interpolate(tmp_path: Path) -> None:
    sphere, torus, box = _write_clouds(tmp_path, ["sphere", "torus", "box"])
    space, models = tmp_path / "s.nss", tmp_path / "models"
    tiny = ["--hidden-dim", "16", "--num-hidden-layers", "1", "--latent-dim", "4", "--mapping-hidden-dim", "16", "--batch-size", "100", "--quiet"]
    assert main(["fit-space", str(sphere), str(torus), "-o", str(space), "--models", str(models), "--steps", "150", *tiny]) == 0
    assert sorted(p.name for p in models.iterdir()) == ["sphere.nsdf", "torus.nsdf"]
    assert ShapeSpace.load(space).names == ["sphere", "torus"]
    out = tmp_path / "box.nsdf"
    assert main(["fit", str(box), "--space", str(space), "-o", str(out), "--steps", "3", "--batch-size", "100", "--quiet"]) == 0
    model = SDFModel.load(out)
    assert latent_of(model) is not None
    frames = tmp_path / "frames"
    rc = main(["interpolate", str(models / "sphere.nsdf"), str(out), "-o", str(frames), "--method", "latent", "--frames", "2", "--resolution", "16", "--keep-all-components", "--quiet"])
    # 150 steps of the tiny space give both endpoints a surface (5 steps did not, and the test then
    # accepted a failure): the latent walk must succeed and write both frames.
    assert rc == 0
    assert sorted(p.name for p in frames.glob("frame_*.ply")) == ["frame_000.ply", "frame_001.ply"]


def test_cli_rejects_wrong_kinds_and_single_shape(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (sphere,) = _write_clouds(tmp_path, ["sphere"])
    space_path, model_path = tmp_path / "s.nss", tmp_path / "m.nsdf"
    space = random_space()
    space.save(space_path)
    space.shape_model(0).save(model_path)

    def run(*argv: str) -> str:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        return err[0]

    assert "at least 2 shapes" in run("fit-space", str(sphere), "-o", str(tmp_path / "x.nss"))
    assert "is an SDF model file, expected a shape space" in run("fit", str(sphere), "--space", str(model_path), "-o", str(tmp_path / "y.nsdf"))
    assert "is a shape-space file, expected an SDF model" in run("interpolate", str(space_path), str(model_path), "-o", str(tmp_path / "f"))
    assert "s.nss" in run("extract", str(space_path), "-o", str(tmp_path / "z.ply"))
    assert not any((tmp_path / n).exists() for n in ("x.nss", "y.nsdf", "f", "z.ply"))
