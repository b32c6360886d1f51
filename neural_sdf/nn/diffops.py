"""Derivatives of network outputs with respect to their inputs.

The only place that calls ``torch.autograd.grad`` for input derivatives. Every helper runs under
``torch.enable_grad()`` so that normals and residuals also work inside ``torch.no_grad()`` /
eval code; pass ``create_graph=True`` when the result enters a loss.
"""

import torch

__all__ = ["gradient", "divergence", "laplacian", "jacobian"]


def gradient(y: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Return ``d y / d x`` for a scalar field.

    Args:
        y: ``(..., 1)`` outputs computed from ``x`` (with ``x.requires_grad``).
        x: ``(..., D)`` inputs.
        create_graph: keep the graph so the gradient can enter a loss.

    Returns:
        ``(..., D)`` gradient, same dtype and device as ``x``.
    """
    if y.shape[-1] != 1:
        raise ValueError(f"y must be (..., 1), got {tuple(y.shape)}")
    with torch.enable_grad():
        (g,) = torch.autograd.grad(
            y, x, grad_outputs=torch.ones_like(y), create_graph=create_graph, allow_unused=False
        )
    return g


def divergence(v: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Return ``sum_i d v_i / d x_i``: ``v`` ``(..., D)`` from ``x`` ``(..., D)``; result ``(..., 1)``."""
    if v.shape[-1] != x.shape[-1]:
        raise ValueError(f"v must be (..., {x.shape[-1]}), got {tuple(v.shape)}")
    div = torch.zeros_like(v[..., :1])
    with torch.enable_grad():
        for i in range(v.shape[-1]):
            (g,) = torch.autograd.grad(
                v[..., i].sum(), x, create_graph=create_graph, retain_graph=True
            )
            div = div + g[..., i : i + 1]
    return div


def laplacian(y: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Return the Laplacian ``(..., 1)`` of a scalar field ``y`` ``(..., 1)`` w.r.t. ``x``."""
    return divergence(gradient(y, x, create_graph=True), x, create_graph=create_graph)


def jacobian(y: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """Return the Jacobian ``(..., M, D)`` of ``y`` ``(..., M)`` w.r.t. ``x`` ``(..., D)``."""
    rows = []
    with torch.enable_grad():
        for i in range(y.shape[-1]):
            (g,) = torch.autograd.grad(
                y[..., i].sum(), x, create_graph=create_graph, retain_graph=True
            )
            rows.append(g)
    return torch.stack(rows, dim=-2)
