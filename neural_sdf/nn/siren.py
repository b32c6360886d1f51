"""SIREN: multilayer perceptrons with sine activations (Sitzmann et al., NeurIPS 2020).

The one network core that SDF, image, video and PDE fields all reuse. Layers compute
``sin(w0 * (W x + b) + shift)``; ``shift`` is an optional per-layer phase modulation (as in
Mehta et al. 2021 and Functa), used by shape spaces. ``FourierFeatures`` is the random Fourier
feature input encoding of the ReLU baseline of Tancik et al. (NeurIPS 2020).
"""

import math
from typing import Optional

import torch
from torch import nn

from ..config import SirenConfig
from .encoding import PositionalEncoding

__all__ = ["SineLayer", "Siren", "FourierFeatures"]


class SineLayer(nn.Module):
    """One sine layer ``y = sin(w0 * (W x + b) + shift)`` with the SIREN initialization.

    Initialization (paper, Sec. 3.2 and supplement Sec. 1): the first layer draws
    ``W ~ U(-1/n, 1/n)`` so that ``w0 * W x`` spans several periods of the sine for inputs in
    [-1, 1]; hidden layers draw ``W ~ U(-sqrt(6/n)/w0, sqrt(6/n)/w0)`` so that pre-activations
    ``w0 * W x`` are distributed with unit spread through depth. ``n`` is ``in_features``. Biases
    keep PyTorch's default, as in the reference code.

    Args:
        in_features: input width ``n``.
        out_features: output width.
        w0: frequency factor.
        is_first: use the first-layer initialization.
        activation: "sine" (default), or "relu"/"tanh" baselines with PyTorch's default init.
    """

    def __init__(
        self, in_features: int, out_features: int, w0: float = 30.0, is_first: bool = False,
        activation: str = "sine",
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.w0 = float(w0) if activation == "sine" else 1.0
        self.is_first = is_first
        self.activation = activation
        self.linear = nn.Linear(in_features, out_features)
        if activation == "sine":
            bound = 1.0 / in_features if is_first else math.sqrt(6.0 / in_features) / self.w0
            with torch.no_grad():
                self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Map ``(..., in_features)`` to ``(..., out_features)``; ``shift`` broadcasts to the output."""
        z = self.w0 * self.linear(x)
        if shift is not None:
            z = z + shift
        if self.activation == "sine":
            return torch.sin(z)
        if self.activation == "relu":
            return torch.relu(z)
        return torch.tanh(z)


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi B x), sin(2 pi B x)]`` (Tancik et al., NeurIPS 2020, Sec. 6).

    ``B`` is ``(num_features, in_dim)`` with entries drawn from ``N(0, scale^2)``, held in a buffer
    (saved with the weights, never trained). ``scale`` is in cycles per unit of the input
    coordinates; Tancik et al. state ``sigma`` for coordinates in [0, 1], which is twice the
    ``scale`` for coordinates in [-1, 1].

    Args:
        in_dim: coordinates per point.
        num_features: rows of ``B``; the encoding has ``2 * num_features`` outputs.
        scale: standard deviation of the frequencies.
        seed: seed of ``B`` (a generator of its own, so the network's initialization is unchanged).
    """

    def __init__(self, in_dim: int, num_features: int, scale: float, seed: int = 0) -> None:
        super().__init__()
        if in_dim < 1 or num_features < 1:
            raise ValueError(f"in_dim and num_features must be >= 1, got {in_dim} and {num_features}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(num_features, in_dim, generator=gen) * scale)
        self.in_dim = in_dim
        self.scale = float(scale)

    @property
    def out_dim(self) -> int:
        """Width of the encoding."""
        return 2 * self.frequencies.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``x`` ``(..., in_dim)``; returns ``(..., 2 * num_features)``."""
        angles = (2.0 * math.pi) * (x @ self.frequencies.to(x.dtype).T)
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class Siren(nn.Module):
    """A SIREN: ``1 + num_hidden_layers`` sine layers of width ``hidden_dim``, then a linear layer.

    Args:
        config: network shape; see ``SirenConfig``.
        encoding: an input encoding module with an ``out_dim`` attribute (e.g.
            ``FourierFeatures``), applied before the first layer; None: the config's positional
            encoding when ``num_frequencies`` > 0, else the raw coordinates.

    Shapes:
        ``forward(coords (..., in_dim), shift (..., num_sine_layers, hidden_dim) or None)``
        returns ``(..., out_dim)``.
    """

    def __init__(self, config: SirenConfig, encoding: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.config = config
        c = config
        if encoding is not None and c.num_frequencies:
            raise ValueError("give either an encoding or num_frequencies > 0, not both")
        # Optional input encoding (ReLU P.E. / Fourier-feature baselines); absent by default, so
        # the default network and its state_dict keys are unchanged.
        if encoding is None and c.num_frequencies:
            encoding = PositionalEncoding(c.in_dim, c.num_frequencies)
        self.encoding = encoding
        first_in = self.encoding.out_dim if self.encoding is not None else c.in_dim
        layers = [SineLayer(first_in, c.hidden_dim, c.w0_first, True, c.activation)]
        layers += [
            SineLayer(c.hidden_dim, c.hidden_dim, c.w0, False, c.activation)
            for _ in range(c.num_hidden_layers)
        ]
        self.layers = nn.ModuleList(layers)
        self.last = nn.Linear(c.hidden_dim, c.out_dim)
        if c.activation == "sine":
            # The reference code initializes the final linear layer like a hidden layer.
            bound = math.sqrt(6.0 / c.hidden_dim) / c.w0
            with torch.no_grad():
                self.last.weight.uniform_(-bound, bound)

    @classmethod
    def from_config(cls, config: SirenConfig) -> "Siren":
        """Build a network from its config."""
        return cls(config)

    @property
    def num_sine_layers(self) -> int:
        """Number of (modulatable) sine layers."""
        return len(self.layers)

    def forward(self, coords: torch.Tensor, shift: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Evaluate the network at ``coords`` ``(..., in_dim)``; returns ``(..., out_dim)``."""
        if coords.shape[-1] != self.config.in_dim:
            raise ValueError(f"coords must be (..., {self.config.in_dim}), got {tuple(coords.shape)}")
        h = coords if self.encoding is None else self.encoding(coords)
        for i, layer in enumerate(self.layers):
            h = layer(h, None if shift is None else shift[..., i, :])
        return self.last(h)
