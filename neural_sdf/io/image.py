"""Image files to and from float arrays in [0, 1], read and written by imageio (a scikit-image dependency).

Arrays are ``(H, W, C)`` float64 with ``C`` = 1 (grayscale) or 3 (RGB); row 0 is the top row.
"""

import logging
from pathlib import Path
from typing import Union

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ._atomic import atomic_write
from .files import check_input_file

__all__ = ["load_image", "save_image", "sample_image", "resize_max_side", "as_image_array", "SAMPLE_IMAGES"]

log = logging.getLogger(__name__)

SAMPLE_IMAGES = ("camera", "astronaut")
"""Images that scikit-image ships, usable by name (``sample_image``)."""

ImageSource = Union[PathLike, np.ndarray]


def as_image_array(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as ``(H, W, C)`` float64 in [0, 1] with ``C`` in {1, 3}.

    Accepts ``(H, W)``, ``(H, W, 1|2|3|4)`` arrays; integer arrays are scaled by their type's
    maximum, float arrays are taken as [0, 1] and clipped. Alpha is dropped.

    Raises:
        InputError: wrong shape, fewer than 2 pixels along a side, or non-finite values.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{name}: expected an (H, W) or (H, W, 1-4) image, got shape {a.shape}")
    if a.shape[2] in (2, 4):
        log.info("%s: dropping the alpha channel", name)
        a = a[:, :, : a.shape[2] - 1]
    if a.shape[0] < 2 or a.shape[1] < 2:
        raise InputError(f"{name}: image is {a.shape[1]}x{a.shape[0]} pixels; at least 2x2 are needed")
    if np.issubdtype(a.dtype, np.integer):
        out = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.bool_):
        out = a.astype(np.float64)
    else:
        out = a.astype(np.float64)
        if not np.all(np.isfinite(out)):
            raise InputError(f"{name}: image has non-finite values")
        out = np.clip(out, 0.0, 1.0)
    return out


def load_image(source: ImageSource) -> np.ndarray:
    """Read an image file (PNG, JPEG, TIFF, BMP, GIF, WebP...) or take an array.

    Args:
        source: path, or an array (see ``as_image_array``).

    Returns:
        ``(H, W, C)`` float64 in [0, 1], ``C`` = 1 or 3. Animated files give their first frame.

    Raises:
        InputError: missing, empty or unreadable file, or an unusable image (e.g. one pixel).
    """
    if isinstance(source, np.ndarray):
        return as_image_array(source)
    p = Path(source)
    check_input_file(p, kind="image")
    import imageio.v3 as iio

    try:
        data = iio.imread(p, index=0)
    except Exception as exc:  # imageio raises many types for files it cannot decode
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: not a readable image ({reason})") from exc
    return as_image_array(data, str(p))


def sample_image(name: str) -> np.ndarray:
    """Return one of scikit-image's sample images (``SAMPLE_IMAGES``) as ``(H, W, C)`` float64 in [0, 1]."""
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"name must be one of {list(SAMPLE_IMAGES)}, got {name!r}")
    import skimage.data

    return as_image_array(getattr(skimage.data, name)(), name)


def resize_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale ``(H, W, C)`` (anti-aliased) so that ``max(H, W) <= max_side``; 0 or a larger size keeps it."""
    h, w = image.shape[:2]
    if max_side <= 0 or max(h, w) <= max_side:
        return image
    from skimage.transform import resize

    scale = max_side / max(h, w)
    shape = (max(2, round(h * scale)), max(2, round(w * scale))) + image.shape[2:]
    return np.clip(resize(image, shape, anti_aliasing=True, order=1), 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Clip ``(H, W[, C])`` floats in [0, 1] and quantize to uint8; a single channel becomes ``(H, W)``."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(image: np.ndarray, path: PathLike) -> Path:
    """Write ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` floats in [0, 1] (clipped) or uint8 as PNG, atomically."""
    import imageio.v3 as iio

    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"{p}: images are written as .png")
    a = np.asarray(image)
    data = a if a.dtype == np.uint8 else to_uint8(a)
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    with atomic_write(p) as tmp:
        iio.imwrite(tmp, data, extension=".png")
    return p
