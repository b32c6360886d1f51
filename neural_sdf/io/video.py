"""Video files to and from float frame arrays, decoded and encoded with PyAV (FFmpeg bindings).

Frames are ``(T, H, W, 3)`` float64 RGB in [0, 1]; PyAV is imported when a function needs it
(extra ``video``).
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ._atomic import atomic_write
from .files import check_input_file, check_output_dir
from .image import resize_max_side, save_image, to_uint8

__all__ = ["VideoClip", "load_video", "save_video", "save_animation", "ANIMATION_EXTENSIONS"]

ANIMATION_EXTENSIONS = (".gif", ".mp4")
"""File formats of ``save_animation``; a path without an extension is a folder of PNG frames."""

log = logging.getLogger(__name__)


@dataclass
class VideoClip:
    """Decoded frames.

    Attributes:
        frames: ``(T, H, W, 3)`` float64 RGB in [0, 1], in presentation order.
        fps: frames per second of the source (25 when the file does not say).
    """

    frames: np.ndarray
    fps: float


def _import_av():  # noqa: ANN202
    try:
        import av
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("video files need PyAV: pip install 'neural-sdf[video]'") from exc
    return av


def load_video(path: PathLike, max_frames: int = 0, max_side: int = 0) -> VideoClip:
    """Decode the first video stream of a file.

    Args:
        path: any container FFmpeg reads (.mp4 .mkv .avi .mov .webm .gif ...).
        max_frames: decode at most this many frames from the start (0: all).
        max_side: downscale each frame (anti-aliased) so its longer side is at most this (0: keep).

    Returns:
        ``VideoClip``.

    Raises:
        InputError: missing or empty file, a file that is not a video, or a video with no frames.
    """
    av = _import_av()
    p = Path(path)
    check_input_file(p, kind="video")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise InputError(f"{p}: video has zero frames (no video stream)")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 25.0
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24").astype(np.float64) / 255.0
                frames.append(resize_max_side(rgb, max_side))
                if max_frames and len(frames) >= max_frames:
                    break
    except InputError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{p}: not a readable video ({reason})") from exc
    if not frames:
        raise InputError(f"{p}: video has zero frames")
    return VideoClip(np.stack(frames), fps)


def save_video(frames: np.ndarray, path: PathLike, fps: float = 25.0) -> Path:
    """Encode ``(T, H, W, 3)`` floats in [0, 1] (or uint8) as H.264 in an .mp4, atomically.

    Odd sizes are padded by repeating the last row/column (H.264 with 4:2:0 chroma needs even sizes).
    """
    av = _import_av()
    p = Path(path)
    if p.suffix.lower() != ".mp4":
        raise InputError(f"{p}: clips are written as .mp4")
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[3] != 3 or len(a) == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got {a.shape}")
    data = a if a.dtype == np.uint8 else to_uint8(a)
    pad_h, pad_w = a.shape[1] % 2, a.shape[2] % 2
    if pad_h or pad_w:
        data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    from fractions import Fraction

    with atomic_write(p) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height = data.shape[2], data.shape[1]
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": "12"}  # near-lossless: the clip shows the fit, not the codec
            for img in data:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return p


def save_animation(frames: Sequence[np.ndarray], path: PathLike, fps: float = 10.0) -> Path:
    """Write pictures as a looping ``.gif``, an ``.mp4`` (``save_video``) or numbered PNGs in a folder.

    Args:
        frames: ``(H, W, 3)`` uint8 pictures (or floats in [0, 1]), all of one size.
        path: ``NAME.gif``, ``NAME.mp4``, or a folder (no extension), made if needed, that gets
            ``frame_000.png``, ``frame_001.png``, ...
        fps: frames per second (a GIF stores whole milliseconds per frame).

    Returns:
        ``path``. Every file is written atomically.

    Raises:
        InputError: another extension, or an output that cannot be written.
        ValueError: no frames, or frames of different sizes.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if p.suffix and ext not in ANIMATION_EXTENSIONS:
        raise InputError(f"{p}: sequences are written as .gif, .mp4 or a folder of PNGs")
    if len(frames) == 0:
        raise ValueError("frames must hold at least one picture, got none")
    data = [np.asarray(f) if np.asarray(f).dtype == np.uint8 else to_uint8(f) for f in frames]
    if len({d.shape for d in data}) != 1:
        raise ValueError(f"frames must all have one size, got {sorted({d.shape for d in data})}")
    if ext == ".mp4":
        return save_video(np.stack(data), p, fps=fps)
    if ext == ".gif":
        import imageio.v3 as iio

        with atomic_write(p) as tmp:
            iio.imwrite(tmp, np.stack(data), extension=".gif", duration=int(1000 / fps), loop=0)
        return p
    check_output_dir(p, create=True)
    for k, picture in enumerate(data):
        save_image(picture, p / f"frame_{k:03d}.png")
    return p
