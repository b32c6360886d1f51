"""The network core shared by every field: SIREN and input-derivative operators."""

from .diffops import divergence, gradient, jacobian, laplacian
from .siren import SineLayer, Siren

__all__ = ["SineLayer", "Siren", "gradient", "divergence", "laplacian", "jacobian"]
