"""Input derivatives (``nn.diffops``): finite differences, float64 ``gradcheck``, analytic oracles."""

import pytest
import torch
from conftest import analytic_sphere_sdf

from neural_sdf.config import SirenConfig
from neural_sdf.losses import eikonal_loss
from neural_sdf.nn import Siren, divergence, gradient, jacobian, laplacian


def _net64(seed: int = 0, out_dim: int = 1) -> Siren:
    torch.manual_seed(seed)
    return Siren(SirenConfig(hidden_dim=16, num_hidden_layers=2, out_dim=out_dim)).double()


def _points64(n: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=g, dtype=torch.float64) * 1.6 - 0.8)


def test_gradient_matches_central_differences() -> None:
    net = _net64()
    x = _points64(32).requires_grad_(True)
    g = gradient(net(x), x)
    h = 1e-5
    fd = torch.empty_like(g)
    with torch.no_grad():
        for a in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[a] = h
            fd[:, a] = (net(x + e) - net(x - e))[:, 0] / (2 * h)
    # Central differences err by O(h^2): measured max |g - fd| = 5.7e-9 to 6.9e-9 at h = 1e-5 and
    # 5.7e-7 to 6.9e-7 at h = 1e-4 (seeds 0-2), with |g| up to 0.8. A wrong gradient errs by O(|g|).
    torch.testing.assert_close(g, fd, rtol=0.0, atol=1e-7)


def test_gradient_in_float32_matches_float64() -> None:
    net = _net64()
    x64 = _points64(16).requires_grad_(True)
    g64 = gradient(net(x64), x64)
    net32 = net.float()
    x32 = x64.detach().float().requires_grad_(True)
    g32 = gradient(net32(x32), x32)
    assert g32.dtype == torch.float32 and g32.device == x32.device
    torch.testing.assert_close(g32.double(), g64, rtol=1e-3, atol=1e-3)


def test_gradcheck_gradient_divergence_laplacian_jacobian() -> None:
    net = _net64()
    x = _points64(5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: gradient(net(p), p, create_graph=True), (x,))
    assert torch.autograd.gradcheck(lambda p: laplacian(net(p), p, create_graph=True), (x,))
    assert torch.autograd.gradcheck(lambda p: divergence(gradient(net(p), p), p, create_graph=True), (x,))
    net3 = _net64(out_dim=3)
    assert torch.autograd.gradcheck(lambda p: jacobian(net3(p), p, create_graph=True), (x,))


def test_gradient_works_under_no_grad() -> None:
    # Normals must work in eval code; diffops enable grad themselves.
    net = _net64()
    x = _points64(8).requires_grad_(True)
    with torch.no_grad():
        with torch.enable_grad():
            y = net(x)
        g = gradient(y, x, create_graph=False)
    assert g.shape == (8, 3) and torch.isfinite(g).all()


def test_sphere_sdf_gradient_is_unit_radial_and_eikonal_is_zero() -> None:
    fn = analytic_sphere_sdf(radius=0.5, center=(0.1, -0.2, 0.3))
    x = _points64(200, seed=3)
    c = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    x = x[(x - c).norm(dim=-1) > 0.05].requires_grad_(True)  # the SDF is not differentiable at the center
    g = gradient(fn(x), x)
    radial = (x - c) / (x - c).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(g, radial.detach())
    assert float(eikonal_loss(g).detach()) < 1e-12
    # And the term is not trivially zero: a scaled SDF (not a distance) has eikonal error 1.
    g2 = gradient(2.0 * fn(x), x)
    assert float(eikonal_loss(g2).detach()) == pytest.approx(1.0)


def test_laplacian_and_divergence_analytic() -> None:
    # Laplacian of |x| in 3D is 2 / |x|; divergence of the identity field is 3.
    x = _points64(50, seed=4)
    x = x[x.norm(dim=-1) > 0.1].requires_grad_(True)
    lap = laplacian(x.norm(dim=-1, keepdim=True), x)
    torch.testing.assert_close(lap, 2.0 / x.norm(dim=-1, keepdim=True).detach())
    div = divergence(x * 1.0, x)
    torch.testing.assert_close(div, torch.full_like(div, 3.0))


def test_jacobian_of_linear_map() -> None:
    a = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], dtype=torch.float64)
    x = _points64(6).requires_grad_(True)
    jac = jacobian(x @ a.T, x)
    assert jac.shape == (6, 2, 3)
    torch.testing.assert_close(jac, a.expand(6, 2, 3))


def test_gradient_of_batched_inputs() -> None:
    net = _net64()
    x = _points64(12).reshape(3, 4, 3).requires_grad_(True)
    g = gradient(net(x), x)
    assert g.shape == (3, 4, 3)
    x1 = x[1].detach().requires_grad_(True)
    torch.testing.assert_close(g[1], gradient(net(x1), x1))


def test_bad_shapes_raise() -> None:
    x = _points64(4).requires_grad_(True)
    with pytest.raises(ValueError, match=r"\(\.\.\., 1\)"):
        gradient(x * 2, x)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        divergence(x[:, :2], x)
