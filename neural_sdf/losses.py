"""Pure, unweighted loss terms. Weights live in ``config.LossWeights``, never here.

SDF terms follow the SIREN paper (Sitzmann et al. 2020, Sec. 4.2, Eq. 6). Each term is a mean
over the samples its mask selects (the reference code averages over the whole batch with zeros
elsewhere, which only rescales the weights by the fraction of selected samples).
"""

import torch

__all__ = [
    "sdf_surface_loss",
    "sdf_off_surface_loss",
    "normal_alignment_loss",
    "eikonal_loss",
    "sdf_sign_loss",
    "divergence_loss",
    "mse_loss",
    "poisson_residual",
    "helmholtz_residual",
    "helmholtz_pml_residual",
    "wave_residual",
]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if values.shape[0] != mask.shape[0]:
        raise ValueError(f"mask must have {values.shape[0]} rows, got {mask.shape[0]}")
    count = mask.sum()
    if int(count) == 0:
        return values.new_zeros(())
    return (values * mask.to(values.dtype)).sum() / count


def sdf_surface_loss(sdf: torch.Tensor, on_surface: torch.Tensor) -> torch.Tensor:
    """Mean ``|f(x)|`` over surface samples. ``sdf`` ``(M, 1)``, ``on_surface`` ``(M,)`` bool."""
    return _masked_mean(sdf.abs().squeeze(-1), on_surface)


def sdf_off_surface_loss(sdf: torch.Tensor, off_surface: torch.Tensor, alpha: float) -> torch.Tensor:
    """Mean ``exp(-alpha |f(x)|)`` over off-surface samples: penalizes zeros away from the data."""
    return _masked_mean(torch.exp(-alpha * sdf.abs().squeeze(-1)), off_surface)


def normal_alignment_loss(grad: torch.Tensor, normals: torch.Tensor, on_surface: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(grad f, n)`` over surface samples. ``grad``, ``normals`` ``(M, 3)``."""
    cos = torch.nn.functional.cosine_similarity(grad, normals, dim=-1, eps=1e-8)
    return _masked_mean(1.0 - cos, on_surface)


def sdf_sign_loss(sdf: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Mean ``relu(-s f(x))`` over the samples whose side ``s`` (-1 inside, +1 outside) is known.

    Zero wherever ``f`` has the sign the oriented input gives; elsewhere it pulls ``f`` towards
    that side, so no closed pocket of the wrong sign (a phantom sheet) survives away from the
    data. ``sdf`` ``(M, 1)``, ``sign`` ``(M,)`` in {-1, 0, 1} (0: unknown, not counted).
    """
    return _masked_mean(torch.relu(-sign * sdf.squeeze(-1)), sign != 0)


def eikonal_loss(grad: torch.Tensor) -> torch.Tensor:
    """Mean ``| |grad f| - 1 |`` over all samples (a signed distance has unit gradient)."""
    return (grad.norm(dim=-1) - 1.0).abs().mean()


def divergence_loss(div: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``|div grad f|`` (the Laplacian of f) over the samples ``mask`` selects.

    The second-order term of DiGS (Ben-Shabat et al., CVPR 2022, Sec. 3.2): a small divergence of
    the gradient field favours smooth level sets and keeps a normal-free fit from inventing
    surfaces. ``div`` ``(M, 1)``, ``mask`` ``(M,)`` bool.
    """
    return _masked_mean(div.abs().squeeze(-1), mask)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every element."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return ((pred - target) ** 2).mean()


# PDE residuals (SIREN paper, Sec. 4.3). Each returns the pointwise residual; a loss is
# ``mse_loss(residual, zeros)`` or a masked mean of its square.


def poisson_residual(laplacian_u: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Residual ``lap u - f`` of the Poisson equation ``lap u = f``; inputs ``(M, 1)``."""
    return laplacian_u - source


def helmholtz_residual(
    laplacian_u: torch.Tensor, u: torch.Tensor, wavenumber: float, source: torch.Tensor
) -> torch.Tensor:
    """Residual ``lap u + k^2 u + f`` of ``(lap + k^2) u = -f``; each input ``(M, C)`` (C = 2: real, imaginary)."""
    return laplacian_u + (wavenumber**2) * u + source


def helmholtz_pml_residual(
    u: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    coefficients: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
    wavenumber: float,
    source: torch.Tensor,
) -> torch.Tensor:
    """Residual ``sum_d (A_d u_dd + B_d u_d) + k^2 u + f`` of the Helmholtz equation in a PML.

    The stretched Laplacian ``sum_d (1/e_d) d/dx_d ((1/e_d) du/dx_d)`` written with complex
    coefficients per axis (``fields.pde.pml_coefficients``); ``u`` complex as (real, imaginary).

    Args:
        u: ``(M, 2)`` real and imaginary parts.
        first: ``(2, M, 2)`` ``du/dx``, ``du/dy``.
        second: ``(2, M, 2)`` ``d2u/dx2``, ``d2u/dy2``.
        coefficients: per axis ``(A_re, A_im, B_re, B_im)``, each ``(M,)``.
        wavenumber: ``k``.
        source: ``(M,)`` real source ``f``.

    Returns:
        ``(M, 2)`` real and imaginary parts of the residual.
    """
    re = wavenumber**2 * u[:, 0] + source
    im = wavenumber**2 * u[:, 1]
    for d, (a_re, a_im, b_re, b_im) in enumerate(coefficients):
        p2, q2 = second[d, :, 0], second[d, :, 1]
        p1, q1 = first[d, :, 0], first[d, :, 1]
        re = re + a_re * p2 - a_im * q2 + b_re * p1 - b_im * q1
        im = im + a_re * q2 + a_im * p2 + b_re * q1 + b_im * p1
    return torch.stack([re, im], dim=-1)


def wave_residual(u_tt: torch.Tensor, laplacian_x_u: torch.Tensor, speed: float) -> torch.Tensor:
    """Residual ``u_tt - c^2 lap_x u`` of the wave equation; inputs ``(M, 1)``."""
    return u_tt - (speed**2) * laplacian_x_u
