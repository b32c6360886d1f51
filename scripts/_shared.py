"""What the benchmark scripts share: where the shared data is (``../shared/data`` next to the
repository), the Poisson baseline, and running a command with its own peak memory measured.

The meshes, the real scan and the video clip there are never copied into the repository (see the
README's "Data" section); scripts that need them stop with a clear message when the folder is absent.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

import neural_sdf as ns

if TYPE_CHECKING:
    import open3d as o3d

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHAPES_DIR = SHARED_DATA / "shapes"
VIDEO_DIR = SHARED_DATA / "video"


def poisson_mesh(pcd: "o3d.geometry.PointCloud", depth: int = 9, trim_quantile: float = 0.05) -> tuple[ns.Mesh, ns.Mesh]:
    """Open3D screened Poisson on an oriented Open3D cloud: (trimmed, untrimmed) meshes, the trimmed
    one without the vertices whose density is in the lowest ``trim_quantile``."""
    import open3d as o3d

    mesh, dens = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=depth)
    full = ns.Mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64))
    dens = np.asarray(dens)
    mesh.remove_vertices_by_mask(dens < np.quantile(dens, trim_quantile))
    return ns.Mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles, dtype=np.int64)), full


def poisson(cloud: ns.PointCloud, depth: int = 9, trim_quantile: float = 0.05) -> ns.Mesh:
    """Open3D screened Poisson on an oriented cloud, with the common density trim (``poisson_mesh``)."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.normals = o3d.utility.Vector3dVector(cloud.normals)
    return poisson_mesh(pcd, depth, trim_quantile)[0]


def on_folded_faces(scene, index: np.ndarray) -> int:
    """How many of these samples lie on a face folded back against a neighbouring face (normals
    more than 120 degrees apart): a source mesh's own wrong normal, e.g. from the fan
    triangulation of a non-planar polygon (fertility has 260 such face pairs)."""
    import trimesh

    count = 0
    for i, mesh in enumerate(scene.objects):
        picked = index[scene.label[index] == i]
        if not len(picked):
            continue
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        adj = tm.face_adjacency
        folded_pairs = adj[np.sum(tm.face_normals[adj[:, 0]] * tm.face_normals[adj[:, 1]], axis=1) < -0.5]
        folded = np.zeros(len(tm.faces), dtype=bool)
        folded[folded_pairs.reshape(-1)] = True
        _, _, face = trimesh.proximity.closest_point(tm, scene.cloud.points[picked])
        count += int(folded[face].sum())
    return count


_LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], env: Optional[dict] = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command; return it (stdout and stderr captured), its wall time (s) and its peak
    resident memory (MB): the ``ru_maxrss`` that ``wait4`` gives for it, the largest of the command
    and the processes it waited for (its workers).

    A small launcher process starts the command and reads that number. On Linux a process's
    ``ru_maxrss`` starts from the size of the process it was forked from (the high-water mark is
    carried through ``exec``), so a command started straight from a benchmark that holds meshes
    and clouds reported the benchmark's own size whenever that was larger (the scene table once
    showed a command's peak equal, to the megabyte, to the Poisson run's before it: both were the
    benchmark's). ``RUSAGE_CHILDREN`` is worse: the largest of every child so far.
    """
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        with open(Path(tmp) / "out", "w+") as out, open(Path(tmp) / "err", "w+") as err:
            t0 = time.perf_counter()
            code = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak_file), *cmd], stdout=out, stderr=err, text=True, env=env).returncode
            seconds = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(cmd, code, out.read(), err.read())
        peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    return proc, seconds, peak
