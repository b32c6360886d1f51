"""Batch reconstruction: real spawned processes, a real `neural-sdf batch` subprocess
(killed with SIGKILL mid-way), and a real local Ray instance started once for this module.

Inputs are made here: small oriented clouds of a sphere (.ply) and a torus (.xyz), and a corrupt
.xyz. Training is tiny (32-wide SIREN, 60 steps, 24^3 grid) so one item costs about a second of
compute on an idle core; most of the time of these tests is process start-up (torch import).
"""

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import process_stats

from neural_sdf.batch import BatchItem, apply_overrides, expand_inputs, reconstruct_batch, settings_hash
from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig
from neural_sdf.errors import InputError
from neural_sdf.geometry import Mesh
from neural_sdf.io import save_mesh, save_points
from neural_sdf.reconstruct import FitOptions
from neural_sdf.sampling import sample_mesh_surface

_SCRIPT = Path(sys.executable).parent / "neural-sdf"
CLI = ([str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "neural_sdf.cli"]) + ["batch"]
"""The real console script (the module form where the package is not installed)."""
TINY_FLAGS = [
    "--steps", "60", "--lr", "1e-3", "--hidden-dim", "32", "--num-hidden-layers", "1", "--w0-first", "30",
    "--batch-size", "500", "--resolution", "24", "--checkpoint-every", "20", "--quiet",
    "--lr-final-ratio", "1", "--warmup-steps", "0", "--off-surface-ratio", "1",
]
"""Settings under which the sphere and torus clouds below still give closed meshes of the right
size (measured: sphere extent 2.09 for a true 2.0, torus 2.86 x 2.84 x 0.99 for 2.8 x 2.8 x 0.8)."""
# The same settings as TINY_FLAGS: the CLI starts from reconstruct's defaults (FitOptions()).
TINY_OPTIONS = dataclasses.replace(
    FitOptions(),
    siren=dataclasses.replace(FitOptions().siren, hidden_dim=32, num_hidden_layers=1, w0_first=30.0),
    train=dataclasses.replace(FitOptions().train, steps=60, lr=1e-3, lr_final_ratio=1.0, warmup_steps=0, checkpoint_every=20),
    sampling=dataclasses.replace(FitOptions().sampling, batch_size=500, off_surface_ratio=1.0),
    adapt_w0=False,  # as the CLI sets it when --w0-first is given
)
TINY_EXTRACT = ExtractConfig(resolution=24)


def _mesh(tm: "trimesh.Trimesh") -> Mesh:
    return Mesh(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64))


def _make_inputs(folder: Path, corrupt: bool = True, extra_sphere: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sphere = _mesh(trimesh.creation.icosphere(subdivisions=3, radius=1.0))
    torus = _mesh(trimesh.creation.torus(major_radius=1.0, minor_radius=0.4))
    save_points(sample_mesh_surface(sphere, 1000, seed=0), folder / "sphere.ply")
    save_points(sample_mesh_surface(torus, 1000, seed=0), folder / "torus.xyz")
    if extra_sphere:
        shifted = Mesh(sphere.vertices * 0.5 + 3.0, sphere.faces)
        save_points(sample_mesh_surface(shifted, 1000, seed=1), folder / "ball.xyz")
    if corrupt:
        (folder / "broken.xyz").write_text("0 0 1 0 0 1\nthis line is not numbers\n")


def _read_summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _run_cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout)


def _children(pid: int) -> list[int]:
    """Child process ids of ``pid`` (Linux /proc)."""
    return [child for child, fields in process_stats() if int(fields[1]) == pid]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _no_temporaries(out: Path) -> None:
    leftovers = [p.name for p in out.iterdir() if ".tmp" in p.name]
    assert not leftovers, f"temporary files left under {out}: {leftovers}"


