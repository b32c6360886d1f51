"""PDE problems solved by a network (SIREN paper, Sec. 4.3): samples, losses, references.

Each problem draws collocation batches with boolean masks (interior residual, Dirichlet boundary,
initial condition), turns the network's derivatives into residuals (``losses``), and provides a
reference solution to measure the network against:

* ``poisson``: ``lap u = f`` on [-1, 1]^2 with Dirichlet data, ``u* = sin(2 pi x) sin(pi y) + x^2 y``.
* ``helmholtz`` (paper Sec. 4.3, Fig. 5): ``(lap + k^2) u = -f`` for a point source at the origin
  in a homogeneous medium, on [-1, 1]^2 surrounded inside by a perfectly matched layer (PML) of
  width ``L``: complex coordinate stretching ``d/dx -> (1 / e_x) d/dx``, ``e_x = 1 + i s_x(x) / k``,
  ``s_x = a0 k (d_x / L)^2`` with ``d_x`` the depth into the layer (the paper's ``a0 = 5``,
  ``L = 0.5``), ``u = 0`` on the outer edge. The source is a narrow Gaussian of width ``sigma``
  scaled by ``exp(k^2 sigma^2 / 2)``, so that outside it the field is exactly the point source's.
  Reference: the outgoing solution ``u* = (i / 4) H0^(1)(k r)`` (``scipy.special.hankel1``; time
  dependence ``exp(-i w t)``), compared in the physical region ``|x|, |y| <= 1 - L`` at
  ``r >= exclude_radius``. ``helmholtz_fd_solution`` solves the same stretched equation by finite
  differences, to check the layer itself.
* ``wave`` (paper Sec. 4.3): the 2-D wave equation ``u_tt = c^2 (u_xx + u_yy)`` on [-1, 1]^2 for
  ``t`` in ``[0, T]``, a Gaussian pulse at rest at the origin, ``u = 0`` on the walls. Network
  input ``(x, y, tau)`` with ``t = (tau + 1) T / 2``. Initial conditions either as loss terms
  (``initial_condition="penalty"``, the paper's) or built in (``"exact"``: ``u = u0 + g(t) N`` with
  ``g(0) = g'(0) = 0``). A share ``source_fraction`` of the collocation points lies in the pulse's
  domain of influence (``|x| <= c t + 3 s``). Reference: ``wave_fd_solution``, a
  second-order leapfrog finite-difference solution computed at two grid spacings to measure its
  own error; ``wave_free_space`` is the exact free-space solution (a Hankel transform) the tests
  compare it with while the pulse is away from the walls.

Input derivatives come from ``taylor_derivatives``: value, first and pure second derivatives
pushed forward through the layers together (one stacked matrix product per layer), with
autograd only for the parameters' backward pass; about 3x faster than autograd's double backward
on the CPU, for every activation and encoding. Residuals enter the loss divided by a fixed scale
(stated per problem) so that they are O(1).
"""

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Protocol, Sequence

import numpy as np
import torch

from ..config import PDEConfig
from ..losses import helmholtz_pml_residual, mse_loss, poisson_residual, wave_residual
from ..nn import Siren
from ..sampling import iter_chunks, step_generator
from ..train import StepFn

__all__ = [
    "PDE_NAMES",
    "PDEBatch",
    "EvaluationSet",
    "PDEProblem",
    "PoissonProblem",
    "HelmholtzProblem",
    "WaveProblem",
    "Derivatives",
    "taylor_derivatives",
    "pml_coefficients",
    "helmholtz_fd_solution",
    "wave_fd_solution",
    "wave_free_space",
    "FDSolution",
    "make_problem",
    "make_pde_step",
    "evaluation_grid",
    "evaluate_network",
]

PDE_NAMES = ("poisson", "helmholtz", "wave")


# ----------------------------------------------------------------------------- derivatives
class Derivatives(NamedTuple):
    """A network's value and pure input derivatives at ``M`` points.

    Attributes:
        u: ``(M, C)``.
        first: ``(D, M, C)``: ``du / dx_d`` for each requested input dimension ``d``.
        second: ``(D, M, C)``: ``d^2 u / dx_d^2``.
    """

    u: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor


