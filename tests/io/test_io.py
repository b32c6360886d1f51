"""Loaders and writers: round trips for every format, object inputs, bad files, atomic writes.

Test files are written with the libraries (Open3D, trimesh, numpy), never typed by hand, except
where a hand-written file is the point (garbage text, a truncated file).
"""

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neural_sdf.errors import InputError
from neural_sdf.geometry import Mesh, PointCloud
from neural_sdf.io import atomic_write, check_writable, load_mesh, load_points, save_mesh, save_points
from neural_sdf.io.checkpoint import load_model_file, save_model_file

N = 400


@pytest.fixture
def oriented() -> tuple[np.ndarray, np.ndarray]:
    """``N`` points on the unit sphere (seed 0) with outward unit normals, float64."""
    rng = np.random.default_rng(0)
    p = rng.normal(size=(N, 3))
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    return n * 1.0, n.copy()


def _o3d_cloud(points: np.ndarray, normals: np.ndarray | None):
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    if normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(normals)
    return pcd


def _write_o3d(path: Path, points: np.ndarray, normals: np.ndarray | None, ascii: bool) -> Path:
    import open3d as o3d

    assert o3d.io.write_point_cloud(str(path), _o3d_cloud(points, normals), write_ascii=ascii)
    return path


# Open3D writes ASCII coordinates with ~1e-7 relative precision (measured max error 5e-7 on
# the unit sphere), binary ones as doubles (exact).
@pytest.mark.parametrize("ascii", [True, False], ids=["ascii", "binary"])
@pytest.mark.parametrize("with_normals", [True, False], ids=["normals", "no-normals"])
def test_ply_cloud_round_trip(tmp_path: Path, oriented, ascii: bool, with_normals: bool) -> None:
    pts, nrm = oriented
    path = _write_o3d(tmp_path / "c.ply", pts, nrm if with_normals else None, ascii)
    cloud = load_points(path)
    atol = 2e-6 if ascii else 0.0
    np.testing.assert_allclose(cloud.points, pts, atol=atol, rtol=0)
    if with_normals:
        assert cloud.normals is not None
        np.testing.assert_allclose(cloud.normals, nrm, atol=2 * atol + 1e-12, rtol=0)
    else:
        assert cloud.normals is None


def test_trimesh_ply_cloud(tmp_path: Path, oriented) -> None:
    import trimesh

    pts, _ = oriented
    trimesh.PointCloud(pts).export(str(tmp_path / "t.ply"))
    cloud = load_points(tmp_path / "t.ply")
    np.testing.assert_allclose(cloud.points, pts, atol=1e-6)  # trimesh stores float32
    assert cloud.normals is None


@pytest.mark.parametrize("ascii", [True, False], ids=["ascii", "binary"])
def test_pcd_round_trip(tmp_path: Path, oriented, ascii: bool) -> None:
    pts, nrm = oriented
    cloud = load_points(_write_o3d(tmp_path / "c.pcd", pts, nrm, ascii))
    np.testing.assert_allclose(cloud.points, pts, atol=1e-6)
    np.testing.assert_allclose(cloud.normals, nrm, atol=1e-6)


def test_pts_round_trip(tmp_path: Path, oriented) -> None:
    pts, _ = oriented
    cloud = load_points(_write_o3d(tmp_path / "c.pts", pts, None, True))
    np.testing.assert_allclose(cloud.points, pts, atol=1e-9)
    assert cloud.normals is None


@pytest.mark.parametrize("columns", [3, 6])
def test_xyz_round_trip(tmp_path: Path, oriented, columns: int) -> None:
    pts, nrm = oriented
    data = pts if columns == 3 else np.hstack([pts, nrm])
    np.savetxt(tmp_path / "c.xyz", data)
    cloud = load_points(tmp_path / "c.xyz")
    np.testing.assert_allclose(cloud.points, pts, rtol=1e-15)
    assert (cloud.normals is not None) == (columns == 6)
    if columns == 6:
        np.testing.assert_allclose(cloud.normals, nrm, atol=1e-12)


@pytest.mark.parametrize("columns", [3, 6])
def test_npy_round_trip(tmp_path: Path, oriented, columns: int) -> None:
    pts, nrm = oriented
    np.save(tmp_path / "c.npy", pts if columns == 3 else np.hstack([pts, nrm]).astype(np.float32))
    cloud = load_points(tmp_path / "c.npy")
    np.testing.assert_allclose(cloud.points, pts, atol=1e-6)
    assert cloud.points.dtype == np.float64
    assert (cloud.normals is not None) == (columns == 6)


