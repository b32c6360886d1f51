"""Applications beyond SDFs on the same SIREN core and fit loop: images, video and PDEs.

Each app loads and validates its input, runs ``train.fit`` on a field adapter, measures the
result against a reference and writes its outputs (atomically) into an output folder. Names are
imported on first use, so ``apps.presets`` (plain configs) loads without torch.
"""

import importlib
from typing import Any

_EXPORTS = {
    "fit_image": "image",
    "ImageFitResult": "image",
    "fit_video": "video",
    "VideoFitResult": "video",
    "solve_pde": "pde",
    "PDEResult": "pde",
    "PDE_NAMES": "pde",
    "AppPreset": "presets",
    "QUALITIES": "presets",
    "image_preset": "presets",
    "video_preset": "presets",
    "pde_preset": "presets",
    "build_network": "_common",
    "make_forward": "_common",
    "resolve_precision": "_common",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
