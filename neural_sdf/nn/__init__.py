"""The network core shared by every field: SIREN, input-derivative operators and closed-form SIREN kernels."""

from .diffops import divergence, gradient, jacobian, laplacian
from .encoding import PositionalEncoding, nyquist_frequencies
from .fused import inference_forward, make_fast_forward, resolve_precision, siren_value_and_gradient, supports_fused
from .siren import SineLayer, Siren

__all__ = ["SineLayer", "Siren", "PositionalEncoding", "nyquist_frequencies", "gradient", "divergence", "laplacian", "jacobian", "supports_fused", "siren_value_and_gradient", "make_fast_forward", "inference_forward", "resolve_precision"]