# ----------------------------------------------------------------------------- one real batch, reused below
@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("batch")
    _make_inputs(root / "in")
    (root / "gt").mkdir()
    save_mesh(_mesh(trimesh.creation.icosphere(subdivisions=4, radius=1.0)), root / "gt" / "sphere.obj")
    (root / "gt" / "torus.obj").write_text("not a mesh\n")  # an unusable ground truth costs the metrics only
    return root


@pytest.fixture(scope="module")
def process_run(data: Path) -> tuple[subprocess.CompletedProcess, Path]:
    out = data / "out_process"
    proc = _run_cli([str(data / "in"), "-o", str(out), "--jobs", "2", "--gt", str(data / "gt")] + TINY_FLAGS)
    return proc, out


def test_batch_corrupt_item_is_recorded_and_others_finish(process_run: tuple[subprocess.CompletedProcess, Path]) -> None:
    proc, out = process_run
    assert proc.returncode == 1, proc.stderr  # one item failed
    rows = {r["name"]: r for r in _read_summary(out)}
    assert set(rows) == {"broken", "sphere", "torus"}
    assert rows["broken"]["status"] == "failed"
    assert "broken.xyz" in rows["broken"]["error"] and "cannot parse" in rows["broken"]["error"]
    for name in ("sphere", "torus"):
        assert rows[name]["status"] == "ok"
        assert (out / f"{name}.ply").is_file() and (out / f"{name}.nsdf").is_file()
        assert int(rows[name]["num_faces"]) > 100
        assert float(rows[name]["peak_memory_mb"]) > 50  # a torch worker holds > 50 MiB
        assert float(rows[name]["seconds"]) > 0
    assert not (out / "broken.ply").exists() and not (out / "broken.nsdf").exists()
    # Metrics only where a ground truth of the same name exists; the sphere's Chamfer-L1 is
    # under 5 % of its diagonal (measured 3.2 % with these tiny seeded settings and a 24^3 grid).
    assert rows["sphere"]["gt"].endswith("sphere.obj") and rows["sphere"]["error"] == ""
    assert 0 < float(rows["sphere"]["metric_chamfer_l1_rel"]) < 0.05
    assert rows["torus"]["metric_chamfer_l1_rel"] == ""
    assert rows["torus"]["error"].startswith("no metrics: ground truth") and "torus.obj" in rows["torus"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["items"], summary["ok"], summary["failed"]) == (3, 2, 1)
    assert "FAILED" in proc.stdout and "2 ok" in proc.stdout and "1 failed" in proc.stdout
    mesh = trimesh.load(out / "sphere.ply")
    assert np.allclose(mesh.extents, 2.0, atol=0.3)  # a unit sphere, in input units
    _no_temporaries(out)


def test_batch_rerun_skips_finished_items(data: Path, process_run: tuple[subprocess.CompletedProcess, Path]) -> None:
    _, out = process_run
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".ply", ".nsdf")}
    records = {n: (out / f"{n}.done.json").read_text() for n in ("sphere", "torus")}
    proc = _run_cli([str(data / "in"), "-o", str(out), "--jobs", "2", "--gt", str(data / "gt")] + TINY_FLAGS)
    assert proc.returncode == 1, proc.stderr
    rows = {r["name"]: r for r in _read_summary(out)}
    assert rows["sphere"]["reused"] == rows["torus"]["reused"] == "True"
    assert rows["broken"]["status"] == "failed" and rows["broken"]["reused"] == "False"
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".ply", ".nsdf")} == stamps
    assert {n: (out / f"{n}.done.json").read_text() for n in ("sphere", "torus")} == records
    assert rows["sphere"]["metric_chamfer_l1_rel"] != ""  # metrics come back from the record

    # Changing a setting changes the hash, so the items run again (in a copy: the Ray test
    # compares against the original).
    copy = data / "out_seed1"
    shutil.copytree(out, copy)
    proc = _run_cli([str(data / "in"), "-o", str(copy)] + TINY_FLAGS + ["--seed", "1"])
    rows = {r["name"]: r for r in _read_summary(copy)}
    assert rows["sphere"]["reused"] == "False" and rows["sphere"]["status"] == "ok", proc.stderr


