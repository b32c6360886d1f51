"""The network core shared by every field: SIREN and input-derivative operators."""

from .diffops import divergence, gradient, jacobian, laplacian
from .encoding import PositionalEncoding, nyquist_frequencies
from .siren import SineLayer, Siren

__all__ = ["SineLayer", "Siren", "PositionalEncoding", "nyquist_frequencies", "gradient", "divergence", "laplacian", "jacobian"]
