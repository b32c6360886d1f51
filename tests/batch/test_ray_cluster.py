"""Joining a Ray cluster started the way users start one: `ray start --head --port PORT`, then
`neural-sdf batch ... --ray HOST:PORT` (or `--ray auto`).

Ray 2.60 turns token authentication on for `ray start --head` when a token exists (here: a token
file in a home folder made for this module), and a client joining by address must send that
token. One real head (2 CPUs, its own temp dir and ports) is started for this module and stopped
at the end, also when a test fails. It is stopped by process id (the processes of the session it
was started in), not with `ray stop`, which would end every Ray instance on the machine.
The module takes about 25 s on a shared 2-core machine (head start-up about 5 s, each batch 4-8 s).
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import process_stats

from neural_sdf.cli import main
from neural_sdf.geometry import Mesh
from neural_sdf.io import save_points
from neural_sdf.sampling import sample_mesh_surface

ray = pytest.importorskip("ray", reason="Ray is the 'cluster' extra")

TINY_FLAGS = [
    "--steps", "40", "--lr", "1e-3", "--hidden-dim", "32", "--num-hidden-layers", "1", "--w0-first", "30",
    "--batch-size", "500", "--resolution", "24", "--quiet", "--no-checkpoint",
    "--lr-final-ratio", "1", "--warmup-steps", "0", "--off-surface-ratio", "1",
]
"""The tiny settings of tests/batch/test_batch.py, fewer steps: only joining and finishing matter here."""
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> list[str]:
    script = Path(sys.executable).parent / "ray"
    if script.exists():
        return [str(script)]
    found = shutil.which("ray")
    assert found, "the `ray` command is not installed next to this Python"
    return [found]


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux /proc): the head's daemons and their workers."""
    return [pid for pid, fields in process_stats() if pid != os.getpid() and int(fields[3]) == sid and fields[0] != "Z"]


def _stop_session(sid: int, grace: float = 2.0) -> None:
    """SIGTERM every process of session ``sid``, then SIGKILL what is left after ``grace`` seconds
    (the GCS server outlasts SIGTERM here; `ray stop` too sends SIGKILL after its grace period)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in _session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while _session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _session_pids(sid):
            return
    raise AssertionError(f"Ray head processes {_session_pids(sid)} outlived SIGKILL")


@pytest.fixture(scope="module")
def head():
    """A running head: ``(address, home with .ray/auth_token, token)``; stopped at module end."""
    root = Path(tempfile.mkdtemp(prefix="nsdf-ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    token = secrets.token_hex(32)
    (home / ".ray" / "auth_token").write_text(token)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in _AUTH_VARS}
    env["HOME"] = str(home)  # as on a user's head: the token in ~/.ray/auth_token switches token auth on
    cmd = _ray_cli() + [
        "start", "--head", "--port", str(port), "--num-cpus", "2", "--disable-usage-stats",
        "--include-dashboard=false", "--temp-dir", str(root / "t"),
        "--ray-client-server-port", str(_free_port()), "--dashboard-port", str(_free_port()),
        "--dashboard-agent-listen-port", str(_free_port()),
    ]
    # A session of its own: every process of this head (and its workers) is found by its id.
    starter = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = starter.communicate(timeout=120)
        if starter.returncode != 0:
            pytest.fail(f"`ray start --head` failed (exit code {starter.returncode}):\n{output[-3000:]}")
        assert "Token authentication is enabled" in output, output[-3000:]
        yield f"127.0.0.1:{port}", home, token
    finally:
        try:
            if starter.poll() is None:
                starter.kill()
            _stop_session(starter.pid)
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def clean_auth(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A client as a fresh shell would start it: no Ray auth variables, an empty home folder.

    Returns that home folder. Ray's cached config and token are re-read, as in a new process (an
    earlier Ray test in this process leaves RAY_AUTH_MODE=token behind), and the variables this
    test sets or Ray sets are restored afterwards.
    """
    for var in _AUTH_VARS:
        monkeypatch.setenv(var, "")  # records the original value, so that teardown restores it ...
        monkeypatch.delenv(var)  # ... also when the code under test sets it
    home = tmp_path / "client_home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    assert not ray.is_initialized()
    return home


@pytest.fixture(scope="module")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clouds")
    for name, tm in (("sphere", trimesh.creation.icosphere(subdivisions=3)), ("torus", trimesh.creation.torus(1.0, 0.4))):
        mesh = Mesh(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64))
        save_points(sample_mesh_surface(mesh, 800, seed=0), folder / f"{name}.ply")
    return folder