def test_batch_killed_midway_resumes(tmp_path: Path) -> None:
    _make_inputs(tmp_path / "in", corrupt=False, extra_sphere=True)
    out = tmp_path / "out"
    # 600 steps, a checkpoint every 20: the kill comes at an unfinished item's first checkpoint,
    # and the rest of its fit (580 steps) outlasts the half second in which an orphaned worker
    # notices the driver is gone (with 120 steps a fast machine finished it first, removing the
    # checkpoint).
    args = [str(tmp_path / "in"), "-o", str(out), "--jobs", "1"] + TINY_FLAGS + ["--steps", "600", "--checkpoint-every", "20"]
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= {p for p in _children(proc.pid) if "resource_tracker" not in _cmdline(p)}
            # Kill once one item is done and the next has written a checkpoint, so the rerun must
            # both reuse a finished item and resume an interrupted one.
            done = {p.name.removesuffix(".done.json") for p in out.glob("*.done.json")} if out.exists() else set()
            if done and any(p.stem not in done and not p.name.startswith(".") for p in out.glob("*.ckpt")):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the batch finished before it could be killed; make items longer"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    done_at_kill = {p.name for p in out.glob("*.done.json")}
    assert 1 <= len(done_at_kill) < 3
    assert workers, "no worker process was seen"
    # Orphaned workers notice that the driver is gone and exit.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "worker processes outlived the killed batch"
    # Every output under a final name is complete (it loads), whatever the kill interrupted.
    for mesh_file in out.glob("*.ply"):
        assert len(trimesh.load(mesh_file).faces) > 0
    ckpts = {p.stem for p in out.glob("*.ckpt")}
    assert ckpts, "no checkpoint existed at the kill: the resume below would prove nothing"

    proc2 = _run_cli(args)
    assert proc2.returncode == 0, proc2.stderr
    rows = {r["name"]: r for r in _read_summary(out)}
    assert all(r["status"] == "ok" for r in rows.values()) and len(rows) == 3
    reused = {n for n, r in rows.items() if r["reused"] == "True"}
    assert reused == {n.removesuffix(".done.json") for n in done_at_kill}
    assert not list(out.glob("*.ckpt"))  # checkpoints are removed when their fits complete
    from neural_sdf.fields.sdf import SDFModel

    for name in ckpts - reused:  # an item interrupted after a checkpoint resumed from it
        assert SDFModel.load(out / f"{name}.nsdf").info["resumed_from"] > 0
    _no_temporaries(out)


def test_batch_worker_death_is_retried(tmp_path: Path) -> None:
    _make_inputs(tmp_path / "in", corrupt=False)
    (tmp_path / "in" / "torus.xyz").unlink()
    out = tmp_path / "out"
    args = [str(tmp_path / "in"), "-o", str(out), "--jobs", "1", "--retries", "1", "--no-checkpoint"] + TINY_FLAGS
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        workers = [p for p in _children(proc.pid) if "resource_tracker" not in _cmdline(p)]
        if workers:
            time.sleep(0.5)  # the item has been sent to it (the worker is still importing torch or fitting)
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None, "no worker process was seen"
    assert proc.returncode == 0, stderr
    assert "worker process died" in stderr
    (row,) = _read_summary(out)
    assert row["status"] == "ok" and row["attempts"] == "2"
    assert not row["worker"].endswith(f":{killed}")


# ----------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is the 'cluster' extra")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, logging_level="WARNING")
    yield ray
    ray.shutdown()


