"""The fused SDF training step: a closed-form SIREN forward, input gradient and hand-derived backward
of the SDF loss (the kernels it shares with inference are in ``nn.fused``).

For a plain sine ``Siren`` (Sitzmann et al. 2020) with ``w0`` folded into the weights,
``z_l = h_{l-1} W_l^T + b_l``, ``h_l = sin(z_l)`` and ``f = h_L w_o^T + b_o``, the input gradient
has the closed form ``g_L = w_o``, ``delta_l = g_l * cos(z_l)``, ``g_{l-1} = delta_l W_l`` and
``grad f = g_0`` (the SIREN paper's observation that a SIREN's derivative is again a SIREN).
Given the adjoints ``f_bar`` and ``g0_bar`` of a loss of ``(f, grad f)``, the parameter gradients
follow from two more sweeps:

* the adjoint of the gradient chain, in the forward direction:
  ``delta_bar_l = g_bar_{l-1} W_l^T``, ``g_bar_l = delta_bar_l * cos(z_l)``,
  ``z_bar_l += -delta_bar_l * g_l * sin(z_l)``, ``dW_l += delta_l^T g_bar_{l-1}``,
  ``dw_o += sum_rows(g_bar_L)``;
* the adjoint of the forward chain, in reverse: ``h_bar_L = f_bar w_o``,
  ``z_bar_l += h_bar_l * cos(z_l)``, ``dW_l += z_bar_l^T h_{l-1}``, ``db_l = sum_rows(z_bar_l)``,
  ``h_bar_{l-1} = z_bar_l W_l``.

That is six matrix products per hidden layer, as in autograd's double backward, but without its
graph, its elementwise bookkeeping and its memory traffic; the two weight-gradient products of a
layer are fused into one product over ``2N`` rows by keeping ``[delta_l; z_bar_l]`` and
``[g_bar_{l-1}; h_{l-1}]`` in stacked buffers. Rows are processed in cache-sized chunks and the
gradients accumulated. The autograd implementation (``fields.sdf.sdf_loss``) stays the reference;
``tests/fields/test_fused.py`` checks both agree in float64.

With ``matmul_dtype=torch.bfloat16`` the products of the hidden layers (all but the first layer's,
whose ``k = 3`` products are cheap and whose ``w0 x`` phases bfloat16 would shift) round their
inputs to bfloat16 and accumulate in float32; everything else (sines, cosines, the loss, the
output layer, the parameters and their gradients) stays float32. On a CPU with native bfloat16
(AVX512-BF16) the step is about 1.5-2x faster with the same fitted surface (scripts/README.md,
"Choosing the defaults").
"""

from typing import NamedTuple, Optional

import torch

from ..config import LossWeights
from ..nn import Siren
from ..nn.fused import folded_params, supports_fused

__all__ = [
    "FusedSDFResult",
    "fused_sdf_loss_backward",
    "fused_chunk",
    "DEFAULT_ROW_CHUNK",
]

DEFAULT_ROW_CHUNK = 2048
"""Rows per chunk of the fused step: keeps a chunk's activations near the CPU's L2/L3 cache.
Measured on the 2-core development CPU with ``scripts/benchmark.py --chunks`` (see scripts/README.md)."""

_COS_EPS = 1e-8  # eps of torch.nn.functional.cosine_similarity, as used by losses.normal_alignment_loss


class FusedSDFResult(NamedTuple):
    """The SDF loss of one step, computed by the fused pass.

    Attributes:
        loss: weighted scalar loss (0-dim tensor, no graph).
        terms: each unweighted term (``surface``, ``off_surface``, ``normal``, ``eikonal``, and
            ``sign`` when sign targets were given).
    """

    loss: torch.Tensor
    terms: dict[str, float]


