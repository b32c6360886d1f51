"""What the benchmark scripts share: where the shared data is (``../shared/data`` next to the
repository) and the Poisson baseline.

The meshes, the real scan and the video clip there are never copied into the repository (see the
README's "Data" section); scripts that need them stop with a clear message when the folder is absent.
"""

from pathlib import Path
from typing import TYPE_CHECKING

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