def _assert_meshes(out: Path) -> None:
    for name in ("sphere", "torus"):
        assert (out / f"{name}.ply").is_file() and (out / f"{name}.nsdf").is_file(), sorted(p.name for p in out.iterdir())


def test_join_by_address_with_the_default_token_file(head, clean_auth: Path, clouds: Path, tmp_path: Path) -> None:
    address, head_home, _ = head
    shutil.copytree(head_home / ".ray", clean_auth / ".ray")  # the client's ~/.ray/auth_token holds the head's token
    out = tmp_path / "out"
    code = main(["batch", str(clouds), "-o", str(out), "--ray", address] + TINY_FLAGS)
    assert code == 0
    _assert_meshes(out)
    assert not ray.is_initialized()  # the batch disconnected


def test_join_auto_with_token_path(head, clean_auth: Path, clouds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address, head_home, _ = head
    # RAY_ADDRESS pins "auto" to this head: with only `ray start`'s own detection, auto might
    # pick another Ray instance running on this machine.
    monkeypatch.setenv("RAY_ADDRESS", address)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(head_home / ".ray" / "auth_token"))
    out = tmp_path / "out"
    code = main(["batch", str(clouds), "-o", str(out), "--ray", "auto"] + TINY_FLAGS)
    assert code == 0
    _assert_meshes(out)


def test_refused_token_gives_one_line_saying_what_to_set(head, clean_auth: Path, clouds: Path, tmp_path: Path) -> None:
    address, _, token = head
    wrong = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if k not in _AUTH_VARS}
    env["RAY_AUTH_TOKEN"] = wrong
    env["HOME"] = str(clean_auth)
    env["RAY_gcs_server_port_wait_time_s"] = "3"  # Ray retries a refused join for about 20 s by default
    out = tmp_path / "out"
    # A fresh process: a refused join leaves Ray's state in the process behind.
    proc = subprocess.run(
        [sys.executable, "-m", "neural_sdf.cli", "batch", str(clouds), "-o", str(out), "--ray", address] + TINY_FLAGS,
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"neural-sdf: error: --ray {address}: cannot join the Ray cluster: it refused the token from RAY_AUTH_TOKEN"), last
    assert "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH" in last and "ray get-auth-token" in last
    assert wrong not in proc.stderr + proc.stdout and token not in proc.stderr + proc.stdout
    assert not out.exists()


def test_token_settings_that_cannot_work_fail_before_any_work(clean_auth: Path, clouds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing_token"))
    assert main(["batch", str(clouds), "-o", str(out), "--ray", "auto", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RAY_AUTH_TOKEN_PATH=" in err[0] and "no such file" in err[0], err
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # and no token anywhere (the home folder is empty)
    assert main(["batch", str(clouds), "-o", str(out), "--ray", "auto", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RAY_AUTH_MODE=token but no Ray token was found" in err[0], err
    assert not out.exists()


def test_tiled_reconstruct_on_the_cluster_equals_local_processes(head, clean_auth: Path, tmp_path: Path) -> None:
    # One Ray task per tile on the head (joined by address, with its token), against two local
    # processes: the same tiles, each fitted with one thread and the same seed, so the same mesh.
    address, head_home, _ = head
    shutil.copytree(head_home / ".ray", clean_auth / ".ray")
    tm = trimesh.creation.icosphere(subdivisions=4)
    cloud = tmp_path / "sphere.ply"
    save_points(sample_mesh_surface(Mesh(np.asarray(tm.vertices), np.asarray(tm.faces)), 6000, seed=0), cloud)
    flags = [flag for flag in TINY_FLAGS if flag != "--no-checkpoint"] + ["--tiles", "4"]
    assert main(["reconstruct", str(cloud), "-o", str(tmp_path / "ray.ply"), "--ray", address, *flags]) == 0
    assert not ray.is_initialized()
    assert main(["reconstruct", str(cloud), "-o", str(tmp_path / "local.ply"), "--jobs", "2", *flags]) == 0
    from neural_sdf.io import load_mesh

    a, b = load_mesh(tmp_path / "ray.ply"), load_mesh(tmp_path / "local.ply")
    assert len(a.faces) == len(b.faces) > 0
    np.testing.assert_allclose(a.vertices, b.vertices, rtol=0, atol=1e-6)
