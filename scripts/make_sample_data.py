"""Make the bundled sample data in data/ (run from the repository root).

    python scripts/make_sample_data.py

data/torus.ply: 10,000 points with outward normals, sampled area-weighted (seed 0) from a torus
(major radius 40, minor radius 14, centred at (500, -200, 1000), in millimetres), built with
trimesh.creation.torus. The offset and units exercise the normalization.
data/torus_gt.ply: the same torus as a mesh, the ground truth for `neural-sdf evaluate`.
"""

import numpy as np
import trimesh

from neural_sdf import Mesh, save_mesh, save_points
from neural_sdf.sampling import sample_mesh_surface


def main() -> None:
    tm = trimesh.creation.torus(major_radius=40.0, minor_radius=14.0, major_sections=96, minor_sections=48)
    tm.apply_translation([500.0, -200.0, 1000.0])
    mesh = Mesh(np.asarray(tm.vertices), np.asarray(tm.faces))
    cloud = sample_mesh_surface(mesh, 10_000, seed=0)
    save_points(cloud, "data/torus.ply")
    save_mesh(mesh, "data/torus_gt.ply")


if __name__ == "__main__":
    main()
