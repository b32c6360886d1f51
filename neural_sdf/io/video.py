"""Video files to and from float frame arrays, decoded and encoded with PyAV (FFmpeg bindings).

Frames are ``(T, H, W, 3)`` float64 RGB in [0, 1]; PyAV is imported when a function needs it
(extra ``video``).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._typing import PathLike
from ..errors import InputError
from ._atomic import atomic_write
from .image import resize_max_side, to_uint8

__all__ = ["VideoClip", "load_video", "save_video"]

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
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a video file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
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
