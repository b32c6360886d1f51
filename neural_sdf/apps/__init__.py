"""Applications beyond SDFs on the same SIREN core and fit loop: images, video and PDEs.

Each app loads and validates its input, runs ``train.fit`` on a field adapter, measures the
result against a reference and writes its outputs (atomically) into an output folder.
"""

from .image import ImageFitResult, fit_image
from .pde import PDE_NAMES, PDEResult, solve_pde
from .video import VideoFitResult, fit_video

__all__ = ["fit_image", "ImageFitResult", "fit_video", "VideoFitResult", "solve_pde", "PDEResult", "PDE_NAMES"]
