"""Closed-form kernels of a plain sine SIREN: value and input gradient without autograd, and a fast
inference forward.

For a plain sine ``Siren`` (Sitzmann et al. 2020) with ``w0`` folded into the weights,
``z_l = h_{l-1} W_l^T + b_l``, ``h_l = sin(z_l)`` and ``f = h_L w_o^T + b_o``, the input gradient
has the closed form ``g_L = w_o``, ``delta_l = g_l * cos(z_l)``, ``g_{l-1} = delta_l W_l`` and
``grad f = g_0`` (the SIREN paper's observation that a SIREN's derivative is again a SIREN). The
fused SDF training step built on these (``fields.fused_sdf``) belongs to the SDF field.
"""

from typing import Any, Callable

import torch

from .siren import SineLayer, Siren

__all__ = [
    "supports_fused",
    "folded_params",
    "siren_value_and_gradient",
    "make_fast_forward",
    "inference_forward",
    "CPU_FORWARD_ROWS",
    "resolve_precision",
]


def supports_fused(network: torch.nn.Module) -> bool:
    """Return whether ``network`` is a plain sine ``Siren`` with one output (the fused step's domain).

    Other activations, input encodings, multi-output networks and subclasses fall back to the
    autograd reference.
    """
    if type(network) is not Siren or network.config.activation != "sine" or network.config.out_dim != 1:
        return False
    if getattr(network, "encoding", None) is not None:
        return False
    return all(type(layer) is SineLayer and layer.activation == "sine" for layer in network.layers)


def resolve_precision(precision: str, device: Any) -> torch.dtype:
    """``float32`` or ``bfloat16`` for ``precision`` in {auto, float32, bfloat16} on ``device``.

    ``auto`` picks bfloat16 where the hardware does bfloat16 matrix products natively: CUDA
    devices that report it, CPUs that oneDNN runs in bfloat16 (AVX512-BF16 / AMX); float32 elsewhere.

    Raises:
        ValueError: ``precision`` is none of the three.
    """
    if precision == "float32":
        return torch.float32
    if precision == "bfloat16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"precision must be one of ['auto', 'float32', 'bfloat16'], got {precision!r}")
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    try:
        fast = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        fast = False
    return torch.bfloat16 if fast and dev.type == "cpu" else torch.float32


def folded_params(network: Siren) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Weights and biases with ``w0`` folded in (detached): ``W'_l = w0 W_l``, ``b'_l = w0 b_l``."""
    ws = [layer.linear.weight.detach() * layer.w0 for layer in network.layers]
    bs = [layer.linear.bias.detach() * layer.w0 for layer in network.layers]
    return ws, bs, network.last.weight.detach(), network.last.bias.detach()


def siren_value_and_gradient(
    network: Siren, coords: torch.Tensor, chunk_size: int = 65536
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate a sine SIREN and its input gradient in closed form, without autograd.

    Args:
        network: a plain sine ``Siren`` with one output (see ``supports_fused``).
        coords: ``(N, in_dim)`` normalized points.
        chunk_size: rows per chunk (bounds memory).

    Returns:
        ``(f, grad)``: ``(N, 1)`` values and ``(N, in_dim)`` gradients ``d f / d coords``, in the
        dtype and on the device of ``coords``; neither carries a graph.
    """
    if not supports_fused(network):
        raise TypeError("siren_value_and_gradient needs a plain sine Siren with one output")
    ws, bs, wo, bo = folded_params(network)
    n = coords.shape[0]
    f = coords.new_empty(n, 1)
    grad = coords.new_empty(n, coords.shape[1])
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            x = coords[start : start + chunk_size]
            cosines = []
            h = x
            for w, b in zip(ws, bs):
                z = torch.addmm(b, h, w.t())
                cosines.append(torch.cos(z))
                h = z.sin_()
            f[start : start + len(x)] = torch.addmm(bo, h, wo.t())
            g = cosines[-1] * wo
            for i in range(len(ws) - 1, -1, -1):
                g = g @ ws[i]
                if i > 0:
                    g.mul_(cosines[i - 1])
            grad[start : start + len(x)] = g
    return f, grad


CPU_FORWARD_ROWS = 4096
"""Rows per block of ``make_fast_forward`` on the CPU: a 256-wide layer's activations (4 MB) then
stay in the cache. Measured on the 2-core development CPU with the paper's 256x3 network on 262k
random points: 236k points/s at 2,048 rows, 217-228k at 8,192-16,384, 163k at 65,536 (1.4x);
inside sparse extraction at 256, 4,096 rows gave the best of 2,048/4,096/8,192 by a few percent."""


def make_fast_forward(network: Siren) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return an inference-only forward of a plain sine SIREN with ``w0`` folded into the weights.

    Computes ``sin(x W'^T + b')`` per layer with one fused matrix product plus bias and an in-place
    sine (no ``w0`` multiply, no autograd): the same function as ``network`` up to float rounding.
    The weights are captured now; later changes to ``network`` are not seen.

    Args:
        network: a plain sine ``Siren`` with one output (see ``supports_fused``).

    Returns:
        ``fn(coords (N, in_dim)) -> (N, 1)`` in the dtype and on the device of the weights.
    """
    if not supports_fused(network):
        raise TypeError("make_fast_forward needs a plain sine Siren with one output")
    with torch.no_grad():
        ws, bs, wo, bo = folded_params(network)
        wts = [w.t().contiguous() for w in ws]
        wot = wo.t().contiguous()

    def block(coords: torch.Tensor) -> torch.Tensor:
        h = coords
        for w, b in zip(wts, bs):
            h = torch.addmm(b, h, w).sin_()
        return torch.addmm(bo, h, wot)

    def forward(coords: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if coords.device.type != "cpu" or len(coords) <= CPU_FORWARD_ROWS:
                return block(coords)
            return torch.cat([block(part) for part in coords.split(CPU_FORWARD_ROWS)])

    return forward


def inference_forward(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``make_fast_forward(fn)`` for a plain sine SIREN (same function, faster), else ``fn`` itself.

    Args:
        fn: a network or any ``(N, 3) -> (N, 1)`` callable.
    """
    if isinstance(fn, Siren) and supports_fused(fn):
        return make_fast_forward(fn)
    return fn
