"""PDE problems on [-1, 1]^2 solved by a network (SIREN paper, Sec. 4.3): samples, losses, references.

Each problem draws collocation batches with boolean masks (interior residual, Dirichlet boundary,
initial condition), turns the network's derivatives (``nn.diffops``) into residuals
(``losses``), and knows an analytic reference solution:

* ``poisson``: ``lap u = f`` with Dirichlet data, ``u* = sin(2 pi x) sin(pi y) + x^2 y``.
* ``helmholtz``: ``(lap + k^2) u = -f``, ``f`` a point source at the origin (a narrow Gaussian of
  width ``sigma`` scaled by ``exp(k^2 sigma^2 / 2)``, so that outside it the field is exactly the
  point source's), outgoing solution ``u* = (i / 4) H0^(1)(k r)`` (real and imaginary outputs).
  The outgoing condition is imposed as Dirichlet data of ``u*`` on the square's boundary (the
  paper uses a perfectly matched layer instead); errors are measured at ``r >= exclude_radius``,
  outside the source's logarithmic singularity.
* ``wave``: 1-D wave equation ``u_tt = c^2 u_xx`` on ``(x, t)``, ``t = (tau + 1) / 2`` in [0, 1]
  for the second coordinate ``tau``, initial Gaussian pulse at rest, ``u = 0`` at ``x = +-1``;
  reference d'Alembert's ``(u0(x - ct) + u0(x + ct)) / 2``.

Residuals enter the loss divided by a fixed scale (stated per problem) so that they are O(1).
"""

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from ..config import PDEConfig
from ..losses import helmholtz_residual, mse_loss, poisson_residual, wave_residual
from ..nn import Siren, gradient, jacobian, laplacian
from ..sampling import step_generator
from ..train import StepFn

__all__ = [
    "PDE_NAMES",
    "PDEBatch",
    "PDEProblem",
    "PoissonProblem",
    "HelmholtzProblem",
    "WaveProblem",
    "make_problem",
    "make_pde_step",
    "evaluation_grid",
]

PDE_NAMES = ("poisson", "helmholtz", "wave")


class PDEBatch(NamedTuple):
    """Collocation samples of one step.

    Attributes:
        coords: ``(M, 2)`` points in [-1, 1]^2.
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


def _residual_and_boundary_loss(problem: Any, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared residual inside plus ``boundary_weight`` times the squared error on the boundary."""
    u, res = problem.residual(network, batch.coords, create_graph=True)
    r = _masked_mse(res, batch.interior)
    b = _masked_mse(u - batch.values, batch.boundary)
    return r + problem.config.boundary_weight * b, {"residual": float(r.detach()), "boundary": float(b.detach())}


class PDEProblem(Protocol):
    """What a problem provides to the step function and to the evaluation."""

    name: str
    out_dim: int

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch: ...

    def residual(self, network: Siren, coords: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]: ...

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]: ...

    def reference(self, coords: np.ndarray) -> np.ndarray: ...

    def error_mask(self, coords: np.ndarray) -> np.ndarray: ...

    @property
    def residual_scale(self) -> float: ...


@dataclass(frozen=True)
class PoissonProblem:
    """``lap u = f`` on [-1, 1]^2 with Dirichlet data of ``u* = sin(2 pi x) sin(pi y) + x^2 y``.

    The residual is divided by ``5 pi^2`` (the amplitude of ``f``).
    """

    config: PDEConfig
    name: str = "poisson"
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

    def error_mask(self, coords: np.ndarray) -> np.ndarray:
        return np.ones(len(coords), dtype=bool)

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        inner = torch.rand((c.batch_size, 2), generator=gen, device=like.device, dtype=like.dtype) * 2 - 1
        edge = _square_boundary(c.boundary_batch_size, gen, like)
        coords = torch.cat([inner, edge])
        interior = torch.arange(len(coords), device=like.device) < c.batch_size
        values = torch.as_tensor(self.reference(coords.detach().cpu().double().numpy()), dtype=like.dtype, device=like.device)
        return PDEBatch(coords, interior, ~interior, torch.zeros_like(interior), values * (~interior)[:, None])

    def residual(self, network: Siren, coords: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 1), residual / scale (M, 1))``."""
        x = coords.detach().requires_grad_(True)
        u = network(x)
        res = poisson_residual(laplacian(u, x, create_graph=create_graph), self._source(x))
        return u, res / self.residual_scale

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return _residual_and_boundary_loss(self, network, batch)


@dataclass(frozen=True)
class HelmholtzProblem:
    """Point source at the origin in a homogeneous medium (see the module docstring).

    Outputs are ``(Re u, Im u)``; the residual is divided by ``k^2`` (it then reads in units of
    ``u``).
    """

    config: PDEConfig
    name: str = "helmholtz"
    out_dim: int = 2

    @property
    def residual_scale(self) -> float:
        return self.config.wavenumber**2

    def _source(self, xy: torch.Tensor) -> torch.Tensor:
        k, s = self.config.wavenumber, self.config.source_sigma
        amp = math.exp(0.5 * (k * s) ** 2) / (2 * math.pi * s**2)
        f = amp * torch.exp(-(xy**2).sum(-1, keepdim=True) / (2 * s**2))
        return torch.cat([f, torch.zeros_like(f)], dim=-1)

    def reference(self, coords: np.ndarray) -> np.ndarray:
        """``(M, 2)`` real and imaginary parts of ``(i / 4) H0^(1)(k r)`` (infinite at ``r = 0``)."""
        from scipy.special import hankel1

        r = np.linalg.norm(coords, axis=1)
        with np.errstate(all="ignore"):
            u = 0.25j * hankel1(0, self.config.wavenumber * r)
        return np.stack([u.real, u.imag], axis=-1)

    def error_mask(self, coords: np.ndarray) -> np.ndarray:
        return np.linalg.norm(coords, axis=1) >= self.config.exclude_radius

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        n_src = int(round(c.batch_size * c.source_fraction))
        uniform = torch.rand((c.batch_size - n_src, 2), generator=gen, device=like.device, dtype=like.dtype) * 2 - 1
        # Points around the source resolve its narrow Gaussian (as the reference code does).
        near = torch.randn((n_src, 2), generator=gen, device=like.device, dtype=like.dtype) * (2 * c.source_sigma)
        edge = _square_boundary(c.boundary_batch_size, gen, like)
        coords = torch.cat([uniform, near.clamp(-1, 1), edge])
        interior = torch.arange(len(coords), device=like.device) < c.batch_size
        values = torch.zeros((len(coords), 2), dtype=like.dtype, device=like.device)
        values[~interior] = torch.as_tensor(self.reference(edge.detach().cpu().double().numpy()), dtype=like.dtype, device=like.device)
        return PDEBatch(coords, interior, ~interior, torch.zeros_like(interior), values)

    def residual(self, network: Siren, coords: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 2), residual / k^2 (M, 2))``."""
        x = coords.detach().requires_grad_(True)
        u = network(x)
        lap = torch.cat([laplacian(u[:, i : i + 1], x, create_graph=create_graph) for i in range(2)], dim=-1)
        res = helmholtz_residual(lap, u, self.config.wavenumber, self._source(x))
        return u, res / self.residual_scale

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        return _residual_and_boundary_loss(self, network, batch)


