"""neural_sdf: neural signed distance fields with SIREN.

Point clouds in, watertight meshes out; plus viewing, batch runs, and image, video and PDE
fitting on the same network core. Submodules are imported on first use, so ``import neural_sdf``
stays fast.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # batch
    "reconstruct_batch": "batch",
    "BatchItem": "batch",
    "ItemResult": "batch",
    # configs
    "SirenConfig": "config",
    "SamplingConfig": "config",
    "LossWeights": "config",
    "TrainConfig": "config",
    "ExtractConfig": "config",
    # containers
    "Mesh": "geometry",
    "PointCloud": "geometry",
    "Normalization": "geometry",
    "fit_normalization": "geometry",
    "InputError": "errors",
    # io
    "load_points": "io",
    "load_mesh": "io",
    "save_mesh": "io",
    "save_points": "io",
    "file_kind": "io",
    "save_animation": "io",
    # network
    "Siren": "nn",
    # SDF
    "SDFModel": "fields.sdf",
    "SceneModel": "scene",
    "load_model": "scene",
    "reconstruct_scene": "scene",
    "plan_tiles": "scene",
    "TilingConfig": "scene",
    "FitOptions": "reconstruct",
    "fit_sdf": "reconstruct",
    "extract_mesh": "reconstruct",
    "reconstruct": "reconstruct",
    "quality_preset": "reconstruct",
    "ReconstructResult": "reconstruct",
    "evaluate_meshes": "metrics",
    "MeshMetrics": "metrics",
    "render_views": "render",
    "render_views_guarded": "render",
    "render_sequence": "render",
    "RenderTimeout": "render",
    # images, video, PDEs
    "ImageConfig": "config",
    "VideoConfig": "config",
    "PDEConfig": "config",
    "fit_image": "apps",
    "ImageFitResult": "apps",
    "fit_video": "apps",
    "VideoFitResult": "apps",
    "solve_pde": "apps",
    "PDEResult": "apps",
    "load_image": "io.image",
    "save_image": "io.image",
    "load_video": "io.video",
    "save_video": "io.video",
    "psnr": "metrics",
    "RenderOptions": "render",
    # raw scans
    "ScanConfig": "cleanup",
    "prepare_cloud": "cleanup",
    "clean_cloud": "cleanup",
    "estimate_normals": "normals",
    "orient_normals": "normals",
    "check_normals": "normals",
    # shape interpolation and shape spaces
    "ShapeSpaceConfig": "config",
    "blend_sdf": "interpolate",
    "blend_mesh": "interpolate",
    "latent_model": "interpolate",
    "interpolate_meshes": "interpolate",
    "ShapeSpace": "fields.shape_space",
    "SpaceOptions": "fields.shape_space",
    "fit_shape_space": "fields.shape_space",
    "fit_latent": "fields.shape_space",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'neural_sdf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


# ``reconstruct`` names both a submodule and its main function. Importing the submodule binds the
# *module* to ``neural_sdf.reconstruct``; that module is callable (``reconstruct.py`` gives it
# ``__call__``), so ``neural_sdf.reconstruct(...)`` works either way without importing torch here.
