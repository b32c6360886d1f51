"""Scene-scan formats: LAS/LAZ, E57, PCD with a viewpoint, coloured PLY, text files with any columns.

Every file is written with the real library (laspy, pye57, Open3D, trimesh, numpy) and read back
through ``load_points``; coordinates sit at geo-referenced offsets (636,000 / 849,000), where a
float32 step anywhere in a reader would lose decimetres, and are compared to the millimetre.
Headers are edited by hand only where the point is the header (a PCD's VIEWPOINT and HEIGHT).
"""

import logging
from pathlib import Path

import numpy as np
import pytest

from neural_sdf.cleanup import ScanConfig, prepare_cloud
from neural_sdf.cli import main
from neural_sdf.errors import InputError
from neural_sdf.geometry import PointCloud
from neural_sdf.io import load_points
from neural_sdf.normals import orient_normals, orient_towards

OFFSET = np.array([636000.123, 849000.456, 400.789])
MM = 1e-3
SCENES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "scenes"
TINY = ["--steps", "30", "--hidden-dim", "32", "--num-hidden-layers", "1", "--batch-size", "500", "--no-checkpoint"]


def _geo_points(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points on a millimetre grid within 100 units of ``OFFSET``, float64."""
    rng = np.random.default_rng(seed)
    return OFFSET + rng.integers(0, 100_000, (n, 3)) * MM


def _float32_loses_millimetres(points: np.ndarray) -> bool:
    return float(np.abs(points.astype(np.float32).astype(np.float64) - points).max()) > MM


# --- LAS / LAZ -------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_laz_keep_float64_coordinates_and_attributes(tmp_path: Path, ext: str) -> None:
    laspy = pytest.importorskip("laspy")
    n = 500
    rng = np.random.default_rng(1)
    xyz = _geo_points(n)
    assert _float32_loses_millimetres(xyz)  # so the comparison below can catch a float32 path
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets = np.array([636000.123, 849000.456, 400.0])
    header.scales = np.array([MM, MM, MM])
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz.T
    intensity = rng.integers(0, 65535, n).astype(np.uint16)
    classification = rng.integers(0, 10, n).astype(np.uint8)
    returns = rng.integers(1, 4, n).astype(np.uint8)
    rgb = rng.integers(0, 65535, (n, 3)).astype(np.uint16)
    las.intensity, las.classification, las.return_number = intensity, classification, returns
    las.red, las.green, las.blue = rgb.T
    las.write(str(tmp_path / f"tile{ext}"))

    cloud = load_points(tmp_path / f"tile{ext}")
    assert cloud.points.dtype == np.float64 and len(cloud) == n
    np.testing.assert_allclose(cloud.points, xyz, atol=MM / 10, rtol=0)
    assert cloud.normals is None and cloud.viewpoint is None
    np.testing.assert_array_equal(cloud.up, [0.0, 0.0, 1.0])  # LAS z is elevation
    np.testing.assert_array_equal(cloud.attributes["intensity"], intensity)
    np.testing.assert_array_equal(cloud.attributes["classification"], classification)
    np.testing.assert_array_equal(cloud.attributes["return_number"], returns)
    np.testing.assert_array_equal(cloud.attributes["rgb"], rgb)


def test_missing_scan_backend_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    import sys

    path = tmp_path / "tile.las"
    path.write_bytes(b"LASF" + bytes(400))
    monkeypatch.setitem(sys.modules, "laspy", None)  # makes "import laspy" raise ImportError
    with pytest.raises(ImportError, match=r"neural-sdf\[scans\]"):
        load_points(path)


# --- E57 -------------------------------------------------------------------------------------


def _e57_scan(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    # Local coordinates on a 1/1024 grid: exact in the float32 that pye57 writes them as.
    xyz = rng.integers(-4096, 4096, (n, 3)) / 1024.0
    invalid = np.zeros(n, dtype=np.int8)
    invalid[::10] = 2  # every 10th point has no valid coordinates
    xyz[invalid > 0] = 1000.0  # far away: a reader that keeps them fails the comparison
    return {
        "cartesianX": xyz[:, 0], "cartesianY": xyz[:, 1], "cartesianZ": xyz[:, 2],
        "intensity": rng.random(n).astype(np.float32),
        "colorRed": rng.integers(0, 256, n).astype(np.uint8),
        "colorGreen": rng.integers(0, 256, n).astype(np.uint8),
        "colorBlue": rng.integers(0, 256, n).astype(np.uint8),
        "cartesianInvalidState": invalid,
    }


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_e57_scans_are_posed_into_one_frame(tmp_path: Path) -> None:
    pye57 = pytest.importorskip("pye57")
    rng = np.random.default_rng(2)
    a, b = _e57_scan(100, rng), _e57_scan(60, rng)
    angle = np.pi / 6
    path = tmp_path / "site.e57"
    with pye57.E57(str(path), mode="w") as e57:
        e57.write_scan_raw(a)  # identity pose
        e57.write_scan_raw(b, rotation=np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)]), translation=OFFSET)

    def expected(scan: dict, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
        valid = scan["cartesianInvalidState"] == 0
        local = np.column_stack([scan[k] for k in ("cartesianX", "cartesianY", "cartesianZ")])[valid]
        return local @ rotation.T + translation

    cloud = load_points(path)
    want = np.vstack([expected(a, np.eye(3), np.zeros(3)), expected(b, _rot_z(angle), OFFSET)])
    assert cloud.points.dtype == np.float64 and len(cloud) == 90 + 54
    np.testing.assert_allclose(cloud.points, want, atol=MM / 10, rtol=0)
    np.testing.assert_array_equal(cloud.attributes["scan_index"], np.repeat([0, 1], [90, 54]))
    valid_a, valid_b = a["cartesianInvalidState"] == 0, b["cartesianInvalidState"] == 0
    np.testing.assert_array_equal(cloud.attributes["intensity"], np.concatenate([a["intensity"][valid_a], b["intensity"][valid_b]]))
    rgb = [np.column_stack([s[c][v] for c in ("colorRed", "colorGreen", "colorBlue")]) for s, v in ((a, valid_a), (b, valid_b))]
    np.testing.assert_array_equal(cloud.attributes["rgb"], np.vstack(rgb))
    assert cloud.viewpoint is None  # two scanner positions: no single viewpoint


def test_e57_single_scan_viewpoint_is_the_scanner_position(tmp_path: Path) -> None:
    pye57 = pytest.importorskip("pye57")
    path = tmp_path / "one.e57"
    with pye57.E57(str(path), mode="w") as e57:
        e57.write_scan_raw(_e57_scan(50, np.random.default_rng(3)), rotation=np.array([1.0, 0.0, 0.0, 0.0]), translation=OFFSET)
    cloud = load_points(path)
    assert len(cloud) == 45 and "scan_index" not in cloud.attributes
    np.testing.assert_allclose(cloud.viewpoint, OFFSET, atol=MM / 10, rtol=0)


# --- PCD -------------------------------------------------------------------------------------


def _write_pcd(path: Path, points: np.ndarray, viewpoint: str | None = None, shape: tuple[int, int] | None = None) -> Path:
    """Write float64 points with Open3D, then set the header's VIEWPOINT and WIDTH/HEIGHT."""
    import open3d as o3d

    cloud = o3d.t.geometry.PointCloud(o3d.core.Tensor(np.ascontiguousarray(points)))
    assert o3d.t.io.write_point_cloud(str(path), cloud, write_ascii=False)
    blob = path.read_bytes()
    head, data = blob.split(b"\nDATA ", 1)
    head = head.decode("ascii")
    assert "VIEWPOINT 0 0 0 1 0 0 0" in head and f"WIDTH {len(points)}\nHEIGHT 1" in head
    if viewpoint is not None:
        head = head.replace("VIEWPOINT 0 0 0 1 0 0 0", f"VIEWPOINT {viewpoint}")
    if shape is not None:
        head = head.replace(f"WIDTH {len(points)}\nHEIGHT 1", f"WIDTH {shape[1]}\nHEIGHT {shape[0]}")
    path.write_bytes(head.encode("ascii") + b"\nDATA " + data)
    return path


@pytest.mark.parametrize(
    "viewpoint,shape,expected",
    [
        (None, None, None),  # PCL's default VIEWPOINT on an unorganized cloud: unknown
        ("12.5 -3 7 1 0 0 0", None, (12.5, -3.0, 7.0)),
        ("0 0 0 0 1 0 0", None, (0.0, 0.0, 0.0)),  # not the default (rotated): the sensor is known
        (None, (20, 15), (0.0, 0.0, 0.0)),  # organized depth frame: camera at the origin
    ],
    ids=["default", "viewpoint", "rotated-origin", "organized"],
)
def test_pcd_viewpoint_and_float64(tmp_path: Path, viewpoint, shape, expected) -> None:
    points = _geo_points(300, seed=4)
    assert _float32_loses_millimetres(points)
    cloud = load_points(_write_pcd(tmp_path / "c.pcd", points, viewpoint, shape))
    np.testing.assert_allclose(cloud.points, points, atol=MM / 10, rtol=0)
    if expected is None:
        assert cloud.viewpoint is None
    else:
        np.testing.assert_array_equal(cloud.viewpoint, expected)


def test_organized_pcd_drops_pixels_without_depth(tmp_path: Path, caplog) -> None:
    points = _geo_points(300, seed=5)
    points[::7] = np.nan
    with caplog.at_level(logging.INFO, logger="neural_sdf"):
        cloud = load_points(_write_pcd(tmp_path / "frame.pcd", points, shape=(20, 15)))
    finite = np.all(np.isfinite(points), axis=1)
    np.testing.assert_allclose(cloud.points, points[finite], atol=MM / 10, rtol=0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # missing depth is not a defect
    assert any("without depth" in r.getMessage() for r in caplog.records)


def test_coloured_pcd_and_ply_keep_points_normals_and_colours(tmp_path: Path) -> None:
    import open3d as o3d
    import trimesh

    rng = np.random.default_rng(6)
    points = _geo_points(200, seed=6)
    normals = rng.normal(size=(200, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    colours = rng.integers(0, 256, (200, 3)) / 255.0
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.normals = o3d.utility.Vector3dVector(normals)
    pcd.colors = o3d.utility.Vector3dVector(colours)
    assert o3d.io.write_point_cloud(str(tmp_path / "c.ply"), pcd)  # double xyz, uchar colours
    ply = load_points(tmp_path / "c.ply")
    np.testing.assert_allclose(ply.points, points, atol=MM / 10, rtol=0)
    np.testing.assert_allclose(ply.normals, normals, atol=1e-9)
    np.testing.assert_array_equal(ply.attributes["rgb"], np.round(colours * 255))

    rgba = rng.integers(0, 256, (200, 4)).astype(np.uint8)
    trimesh.PointCloud(points, colors=rgba).export(str(tmp_path / "t.ply"))  # float32 xyz: trimesh's choice
    tri = load_points(tmp_path / "t.ply")
    np.testing.assert_array_equal(tri.attributes["rgb"], rgba[:, :3])
    np.testing.assert_array_equal(tri.attributes["alpha"], rgba[:, 3])

    assert o3d.io.write_point_cloud(str(tmp_path / "c.pcd"), pcd)  # float32 xyz, packed rgb
    coloured = load_points(tmp_path / "c.pcd")
    np.testing.assert_allclose(coloured.points, points.astype(np.float32), atol=1e-9, rtol=0)
    np.testing.assert_allclose(coloured.normals, normals, atol=1e-6)
    np.testing.assert_array_equal(coloured.attributes["rgb"], np.round(colours * 255))


def test_ply_extra_vertex_properties_become_attributes(tmp_path: Path) -> None:
    n = 50
    points = _geo_points(n, seed=7)
    vertex = np.zeros(n, dtype=[("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("intensity", "<f4"), ("label", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = points.T
    vertex["intensity"] = np.arange(n) / 4
    vertex["label"] = np.arange(n) % 3
    header = "ply\nformat binary_little_endian 1.0\nelement vertex %d\n" % n + "".join(
        f"property {t} {k}\n" for t, k in (("double", "x"), ("double", "y"), ("double", "z"), ("float", "intensity"), ("uchar", "label"))
    ) + "end_header\n"
    (tmp_path / "e.ply").write_bytes(header.encode() + vertex.tobytes())
    cloud = load_points(tmp_path / "e.ply")
    np.testing.assert_allclose(cloud.points, points, atol=MM / 10, rtol=0)
    np.testing.assert_array_equal(cloud.attributes["intensity"], np.arange(n) / 4)
    np.testing.assert_array_equal(cloud.attributes["label"], np.arange(n) % 3)


# --- Text files ------------------------------------------------------------------------------


def test_cloudcompare_xyzrgba_without_header_loads(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(8)
    points = _geo_points(100, seed=8)
    rgba = rng.integers(0, 256, (100, 4))
    np.savetxt(tmp_path / "cc.txt", np.hstack([points, rgba]), fmt=["%.3f"] * 3 + ["%d"] * 4)
    with caplog.at_level(logging.INFO, logger="neural_sdf"):
        guessed = load_points(tmp_path / "cc.txt")
    np.testing.assert_allclose(guessed.points, points, atol=MM / 10, rtol=0)
    assert guessed.normals is None
    assert sorted(guessed.attributes) == ["column_4", "column_5", "column_6", "column_7"]
    assert any("x y z column_4" in r.getMessage() for r in caplog.records)  # says what it took

    named = load_points(tmp_path / "cc.txt", columns="x y z r g b a")
    np.testing.assert_allclose(named.points, points, atol=MM / 10, rtol=0)
    np.testing.assert_array_equal(named.attributes["rgb"], rgba[:, :3])
    np.testing.assert_array_equal(named.attributes["alpha"], rgba[:, 3])

    skipped = load_points(tmp_path / "cc.txt", columns="x y z - - - intensity")
    assert list(skipped.attributes) == ["intensity"]
    np.testing.assert_array_equal(skipped.attributes["intensity"], rgba[:, 3])


HEADERS = {
    "cloudcompare-csv": ("//X,Y,Z,R,G,B,A", ",", "xyz rgb a"),
    "cloudcompare-floats": ("//X Y Z Rf Gf Bf Af Nx Ny Nz", " ", "xyz rgb a n"),
    "plain-normals": ("x y z nx ny nz", " ", "xyz n"),
    "tab-intensity": ("X\tY\tZ\tIntensity", "\t", "xyz i"),
    "semicolon-normals": ("x;y;z;nx;ny;nz", ";", "xyz n"),
    "reordered": ("intensity, nx, ny, nz, x, y, z", ", ", "i n xyz"),
}


@pytest.mark.parametrize("key", list(HEADERS))
def test_text_header_names_the_columns(tmp_path: Path, key: str) -> None:
    header, sep, layout = HEADERS[key]
    rng = np.random.default_rng(9)
    n = 60
    points = _geo_points(n, seed=9)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    rgb, alpha, intensity = rng.random((n, 3)), rng.random(n), rng.integers(0, 4000, n).astype(float)
    blocks = {"xyz": points, "rgb": rgb, "a": alpha[:, None], "n": normals, "i": intensity[:, None]}
    data = np.hstack([blocks[b] for b in layout.split()])
    np.savetxt(tmp_path / "h.csv", data, fmt="%.6f", delimiter=sep, header=header, comments="")
    cloud = load_points(tmp_path / "h.csv")
    np.testing.assert_allclose(cloud.points, points, atol=MM / 10, rtol=0)
    parts = layout.split()
    if "n" in parts:
        np.testing.assert_allclose(cloud.normals, normals, atol=1e-5)
    else:
        assert cloud.normals is None
    if "rgb" in parts:
        np.testing.assert_allclose(cloud.attributes["rgb"], rgb, atol=1e-6)
        np.testing.assert_allclose(cloud.attributes["alpha"], alpha, atol=1e-6)
    if "i" in parts:
        np.testing.assert_array_equal(cloud.attributes["intensity"], intensity)


def test_six_unnamed_columns_are_normals_only_when_unit_length(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    points = _geo_points(80, seed=10)
    normals = rng.normal(size=(80, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    np.savetxt(tmp_path / "n.xyz", np.hstack([points, normals]), fmt="%.6f")
    with_normals = load_points(tmp_path / "n.xyz")
    np.testing.assert_allclose(with_normals.normals, normals, atol=1e-5)
    colours = rng.integers(0, 256, (80, 3))
    np.savetxt(tmp_path / "c.xyz", np.hstack([points, colours]), fmt="%.3f")
    coloured = load_points(tmp_path / "c.xyz")
    assert coloured.normals is None
    np.testing.assert_array_equal(np.column_stack([coloured.attributes[f"column_{j}"] for j in (4, 5, 6)]), colours)
    np.testing.assert_allclose(coloured.points, points, atol=MM / 10, rtol=0)


def test_pts_with_count_line_and_intensity_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    points = _geo_points(40, seed=11)
    irgb = np.column_stack([rng.integers(-2000, 2000, 40), rng.integers(0, 256, (40, 3))])
    body = np.hstack([points, irgb])
    np.savetxt(tmp_path / "scan.pts", body, fmt=["%.3f"] * 3 + ["%d"] * 4, header="40", comments="")
    cloud = load_points(tmp_path / "scan.pts")
    np.testing.assert_allclose(cloud.points, points, atol=MM / 10, rtol=0)
    np.testing.assert_array_equal(cloud.attributes["intensity"], irgb[:, 0])
    np.testing.assert_array_equal(cloud.attributes["rgb"], irgb[:, 1:])


# --- Viewpoint, orientation ------------------------------------------------------------------


def test_point_cloud_carries_attributes_and_viewpoint_through_subset() -> None:
    points = np.arange(30.0).reshape(10, 3)
    plain = PointCloud(points, np.tile([0.0, 0.0, 1.0], (10, 1)))  # positional form still works
    assert plain.attributes == {} and plain.viewpoint is None
    cloud = PointCloud(points, None, {"intensity": np.arange(10), "rgb": np.arange(30).reshape(10, 3)}, [1, 2, 3])
    sub = cloud.subset(np.arange(10) % 2 == 0)
    np.testing.assert_array_equal(sub.attributes["intensity"], [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(sub.attributes["rgb"], np.arange(30).reshape(10, 3)[::2])
    np.testing.assert_array_equal(sub.viewpoint, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="attribute 'bad'"):
        PointCloud(points, None, {"bad": np.zeros(9)})
    with pytest.raises(ValueError, match="viewpoint"):
        PointCloud(points, None, {}, [1.0, 2.0])


def test_orient_towards_flips_exactly_the_normals_facing_away() -> None:
    rng = np.random.default_rng(12)
    points = rng.normal(size=(500, 3)) + [0.0, 0.0, 5.0]
    normals = rng.normal(size=(500, 3))
    view = np.array([0.5, -1.0, 0.0])
    out = orient_towards(points, normals, view)
    facing = np.sum((view - points) * normals, axis=1) >= 0
    np.testing.assert_array_equal(out[facing], normals[facing])
    np.testing.assert_array_equal(out[~facing], -normals[~facing])
    assert np.all(np.sum((view - points) * out, axis=1) >= 0)


def _corner_frame(height: int = 36, width: int = 48) -> np.ndarray:
    """An organized depth frame (camera at the origin, looking along +z) into a tilted corner.

    The corner is concave towards the camera: its convex hull's faces on the two walls face away
    from the camera, so hull-based outward orientation turns the normals away from it.
    """
    u, v = np.meshgrid(np.linspace(-0.8, 0.8, width), np.linspace(-0.6, 0.6, height), indexing="xy")
    depth = 3.0 - 1.2 * np.abs(u) + 0.4 * v
    points = np.stack([u * depth, v * depth, depth], axis=-1).reshape(-1, 3)
    points[::23] = np.nan  # pixels without depth
    return points


def test_estimated_normals_face_the_camera_of_an_organized_frame(tmp_path: Path, caplog) -> None:
    points = _corner_frame()
    path = _write_pcd(tmp_path / "corner.pcd", points, shape=(36, 48))
    with caplog.at_level(logging.INFO, logger="neural_sdf"):
        prepared = prepare_cloud(path, ScanConfig(normals="estimate"), progress=False)
    cloud = prepared.cloud
    assert prepared.normals_from == "estimated" and len(cloud) > 1500
    np.testing.assert_array_equal(cloud.viewpoint, [0.0, 0.0, 0.0])
    assert np.all(np.sum((0.0 - cloud.points) * cloud.normals, axis=1) > 0)
    assert any("towards the sensor" in r.getMessage() for r in caplog.records)
    # Without the viewpoint the propagation + hull rule turns most of them away from the camera
    # (measured: none face it), so the assertion above depends on the viewpoint being used.
    hull_oriented = orient_normals(cloud.points, cloud.normals)
    assert np.mean(np.sum(-cloud.points * hull_oriented, axis=1) > 0) < 0.5


def test_given_normals_facing_a_known_sensor_are_kept() -> None:
    points = _corner_frame()
    points = points[np.all(np.isfinite(points), axis=1)]
    from neural_sdf.normals import estimate_normals

    normals = orient_towards(points, estimate_normals(points), np.zeros(3))
    config = ScanConfig(normals="auto", cleanup=False)
    known = prepare_cloud(PointCloud(points, normals, {}, np.zeros(3)), config, progress=False)
    assert known.normals_from == "given"
    np.testing.assert_allclose(known.cloud.normals, normals, atol=1e-12)
    unknown = prepare_cloud(PointCloud(points, normals), config, progress=False)
    assert unknown.normals_from == "given-flipped"  # what the viewpoint prevents


def test_merged_inputs_keep_only_a_shared_viewpoint() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3)) + 3.0
    config = ScanConfig(normals="none", cleanup=False)
    same = prepare_cloud([PointCloud(a, viewpoint=[0, 0, -5]), PointCloud(b, viewpoint=[0, 0, -5])], config, progress=False)
    np.testing.assert_array_equal(same.cloud.viewpoint, [0.0, 0.0, -5.0])
    differ = prepare_cloud([PointCloud(a, viewpoint=[0, 0, -5]), PointCloud(b, viewpoint=[1, 0, -5])], config, progress=False)
    assert differ.cloud.viewpoint is None
    partly = prepare_cloud([PointCloud(a, viewpoint=[0, 0, -5]), PointCloud(b)], config, progress=False)
    assert partly.cloud.viewpoint is None


# --- Real scenes (../shared) -----------------------------------------------------------------


REAL_SCENES = {
    # file: (points, extent or None, viewpoint or None)
    "autzen_trim.laz": (110_000, (1177.46, 562.70, 114.25), None),
    "table_scene_mug_stereo_textured.pcd": (209_280, None, (0.0, 0.0, 0.0)),
    "milk_cartoon_all_small_clorox.pcd": (241_407, None, (0.0, 0.0, 0.0)),
}


@pytest.mark.parametrize("name", list(REAL_SCENES))
def test_real_scene_files_load(name: str) -> None:
    path = SCENES / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared data set is not checked out next to the repository)")
    count, extent, viewpoint = REAL_SCENES[name]
    cloud = load_points(path)
    assert len(cloud) == count and cloud.points.dtype == np.float64
    assert np.all(np.isfinite(cloud.points))
    if extent is not None:
        np.testing.assert_allclose(cloud.points.max(axis=0) - cloud.points.min(axis=0), extent, atol=0.01)
        # Geo-referenced: points around (636000, 849000, 400) with a 0.01 scale, kept to the centimetre.
        assert np.all(np.abs(cloud.points[:, :2] - [636_600, 849_200]) < 1000)
        np.testing.assert_allclose(cloud.points * 100, np.round(cloud.points * 100), atol=1e-4)
    if viewpoint is None:
        assert cloud.viewpoint is None
    else:
        np.testing.assert_array_equal(cloud.viewpoint, viewpoint)
    assert "rgb" in cloud.attributes and cloud.attributes["rgb"].shape == (count, 3)


# --- Bad input on the CLI --------------------------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, list[str], str]]:
    """Name -> (file, extra flags, a phrase the one error line must contain)."""
    laspy = pytest.importorskip("laspy")
    pye57 = pytest.importorskip("pye57")
    points = _geo_points(200, seed=14)
    np.savetxt(tmp / "seven.txt", np.hstack([points, np.ones((200, 4))]), fmt="%.3f")
    (tmp / "noxyz.csv").write_text("//A,B,C,D\n" + "\n".join("1,2,3,4" for _ in range(40)) + "\n")
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.offsets, header.scales = np.array([636000.0, 849000.0, 400.0]), np.array([MM] * 3)
    las = laspy.LasData(header)
    las.x, las.y, las.z = points.T
    las.write(str(tmp / "full.las"))
    blob = (tmp / "full.las").read_bytes()
    (tmp / "truncated.las").write_bytes(blob[: len(blob) * 2 // 3])
    with pye57.E57(str(tmp / "empty.e57"), mode="w"):
        pass
    return {
        "columns without z": (tmp / "seven.txt", ["--columns", "x y r g b a -"], "no z column"),
        "columns count": (tmp / "seven.txt", ["--columns", "x y z nx ny nz"], "names 6 columns, but the rows have 7"),
        "header without xyz": (tmp / "noxyz.csv", [], "no x/y/z column"),
        "truncated las": (tmp / "truncated.las", [], "cannot parse as LAS"),
        "empty e57": (tmp / "empty.e57", [], "no scans"),
    }


@pytest.mark.parametrize("key", ["columns without z", "columns count", "header without xyz", "truncated las", "empty e57"])
def test_bad_scan_inputs_give_one_error_line(tmp_path: Path, capsys, key: str) -> None:
    path, flags, phrase = _bad_inputs(tmp_path)[key]
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["fit", str(path), "-o", str(out / "model.nsdf"), *TINY, *flags])
    cap = capsys.readouterr()
    lines = cap.err.splitlines()
    assert rc == 2 and cap.out == ""
    assert len(lines) == 1, cap.err
    assert path.name in lines[0] and phrase.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in cap.err
    assert list(out.iterdir()) == []


def test_text_header_without_xyz_raises_input_error(tmp_path: Path) -> None:
    (tmp_path / "h.txt").write_text("a b c\n" + "1 2 3\n" * 20)
    with pytest.raises(InputError, match="names no x/y/z column"):
        load_points(tmp_path / "h.txt")