def test_batch_on_ray_gives_the_same_summary(local_ray, data: Path, process_run: tuple[subprocess.CompletedProcess, Path]) -> None:
    _, out_process = process_run
    out = data / "out_ray"
    results = reconstruct_batch(
        [data / "in"], out, TINY_OPTIONS, TINY_EXTRACT, executor="ray", gt_dir=data / "gt", progress=False
    )
    assert [r.status for r in results] == ["failed", "ok", "ok"]
    ray_rows, proc_rows = _read_summary(out), _read_summary(out_process)
    for a, b in zip(ray_rows, proc_rows):
        for key in ("input", "name", "status", "error", "settings_hash", "num_faces", "num_vertices", "gt"):
            assert a[key] == b[key], (key, a[key], b[key])
        if a["status"] == "ok":
            assert Path(a["mesh"]).name == Path(b["mesh"]).name and Path(a["mesh"]).is_file()
    # Same settings, one thread per item in both runs: the meshes agree up to float noise
    # (measured: every vertex within 6.4e-6 of the other run's, shapes of size 2; bound 1e-4).
    from scipy.spatial import cKDTree

    for name in ("sphere", "torus"):
        a, b = (np.asarray(trimesh.load(d / f"{name}.ply").vertices) for d in (out, out_process))
        assert cKDTree(b).query(a)[0].max() < 1e-4 and cKDTree(a).query(b)[0].max() < 1e-4
    _no_temporaries(out)


def test_job_file_reads_the_shipped_bytes_where_the_local_file_differs(local_ray, tmp_path: Path) -> None:
    from neural_sdf.batch import executors

    src = tmp_path / "scan.xyz"
    src.write_bytes(b"driver bytes")
    shipped = {str(src): (hashlib.sha256(b"driver bytes").hexdigest(), local_ray.put(b"driver bytes"))}
    executors._shipped.files = shipped  # as run_ray's task body sets it
    try:
        assert executors.job_file(str(src), tmp_path / "w") == (str(src), False)  # same bytes here: read in place
        for change in (lambda: src.write_bytes(b"this node's own file"), src.unlink):  # another node: other bytes, no file
            change()
            path, copied = executors.job_file(str(src), tmp_path / "w")
            assert copied and Path(path).name == "scan.xyz" and Path(path).read_bytes() == b"driver bytes"
        assert executors.job_file(str(tmp_path / "other.xyz"), tmp_path / "w") == (str(tmp_path / "other.xyz"), False)
    finally:
        executors._shipped.files = {}


# ----------------------------------------------------------------------------- executors without batch items
def _double(payload: int, device: str, threads: int) -> dict:
    """A worker function that knows nothing of batch items (module level, so it pickles by reference)."""
    if payload < 0:
        raise ValueError(f"negative payload {payload}")
    return {"ok": True, "value": 2 * payload, "device": device, "threads": threads}


def test_executors_run_jobs_that_are_not_batch_items() -> None:
    from neural_sdf.batch.executors import Job, run_local

    got: dict[str, tuple[dict, int]] = {}

    def on_result(job: Job, result: dict, attempts: int) -> None:
        got[job.name] = (result, attempts)

    jobs = [Job(i, f"tile {i}", p) for i, p in enumerate([3, -1, 5])]
    run_local(_double, jobs, processes=2, threads=1, devices=["cpu"], retries=0, on_result=on_result)
    assert got["tile 0"][0]["value"] == 6 and got["tile 2"][0]["value"] == 10
    assert got["tile 0"][0]["device"] == "cpu" and got["tile 0"][0]["threads"] == 1 and got["tile 0"][1] == 1
    bad = got["tile 1"][0]  # a worker function's exception is that job's failure, not the pool's
    assert not bad["ok"] and bad["error"] == "ValueError: negative payload -1" and "_double" in bad["traceback"]
    for result, _ in got.values():  # the executor times and names every job
        assert result["seconds"] >= 0 and result["peak_memory_mb"] > 50 and ":" in result["worker"]
    with pytest.raises(ValueError, match="unique"):
        run_local(_double, [Job(0, "a", 1), Job(0, "b", 2)], processes=1, threads=1, devices=["cpu"], retries=0, on_result=on_result)


