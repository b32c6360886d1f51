"""Model and checkpoint files: safetensors tensors plus JSON metadata. Loading runs no code.

A file is one safetensors blob whose metadata holds ``{"format": ..., "meta": <JSON>}``; the
JSON carries the network config, the normalization and anything else the caller stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # safetensors imports torch when a model file is read or written
    import torch

from .._typing import PathLike
from ..errors import InputError
from ._atomic import atomic_write
from .files import MODEL_FORMAT, check_input_file

__all__ = ["save_model_file", "load_model_file", "MODEL_FORMAT"]



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

    p = check_input_file(path, kind="model")
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
