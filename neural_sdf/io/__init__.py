"""Files to and from containers and plain checkpoint dicts. Backends are imported lazily."""

from ._atomic import atomic_write, check_writable, partial_files, partial_files_in
from .checkpoint import load_model_file, save_model_file
from .mesh import MESH_EXTENSIONS, load_mesh, load_ply, save_mesh
from .pointcloud import POINT_EXTENSIONS, load_points, load_query_points, save_points

__all__ = [
    "atomic_write",
    "check_writable",
    "partial_files",
    "partial_files_in",
    "load_mesh",
    "load_ply",
    "save_mesh",
    "load_points",
    "load_query_points",
    "save_points",
    "load_model_file",
    "save_model_file",
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
]