def _loss_adjoints(
    f: torch.Tensor,
    g: torch.Tensor,
    normals: torch.Tensor,
    on: torch.Tensor,
    off: torch.Tensor,
    scales: tuple[float, float, float, float, float],
    alpha: float,
    side: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums of the SDF terms over a chunk and the adjoints ``(f_bar, g_bar)`` of the weighted loss.

    ``scales`` are ``(w_surface / n_on, w_off / n_off, w_normal / n_on, w_eikonal / n_all,
    w_sign / n_signed)``, so that chunk contributions add up to the batch means of ``losses.py``.

    Returns:
        ``(sums (5,), f_bar (n, 1), g_bar (n, d))``; ``sums`` are unweighted, unnormalized.
    """
    s_surf, s_off, s_norm, s_eik, s_sign = scales
    fa = f.abs()
    sign = torch.sign(f)
    onf = on.to(f.dtype).unsqueeze(-1)
    offf = off.to(f.dtype).unsqueeze(-1)
    e = torch.exp(-alpha * fa)
    # d|f|/df = sign(f) (0 at 0, like autograd); d exp(-a|f|)/df = -a sign(f) exp(-a|f|).
    f_bar = sign * (s_surf * onf - (s_off * alpha) * offf * e)
    if side is not None:
        # d relu(-s f)/df = -s where s f < 0, else 0.
        wrong = torch.relu(-side * f)
        f_bar = f_bar - s_sign * side * (wrong > 0).to(f.dtype)
        sign_sum = wrong.sum()
    else:
        sign_sum = f.new_zeros(())

    gn = torch.linalg.vector_norm(g, dim=-1, keepdim=True)
    nn_ = torch.linalg.vector_norm(normals, dim=-1, keepdim=True)
    gden = gn.clamp_min(_COS_EPS)
    nden = nn_.clamp_min(_COS_EPS)
    ghat = g / gden
    nhat = normals / nden
    cos = (ghat * nhat).sum(-1, keepdim=True)
    # cosine_similarity normalizes each vector by its (eps-clamped) norm; the clamp is outside
    # autograd, so d cos / d g = (nhat - cos * g / |g|) / max(|g|, eps).
    inv_gn = torch.where(gn > 0, 1.0 / gn.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(gn))
    dcos = (nhat - cos * g * inv_gn) / gden
    dev = gn - 1.0
    g_bar = (s_eik * torch.sign(dev) * inv_gn) * g - (s_norm * onf) * dcos
    sums = torch.stack(
        [
            (fa * onf).sum(),
            (e * offf).sum(),
            ((1.0 - cos) * onf).sum(),
            dev.abs().sum(),
            sign_sum,
        ]
    )
    return sums, f_bar, g_bar


def fused_sdf_loss_backward(
    network: Siren,
    coords: torch.Tensor,
    normals: torch.Tensor,
    on_surface: torch.Tensor,
    off_surface: torch.Tensor,
    weights: LossWeights,
    row_chunk: Optional[int] = DEFAULT_ROW_CHUNK,
    sign: Optional[torch.Tensor] = None,
    matmul_dtype: Optional[torch.dtype] = None,
) -> FusedSDFResult:
    """Compute the SIREN SDF loss (paper Eq. 6) and add its parameter gradients to ``.grad``.

    Same loss, terms and gradients as ``fields.sdf.sdf_loss`` followed by ``loss.backward()``
    (each term a mean over the samples its mask selects, see ``losses.py``), computed by the
    closed-form forward, input gradient and backward described in the module docstring.

    Args:
        network: a plain sine ``Siren`` with one output (see ``supports_fused``).
        coords: ``(M, in_dim)`` normalized sample positions.
        normals: ``(M, in_dim)`` target normals (used where ``on_surface``).
        on_surface: ``(M,)`` bool mask of surface samples.
        off_surface: ``(M,)`` bool mask of free-space samples.
        weights: loss weights and ``alpha``.
        row_chunk: rows per chunk (None: all rows at once). Gradients are accumulated.
        sign: ``(M,)`` side of each free-space sample (-1, +1, 0 unknown) for the sign term
            (``losses.sdf_sign_loss``, weight ``weights.sign``), or None.
        matmul_dtype: ``torch.bfloat16`` for the hidden layers' products in bfloat16 (float32
            networks only; see the module docstring); None or the network's dtype: exact.

    Returns:
        ``FusedSDFResult`` with the weighted loss and the unweighted terms.

    Raises:
        TypeError: ``network`` is not a plain sine SIREN with one output.
    """
    if not supports_fused(network):
        raise TypeError("fused_sdf_loss_backward needs a plain sine Siren with one output")
    m = coords.shape[0]
    n_on = int(on_surface.sum())
    n_off = int(off_surface.sum())
    use_sign = sign is not None and weights.sign > 0
    n_sign = int((sign != 0).sum()) if use_sign else 0
    scales = (
        weights.surface / n_on if n_on else 0.0,
        weights.off_surface / n_off if n_off else 0.0,
        weights.normal / n_on if n_on else 0.0,
        weights.eikonal / m,
        weights.sign / n_sign if n_sign else 0.0,
    )
    side = sign.unsqueeze(-1) if use_sign and sign is not None else None
    layers = list(network.layers)
    ws, bs, wo, bo = folded_params(network)
    low = None
    if matmul_dtype is not None and matmul_dtype != ws[0].dtype and ws[0].dtype == torch.float32:
        low = [None] + [w.to(matmul_dtype) for w in ws[1:]]
    grads_w = [torch.zeros_like(w) for w in ws]
    grads_b = [torch.zeros_like(b) for b in bs]
    grad_wo = torch.zeros_like(wo)
    grad_bo = torch.zeros_like(bo)
    sums = coords.new_zeros(5)
    chunk = m if not row_chunk else int(row_chunk)
    with torch.no_grad():
        for start in range(0, m, chunk):
            sl = slice(start, min(start + chunk, m))
            s = fused_chunk(
                ws, bs, wo, bo, coords[sl], normals[sl], on_surface[sl], off_surface[sl], scales, weights.alpha,
                grads_w, grads_b, grad_wo, grad_bo, None if side is None else side[sl], low,
            )
            sums += s
        # Chain rule through the folding W' = w0 W, b' = w0 b.
        for layer, gw, gb in zip(layers, grads_w, grads_b):
            _accumulate(layer.linear.weight, gw.mul_(layer.w0))
            _accumulate(layer.linear.bias, gb.mul_(layer.w0))
        _accumulate(network.last.weight, grad_wo)
        _accumulate(network.last.bias, grad_bo)
    terms_t = torch.stack(
        [
            sums[0] / n_on if n_on else sums.new_zeros(()),
            sums[1] / n_off if n_off else sums.new_zeros(()),
            sums[2] / n_on if n_on else sums.new_zeros(()),
            sums[3] / m,
            sums[4] / n_sign if n_sign else sums.new_zeros(()),
        ]
    )
    w = terms_t.new_tensor([weights.surface, weights.off_surface, weights.normal, weights.eikonal, weights.sign])
    loss = (terms_t * w).sum()
    names = ("surface", "off_surface", "normal", "eikonal", "sign")
    terms = dict(zip(names, terms_t.tolist()))
    if not use_sign:
        del terms["sign"]
    return FusedSDFResult(loss, terms)


def _accumulate(param: torch.Tensor, grad: torch.Tensor) -> None:
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)


def fused_chunk(
    ws: list[torch.Tensor],
    bs: list[torch.Tensor],
    wo: torch.Tensor,
    bo: torch.Tensor,
    x: torch.Tensor,
    normals: torch.Tensor,
    on: torch.Tensor,
    off: torch.Tensor,
    scales: tuple[float, float, float, float, float],
    alpha: float,
    grads_w: list[torch.Tensor],
    grads_b: list[torch.Tensor],
    grad_wo: torch.Tensor,
    grad_bo: torch.Tensor,
    side: Optional[torch.Tensor] = None,
    low: Optional[list[Optional[torch.Tensor]]] = None,
) -> torch.Tensor:
    """One chunk of rows: forward, input gradient, loss adjoints, and both adjoint sweeps.

    ``low``: per layer, its folded weight in a lower precision for that layer's products (None
    entries, or ``low`` None: float32). ``fused_sdf_loss_backward`` looks this function up in the
    module at each call, so a compiled version can stand in for it (``scripts/benchmark.py`` times
    ``torch.compile`` that way).
    """

    def mm(a: torch.Tensor, i: int, transpose: bool = False) -> torch.Tensor:
        """``a W'_i`` (``a W'_i^T`` when ``transpose``), in ``low[i]``'s dtype where given, float32 out."""
        w = ws[i] if low is None or low[i] is None else low[i]
        w = w.t() if transpose else w
        return a @ w if w.dtype == a.dtype else (a.to(w.dtype) @ w).to(a.dtype)

    n = x.shape[0]
    num = len(ws)
    # stack_a[l] = [delta_l; z_bar_l] and stack_b[l] = [g_bar_{l-1}; h_{l-1}], both (2n, .), so that
    # dW'_l = stack_a[l]^T stack_b[l] is one product.
    stack_a = [x.new_empty(2 * n, w.shape[0]) for w in ws]
    stack_b = [x.new_empty(2 * n, w.shape[1]) for w in ws]
    stack_b[0][n:] = x
    cosines: list[torch.Tensor] = []
    sines: list[torch.Tensor] = []
    h = x
    for i in range(num):
        z = torch.addmm(bs[i], h, ws[i].t()) if low is None or low[i] is None else mm(h, i, transpose=True).add_(bs[i])
        cosines.append(torch.cos(z))
        h = torch.sin(z, out=stack_b[i + 1][n:]) if i + 1 < num else z.sin_()
        sines.append(h)
    f = torch.addmm(bo, h, wo.t())

    # Gradient chain (reverse): g_L = w_o, delta_l = g_l * cos(z_l), g_{l-1} = delta_l W'_l.
    gs: list[Optional[torch.Tensor]] = [None] * num  # g_l for l < L (g_L is w_o, broadcast)
    delta = torch.mul(cosines[-1], wo, out=stack_a[-1][:n])
    g = delta
    for i in range(num - 1, -1, -1):
        g = mm(delta, i)
        if i > 0:
            gs[i - 1] = g
            delta = torch.mul(g, cosines[i - 1], out=stack_a[i - 1][:n])

    sums, f_bar, g_bar = _loss_adjoints(f, g, normals, on, off, scales, alpha, side)

    # Adjoint of the gradient chain (forward): delta_bar_l = g_bar_{l-1} W'_l^T.
    stack_b[0][:n] = g_bar
    zbar_grad: list[torch.Tensor] = []
    gbar_prev = stack_b[0][:n]
    for i in range(num):
        dbar = mm(gbar_prev, i, transpose=True)
        if i + 1 < num:
            gbar_prev = torch.mul(dbar, cosines[i], out=stack_b[i + 1][:n])
            dbar.mul_(gs[i])
        else:
            grad_wo.add_((dbar * cosines[i]).sum(0, keepdim=True))
            dbar.mul_(wo)
        zbar_grad.append(dbar.mul_(sines[i]))  # = delta_bar * g * sin(z); enters z_bar with a minus

    # Adjoint of the forward chain (reverse).
    grad_wo.addmm_(f_bar.t(), sines[-1])
    grad_bo.add_(f_bar.sum(0))
    hbar = f_bar * wo
    for i in range(num - 1, -1, -1):
        zbar = torch.mul(hbar, cosines[i], out=stack_a[i][n:])
        zbar.sub_(zbar_grad[i])
        if low is None or low[i] is None:
            grads_w[i].addmm_(stack_a[i].t(), stack_b[i])
        else:
            grads_w[i].add_((stack_a[i].t().to(low[i].dtype) @ stack_b[i].to(low[i].dtype)).float())
        grads_b[i].add_(zbar.sum(0))
        if i > 0:
            hbar = mm(zbar, i)
    return sums


