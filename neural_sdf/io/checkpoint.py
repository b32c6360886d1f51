"""Model and checkpoint files: safetensors tensors plus JSON metadata. Loading runs no code.

A file is one safetensors blob whose metadata holds ``{"format": ..., "meta": <JSON>}``; the
JSON carries the network config, the normalization and anything else the caller stores.
"""

import json
from pathlib import Path
from typing import Any

import torch

from .._typing import PathLike
from ..errors import InputError
from ._atomic import atomic_write

__all__ = ["save_model_file", "load_model_file", "read_format_tag", "MODEL_FORMAT"]

MODEL_FORMAT = "neural_sdf.model/1"


def save_model_file(
    path: PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], format: str = MODEL_FORMAT
) -> Path:
    """Write ``tensors`` and JSON-serializable ``meta`` to ``path`` atomically (any extension)."""
    from safetensors.torch import save

    blob = save(
        {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
        metadata={"format": format, "meta": json.dumps(meta, sort_keys=True)},
    )
    with atomic_write(path, suffix=".tmp") as tmp:
        tmp.write_bytes(blob)
    return Path(path)


def load_model_file(path: PathLike, format: str = MODEL_FORMAT) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by ``save_model_file``; returns ``(tensors on CPU, meta)``.

    Raises:
        InputError: missing, empty or unreadable file, or a file that is not of ``format``.
    """
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a model file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{p}: not a neural_sdf model file ({str(exc).splitlines()[0][:120]})") from exc
    if header.get("format") != format:
        found = header.get("format", "no format tag")
        raise InputError(f"{p}: not a neural_sdf model file of format {format} (found {found})")
    try:
        meta = json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: model metadata is missing or corrupt") from exc
    return tensors, meta


def read_format_tag(path: PathLike) -> str | None:
    """Return the ``format`` tag of a safetensors file's header without loading its tensors.

    Returns ``None`` for anything that is not a readable safetensors file with a tag, so callers
    can recognize model files by content rather than by extension.
    """
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            if not 2 <= size <= 100_000_000:
                return None
            header = json.loads(fh.read(size))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    fmt = header.get("__metadata__", {}).get("format") if isinstance(header, dict) else None
    return fmt if isinstance(fmt, str) else None
