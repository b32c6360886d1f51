"""Positional encoding of input coordinates (NeRF, Mildenhall et al. 2020, Eq. 4).

Used by the "ReLU P.E." baseline of the SIREN paper (Sitzmann et al. 2020, Sec. 4.1, Table 1):
a ReLU network on ``(x, sin(2^k pi x), cos(2^k pi x))`` instead of raw coordinates.
"""

import math

import torch
from torch import nn

__all__ = ["PositionalEncoding", "nyquist_frequencies"]


def nyquist_frequencies(samples: int) -> int:
    """Number of octaves ``L`` the SIREN reference code uses for ``samples`` points per axis.

    The highest frequency ``2^(L-1)`` (in cycles per unit, times pi) stays below the Nyquist rate
    of ``samples`` points spread over [-1, 1]: ``L = floor(log2(samples / 4))``, at least 1.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    return max(1, int(math.floor(math.log2(max(samples, 2) / 4.0))))


class PositionalEncoding(nn.Module):
    """Map ``(..., in_dim)`` to ``(..., in_dim * (1 + 2 L))``: the input, then ``sin`` and ``cos``
    of ``2^k pi x`` for ``k = 0 .. L-1``, grouped by frequency.

    Holds no parameters and no saved buffers, so it does not change a network's ``state_dict``.

    Args:
        in_dim: coordinates per point.
        num_frequencies: ``L >= 1``.
    """

    def __init__(self, in_dim: int, num_frequencies: int) -> None:
        super().__init__()
        if in_dim < 1 or num_frequencies < 1:
            raise ValueError(f"in_dim and num_frequencies must be >= 1, got {in_dim} and {num_frequencies}")
        self.in_dim = in_dim
        self.num_frequencies = num_frequencies

    @property
    def out_dim(self) -> int:
        """Width of the encoding."""
        return self.in_dim * (1 + 2 * self.num_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``(..., in_dim)``; returns ``(..., out_dim)`` in ``x``'s dtype and device."""
        freqs = (2.0 ** torch.arange(self.num_frequencies, device=x.device, dtype=x.dtype)) * math.pi
        angles = x[..., None, :] * freqs[:, None]  # (..., L, in_dim)
        parts = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(-2)
        return torch.cat([x, parts], dim=-1)
