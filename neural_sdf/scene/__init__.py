"""Scenes: tiled reconstruction of clouds one network cannot hold, and one loader for every model file."""

from typing import Union

from .._typing import Device, PathLike
from ..fields.sdf import SDFModel
from .field import SceneField, SceneModel, Tile, tile_weights
from .tiles import MAX_TILES, SceneFit, TilePlan, TileSpec, TilingConfig, check_tiling, fit_scene, plan_tiles, reconstruct_scene

__all__ = [
    "SceneModel",
    "SceneField",
    "Tile",
    "tile_weights",
    "TilingConfig",
    "TileSpec",
    "TilePlan",
    "plan_tiles",
    "check_tiling",
    "fit_scene",
    "reconstruct_scene",
    "SceneFit",
    "MAX_TILES",
    "load_model",
]


def load_model(path: PathLike, device: Device = "cpu") -> Union[SDFModel, SceneModel]:
    """Load any neural_sdf SDF model file: a single model (``SDFModel``) or a scene (``SceneModel``).

    Both offer ``sdf``, ``network``, ``normalization``, ``data_bounds`` and ``support_points``, so
    extraction, rendering and the viewer take either. No code is executed.

    Raises:
        InputError: the file is not a neural_sdf SDF or scene model.
    """
    from ..errors import InputError
    from ..io.checkpoint import load_model_file

    tensors, meta = load_model_file(path)
    kind = meta.get("kind")
    if kind == "scene":
        return SceneModel.from_file_contents(path, tensors, meta, device)
    if kind == "sdf":
        return SDFModel.load(path, device=device)
    raise InputError(f"{path}: model file holds a {kind or 'unknown'!r} model, expected an SDF or scene model")
