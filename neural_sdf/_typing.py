"""Shared type aliases; imports nothing from the package."""

import os
from typing import TYPE_CHECKING, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # torch is imported by the modules that run networks, not by every user of a type
    import torch

PathLike = Union[str, "os.PathLike[str]"]
Device = Union[str, "torch.device"]
ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["PathLike", "Device", "ArrayLike", "FloatArray", "IntArray"]
