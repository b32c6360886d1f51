"""The core commands (reconstruct, fit, extract, evaluate) and every bad input.

Bad input must give a non-zero exit, exactly one line on stderr naming the file and the problem,
no traceback, and no output file (nor temporary or checkpoint file) left behind. Most cases go
through ``cli.main``; a few go through the real ``neural-sdf`` console script in a subprocess.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_torus

from neural_sdf.cli import main
from neural_sdf.config import SirenConfig
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.geometry import Normalization
from neural_sdf.io import save_mesh, save_points
from neural_sdf.nn import Siren
from neural_sdf.sampling import sample_mesh_surface

# Tiny settings so that a run which (wrongly) got started would still end quickly.
TINY = ["--steps", "30", "--hidden-dim", "32", "--num-hidden-layers", "1", "--batch-size", "500", "--lr", "1e-3"]
TINY_MESH = ["--resolution", "24"]
CONSOLE = Path(sys.executable).with_name("neural-sdf")


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def work(tmp_path: Path) -> dict[str, Path]:
    """Inputs in ``tmp_path/in`` (good ones and every kind of bad one) and an empty ``tmp_path/out``."""
    import open3d as o3d
    import trimesh

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    torus = make_torus()
    cloud = sample_mesh_surface(torus, 2000, seed=0)
    pts, nrm = cloud.points, cloud.normals
    f: dict[str, Path] = {"src": src, "out": out}
    f["cloud"] = save_points(cloud, src / "torus.ply")
    f["gt"] = save_mesh(torus, src / "torus_gt.obj")
    f["missing"] = src / "missing.ply"
    f["directory"] = src / "folder.ply"
    f["directory"].mkdir()
    f["empty"] = src / "empty.xyz"
    f["empty"].write_bytes(b"")
    f["zero-byte ply"] = src / "zero.ply"
    f["zero-byte ply"].write_bytes(b"")
    blob = f["cloud"].read_bytes()
    f["truncated ply"] = src / "truncated.ply"
    f["truncated ply"].write_bytes(blob[: len(blob) * 2 // 3])
    f["garbage obj"] = src / "garbage.obj"
    f["garbage obj"].write_text("this is not a mesh\n")
    f["garbage stl"] = src / "garbage.stl"
    f["garbage stl"].write_text("solid? no\n")
    f["garbage pcd"] = src / "garbage.pcd"
    f["garbage pcd"].write_text("VERSION nonsense\n")
    f["unknown ext"] = src / "cloud.abc"
    f["unknown ext"].write_text("1 2 3\n")
    f["few points"] = src / "few.xyz"
    np.savetxt(f["few points"], np.hstack([pts[:4], nrm[:4]]))
    f["all nan"] = src / "nan.npy"
    np.save(f["all nan"], np.full((100, 6), np.nan))
    f["no faces"] = src / "nofaces.obj"
    trimesh.Trimesh(pts[:50], np.zeros((0, 3), dtype=int), process=False).export(str(f["no faces"]))
    f["zero normals"] = src / "zeronormals.ply"
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pcd.normals = o3d.utility.Vector3dVector(np.zeros_like(nrm))
    assert o3d.io.write_point_cloud(str(f["zero normals"]), pcd)
    f["foreign model"] = src / "foreign.nsdf"
    torch.save({"w": torch.zeros(3)}, f["foreign model"])
    f["a file"] = src / "regular_file"
    f["a file"].write_text("x")
    return f


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _assert_one_clean_error(rc: int, err: str, names: tuple[str, ...], words: tuple[str, ...]) -> None:
    assert rc != 0
    lines = err.splitlines()
    assert len(lines) == 1, err  # no progress bar, log line or warning besides the error
    assert "Traceback" not in err
    line = lines[0]
    assert any(n in line for n in names), line
    assert any(w.lower() in line.lower() for w in words), line


# (input key, words one of which the message must contain)
BAD_INPUTS = [
    ("missing", ("no such file",)),
    ("directory", ("directory",)),
    ("empty", ("empty",)),
    ("zero-byte ply", ("empty",)),
    ("truncated ply", ("length", "truncated", "parse")),
    ("garbage obj", ("no faces", "parse")),
    ("garbage stl", ("no faces", "parse")),
    ("garbage pcd", ("parse",)),
    ("unknown ext", ("unknown",)),
    ("few points", ("at least",)),
    ("all nan", ("finite",)),
    ("no faces", ("no faces",)),
    ("zero normals", ("normals",)),
]
# Extra flags per case. With the default --normals auto, a file whose normals are unusable
# gets estimated normals (with a warning); --normals given asks for the file's own normals, so
# zero-length ones are bad input.
EXTRA_FLAGS = {"zero normals": ["--normals", "given"]}


@pytest.mark.parametrize("command", ["reconstruct", "fit"])
@pytest.mark.parametrize("key,words", BAD_INPUTS, ids=[k for k, _ in BAD_INPUTS])
def test_bad_input_files(work, capsys, command: str, key: str, words: tuple[str, ...]) -> None:
    out = work["out"]
    target = out / ("mesh.ply" if command == "reconstruct" else "model.nsdf")
    extra = ["--model", out / "model.nsdf"] + TINY_MESH if command == "reconstruct" else []
    rc, stdout, err = _run([command, work[key], "-o", target, *TINY, *extra, *EXTRA_FLAGS.get(key, [])], capsys)
    _assert_one_clean_error(rc, err, (work[key].name,), words)
    assert rc == 2 and stdout == ""
    assert _files(out) == set()  # no output, temporary or checkpoint file


@pytest.mark.parametrize(
    "output,words",
    [
        ("out/nonexistent/mesh.ply", ("does not exist",)),
        ("in/regular_file/mesh.ply", ("not a folder",)),
        ("/proc/mesh.ply", ("cannot write",)),  # unwritable even for root
        ("out", ("directory", "extension")),
        ("out/mesh.xyz", ("unknown mesh extension",)),
    ],
)
def test_bad_output_paths(work, capsys, output: str, words: tuple[str, ...]) -> None:
    target = output if output.startswith("/") else str(work["src"].parent / output)
    rc, _, err = _run(["reconstruct", work["cloud"], "-o", target, *TINY, *TINY_MESH], capsys)
    _assert_one_clean_error(rc, err, (Path(target).name, target), words)
    assert _files(work["out"]) == set()
    assert not Path("/proc/mesh.ply").exists()


def test_bad_model_output_path_fails_before_fitting(work, capsys) -> None:
    rc, _, err = _run(["reconstruct", work["cloud"], "-o", work["out"] / "m.ply", "--model", "/proc/m.nsdf", *TINY], capsys)
    _assert_one_clean_error(rc, err, ("/proc/m.nsdf",), ("cannot write",))
    rc, _, err = _run(["fit", work["cloud"], "-o", work["a file"] / "m.nsdf", *TINY], capsys)
    _assert_one_clean_error(rc, err, ("m.nsdf",), ("not a folder",))
    assert _files(work["out"]) == set()


@pytest.mark.parametrize("key", ["foreign model", "cloud", "missing", "directory", "empty"])
def test_extract_rejects_files_that_are_not_our_models(work, capsys, key: str) -> None:
    rc, _, err = _run(["extract", work[key], "-o", work["out"] / "mesh.ply", *TINY_MESH], capsys)
    _assert_one_clean_error(rc, err, (work[key].name,), ("model", "no such file", "directory", "empty"))
    assert _files(work["out"]) == set()


@pytest.mark.parametrize("which", ["pred", "gt"])
@pytest.mark.parametrize("key", ["missing", "garbage obj", "no faces", "cloud", "unknown ext"])
def test_evaluate_bad_meshes(work, capsys, which: str, key: str) -> None:
    pred, gt = (work[key], work["gt"]) if which == "pred" else (work["gt"], work[key])
    rc, stdout, err = _run(["evaluate", pred, gt], capsys)
    _assert_one_clean_error(rc, err, (work[key].name,), ("no such", "no faces", "parse", "unknown", "extension"))
    assert stdout == ""


def test_model_without_zero_crossing_gives_an_error_and_no_file(work, capsys) -> None:
    # Reference-code trap: a failing marching cubes swallowed by a bare except wrote an empty mesh.
    torch.manual_seed(0)
    net = Siren(SirenConfig(hidden_dim=8, num_hidden_layers=1))
    with torch.no_grad():
        net.last.weight.zero_()
        net.last.bias.fill_(1.0)  # f = 1 everywhere: no surface
    model = SDFModel(net, Normalization((0.0, 0.0, 0.0), 1.0), np.array([[-0.5] * 3, [0.5] * 3]), {})
    model.save(work["src"] / "flat.nsdf")
    rc, _, err = _run(["extract", work["src"] / "flat.nsdf", "-o", work["out"] / "mesh.ply", *TINY_MESH, "--quiet"], capsys)
    # Extraction did run here, so a warning line may precede the error; the error is the last line.
    assert rc == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert "error" in last and "flat.nsdf" in last and "zero crossing" in last
    assert _files(work["out"]) == set()


def test_invalid_options(work, capsys) -> None:
    rc, _, err = _run(["reconstruct", work["cloud"], "-o", work["out"] / "m.ply", "--steps", "0"], capsys)
    _assert_one_clean_error(rc, err, ("steps",), ("steps must be",))
    if not torch.cuda.is_available():
        rc, _, err = _run(["fit", work["cloud"], "-o", work["out"] / "m.nsdf", "--device", "cuda", *TINY], capsys)
        _assert_one_clean_error(rc, err, ("--device cuda",), ("not available",))
    assert _files(work["out"]) == set()


def test_reconstruct_extract_evaluate_end_to_end(work, capsys) -> None:
    out = work["out"]
    rc, stdout, err = _run(
        ["reconstruct", work["cloud"], "-o", out / "mesh.obj", "--model", out / "m.nsdf", *TINY, *TINY_MESH, "--quiet"], capsys
    )
    assert rc == 0, err
    assert err == "" and stdout == ""  # --quiet: no progress bar, no info lines
    assert _files(out) == {"mesh.obj", "m.nsdf"}  # the checkpoint is gone once the fit completes
    rc, _, err = _run(["extract", out / "m.nsdf", "-o", out / "again.ply", "--resolution", "24"], capsys)
    assert rc == 0, err
    assert "wrote" in err  # not quiet: an info line on stderr
    rc, stdout, err = _run(["evaluate", out / "again.ply", out / "mesh.obj", "--json"], capsys)
    assert rc == 0, err
    data = json.loads(stdout)
    for key in ("chamfer_l1", "hausdorff", "chamfer_l1_rel", "hausdorff_rel", "fscore", "normal_consistency", "definition"):
        assert key in data
    assert set(data["fscore"]) == {"0.5%", "1%"}
    # Same model, same grid: extracting twice gives the same surface.
    assert data["fscore"]["1%"] > 0.99
    rc, stdout, _ = _run(["evaluate", out / "mesh.obj", work["gt"]], capsys)
    assert rc == 0 and "F-score @1%" in stdout and "definition" in stdout
    rc, stdout, err = _run(["evaluate", out / "again.ply", out / "mesh.obj", "--json", "--exact", "--samples", "2000"], capsys)
    assert rc == 0, err
    data = json.loads(stdout)
    # Exact distances never count fewer hits than nearest samples (those are upper bounds); with
    # 2,000 samples the nearest-sample F at 0.5% is below the exact one here.
    assert set(data["fscore_exact"]) == {"0.5%", "1%"}
    assert all(data["fscore_exact"][k] >= data["fscore"][k] for k in data["fscore"])
    assert data["fscore_exact"]["0.5%"] > data["fscore"]["0.5%"], data


def test_fit_shows_progress_unless_quiet(work, capsys) -> None:
    out = work["out"]
    rc, _, err = _run(["fit", work["cloud"], "-o", out / "m.nsdf", *TINY, "--no-checkpoint"], capsys)
    assert rc == 0 and "fit" in err and "step" in err  # tqdm bar (label, unit) on stderr
    rc, _, err = _run(["fit", work["cloud"], "-o", out / "m2.nsdf", *TINY, "--no-checkpoint", "--quiet"], capsys)
    assert rc == 0 and err == ""
    assert SDFModel.load(out / "m.nsdf").info["num_points"] == 2000


CONSOLE_CASES = [
    (["reconstruct", "{missing}", "-o", "{out}/m.ply"], "missing.ply", "no such file"),
    (["reconstruct", "{garbage obj}", "-o", "{out}/m.ply"], "garbage.obj", "no faces"),
    (["fit", "{garbage pcd}", "-o", "{out}/m.nsdf"], "garbage.pcd", "parse"),
    (["reconstruct", "{cloud}", "-o", "/proc/m.ply"], "/proc/m.ply", "cannot write"),
    (["extract", "{foreign model}", "-o", "{out}/m.ply"], "foreign.nsdf", "not a neural_sdf model"),
]


@pytest.mark.parametrize("argv,name,words", CONSOLE_CASES, ids=["missing", "garbage-obj", "garbage-pcd", "proc", "foreign-model"])
def test_console_script_bad_input(work, argv: list[str], name: str, words: str) -> None:
    assert CONSOLE.exists(), f"{CONSOLE} is not installed (pip install -e .)"
    keys = {k: str(v) for k, v in work.items()}
    args = [a.format(**keys) for a in argv]
    flags = TINY if args[0] in ("reconstruct", "fit") else TINY_MESH
    proc = subprocess.run([str(CONSOLE), *args, *flags], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and name in lines[0] and words in lines[0].lower()
    assert proc.stdout == ""
    assert _files(work["out"]) == set()


def test_explicit_w0_first_is_kept_on_a_sparse_cloud(tmp_path: Path, capsys) -> None:
    # A 2,000-point cloud is sparse: the recipe lowers the first-layer w0 to 30, unless --w0-first
    # says otherwise (FitOptions.adapt_w0).
    cloud = tmp_path / "torus.ply"
    save_points(sample_mesh_surface(make_torus(), 2000, seed=0), cloud)
    for flags, expected in (([], 30.0), (["--w0-first", "45"], 45.0)):
        out = tmp_path / f"m{len(flags)}.nsdf"
        rc, _, err = _run(["fit", cloud, "-o", out, "--steps", "2", "--quiet", "--no-checkpoint", *flags], capsys)
        assert rc == 0, err
        assert SDFModel.load(out).info["options"]["siren"]["w0_first"] == expected


def test_explicit_weight_normal_is_kept_for_estimated_normals(tmp_path: Path, capsys) -> None:
    # A cloud without normals gets the paper's normal weight 100, unless --weight-normal says
    # otherwise (FitOptions.adapt_normal_weight).
    cloud = tmp_path / "torus.xyz"
    np.savetxt(cloud, sample_mesh_surface(make_torus(), 2000, seed=0).points)
    for flags, expected in (([], 100.0), (["--weight-normal", "1000"], 1000.0)):
        out = tmp_path / f"m{len(flags)}.nsdf"
        rc, _, err = _run(["fit", cloud, "-o", out, "--steps", "2", "--quiet", "--no-checkpoint", *flags], capsys)
        assert rc == 0, err
        assert SDFModel.load(out).info["options"]["weights"]["normal"] == expected


def test_target_faces_simplifies_the_written_mesh(work, capsys) -> None:
    import trimesh

    out = work["out"]
    rc, _, err = _run(["reconstruct", work["cloud"], "-o", out / "full.ply", "--model", out / "m.nsdf", *TINY, "--resolution", "48", "--quiet"], capsys)
    assert rc == 0, err
    rc, _, err = _run(["extract", out / "m.nsdf", "-o", out / "small.ply", "--resolution", "48", "--target-faces", "400", "--quiet"], capsys)
    assert rc == 0, err
    full, small = trimesh.load(out / "full.ply"), trimesh.load(out / "small.ply")
    assert len(full.faces) > 2000 and 300 <= len(small.faces) <= 400
    # The simplified surface stays on the full one: median within 1% of the diagonal (measured: 0.28%).
    d = np.abs(trimesh.proximity.signed_distance(full, small.sample(500, seed=0)))
    assert np.median(d) < 0.01 * np.linalg.norm(full.extents)


@pytest.mark.parametrize("value", ["-5", "2"])
def test_target_faces_rejects_impossible_counts(work, capsys, value: str) -> None:
    rc, _, err = _run(["reconstruct", work["cloud"], "-o", work["out"] / "m.ply", *TINY, "--target-faces", value], capsys)
    _assert_one_clean_error(rc, err, ("target_faces",), ("target_faces must be",))
    assert _files(work["out"]) == set()


def test_library_parameters_are_said_as_flags():
    # The library names parameters (`max_points`, `normals='given'`); the CLI says its flags.
    from neural_sdf.cli import _parser_flags, build_parser, flag_text

    flags = _parser_flags(build_parser())
    cases = {
        "`cleanup=False` keeps them": "--no-cleanup keeps them",
        "x.ply: `normals='given'`, but": "x.ply: --normals given, but",
        "e.g. `columns='x y z nx ny nz'`": "e.g. --columns 'x y z nx ny nz'",
        "`ray_address=10.0.0.5:6379`: cannot": "--ray 10.0.0.5:6379: cannot",
        "raise `max_outlier_share`": "raise --max-outlier-share",
        "`voxel_size=0.01`: 900 points": "--voxel-size 0.01: 900 points",
        "`weights.normal` too high": "--weight-normal too high",
        "fit it first (`fit_latent`)": "fit it first (`fit_latent`)",  # not a flag: left as it is
    }
    for library, command in cases.items():
        assert flag_text(library, flags) == command


def test_log_lines_follow_stderr_after_the_command(monkeypatch) -> None:
    # The CLI's log handler must not keep the stderr it started with: a caller that swaps stderr
    # (a test's capture) closes it, and later library log lines then failed with "I/O operation on
    # closed file" tracebacks.
    import io
    import logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    assert main(["reconstruct", "/nonexistent/cloud.ply", "-o", "/nonexistent/out.ply"]) == 2
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("neural_sdf.cleanup").warning("after the command")
    assert second.getvalue() == "neural-sdf: after the command\n"