@dataclass(frozen=True)
class WaveProblem:
    """1-D wave equation on ``(x, tau)`` (see the module docstring).

    The residual is divided by ``c^2 / s^2`` (``s`` the pulse width: the scale of ``u_tt``).
    """

    config: PDEConfig
    name: str = "wave"
    out_dim: int = 1

    @property
    def residual_scale(self) -> float:
        return self.config.wave_speed**2 / self.config.pulse_width**2

    def _pulse(self, x: np.ndarray) -> np.ndarray:
        return np.exp(-(x**2) / (2 * self.config.pulse_width**2))

    def reference(self, coords: np.ndarray) -> np.ndarray:
        """``(M, 1)`` d'Alembert solution at ``(x, tau)`` points."""
        x, t = coords[:, :1], (coords[:, 1:] + 1.0) / 2.0
        c = self.config.wave_speed
        return 0.5 * (self._pulse(x - c * t) + self._pulse(x + c * t))

    def error_mask(self, coords: np.ndarray) -> np.ndarray:
        return np.ones(len(coords), dtype=bool)

    def sample(self, gen: torch.Generator, like: torch.Tensor) -> PDEBatch:
        c = self.config
        dev, dt = like.device, like.dtype
        inner = torch.rand((c.batch_size, 2), generator=gen, device=dev, dtype=dt) * 2 - 1
        nb = c.boundary_batch_size
        # Half the extra points on the initial line tau = -1, half on the walls x = +-1.
        xs = torch.rand(nb, generator=gen, device=dev, dtype=dt) * 2 - 1
        init = torch.stack([xs, -torch.ones_like(xs)], dim=-1)
        ts = torch.rand(nb, generator=gen, device=dev, dtype=dt) * 2 - 1
        walls = torch.stack([torch.where(torch.arange(nb, device=dev) % 2 == 0, 1.0, -1.0).to(dt), ts], dim=-1)
        coords = torch.cat([inner, init, walls])
        idx = torch.arange(len(coords), device=dev)
        interior = idx < c.batch_size
        initial = (idx >= c.batch_size) & (idx < c.batch_size + nb)
        boundary = idx >= c.batch_size + nb
        values = torch.zeros((len(coords), 1), dtype=dt, device=dev)
        values[initial] = torch.as_tensor(self._pulse(xs.detach().cpu().double().numpy())[:, None], dtype=dt, device=dev)
        return PDEBatch(coords, interior, boundary, initial, values)

    def _derivatives(self, network: Siren, coords: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, ...]:
        x = coords.detach().requires_grad_(True)
        u = network(x)
        g = gradient(u, x, create_graph=True)
        hess = jacobian(g, x, create_graph=create_graph)  # (M, 2, 2)
        # d/dt = 2 d/dtau because t = (tau + 1) / 2.
        u_t, u_xx, u_tt = 2.0 * g[:, 1:], hess[:, 0, 0:1], 4.0 * hess[:, 1, 1:2]
        return u, u_t, u_xx, u_tt

    def residual(self, network: Siren, coords: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(u (M, 1), residual / scale (M, 1))``."""
        u, _, u_xx, u_tt = self._derivatives(network, coords, create_graph)
        return u, wave_residual(u_tt, u_xx, self.config.wave_speed) / self.residual_scale

    def loss(self, network: Siren, batch: PDEBatch) -> tuple[torch.Tensor, dict[str, float]]:
        u, u_t, u_xx, u_tt = self._derivatives(network, batch.coords, create_graph=True)
        res = wave_residual(u_tt, u_xx, self.config.wave_speed) / self.residual_scale
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


def evaluation_grid(resolution: int) -> np.ndarray:
    """``(R * R, 2)`` points of a regular grid on [-1, 1]^2 (``indexing="ij"``: row ``i`` is ``x_i``)."""
    a = np.linspace(-1.0, 1.0, resolution)
    return np.stack(np.meshgrid(a, a, indexing="ij"), axis=-1).reshape(-1, 2)
