"""Offscreen rendering (``neural_sdf.render`` and ``neural-sdf render``): real Open3D renders, no window."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import neural_sdf as ns
from neural_sdf.render import RenderOptions, parse_size, render_views


def _icosphere() -> ns.Mesh:
    import trimesh

    t = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    return ns.Mesh(np.asarray(t.vertices), np.asarray(t.faces))


def test_parse_size():
    assert parse_size("320x240") == (320, 240)
    with pytest.raises(ValueError, match="640x480"):
        parse_size("320-240")


def test_render_options_are_checked():
    with pytest.raises(ValueError, match="views"):
        RenderOptions(views=0)
    with pytest.raises(ValueError, match="size"):
        RenderOptions(width=8)


def test_render_sheet_has_the_requested_size_and_shows_the_object(tmp_path):
    mesh = _icosphere()
    cloud = mesh.sample(2000, seed=0)
    image = render_views([mesh, cloud], RenderOptions(width=96, height=64, views=2, normals=True))
    # Two views tile into a 2-column sheet of 96x64 views.
    assert image.shape == (64, 192, 3) and image.dtype == np.uint8
    for tile in (image[:, :96], image[:, 96:]):
        fg = np.abs(tile.astype(int) - tile[0, 0].astype(int)).sum(axis=-1) > 30
        # The sphere fills about half of each view (framed by its bounding sphere); measured ~0.4.
        assert 0.1 < fg.mean() < 0.9, fg.mean()
    # Colour by normal, RGB = (n + 1) / 2 in world axes: the sphere's centre pixel in the first view
    # faces the camera (azimuth 30 degrees). Measured within 4 of 255 (n + 1) / 2 per channel.
    elev, az = math.radians(RenderOptions().elevation_deg), math.radians(30)
    n = np.array([math.cos(elev) * math.sin(az), math.sin(elev), math.cos(elev) * math.cos(az)])
    np.testing.assert_allclose(image[32, 48], 255 * (n + 1) / 2, atol=12)


def test_render_command_writes_requested_size(tmp_path):
    import imageio.v3 as iio

    # A point cloud: a single mesh view here can hit llvmpipe's scene-dependent slow case (an
    # icosphere at 80x60 once took 400 s on this loaded 2-core machine; points take well under 1 s).
    cloud_path = tmp_path / "ball.ply"
    ns.save_points(_icosphere().sample(3000, seed=0), cloud_path)
    out = tmp_path / "ball.png"
    proc = subprocess.run(
        [sys.executable, "-m", "neural_sdf.cli", "render", str(cloud_path), "-o", str(out), "--size", "80x60", "--views", "4", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Four views tile 2x2.
    image = iio.imread(out)
    assert image.shape[:2] == (120, 160)
    assert (np.abs(image[..., :3].astype(int) - image[0, 0, :3].astype(int)).sum(axis=-1) > 30).mean() > 0.02


def test_render_command_bad_input_is_one_line(tmp_path):
    out = tmp_path / "x.png"
    proc = subprocess.run(
        [sys.executable, "-m", "neural_sdf.cli", "render", str(tmp_path / "missing.ply"), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing.ply" in proc.stderr, proc.stderr
    assert not out.exists()
    proc = subprocess.run(
        [sys.executable, "-m", "neural_sdf.cli", "render", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "x.jpg")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and ".png" in proc.stderr


def _never_answers(conn, items, options):  # a child that hangs like lavapipe's stuck frame
    import time

    time.sleep(600)


def _retry_marker(test_pid: int) -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"neural_sdf_render_retry_{test_pid}")


def _answers_on_the_second_try(conn, items, options):
    from neural_sdf.render import render_worker

    marker = _retry_marker(os.getppid())  # the test process started this child
    if not os.path.exists(marker):
        open(marker, "w").close()
        _never_answers(conn, items, options)
    render_worker(conn, items, options)


def test_guarded_render_kills_a_hung_child_and_retries():
    # The watchdog of render_views_guarded, for real: spawned children, a real kill after the
    # timeout, a real retry; only the hang itself is a child that sleeps instead of a stuck driver.
    import time

    from neural_sdf.render import RenderTimeout, render_views_guarded

    mesh = _icosphere()
    t = time.monotonic()
    with pytest.raises(RenderTimeout, match="2 attempts"):
        render_views_guarded([mesh], RenderOptions(width=32, height=24), timeout_s=3, attempts=2, worker=_never_answers)
    assert time.monotonic() - t < 30  # both children were killed, not waited for

    marker = _retry_marker(os.getpid())
    if os.path.exists(marker):
        os.remove(marker)
    try:
        image = render_views_guarded([mesh], RenderOptions(width=40, height=30), timeout_s=30, attempts=2,
                                     worker=_answers_on_the_second_try)
    finally:
        if os.path.exists(marker):
            os.remove(marker)
    assert image.shape == (30, 40, 3)
    assert (np.abs(image.astype(int) - 255).sum(-1) > 30).any()  # the object was drawn


def test_render_bounds_fix_the_camera():
    """``RenderOptions.bounds`` frames that box instead of the items (a still camera for sequences):
    a unit sphere framed in a box three times its size is drawn at a third of the size, not clipped."""
    mesh = _icosphere()

    def covered(bounds):
        p = render_views([mesh], RenderOptions(width=64, height=48, normals=True, bounds=bounds))
        return (np.abs(p.astype(int) - p[0, 0].astype(int)).sum(-1) > 30).mean()

    own, same, wide = covered(None), covered(((-1.0,) * 3, (1.0,) * 3)), covered(((-3.0,) * 3, (3.0,) * 3))
    # A ninth of the area expected; measured 0.171, 0.171 and 0.0195 (2026-11-29). Before the far
    # plane was set from the box, the wide sphere was clipped away (0.0).
    assert abs(same - own) < 0.02 and 0.05 * own < wide < 0.2 * own, (own, same, wide)


def test_render_camera_is_the_given_pose():
    """``RenderOptions.camera`` looks from the given pose: the turntable's own first pose gives the
    same picture, a pose from the other side a different one; more views with one camera are refused."""
    mesh = _icosphere()
    default = render_views([mesh], RenderOptions(width=64, height=48, normals=True))
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    dist = float(np.linalg.norm(hi - lo)) / 2 / math.sin(math.radians(20)) * 1.05
    elev, az = math.radians(20), math.radians(30)
    eye = dist * np.array([math.cos(elev) * math.sin(az), math.sin(elev), math.cos(elev) * math.cos(az)])
    same = render_views([mesh], RenderOptions(width=64, height=48, normals=True,
                                              camera=(tuple(eye), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), 40.0)))
    behind = render_views([mesh], RenderOptions(width=64, height=48, normals=True,
                                                camera=(tuple(-eye), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), 40.0)))
    differ = lambda a, b: (np.abs(a.astype(int) - b.astype(int)).sum(-1) > 30).mean()  # noqa: E731
    # Measured 0.0 and 0.17 (normal colours of opposite sides), 2026-11-29.
    assert differ(same, default) < 0.01 and differ(behind, default) > 0.05, (differ(same, default), differ(behind, default))
    with pytest.raises(ValueError, match="one view"):
        RenderOptions(views=2, camera=((0.0, 0.0, 5.0), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0), 40.0))