def _encoding_streams(encoding: torch.nn.Module, x: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """``(1 + 2D, M, E)``: a parameter-free encoding, its first and its pure second derivatives."""
    from torch.func import jvp

    firsts, seconds = [], []
    with torch.no_grad():
        e = encoding(x)
        for d in dims:
            v = torch.zeros_like(x)
            v[:, d] = 1.0
            e1, e2 = jvp(lambda y: jvp(encoding, (y,), (v,))[1], (x,), (v,))
            firsts.append(e1)
            seconds.append(e2)
    return torch.stack([e, *firsts, *seconds])


def _activation_derivatives(kind: str, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(s(a), s'(a), s''(a))`` of a layer's activation."""
    if kind == "sine":
        s, c = torch.sin(a), torch.cos(a)
        return s, c, -s
    if kind == "tanh":
        t = torch.tanh(a)
        d = 1.0 - t * t
        return t, d, -2.0 * t * d
    if kind == "relu":
        d = (a > 0).to(a.dtype)
        return torch.relu(a), d, torch.zeros_like(a)
    raise ValueError(f"unknown activation {kind!r}")


def taylor_derivatives(network: Siren, coords: torch.Tensor, dims: Sequence[int], second: bool = True) -> Derivatives:
    """Value, first and pure second derivatives along ``dims`` of a ``Siren`` (any activation).

    Forward propagation of ``(h, dh/dx_d, d^2h/dx_d^2)``: with ``a = w0 (W h + b)``,
    ``a_d = w0 W h_d``, ``a_dd = w0 W h_dd`` (one product of the stacked streams), and
    ``h' = s(a)``, ``h'_d = s'(a) a_d``, ``h'_dd = s''(a) a_d^2 + s'(a) a_dd``. The output layer is
    linear. The result is differentiable with respect to the parameters (ordinary autograd), so a
    loss of it needs a single backward pass. Input encodings (positional, Fourier features) have
    no trainable parameters; their derivatives come from forward-mode autograd.

    Args:
        network: the field ``(M, in_dim) -> (M, C)`` (no modulation).
        coords: ``(M, in_dim)``.
        dims: input dimensions to differentiate along.
        second: also the second derivatives (False: ``second`` is empty, ``(0, M, C)``).

    Returns:
        ``Derivatives`` with ``first`` and ``second`` of shape ``(len(dims), M, C)``.
    """
    dims = list(dims)
    m, nd = coords.shape[0], len(dims)
    x = coords.detach()
    if network.encoding is not None:
        streams = _encoding_streams(network.encoding, x, dims)
        if not second:
            streams = streams[: 1 + nd]
    else:
        unit = torch.zeros((nd, m, x.shape[1]), device=x.device, dtype=x.dtype)
        for i, d in enumerate(dims):
            unit[i, :, d] = 1.0
        streams = torch.cat([x[None], unit, torch.zeros_like(unit)] if second else [x[None], unit])
    for layer in network.layers:
        z = streams @ layer.linear.weight.T  # (1 + 2D, M, H)
        a = layer.w0 * (z[0] + layer.linear.bias)
        a1 = layer.w0 * z[1 : 1 + nd]
        s, ds, dds = _activation_derivatives(layer.activation, a)
        if second:
            a2 = layer.w0 * z[1 + nd :]
            streams = torch.cat([s[None], ds * a1, dds * a1 * a1 + ds * a2])
        else:
            streams = torch.cat([s[None], ds * a1])
    out = streams @ network.last.weight.T
    return Derivatives(out[0] + network.last.bias, out[1 : 1 + nd], out[1 + nd :])


# ----------------------------------------------------------------------------- batches and evaluation sets
class PDEBatch(NamedTuple):
    """Collocation samples of one step.

    Attributes:
        coords: ``(M, in_dim)`` points in [-1, 1]^in_dim.
        interior: ``(M,)`` bool, where the residual is enforced.
        boundary: ``(M,)`` bool, where ``u`` must equal ``values`` (Dirichlet data).
        initial: ``(M,)`` bool, where ``u = values`` and ``du/dt = 0`` (wave only).
        values: ``(M, C)`` prescribed values; rows outside ``boundary | initial`` are zero and unused.
    """

    coords: torch.Tensor
    interior: torch.Tensor
    boundary: torch.Tensor
    initial: torch.Tensor
    values: torch.Tensor


class EvaluationSet(NamedTuple):
    """Where a solution is measured.

    Attributes:
        coords: ``(M, in_dim)`` network inputs (grids ``indexing="ij"``).
        reference: ``(M, C)`` reference solution (not finite where ``mask`` is False, e.g. at the source).
        mask: ``(M,)`` points that count in the error.
        shape: how ``M`` unfolds for pictures: ``(R, R)`` or ``(K, R, R)`` (wave: K times).
        times: physical times of the ``K`` slices (wave), else empty.
        reference_error: estimated relative error of the reference itself (0: analytic).
    """

    coords: np.ndarray
    reference: np.ndarray
    mask: np.ndarray
    shape: tuple[int, ...]
    times: np.ndarray
    reference_error: float


def evaluation_grid(resolution: int) -> np.ndarray:
    """``(R * R, 2)`` points of a regular grid on [-1, 1]^2 (``indexing="ij"``: row ``i`` is ``x_i``)."""
    a = np.linspace(-1.0, 1.0, resolution)
    return np.stack(np.meshgrid(a, a, indexing="ij"), axis=-1).reshape(-1, 2)


def _square_boundary(n: int, gen: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` uniform points on the boundary of [-1, 1]^2."""
    s = torch.rand(n, generator=gen, device=like.device, dtype=like.dtype) * 2 - 1
    side = torch.randint(4, (n,), generator=gen, device=like.device)
    sign = torch.where(side % 2 == 0, 1.0, -1.0).to(like.dtype)
    on_x = side < 2
    x = torch.where(on_x, sign, s)
    y = torch.where(on_x, s, sign)
    return torch.stack([x, y], dim=-1)


def _masked_mse(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if int(mask.sum()) == 0:
        return values.new_zeros(())
    v = values[mask]
    return mse_loss(v, torch.zeros_like(v))


class PDEProblem(Protocol):
    """What a problem provides to the step function and to the evaluation."""

    name: str
    in_dim: int
    out_dim: int
    config: PDEConfig

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch: ...

    def residual(self, network: Siren, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def solution(self, network: Siren, coords: torch.Tensor) -> torch.Tensor: ...

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]: ...

    def evaluation_set(self, resolution: int) -> EvaluationSet: ...


# ----------------------------------------------------------------------------- Poisson
@dataclass(frozen=True)
class PoissonProblem:
    """``lap u = f`` on [-1, 1]^2 with Dirichlet data of ``u* = sin(2 pi x) sin(pi y) + x^2 y``.

    The residual is divided by ``5 pi^2`` (the amplitude of ``f``).
    """

    config: PDEConfig
    name: str = "poisson"
    in_dim: int = 2
    out_dim: int = 1

    @property
    def residual_scale(self) -> float:
        return 5.0 * math.pi**2

    def _source(self, xy: torch.Tensor) -> torch.Tensor:
        x, y = xy[:, :1], xy[:, 1:]
        return -5.0 * math.pi**2 * torch.sin(2 * math.pi * x) * torch.sin(math.pi * y) + 2.0 * y

    def reference(self, coords: np.ndarray) -> np.ndarray:
        """``(M, 1)`` analytic solution at ``(M, 2)`` points."""
        x, y = coords[:, :1], coords[:, 1:]
        return np.sin(2 * np.pi * x) * np.sin(np.pi * y) + x**2 * y

    def evaluation_set(self, resolution: int) -> EvaluationSet:
        coords = evaluation_grid(resolution)
        return EvaluationSet(coords, self.reference(coords), np.ones(len(coords), bool), (resolution, resolution), np.zeros(0), 0.0)

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        inner = torch.rand((c.batch_size, 2), generator=gen, device=like.device, dtype=like.dtype) * 2 - 1
        edge = _square_boundary(c.boundary_batch_size, gen, like)
        coords = torch.cat([inner, edge])
        interior = torch.arange(len(coords), device=like.device) < c.batch_size
        values = torch.as_tensor(self.reference(coords.detach().cpu().double().numpy()), dtype=like.dtype, device=like.device)
        return PDEBatch(coords, interior, ~interior, torch.zeros_like(interior), values * (~interior)[:, None])

    def residual(self, network: Siren, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 1), residual / scale (M, 1))``."""
        d = taylor_derivatives(network, coords, (0, 1))
        return d.u, poisson_residual(d.second.sum(0), self._source(coords)) / self.residual_scale

    def solution(self, network: Siren, coords: torch.Tensor) -> torch.Tensor:
        """``u (M, C)``: the network itself."""
        return network(coords)

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        u, res = self.residual(network, batch.coords)
        r = _masked_mse(res, batch.interior)
        b = _masked_mse(u - batch.values, batch.boundary)
        return r + self.config.boundary_weight * b, {"residual": float(r.detach()), "boundary": float(b.detach())}


# ----------------------------------------------------------------------------- Helmholtz with a PML
def pml_coefficients(coord: torch.Tensor, config: PDEConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Complex coefficients of one axis of the stretched Laplacian ``(1/e) d/dx ((1/e) du/dx)``.

    ``(1/e) d/dx ((1/e) u_x) = A u_xx + B u_x`` with ``A = 1/e^2`` and
    ``B = (1/e) d(1/e)/dx = -(i s'/k) / e^3``, where ``e = 1 + i s/k`` and ``s = a0 k (d / L)^2``
    for depth ``d = |x| - (1 - L) > 0`` into the layer (0 outside it).

    Args:
        coord: ``(M,)`` one coordinate.
        config: ``wavenumber``, ``pml_width`` and ``pml_strength``.

    Returns:
        ``(A_re, A_im, B_re, B_im)``, each ``(M,)``.
    """
    width, a0 = config.pml_width, config.pml_strength
    depth = torch.clamp(coord.abs() - (1.0 - width), min=0.0)
    q = a0 * (depth / width) ** 2  # s / k
    dq = 2.0 * a0 * depth / width**2 * torch.sign(coord)  # (ds/dx) / k
    # 1 / e = 1 / (1 + i q) = (1 - i q) / (1 + q^2)
    den = 1.0 + q * q
    inv_re, inv_im = 1.0 / den, -q / den
    a_re, a_im = inv_re * inv_re - inv_im * inv_im, 2.0 * inv_re * inv_im
    c_re, c_im = a_re * inv_re - a_im * inv_im, a_re * inv_im + a_im * inv_re  # 1 / e^3
    # B = -i dq / e^3 = dq * (c_im - i c_re)
    return a_re, a_im, dq * c_im, -dq * c_re


class HelmholtzProblem:
    """Point source at the origin inside a PML-bounded square (see the module docstring).

    Outputs are ``(Re u, Im u)``; the residual (of the equation multiplied by nothing: stretched
    Laplacian + k^2 u + f) is divided by ``k^2`` (it then reads in units of ``u``).
    """

    name = "helmholtz"
    in_dim = 2
    out_dim = 2

    def __init__(self, config: PDEConfig) -> None:
        self.config = config

    @property
    def residual_scale(self) -> float:
        return self.config.wavenumber**2

    @property
    def physical_half_width(self) -> float:
        """Half-width of the physical region ``[-(1 - L), 1 - L]^2`` inside the layer."""
        return 1.0 - self.config.pml_width

    def _source(self, xy: torch.Tensor) -> torch.Tensor:
        k, s = self.config.wavenumber, self.config.source_sigma
        amp = math.exp(0.5 * (k * s) ** 2) / (2 * math.pi * s**2)
        return amp * torch.exp(-(xy**2).sum(-1) / (2 * s**2))

    def reference(self, coords: np.ndarray) -> np.ndarray:
        """``(M, 2)`` real and imaginary parts of ``(i / 4) H0^(1)(k r)`` (infinite at ``r = 0``)."""
        from scipy.special import hankel1

        r = np.linalg.norm(coords, axis=1)
        with np.errstate(all="ignore"):
            u = 0.25j * hankel1(0, self.config.wavenumber * r)
        return np.stack([u.real, u.imag], axis=-1)

    def error_mask(self, coords: np.ndarray) -> np.ndarray:
        """Points of the physical region outside ``exclude_radius`` of the source."""
        inside = np.all(np.abs(coords) <= self.physical_half_width + 1e-9, axis=1)
        return inside & (np.linalg.norm(coords, axis=1) >= self.config.exclude_radius)

    def evaluation_set(self, resolution: int) -> EvaluationSet:
        coords = evaluation_grid(resolution)
        return EvaluationSet(coords, self.reference(coords), self.error_mask(coords), (resolution, resolution), np.zeros(0), 0.0)

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        n_src = int(round(c.batch_size * c.source_fraction))
        n_phys = int(round(c.batch_size * c.physical_fraction))
        n_uni = c.batch_size - n_src - n_phys
        dev, dt = like.device, like.dtype
        uniform = torch.rand((n_uni, 2), generator=gen, device=dev, dtype=dt) * 2 - 1
        phys = (torch.rand((n_phys, 2), generator=gen, device=dev, dtype=dt) * 2 - 1) * self.physical_half_width
        # Points around the source resolve its narrow Gaussian (as the reference code does).
        near = torch.randn((n_src, 2), generator=gen, device=dev, dtype=dt) * (2 * c.source_sigma)
        edge = _square_boundary(c.boundary_batch_size, gen, like)
        coords = torch.cat([uniform, phys, near.clamp(-1, 1), edge])
        interior = torch.arange(len(coords), device=dev) < c.batch_size
        values = torch.zeros((len(coords), 2), dtype=dt, device=dev)  # u = 0 on the outer edge
        return PDEBatch(coords, interior, ~interior, torch.zeros_like(interior), values)

    def residual(self, network: Siren, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 2), residual / k^2 (M, 2))``."""
        d = taylor_derivatives(network, coords, (0, 1))
        ax = pml_coefficients(coords[:, 0], self.config)
        ay = pml_coefficients(coords[:, 1], self.config)
        res = helmholtz_pml_residual(d.u, d.first, d.second, (ax, ay), self.config.wavenumber, self._source(coords))
        return d.u, res / self.residual_scale

    def solution(self, network: Siren, coords: torch.Tensor) -> torch.Tensor:
        """``u (M, C)``: the network itself."""
        return network(coords)

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        u, res = self.residual(network, batch.coords)
        r = _masked_mse(res, batch.interior)
        b = _masked_mse(u - batch.values, batch.boundary)
        return r + self.config.boundary_weight * b, {"residual": float(r.detach()), "boundary": float(b.detach())}


def helmholtz_fd_solution(config: PDEConfig, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Solve the PML-stretched Helmholtz problem by second-order finite differences (a check of the layer).

    Conservative 5-point stencil of ``(1/e_x) d/dx((1/e_x) du/dx)`` (coefficients at half
    points) plus the same in ``y``, ``u = 0`` on the outer edge, the Gaussian source of
    ``HelmholtzProblem`` sampled at the nodes; one sparse LU solve (``scipy.sparse.linalg.spsolve``).

    Args:
        config: the problem.
        resolution: grid points per side (``R``), including the edges.

    Returns:
        ``(coords (R * R, 2), u (R * R, 2))`` real and imaginary parts on the grid (``indexing="ij"``).
    """
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    k = config.wavenumber
    n = resolution
    h = 2.0 / (n - 1)
    a = np.linspace(-1.0, 1.0, n)

    def inv_e(x: np.ndarray) -> np.ndarray:
        depth = np.clip(np.abs(x) - (1.0 - config.pml_width), 0.0, None)
        return 1.0 / (1.0 + 1j * config.pml_strength * (depth / config.pml_width) ** 2)

    m = n - 2  # interior nodes per side
    node, half_lo, half_hi = inv_e(a[1:-1]), inv_e(a[1:-1] - h / 2), inv_e(a[1:-1] + h / 2)
    # 1-D operator (1/e) d/dx (1/e) d/dx on interior nodes, zero Dirichlet data outside.
    main = -node * (half_lo + half_hi) / h**2
    lower = (node[1:] * half_lo[1:]) / h**2
    upper = (node[:-1] * half_hi[:-1]) / h**2
    d1 = sparse.diags([lower, main, upper], [-1, 0, 1], format="csr")
    eye = sparse.identity(m, format="csr")
    op = sparse.kron(d1, eye) + sparse.kron(eye, d1) + k**2 * sparse.identity(m * m)
    problem = HelmholtzProblem(config)
    xy = np.stack(np.meshgrid(a[1:-1], a[1:-1], indexing="ij"), axis=-1).reshape(-1, 2)
    f = problem._source(torch.as_tensor(xy)).numpy()
    u_in = spsolve(op.tocsc(), -f.astype(np.complex128))
    u = np.zeros((n, n), dtype=np.complex128)
    u[1:-1, 1:-1] = u_in.reshape(m, m)
    coords = evaluation_grid(n)
    return coords, np.stack([u.real.ravel(), u.imag.ravel()], axis=-1)


# ----------------------------------------------------------------------------- 2-D wave
class FDSolution(NamedTuple):
    """A finite-difference wave solution.

    Attributes:
        times: ``(K,)`` physical times of the snapshots.
        fields: ``(K, R, R)`` ``u`` on the grid (``indexing="ij"``) at those times.
        resolution: grid points per side, walls included.
        steps: leapfrog steps taken.
    """

    times: np.ndarray
    fields: np.ndarray
    resolution: int
    steps: int


def wave_fd_solution(config: PDEConfig, resolution: int, times: np.ndarray) -> FDSolution:
    """Leapfrog finite differences (second order in space and time) of ``wave`` on an ``R x R`` grid.

    5-point Laplacian, ``u = 0`` on the walls, ``dt = 0.5 h / c`` (shrunk so that the last
    requested time is a whole number of steps; the CFL limit is ``h / (c sqrt 2)``); the first
    step uses the Taylor start ``u^1 = u^0 + (c dt)^2 / 2 lap u^0`` (zero initial velocity).
    Snapshots at times between two steps are interpolated linearly in time (second order too).

    Args:
        config: ``wave_speed``, ``pulse_width``.
        resolution: grid points per side (``R``), walls included.
        times: ``(K,)`` physical times in ``[0, duration]`` at which to keep snapshots.

    Returns:
        ``FDSolution``.
    """
    c = config.wave_speed
    n = resolution
    h = 2.0 / (n - 1)
    a = np.linspace(-1.0, 1.0, n)
    x, y = np.meshgrid(a, a, indexing="ij")
    times = np.asarray(times, dtype=np.float64)
    t_end = float(times.max()) if len(times) else 0.0
    steps = max(int(math.ceil(t_end / (0.5 * h / c))), 1)
    dt = t_end / steps if t_end > 0 else 0.5 * h / c
    u0 = np.exp(-(x**2 + y**2) / (2 * config.pulse_width**2))
    u0[0, :] = u0[-1, :] = u0[:, 0] = u0[:, -1] = 0.0
    r2 = (c * dt / h) ** 2

    def lap(u: np.ndarray) -> np.ndarray:
        out = np.zeros_like(u)
        out[1:-1, 1:-1] = u[2:, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2] - 4 * u[1:-1, 1:-1]
        return out

    fields = np.zeros((len(times), n, n))
    # Snapshots between two time levels are interpolated linearly (error O(dt^2), as the scheme's).
    prev, cur, level = u0, u0 + 0.5 * r2 * lap(u0), 1  # levels ``level - 1`` and ``level``
    for idx in np.argsort(times):
        pos = times[idx] / dt
        while level < pos and level < steps:
            prev, cur, level = cur, 2 * cur - prev + r2 * lap(cur), level + 1
        w = min(max(pos - (level - 1), 0.0), 1.0)
        fields[idx] = (1.0 - w) * prev + w * cur
    return FDSolution(times, fields, n, steps)


def wave_free_space(config: PDEConfig, r: np.ndarray, t: float, num_points: int = 4000) -> np.ndarray:
    """Exact free-space solution of the 2-D wave equation for the Gaussian pulse at rest.

    ``u(r, t) = int_0^inf s^2 q exp(-s^2 q^2 / 2) J0(q r) cos(c q t) dq`` (the Hankel transform
    of the pulse, each mode oscillating at ``c q``), by the trapezoid rule on ``q`` in
    ``[0, 12 / s]`` (the integrand is below ``exp(-72)`` beyond).

    Args:
        config: ``wave_speed`` ``c`` and ``pulse_width`` ``s``.
        r: ``(M,)`` distances from the origin.
        t: time.
        num_points: quadrature nodes.

    Returns:
        ``(M,)`` values.
    """
    from scipy.special import j0

    s, c = config.pulse_width, config.wave_speed
    q = np.linspace(0.0, 12.0 / s, num_points)
    weight = s**2 * q * np.exp(-0.5 * (s * q) ** 2) * np.cos(c * q * t)
    integrand = weight[None, :] * j0(np.asarray(r, dtype=np.float64)[:, None] * q[None, :])
    return np.trapezoid(integrand, q, axis=1)


class WaveProblem:
    """2-D wave equation on ``(x, y, tau)`` (see the module docstring).

    The residual is divided by ``c^2 / s^2`` (``s`` the pulse width: the scale of ``u_tt``).
    """

    name = "wave"
    in_dim = 3
    out_dim = 1

    def __init__(self, config: PDEConfig) -> None:
        self.config = config
        self._reference: dict[int, tuple[FDSolution, float]] = {}

    @property
    def residual_scale(self) -> float:
        return self.config.wave_speed**2 / self.config.pulse_width**2

    def _pulse(self, xy: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(xy**2).sum(-1, keepdim=True) / (2 * self.config.pulse_width**2))

    def times(self, count: int) -> np.ndarray:
        """``count`` evenly spaced physical times in ``[0, duration]``."""
        return np.linspace(0.0, self.config.duration, count)

    def reference_solution(self, count: int) -> tuple[FDSolution, float]:
        """Finite-difference snapshots at ``count`` times on ``reference_resolution`` points per side,
        and their estimated relative error (cached).

        The error estimate compares with the same scheme at half the spacing: for a second-order
        scheme the coarse error is about ``4/3`` of the difference, the fine one ``1/3`` of it;
        the finer solution is returned.
        """
        if count not in self._reference:
            n = self.config.reference_resolution
            times = self.times(count)
            coarse = wave_fd_solution(self.config, n, times)
            fine = wave_fd_solution(self.config, 2 * n - 1, times)
            on_coarse = fine.fields[:, ::2, ::2]
            diff = float(np.linalg.norm(on_coarse - coarse.fields) / np.linalg.norm(on_coarse))
            self._reference[count] = (fine, diff / 3.0)
        return self._reference[count]

    def evaluation_set(self, resolution: int) -> EvaluationSet:
        count = self.config.eval_times
        fine, err = self.reference_solution(count)
        step = (fine.resolution - 1) / (resolution - 1)
        if step != int(step):
            raise ValueError(
                f"eval_resolution - 1 ({resolution - 1}) must divide 2 * (reference_resolution - 1) ({fine.resolution - 1})"
            )
        ref = fine.fields[:, :: int(step), :: int(step)]
        xy = evaluation_grid(resolution)
        tau = 2.0 * fine.times / self.config.duration - 1.0
        coords = np.concatenate([np.concatenate([xy, np.full((len(xy), 1), t)], axis=1) for t in tau])
        return EvaluationSet(coords, ref.reshape(-1, 1), np.ones(len(coords), bool), (count, resolution, resolution), fine.times, err)

    @property
    def exact_initial(self) -> bool:
        """Whether the initial conditions hold by construction (``initial_condition == "exact"``)."""
        return self.config.initial_condition == "exact"

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        dev, dt = like.device, like.dtype
        inner = torch.rand((c.batch_size, 3), generator=gen, device=dev, dtype=dt) * 2 - 1
        n_cone = int(round(c.batch_size * c.source_fraction))
        if n_cone:
            # The pulse's domain of influence: a disc of radius c t + 3 s around the origin at time t
            # (the rest of the square is at rest, u = 0, which uniform samples mostly see).
            t = (inner[:n_cone, 2] + 1.0) * (0.5 * c.duration)
            radius = c.wave_speed * t + 3.0 * c.pulse_width
            rho = radius * torch.rand(n_cone, generator=gen, device=dev, dtype=dt).sqrt()
            phi = torch.rand(n_cone, generator=gen, device=dev, dtype=dt) * (2 * math.pi)
            disc = torch.stack([rho * torch.cos(phi), rho * torch.sin(phi)], dim=-1).clamp(-1.0, 1.0)
            inner = torch.cat([torch.cat([disc, inner[:n_cone, 2:]], dim=-1), inner[n_cone:]])
        nb = c.boundary_batch_size
        if self.exact_initial:
            # Nothing to enforce at t = 0: every extra point goes on the walls.
            ts = torch.rand((nb, 1), generator=gen, device=dev, dtype=dt) * 2 - 1
            coords = torch.cat([inner, torch.cat([_square_boundary(nb, gen, like), ts], dim=-1)])
            interior = torch.arange(len(coords), device=dev) < c.batch_size
            values = torch.zeros((len(coords), 1), dtype=dt, device=dev)
            return PDEBatch(coords, interior, ~interior, torch.zeros_like(interior), values)
        # Half the extra points on the initial plane tau = -1, half on the walls.
        xy = torch.rand((nb, 2), generator=gen, device=dev, dtype=dt) * 2 - 1
        init = torch.cat([xy, -torch.ones((nb, 1), device=dev, dtype=dt)], dim=-1)
        ts = torch.rand((nb, 1), generator=gen, device=dev, dtype=dt) * 2 - 1
        walls = torch.cat([_square_boundary(nb, gen, like), ts], dim=-1)
        coords = torch.cat([inner, init, walls])
        idx = torch.arange(len(coords), device=dev)
        interior = idx < c.batch_size
        initial = (idx >= c.batch_size) & (idx < c.batch_size + nb)
        boundary = idx >= c.batch_size + nb
        values = torch.zeros((len(coords), 1), dtype=dt, device=dev)
        values[initial] = self._pulse(xy)
        return PDEBatch(coords, interior, boundary, initial, values)

    def _terms(self, network: Siren, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``u``, ``u_t`` and the scaled residual at ``(M, 3)`` points, each ``(M, 1)``."""
        d = taylor_derivatives(network, coords, (0, 1, 2))
        rate = 2.0 / self.config.duration  # dt = (T / 2) dtau
        if not self.exact_initial:
            lap_xy = d.second[0] + d.second[1]
            res = wave_residual(rate**2 * d.second[2], lap_xy, self.config.wave_speed) / self.residual_scale
            return d.u, rate * d.first[2], res
        # u = u0 + g(t) N with g = a t^2 / (1 + a t^2), a = c^2 / s^2: g(0) = g'(0) = 0 meets both
        # initial conditions, g'' (0) = 2 a makes N O(1) where u_tt = c^2 lap u0 at t = 0, and g -> 1
        # after the pulse's time scale s / c, so that N is O(1) later too (a plain t^2 would make it tiny).
        g, g1, g2 = self._start_factor(coords)
        s2 = self.config.pulse_width**2
        r2 = (coords[:, :2] ** 2).sum(-1, keepdim=True)
        u0 = torch.exp(-r2 / (2 * s2))
        lap_u0 = u0 * (r2 / s2 - 2.0) / s2
        n, n_t, n_tt = d.u, rate * d.first[2], rate**2 * d.second[2]
        u = u0 + g * n
        u_t = g1 * n + g * n_t
        u_tt = g2 * n + 2 * g1 * n_t + g * n_tt
        lap_xy = lap_u0 + g * (d.second[0] + d.second[1])
        return u, u_t, wave_residual(u_tt, lap_xy, self.config.wave_speed) / self.residual_scale

    def _start_factor(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``g(t) = a t^2 / (1 + a t^2)`` (``a = c^2 / s^2``) and its first two time derivatives, each ``(M, 1)``."""
        a = self.residual_scale
        t = (coords[:, 2:] + 1.0) * (0.5 * self.config.duration)
        q = 1.0 / (1.0 + a * t * t)
        return a * t * t * q, 2 * a * t * q * q, 2 * a * (1.0 - 3.0 * a * t * t) * q**3

    def solution(self, network: Siren, coords: torch.Tensor) -> torch.Tensor:
        """``u (M, 1)`` at ``(M, 3)`` points ``(x, y, tau)`` (the network itself, or the exact-start form)."""
        if not self.exact_initial:
            return network(coords)
        return self._pulse(coords[:, :2]) + self._start_factor(coords)[0] * network(coords)

    def residual(self, network: Siren, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 1), residual / scale (M, 1))``."""
        u, _, res = self._terms(network, coords)
        return u, res

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        u, u_t, res = self._terms(network, batch.coords)
        r = _masked_mse(res, batch.interior)
        # The velocity is compared in units of c / s (the pulse's peak speed scale).
        vel = u_t * (self.config.pulse_width / self.config.wave_speed)
        i = _masked_mse(u - batch.values, batch.initial) + _masked_mse(vel, batch.initial)
        b = _masked_mse(u, batch.boundary)
        w = self.config.boundary_weight
        return r + w * (i + b), {"residual": float(r.detach()), "initial": float(i.detach()), "boundary": float(b.detach())}


def make_problem(name: str, config: PDEConfig) -> PDEProblem:
    """Return the problem called ``name`` (one of ``PDE_NAMES``)."""
    if name == "poisson":
        return PoissonProblem(config)
    if name == "helmholtz":
        return HelmholtzProblem(config)
    if name == "wave":
        return WaveProblem(config)
    raise ValueError(f"PDE must be one of {list(PDE_NAMES)}, got {name!r}")


def make_pde_step(network: Siren, problem: PDEProblem, seed: int, like: torch.Tensor) -> StepFn:
    """Return a ``StepFn`` drawing a fresh batch from ``(seed, step)``; ``like`` fixes device and dtype."""

    def step_fn(step: int) -> dict[str, float]:
        batch = problem.sample(step_generator(seed, step, like.device), like)
        loss, terms = problem.loss(network, batch)
        loss.backward()
        return {"loss": float(loss.detach()), **terms}

    return step_fn


def evaluate_network(network: Siren, problem: PDEProblem, coords: np.ndarray, chunk_size: int = 8192, residuals: bool = True) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Network values ``(M, C)`` (and residuals, or None) at ``coords``, in chunks, without parameter gradients."""
    param = next(network.parameters())
    sol, res = [], []
    with torch.no_grad():
        for sl in iter_chunks(len(coords), chunk_size):
            x = torch.as_tensor(coords[sl], dtype=param.dtype, device=param.device)
            if residuals:
                u, r = problem.residual(network, x)
                res.append(r.double().cpu().numpy())
            else:
                u = problem.solution(network, x)
            sol.append(u.double().cpu().numpy())
    return np.concatenate(sol), (np.concatenate(res) if residuals else None)