# ----------------------------------------------------------------------------- bad input: one line, no work
def _bad(argv: list[str], capsys: pytest.CaptureFixture, out: Path) -> str:
    code = main(["batch"] + argv + ["-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("neural-sdf: error: "), err
    assert not out.exists(), "no output folder may be made for bad input"
    return err[0]


def test_batch_bad_input_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    _make_inputs(tmp_path / "in", corrupt=False)
    (tmp_path / "empty").mkdir()
    assert "empty: folder holds no point cloud" in _bad([str(tmp_path / "empty")], capsys, out)
    assert "no such file" in _bad([str(tmp_path / "missing.ply")], capsys, out)
    assert "matches no point cloud" in _bad([str(tmp_path / "in" / "*.pcd")], capsys, out)

    (tmp_path / "nocol.csv").write_text("path,output\nin/sphere.ply,a\n")
    assert "nocol.csv: manifest has no 'input' column" in _bad([str(tmp_path / "nocol.csv")], capsys, out)
    (tmp_path / "gone.csv").write_text("input,output\nin/sphere.ply,a\nin/nothere.xyz,b\n")
    msg = _bad([str(tmp_path / "gone.csv")], capsys, out)
    assert "gone.csv:3" in msg and "nothere.xyz: no such file" in msg
    (tmp_path / "dup.jsonl").write_text('{"input": "in/sphere.ply", "output": "x"}\n{"input": "in/torus.xyz", "output": "x"}\n')
    assert "duplicate output name 'x'" in _bad([str(tmp_path / "dup.jsonl")], capsys, out)
    (tmp_path / "other").mkdir()
    save_points(sample_mesh_surface(_mesh(trimesh.creation.icosphere(subdivisions=2)), 100, seed=0), tmp_path / "other" / "sphere.ply")
    assert "duplicate output name 'sphere'" in _bad([str(tmp_path / "in"), str(tmp_path / "other")], capsys, out)
    (tmp_path / "badopt.csv").write_text("input,steps\nin/sphere.ply,many\n")
    assert "badopt.csv:2" in _bad([str(tmp_path / "badopt.csv")], capsys, out)
    (tmp_path / "unknown.jsonl").write_text('{"input": "in/sphere.ply", "options": {"train": {"stepz": 3}}}\n')
    assert "unknown option 'train.stepz'" in _bad([str(tmp_path / "unknown.jsonl")], capsys, out)

    inside = tmp_path / "in" / "out"
    assert "inside input folder" in _bad([str(tmp_path / "in")], capsys, inside)
    # Port 1 on the loopback interface has no listener: refused at once, before Ray starts.
    t0 = time.perf_counter()
    assert "--ray 127.0.0.1:1: cannot reach a Ray cluster" in _bad([str(tmp_path / "in"), "--ray", "127.0.0.1:1"], capsys, out)
    assert time.perf_counter() - t0 < 10


# ----------------------------------------------------------------------------- expansion, manifests, hashing
def test_manifests_globs_and_per_item_options(tmp_path: Path) -> None:
    _make_inputs(tmp_path / "scans" / "deep", corrupt=False)
    (tmp_path / "scans" / ".hidden.xyz").write_text("0 0 0\n")
    (tmp_path / "list.csv").write_text(
        "input,output,train.steps,resolution\n"
        "scans/deep/sphere.ply,ball,30,\n"
        "scans/deep/torus.xyz,,,40\n"
    )
    items = expand_inputs([tmp_path / "list.csv"])
    assert [(i.name, dict(i.overrides)) for i in items] == [("ball", {"train.steps": 30}), ("torus", {"resolution": 40})]
    assert items[0].input == tmp_path / "scans" / "deep" / "sphere.ply"

    (tmp_path / "list.jsonl").write_text(
        '{"input": "scans/deep/torus.xyz", "output": "t", "options": {"siren": {"hidden_dim": 16}, "extract": {"resolution": 32}}}\n'
    )
    (item,) = expand_inputs([tmp_path / "list.jsonl"])
    opts, ext = apply_overrides(TINY_OPTIONS, TINY_EXTRACT, item.overrides)
    assert opts.siren.hidden_dim == 16 and ext.resolution == 32 and opts.train.steps == TINY_OPTIONS.train.steps

    folder = expand_inputs([tmp_path / "scans"])  # recursive, hidden files skipped
    assert sorted(i.name for i in folder) == ["sphere", "torus"]
    globbed = expand_inputs([str(tmp_path / "scans" / "**" / "*.xyz")])
    assert [i.name for i in globbed] == ["torus"]
    # The same file reached twice (folder and glob) is one item.
    assert len(expand_inputs([tmp_path / "scans", str(tmp_path / "scans" / "**" / "*.ply")])) == 2

    # An explicit first-layer w0 or normal weight is kept as given (no density or normals rule).
    default = FitOptions()
    assert default.adapt_w0 and default.adapt_normal_weight
    opts, _ = apply_overrides(default, TINY_EXTRACT, {"weights.normal": 500.0})
    assert opts.weights.normal == 500.0 and not opts.adapt_normal_weight and opts.adapt_w0
    opts, _ = apply_overrides(default, TINY_EXTRACT, {"siren.w0_first": 40.0})
    assert not opts.adapt_w0 and opts.adapt_normal_weight

    with pytest.raises(InputError, match="ambiguous|unknown"):
        apply_overrides(TINY_OPTIONS, TINY_EXTRACT, {"nonsense": 1})
    with pytest.raises(InputError, match="steps must be >= 1"):
        apply_overrides(TINY_OPTIONS, TINY_EXTRACT, {"train.steps": 0})
    with pytest.raises(InputError):
        expand_inputs([BatchItem(tmp_path / "nope.ply")])


def test_settings_hash_tracks_every_setting() -> None:
    base = settings_hash("ab" * 32, TINY_OPTIONS, TINY_EXTRACT, ".ply")
    assert base == settings_hash("ab" * 32, TINY_OPTIONS, TINY_EXTRACT, ".ply")
    changed = [
        settings_hash("cd" * 32, TINY_OPTIONS, TINY_EXTRACT, ".ply"),
        settings_hash("ab" * 32, apply_overrides(TINY_OPTIONS, TINY_EXTRACT, {"train.seed": 1})[0], TINY_EXTRACT, ".ply"),
        settings_hash("ab" * 32, apply_overrides(TINY_OPTIONS, TINY_EXTRACT, {"weights.eikonal": 49.0})[0], TINY_EXTRACT, ".ply"),
        settings_hash("ab" * 32, TINY_OPTIONS, ExtractConfig(resolution=25), ".ply"),
        settings_hash("ab" * 32, TINY_OPTIONS, TINY_EXTRACT, ".obj"),
    ]
    assert len({base, *changed}) == 6


def test_folder_scan_skips_notes_and_tables(tmp_path):
    # .txt and .csv can hold points, but in a scanned folder they are usually a README or a table;
    # named explicitly, a .txt is read as points (and a .csv as a manifest).
    from neural_sdf.batch import expand_inputs

    folder = tmp_path / "scans"
    folder.mkdir()
    np.savetxt(folder / "a.xyz", np.random.default_rng(0).normal(size=(50, 3)))
    (folder / "README.txt").write_text("scanned on Monday\n")
    (folder / "results.csv").write_text("name,score\na,1\n")
    assert [Path(i.input).name for i in expand_inputs([folder])] == ["a.xyz"]
    np.savetxt(tmp_path / "b.txt", np.random.default_rng(1).normal(size=(50, 3)))
    assert [Path(i.input).name for i in expand_inputs([tmp_path / "b.txt"])] == ["b.txt"]
