"""Shared fixtures: tiny shapes built in code (no files), so every test is self-contained.

* ``sphere_sdf``: the analytic signed distance of a sphere (negative inside), as a torch function.
* ``icosphere``, ``box``, ``torus``: small ``Mesh`` objects (outward faces) made with trimesh.
* ``sphere_cloud``, ``torus_cloud``: small oriented clouds sampled area-weighted from those meshes.
* ``shared_data``: ``../shared/data`` when the shared data folder exists (tests using it skip
  with a reason otherwise).
"""

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from neural_sdf.geometry import Mesh, PointCloud
from neural_sdf.sampling import sample_mesh_surface

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

SPHERE_RADIUS = 0.5
"""Radius of the ``sphere_sdf`` fixture, normalized units."""


def analytic_sphere_sdf(radius: float = SPHERE_RADIUS, center: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``f(x) = |x - center| - radius`` mapping ``(N, 3)`` to ``(N, 1)`` (negative inside)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        c = torch.as_tensor(center, dtype=x.dtype, device=x.device)
        return (x - c).norm(dim=-1, keepdim=True) - radius

    return fn


def _mesh(tm) -> Mesh:
    return Mesh(np.asarray(tm.vertices, dtype=np.float64), np.asarray(tm.faces, dtype=np.int64))


def make_icosphere(radius: float = 1.0, subdivisions: int = 3) -> Mesh:
    """An icosphere (outward faces) of ``radius`` centred at the origin."""
    import trimesh

    return _mesh(trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius))


def make_box(extents: tuple[float, float, float] = (1.0, 2.0, 3.0)) -> Mesh:
    """An axis-aligned box (12 triangles, outward faces) centred at the origin."""
    import trimesh

    return _mesh(trimesh.creation.box(extents=extents))


def make_torus(major: float = 0.4, minor: float = 0.15) -> Mesh:
    """A torus around the z axis (outward faces) centred at the origin."""
    import trimesh

    return _mesh(trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=48, minor_sections=24))


@pytest.fixture
def sphere_sdf() -> Callable[[torch.Tensor], torch.Tensor]:
    """Analytic SDF of a sphere of radius ``SPHERE_RADIUS`` at the origin."""
    return analytic_sphere_sdf()


@pytest.fixture
def icosphere() -> Mesh:
    """Unit icosphere (642 vertices)."""
    return make_icosphere()


@pytest.fixture
def box() -> Mesh:
    """A 1 x 2 x 3 box at the origin."""
    return make_box()


@pytest.fixture
def torus() -> Mesh:
    """A torus with radii 0.4 and 0.15 at the origin."""
    return make_torus()


@pytest.fixture
def sphere_cloud(icosphere: Mesh) -> PointCloud:
    """2,000 oriented points on the unit icosphere (seed 0)."""
    return sample_mesh_surface(icosphere, 2000, seed=0)


@pytest.fixture
def torus_cloud(torus: Mesh) -> PointCloud:
    """3,000 oriented points on the torus fixture (seed 0)."""
    return sample_mesh_surface(torus, 3000, seed=0)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (real shapes and video); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread (small fits are faster that way on a shared 2-core CPU)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def process_stats() -> list[tuple[int, list[str]]]:
    """Live processes (Linux /proc): ``(pid, fields)``, ``fields`` the ``/proc/PID/stat`` entries
    after the command name (``fields[0]`` the state, ``[1]`` the parent, ``[3]`` the session)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                out.append((int(entry), fh.read().rsplit(")", 1)[1].split()))
        except OSError:
            continue
    return out