@pytest.mark.parametrize("with_normals", [True, False])
def test_npz_round_trip(tmp_path: Path, oriented, with_normals: bool) -> None:
    pts, nrm = oriented
    arrays = {"points": pts, "normals": nrm} if with_normals else {"points": pts}
    np.savez(tmp_path / "c.npz", **arrays)
    cloud = load_points(tmp_path / "c.npz")
    np.testing.assert_array_equal(cloud.points, pts)
    if with_normals:
        np.testing.assert_allclose(cloud.normals, nrm, atol=1e-15)
    else:
        assert cloud.normals is None


@pytest.mark.parametrize("ext", [".ply", ".xyz", ".npz"])
def test_save_points_round_trip(tmp_path: Path, oriented, ext: str) -> None:
    pts, nrm = oriented
    out = save_points(PointCloud(pts, nrm), tmp_path / f"c{ext}")
    cloud = load_points(out)
    np.testing.assert_allclose(cloud.points, pts, atol=1e-8)
    np.testing.assert_allclose(cloud.normals, nrm, atol=1e-8)
    assert [p.name for p in tmp_path.iterdir()] == [f"c{ext}"]  # no temporary left


@pytest.mark.parametrize("ext", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_mesh_formats_load_and_sample_outward(tmp_path: Path, icosphere: Mesh, ext: str) -> None:
    path = tmp_path / f"m{ext}"
    icosphere.to_trimesh().export(str(path))
    mesh = load_mesh(path)
    assert len(mesh.faces) == len(icosphere.faces)
    tm = mesh.to_trimesh()
    # Winding survives every format: the signed volume stays positive and equal (float32 formats: ~1e-7).
    assert tm.volume == pytest.approx(icosphere.to_trimesh().volume, rel=1e-5)
    if ext != ".stl":  # STL stores three corners per triangle; the others share vertices
        assert len(mesh.vertices) == len(icosphere.vertices)
        assert tm.is_watertight
    cloud = load_points(path, num_mesh_samples=3000, seed=1)
    assert len(cloud) == 3000 and cloud.normals is not None
    r = np.linalg.norm(cloud.points, axis=1)
    assert r.max() <= 1.0 + 1e-6 and r.min() > 0.98  # on the facets of a subdivided unit icosphere
    radial = cloud.points / r[:, None]
    # Face normals of an icosphere (3 subdivisions) are within ~5 degrees of the radial direction.
    assert np.einsum("ij,ij->i", cloud.normals, radial).min() > 0.99
    again = load_points(path, num_mesh_samples=3000, seed=1)
    np.testing.assert_array_equal(again.points, cloud.points)


@pytest.mark.parametrize("ext", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_save_mesh_round_trip(tmp_path: Path, box: Mesh, ext: str) -> None:
    out = save_mesh(box, tmp_path / f"b{ext}")
    mesh = load_mesh(out)
    assert mesh.to_trimesh().volume == pytest.approx(6.0, rel=1e-6)
    np.testing.assert_allclose(np.sort(mesh.vertices, axis=0)[[0, -1]], [[-0.5, -1, -1.5], [0.5, 1, 1.5]], atol=1e-6)


def test_object_and_array_inputs(icosphere: Mesh, oriented) -> None:
    import open3d as o3d
    import trimesh

    pts, nrm = oriented
    for src in (np.hstack([pts, nrm]), PointCloud(pts, nrm), _o3d_cloud(pts, nrm)):
        cloud = load_points(src)
        np.testing.assert_allclose(cloud.points, pts)
        np.testing.assert_allclose(cloud.normals, nrm, atol=1e-12)
    for src in (pts, trimesh.PointCloud(pts), _o3d_cloud(pts, None)):
        cloud = load_points(src)
        np.testing.assert_allclose(cloud.points, pts, atol=1e-6)
        assert cloud.normals is None
    tm = icosphere.to_trimesh()
    om = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(icosphere.vertices), o3d.utility.Vector3iVector(icosphere.faces))
    for src in (icosphere, tm, om):
        mesh = load_mesh(src)
        np.testing.assert_array_equal(mesh.faces, icosphere.faces)
        cloud = load_points(src, num_mesh_samples=500)
        assert len(cloud) == 500 and np.einsum("ij,ij->i", cloud.normals, cloud.points).min() > 0.9
    with pytest.raises(TypeError):
        load_points(object())
    with pytest.raises(TypeError):
        load_mesh(object())


def test_non_finite_points_dropped_with_warning(oriented, caplog) -> None:
    pts, nrm = oriented
    pts = pts.copy()
    pts[:10, 1] = np.nan
    pts[10, 0] = np.inf
    with caplog.at_level(logging.WARNING):
        cloud = load_points(np.hstack([pts, nrm]))
    assert len(cloud) == N - 11
    assert "dropped 11" in caplog.text


def test_normals_normalized_and_zero_normals_dropped(oriented, caplog) -> None:
    pts, nrm = oriented
    nrm = nrm * 3.0
    nrm[:5] = 0.0
    with caplog.at_level(logging.WARNING):
        cloud = load_points(np.hstack([pts, nrm]))
    assert len(cloud) == N - 5 and "zero-length" in caplog.text
    np.testing.assert_allclose(np.linalg.norm(cloud.normals, axis=1), 1.0)


# ---------------------------------------------------------------------------------- bad files
def _bad_files(tmp: Path, oriented) -> dict[str, tuple[Path, str]]:
    """Name -> (path, a fragment the error message must contain). Each file is bad on its own."""
    import trimesh

    pts, nrm = oriented
    files: dict[str, tuple[Path, str]] = {}
    files["missing"] = (tmp / "missing.ply", "no such file")
    (tmp / "folder.ply").mkdir()
    files["directory"] = (tmp / "folder.ply", "directory")
    (tmp / "empty.xyz").write_bytes(b"")
    files["empty"] = (tmp / "empty.xyz", "empty")
    (tmp / "zero.ply").write_bytes(b"")
    files["zero-byte ply"] = (tmp / "zero.ply", "empty")
    blob = _write_o3d(tmp / "full.ply", pts, nrm, ascii=False).read_bytes()
    (tmp / "truncated.ply").write_bytes(blob[: len(blob) // 2])
    files["truncated binary ply"] = (tmp / "truncated.ply", "truncated.ply")
    text = _write_o3d(tmp / "full_ascii.ply", pts, nrm, ascii=True).read_bytes()
    (tmp / "truncated_ascii.ply").write_bytes(text[: len(text) // 2])
    files["truncated ascii ply"] = (tmp / "truncated_ascii.ply", "truncated")
    for ext in (".obj", ".ply", ".stl", ".off", ".glb"):
        (tmp / f"garbage{ext}").write_text("this is not a mesh\nat all\n")
        files[f"garbage {ext}"] = (tmp / f"garbage{ext}", f"garbage{ext}")
    (tmp / "cloud.abc").write_text("1 2 3\n")
    files["unknown extension"] = (tmp / "cloud.abc", "unknown")
    np.savetxt(tmp / "few.xyz", np.hstack([pts[:5], nrm[:5]]))
    files["too few points"] = (tmp / "few.xyz", "at least")
    np.savetxt(tmp / "nan.xyz", np.full((50, 6), np.nan))
    files["all-NaN"] = (tmp / "nan.xyz", "finite")
    trimesh.Trimesh(pts, np.zeros((0, 3), dtype=int), process=False).export(str(tmp / "nofaces.obj"))
    files["mesh with no faces"] = (tmp / "nofaces.obj", "no faces")
    np.savetxt(tmp / "zeronormals.xyz", np.hstack([pts, np.zeros_like(pts)]))
    files["zero-length normals"] = (tmp / "zeronormals.xyz", "normals")
    np.save(tmp / "pickled.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    files["pickled npy"] = (tmp / "pickled.npy", "pickled.npy")
    np.save(tmp / "four.npy", np.zeros((20, 4)))
    files["npy with 4 columns"] = (tmp / "four.npy", "(N, 3)")
    np.savez(tmp / "nopoints.npz", xyz=pts)
    files["npz without points"] = (tmp / "nopoints.npz", "points")
    trimesh.Trimesh(np.zeros((3, 3)), [[0, 1, 2]], process=False).export(str(tmp / "degenerate.obj"))
    files["zero-area mesh"] = (tmp / "degenerate.obj", "positive area")
    return files


BAD_NAMES = [
    "missing", "directory", "empty", "zero-byte ply", "truncated binary ply", "truncated ascii ply",
    "garbage .obj", "garbage .ply", "garbage .stl", "garbage .off", "garbage .glb", "unknown extension",
    "too few points", "all-NaN", "mesh with no faces", "zero-length normals", "pickled npy",
    "npy with 4 columns", "npz without points", "zero-area mesh",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path, oriented, name: str) -> None:
    path, fragment = _bad_files(tmp_path, oriented)[name]
    with pytest.raises(InputError) as info:
        load_points(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert fragment.lower() in message.lower(), message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["truncated binary ply", "truncated ascii ply", "garbage .obj", "mesh with no faces", "zero-area mesh"])
def test_bad_mesh_files(tmp_path: Path, oriented, name: str) -> None:
    path, _ = _bad_files(tmp_path, oriented)[name]
    with pytest.raises(InputError, match=str(path)):
        load_mesh(path)


def test_ply_point_cloud_is_not_a_mesh(tmp_path: Path, oriented) -> None:
    path = _write_o3d(tmp_path / "cloud.ply", *oriented, ascii=False)
    with pytest.raises(InputError, match="no faces"):
        load_mesh(path)


# ---------------------------------------------------------------------------------- outputs
def test_check_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="does not exist"):
        check_writable(tmp_path / "nope" / "out.ply")
    with pytest.raises(InputError, match="not a folder"):
        check_writable(tmp_path / "file" / "out.ply")
    with pytest.raises(InputError, match="directory"):
        check_writable(tmp_path)
    # Tests run as root, for whom os.access says every folder is writable; /proc is not, even for root.
    with pytest.raises(InputError, match="/proc"):
        check_writable("/proc/out.ply")
    assert check_writable(tmp_path / "ok.ply") == tmp_path / "ok.ply"
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # the probe leaves nothing behind


def test_atomic_write_failure_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "mesh.ply"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half a mesh")
            raise RuntimeError("writer died mid-way")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_failure_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "model.nsdf"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"new but unfinished")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_write_of_nothing_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="no data"):
        with atomic_write(tmp_path / "x.ply"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_save_mesh_interrupted_mid_export(tmp_path: Path, box: Mesh, monkeypatch) -> None:
    import trimesh

    def dying_export(self, file_obj=None, file_type=None, **kw):
        Path(file_obj).write_bytes(b"ply\nformat binary_little_endian 1.0\n")  # half a header
        raise MemoryError("killed during export")

    monkeypatch.setattr(trimesh.Trimesh, "export", dying_export)
    (tmp_path / "b.ply").write_bytes(b"previous result")
    with pytest.raises(MemoryError):
        save_mesh(box, tmp_path / "b.ply")
    assert (tmp_path / "b.ply").read_bytes() == b"previous result"
    with pytest.raises(MemoryError):
        save_mesh(box, tmp_path / "new.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.ply"]


def test_atomic_output_keeps_umask_permissions(tmp_path: Path, box: Mesh) -> None:
    out = save_mesh(box, tmp_path / "b.ply")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_mesh_rejects_bad_requests(tmp_path: Path, box: Mesh) -> None:
    with pytest.raises(InputError, match="unknown mesh extension"):
        save_mesh(box, tmp_path / "b.xyz")
    with pytest.raises(InputError, match="empty mesh"):
        save_mesh(Mesh(np.zeros((0, 3))), tmp_path / "b.ply")
    with pytest.raises(InputError, match="does not exist"):
        save_mesh(box, tmp_path / "no" / "b.ply")
    with pytest.raises(InputError, match="cannot write point clouds"):
        save_points(PointCloud(np.zeros((3, 3))), tmp_path / "c.pcd")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------- model files
def test_model_file_round_trip(tmp_path: Path) -> None:
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(4, dtype=torch.float64)}
    meta = {"kind": "sdf", "nested": {"x": [1, 2.5, "s"]}}
    save_model_file(tmp_path / "m.weird-extension", tensors, meta)
    got, got_meta = load_model_file(tmp_path / "m.weird-extension")
    assert got_meta == meta
    for k in tensors:
        torch.testing.assert_close(got[k], tensors[k])


def test_model_files_that_are_not_ours(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    with open(tmp_path / "pickle.nsdf", "wb") as fh:
        pickle.dump({"w": Payload()}, fh)
    torch.save({"w": torch.zeros(3)}, tmp_path / "torch.nsdf")
    save_file({"w": torch.zeros(3)}, str(tmp_path / "foreign.nsdf"), metadata={"format": "someone.else/1"})
    save_file({"w": torch.zeros(3)}, str(tmp_path / "untagged.nsdf"))
    (tmp_path / "random.nsdf").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "empty.nsdf").write_bytes(b"")
    for name in ("pickle.nsdf", "torch.nsdf", "foreign.nsdf", "untagged.nsdf", "random.nsdf", "empty.nsdf"):
        with pytest.raises(InputError, match=name):
            load_model_file(tmp_path / name)
    assert not marker.exists()  # loading ran no code
