"""Files to and from containers and plain checkpoint dicts. Backends are imported lazily."""

from ._atomic import atomic_write, partial_files, partial_files_in
from .checkpoint import load_model_file, save_model_file
from .files import (
    MODEL_EXTENSION,
    MODEL_FORMAT,
    SPACE_EXTENSION,
    SPACE_FORMAT,
    FileKind,
    check_input_file,
    check_output_dir,
    check_writable,
    file_kind,
    read_format_tag,
)
from .image import load_image, save_image
from .mesh import MESH_EXTENSIONS, load_mesh, load_ply, save_mesh
from .pointcloud import POINT_EXTENSIONS, load_points, load_query_points, save_points
from .video import ANIMATION_EXTENSIONS, load_video, save_animation, save_video

__all__ = [
    "atomic_write",
    "check_input_file",
    "check_output_dir",
    "check_writable",
    "partial_files",
    "partial_files_in",
    "file_kind",
    "FileKind",
    "read_format_tag",
    "MODEL_FORMAT",
    "SPACE_FORMAT",
    "MODEL_EXTENSION",
    "SPACE_EXTENSION",
    "load_mesh",
    "load_ply",
    "save_mesh",
    "load_points",
    "load_query_points",
    "save_points",
    "load_image",
    "save_image",
    "load_video",
    "save_video",
    "save_animation",
    "ANIMATION_EXTENSIONS",
    "load_model_file",
    "save_model_file",
    "MESH_EXTENSIONS",
    "POINT_EXTENSIONS",
]
