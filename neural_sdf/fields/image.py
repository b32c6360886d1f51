"""Images as fields ``(row, col) -> colour``: pixel coordinates, targets and the fitting loss.

Coordinates follow the grid convention (``indexing="ij"``): pixel ``(i, j)`` of an ``H x W``
image sits at ``(r_i, c_j)`` with ``r = linspace(-1, 1, H)`` and ``c = linspace(-1, 1, W)``.
The network outputs colours mapped to [-1, 1] (``2 * value - 1``, as the SIREN reference code).
Derivatives are taken with respect to these normalized coordinates.
"""

from typing import Any, Callable, Literal, NamedTuple, Optional

import numpy as np
import torch

from ..losses import mse_loss
from ..nn import Siren, divergence, jacobian
from ..sampling import iter_chunks, step_generator
from ..train import StepFn

__all__ = [
    "pixel_coords",
    "ImageTargets",
    "image_targets",
    "image_loss",
    "make_image_step",
    "render_image",
    "evaluate_field",
    "FieldDerivatives",
    "field_derivatives",
    "LaplacianBlur",
    "laplacian_blur_at",
    "blur_laplacians",
    "LaplacianLoss",
    "ENERGY_PATCH",
    "grid_patches",
    "dirichlet_energy_loss",
]

Supervision = Literal["values", "gradient", "laplacian"]
LaplacianLoss = Literal["energy", "pointwise"]
"""How Laplacian supervision is fitted: ``energy``, the discrete Poisson problem on the pixel grid
(``dirichlet_energy_loss``), or ``pointwise``, the network's own Laplacian at each pixel against
the target (the paper's)."""

ENERGY_PATCH = 8
"""Side (pixels) of the square patches of ``dirichlet_energy_loss`` mini-batches. Measured on the
256 x 256 ``camera`` (1,500 steps of 4,096 pixels, ``scripts/FIELDS.md``): 64 patches of 8 x 8
reached 21.4 dB, 16 patches of 16 x 16 21.0 dB; 4,096 single pixels need 3 evaluations each."""


def pixel_coords(height: int, width: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return the ``(H * W, 2)`` coordinates of every pixel, row-major, in [-1, 1] (see the module docstring)."""
    r = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    c = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).reshape(-1, 2)


class ImageTargets(NamedTuple):
    """Per-pixel supervision in network units, rows in ``pixel_coords`` order.

    Attributes:
        values: ``(N, C)`` colours mapped to [-1, 1].
        gradients: ``(N, C, 2)`` derivatives of ``values`` along (row, col) coordinates (Sobel).
        laplacians: ``(N, C)`` Laplacians of ``values`` (3-point second differences per axis).
    """

    values: torch.Tensor
    gradients: torch.Tensor
    laplacians: torch.Tensor


def image_targets(
    image: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, derivatives: bool = True
) -> ImageTargets:
    """Build the targets of an ``(H, W, C)`` float image in [0, 1] (paper Sec. 4.1).

    Gradients use the Sobel filter, as the paper does, divided by 8 (its gain on a unit ramp)
    and by the pixel spacing ``2 / (n - 1)``. Laplacians sum per-axis ``[1, -2, 1]`` differences
    divided by the squared spacing. Both use reflecting borders. With ``derivatives=False``
    (fitting values only) they are empty ``(N, C, 0)`` / ``(N, 0)`` placeholders, which index
    like the full targets but take no memory.
    """
    from scipy import ndimage

    h, w, c = image.shape
    v = 2.0 * np.asarray(image, dtype=np.float64) - 1.0
    if not derivatives:
        values = torch.as_tensor(v.reshape(h * w, c), dtype=dtype, device=device)
        return ImageTargets(values, values.new_zeros((h * w, c, 0)), values.new_zeros((h * w, 0)))
    step = (2.0 / (h - 1), 2.0 / (w - 1))
    # Per channel: on an (H, W, C) array Sobel would also smooth across the channel axis.
    grads = np.stack(
        [np.stack([ndimage.sobel(v[:, :, ch], axis=a, mode="reflect") / (8.0 * step[a]) for a in (0, 1)], axis=-1) for ch in range(c)],
        axis=2,
    )
    lap = sum(ndimage.correlate1d(v, [1.0, -2.0, 1.0], axis=a, mode="reflect") / step[a] ** 2 for a in (0, 1))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a.reshape(h * w, *a.shape[2:]), dtype=dtype, device=device)

    return ImageTargets(t(v), t(grads), t(lap))


class LaplacianBlur(NamedTuple):
    """Coarse-to-fine schedule of the Laplacian target: a Gaussian blur of it, in pixels.

    The blur shrinks geometrically from ``start`` at step 0 to ``end`` at step ``steps`` and stays
    there. Why: an image's Laplacian weights its Fourier modes by ``|k|^2``, so a loss on it weights
    them by ``|k|^4``; a sharp photograph's Laplacian is dominated by pixel-scale detail, and the
    few cycles per image that carry most of the PSNR get almost no gradient (measured on the
    256 x 256 ``camera``: 11.2 dB after 200 steps of the raw target, flat). A blurred target has
    only the modes up to about ``1 / sigma``, so the coarse ones are fitted first, then the finer
    ones. Blurring the Laplacian is the Laplacian of the blurred image, so only the Laplacian is
    used.

    Attributes:
        start: blur at step 0 (pixels, > 0).
        end: final blur (pixels, >= 0; 0 is the raw 3-point Laplacian).
        steps: steps over which the blur shrinks (>= 1).
        levels: distinct blurs along the way (each computed once).
    """

    start: float
    end: float
    steps: int
    levels: int = 48


def laplacian_blur_at(schedule: LaplacianBlur, step: int) -> float:
    """Blur (pixels) of the Laplacian target at ``step``, on the schedule's grid of ``levels`` values."""
    if not (schedule.start > 0 and schedule.end >= 0 and schedule.steps >= 1 and schedule.levels >= 1):
        raise ValueError(f"schedule needs start > 0, end >= 0, steps >= 1 and levels >= 1, got {schedule}")
    level = min(schedule.levels, int(schedule.levels * min(step, schedule.steps) / schedule.steps))
    if level == schedule.levels:
        return float(schedule.end)
    # Geometric from start towards max(end, 0.25 px); the last level is ``end`` itself.
    floor = max(schedule.end, 0.25)
    return float(schedule.start * (floor / schedule.start) ** (level / schedule.levels))


def blur_laplacians(laplacians: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Gaussian blur (``sigma`` pixels, reflecting borders) of ``(H * W, C)`` per-pixel targets; same shape, dtype, device.

    With reflecting borders the blurred 3-point Laplacian is the 3-point Laplacian of the blurred
    (mirror-extended) image.
    """
    if sigma <= 0:
        return laplacians
    from scipy import ndimage

    c = laplacians.shape[1]
    a = laplacians.detach().double().cpu().numpy().reshape(height, width, c)
    out = np.stack([ndimage.gaussian_filter(a[:, :, ch], sigma, mode="reflect") for ch in range(c)], axis=-1)
    return torch.as_tensor(out.reshape(height * width, c), dtype=laplacians.dtype, device=laplacians.device)


def grid_patches(
    height: int, width: int, count: int, patch: int, generator: Optional[torch.Generator] = None, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left ``(row, col)`` pixel indices ``(count,)`` each of ``count`` random ``patch x patch`` patches.

    Corners range over ``[-patch + 1, H - 1]`` x ``[-patch + 1, W - 1]``: patches may hang over the
    border (``dirichlet_energy_loss`` ignores the pixels outside), so that every pixel, border ones
    included, lies in a patch with the same probability.
    """
    r0 = torch.randint(-patch + 1, height, (count,), generator=generator, device=device)
    c0 = torch.randint(-patch + 1, width, (count,), generator=generator, device=device)
    return r0, c0


def dirichlet_energy_loss(
    network: Callable[[torch.Tensor], torch.Tensor],
    laplacians: torch.Tensor,
    r0: torch.Tensor,
    c0: torch.Tensor,
    patch: tuple[int, int],
) -> torch.Tensor:
    """Discrete Dirichlet energy whose minimizer has the target Laplacian (Poisson reconstruction).

    The energy of pixel values ``f`` is ``E(f) = sum_edges (f_j - f_i)^2 / (2 h^2) + sum_i g_i f_i``
    over the edges between 4-neighbours inside the image (``h``: the pixel spacing along the edge,
    in normalized units) and the target Laplacians ``g``. Setting its derivative to zero gives
    ``L f = g`` with ``L`` the 3-point Laplacian with reflecting borders, the operator of
    ``image_targets``, whose only null space is the constant: unlike the network's own Laplacian
    (``pointwise``), it also fixes the ramps and other harmonic functions, through the border
    pixels. ``E(f) - E(u) = |grad_h (f - u)|^2 / 2`` for the solution ``u``: minimizing it weights
    the error's Fourier modes by ``|k|^2``, where the squared Laplacian error weights them by
    ``|k|^4`` (the Ritz method, E & Yu 2018). Each patch contributes its pixels' terms and their
    edges to the next row and column; this is an unbiased estimate of ``E / (H W)`` when the
    patches come from ``grid_patches``.

    Args:
        network: ``(M, 2) -> (M, C)`` field in network units, evaluated at ``pixel_coords``.
        laplacians: ``(H, W, C)`` target (``ImageTargets.laplacians`` reshaped, possibly blurred).
        r0, c0: ``(B,)`` top-left pixel indices of the patches (may be negative or hang over the border).
        patch: ``(rows, cols)`` of each patch; ``(H, W)`` with ``r0 = c0 = 0`` is the whole image.

    Returns:
        The energy per pixel and channel (a scalar; its value is relative, not an error).
    """
    h, w, c = laplacians.shape
    ph, pw = patch
    device, dtype = laplacians.device, laplacians.dtype
    rows = r0[:, None] + torch.arange(ph + 1, device=device)  # (B, ph + 1): the patch and the next row
    cols = c0[:, None] + torch.arange(pw + 1, device=device)
    r_in, c_in = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    ri, ci = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    r = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)[ri]
    q = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)[ci]
    coords = torch.stack(torch.broadcast_tensors(r[:, :, None], q[:, None, :]), dim=-1)
    f = network(coords.reshape(-1, 2)).to(dtype).reshape(rows.shape[0], ph + 1, pw + 1, c)
    inside = r_in[:, :ph, None] & c_in[:, None, :pw]  # (B, ph, pw) pixels of the patch in the image
    down = (inside & r_in[:, 1:, None]).unsqueeze(-1)  # the edge to the next row lies in the image
    right = (inside & c_in[:, None, 1:]).unsqueeze(-1)
    fc = f[:, :ph, :pw]
    hr, hc = 2.0 / (h - 1), 2.0 / (w - 1)
    g = laplacians[ri[:, :ph, None], ci[:, None, :pw]]
    energy = ((f[:, 1:, :pw] - fc) / hr) ** 2 * down + ((f[:, :ph, 1:] - fc) / hc) ** 2 * right
    terms = 0.5 * energy + g * fc * inside.unsqueeze(-1)
    return terms.sum() / (inside.sum().clamp_min(1) * c)


def _laplacians(jac: torch.Tensor, coords: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """Per-channel Laplacians ``(M, C)`` from the Jacobian ``(M, C, 2)``."""
    return torch.cat([divergence(jac[:, ch, :], coords, create_graph=create_graph) for ch in range(jac.shape[1])], dim=-1)


DerivativesFn = Callable[..., Any]
"""``derivatives(network, coords (M, 2), dims, second=...)`` returning ``u (M, C)``,
``first (2, M, C)`` and ``second (2, M, C)`` (as ``fields.pde.taylor_derivatives`` does)."""


def image_loss(
    network: Callable[[torch.Tensor], torch.Tensor],
    coords: torch.Tensor,
    targets: ImageTargets,
    supervise: Supervision,
    derivatives: Optional[DerivativesFn] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean squared error of the values, gradients or Laplacians of ``network`` at ``coords``.

    Args:
        network: ``(M, 2) -> (M, C)`` field (a ``Siren``, or its mixed-precision forward for values).
        coords: ``(M, 2)`` pixel coordinates.
        targets: rows matching ``coords``.
        supervise: which quantity is fitted (paper Sec. 4.1: values, or gradients / Laplacians
            only, which determine the image up to a constant / a harmonic function).
        derivatives: a forward-mode derivative function for gradient / Laplacian supervision
            (faster than autograd's double backward); None: autograd (``nn.diffops``).

    Returns:
        ``(loss, terms)``.
    """
    if supervise == "values":
        # No input derivative is supervised: coordinates need no gradient, so autograd records
        # only what the parameters' backward pass needs.
        loss = mse_loss(network(coords).float(), targets.values)
        return loss, {"values": float(loss.detach())}
    if supervise not in ("gradient", "laplacian"):
        raise ValueError(f"supervise must be one of ['values', 'gradient', 'laplacian'], got {supervise!r}")
    if derivatives is not None:
        d = derivatives(network, coords, (0, 1), second=supervise == "laplacian")
        if supervise == "gradient":
            loss = mse_loss(d.first.permute(1, 2, 0), targets.gradients)
            return loss, {"gradient": float(loss.detach())}
        loss = mse_loss(d.second.sum(0), targets.laplacians)
        return loss, {"laplacian": float(loss.detach())}
    x = coords.detach().requires_grad_(True)
    jac = jacobian(network(x), x, create_graph=True)
    if supervise == "gradient":
        loss = mse_loss(jac, targets.gradients)
        return loss, {"gradient": float(loss.detach())}
    loss = mse_loss(_laplacians(jac, x, create_graph=True), targets.laplacians)
    return loss, {"laplacian": float(loss.detach())}


def make_image_step(
    network: Siren,
    coords: torch.Tensor,
    targets: ImageTargets,
    supervise: Supervision,
    batch_size: int,
    seed: int,
    forward: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    derivatives: Optional[DerivativesFn] = None,
    laplacian_blur: Optional[LaplacianBlur] = None,
    shape: Optional[tuple[int, int]] = None,
    laplacian_loss: LaplacianLoss = "energy",
) -> StepFn:
    """Return a ``StepFn`` fitting every pixel (``batch_size`` 0 or >= N) or a per-step random subset.

    ``forward`` replaces ``network``'s own forward pass when fitting values (e.g. the
    mixed-precision pass of ``apps._common.make_forward``); ``derivatives`` computes input
    derivatives for gradient / Laplacian supervision (see ``image_loss``). ``laplacian_blur``
    (Laplacian supervision only; needs the image ``shape`` ``(H, W)``): fit the blurred Laplacian
    of ``LaplacianBlur``'s schedule instead of the raw one. ``laplacian_loss`` (Laplacian
    supervision; ``energy`` needs ``shape``): ``energy`` minimizes ``dirichlet_energy_loss`` on
    random ``ENERGY_PATCH``-pixel patches holding about ``batch_size`` pixels (the whole image when
    ``batch_size`` is 0 or >= N); ``pointwise`` fits the network's own Laplacian at random pixels.
    """
    n = coords.shape[0]
    fn = forward if (forward is not None and supervise == "values") else network
    energy = supervise == "laplacian" and laplacian_loss == "energy"
    if laplacian_loss not in ("energy", "pointwise"):
        raise ValueError(f"laplacian_loss must be one of ['energy', 'pointwise'], got {laplacian_loss!r}")
    if (laplacian_blur is not None or energy) and supervise == "laplacian" and (shape is None or shape[0] * shape[1] != n):
        raise ValueError(f"laplacian_blur and the energy loss need the image shape (H, W) with H * W = {n}, got {shape}")
    blurred: dict[float, torch.Tensor] = {}

    def step_targets(step: int) -> ImageTargets:
        if laplacian_blur is None or supervise != "laplacian":
            return targets
        sigma = laplacian_blur_at(laplacian_blur, step)
        if sigma not in blurred:
            blurred.clear()  # the schedule only shrinks: keep one level
            blurred[sigma] = blur_laplacians(targets.laplacians, shape[0], shape[1], sigma)
        return targets._replace(laplacians=blurred[sigma])

    def step_fn(step: int) -> dict[str, float]:
        current = step_targets(step)
        if energy:
            h, w = shape
            lap = current.laplacians.reshape(h, w, -1)
            if batch_size and batch_size < n:
                count = -(-batch_size // ENERGY_PATCH**2)
                r0, c0 = grid_patches(h, w, count, ENERGY_PATCH, step_generator(seed, step, coords.device), coords.device)
                loss = dirichlet_energy_loss(network, lap, r0, c0, (ENERGY_PATCH, ENERGY_PATCH))
            else:
                zero = torch.zeros(1, dtype=torch.long, device=coords.device)
                loss = dirichlet_energy_loss(network, lap, zero, zero, (h, w))
            loss.backward()
            return {"loss": float(loss.detach()), "energy": float(loss.detach())}
        if batch_size and batch_size < n:
            idx = torch.randint(n, (batch_size,), generator=step_generator(seed, step, coords.device), device=coords.device)
            batch = ImageTargets(current.values[idx], current.gradients[idx], current.laplacians[idx])
            loss, terms = image_loss(fn, coords[idx], batch, supervise, derivatives)
        else:
            loss, terms = image_loss(fn, coords, current, supervise, derivatives)
        loss.backward()
        return {"loss": float(loss.detach()), **terms}

    return step_fn


def evaluate_field(network: Callable[[torch.Tensor], torch.Tensor], coords: torch.Tensor, chunk_size: int = 65536) -> torch.Tensor:
    """Evaluate ``network`` at ``(M, d)`` coordinates in chunks, without autograd; returns ``(M, C)``."""
    with torch.inference_mode():
        return torch.cat([network(coords[sl]) for sl in iter_chunks(coords.shape[0], chunk_size)])


def render_image(network: Siren, height: int, width: int, chunk_size: int = 65536) -> np.ndarray:
    """Evaluate the field on every pixel; returns ``(H, W, C)`` float64 in image units (``(f + 1) / 2``, unclipped)."""
    param = next(network.parameters())
    coords = pixel_coords(height, width, param.device, param.dtype)
    values = evaluate_field(network, coords, chunk_size).double().cpu().numpy().reshape(height, width, -1)
    return (values + 1.0) / 2.0


class FieldDerivatives(NamedTuple):
    """Derivatives of a fitted image field on the pixel grid, in network units per normalized coordinate.

    Attributes:
        gradients: ``(H, W, C, 2)`` d/d(row, col) of each channel.
        laplacians: ``(H, W, C)``.
    """

    gradients: np.ndarray
    laplacians: np.ndarray


def field_derivatives(network: Siren, height: int, width: int, chunk_size: int = 16384) -> FieldDerivatives:
    """Evaluate the gradient and Laplacian of every output channel at every pixel (by autograd)."""
    param = next(network.parameters())
    coords = pixel_coords(height, width, param.device, param.dtype)
    grads, laps = [], []
    for sl in iter_chunks(coords.shape[0], chunk_size):
        x = coords[sl].detach().requires_grad_(True)
        with torch.enable_grad():
            jac = jacobian(network(x), x, create_graph=True)
            lap = _laplacians(jac, x, create_graph=False)
        grads.append(jac.detach().double().cpu().numpy())
        laps.append(lap.detach().double().cpu().numpy())
    c = grads[0].shape[1]
    return FieldDerivatives(np.concatenate(grads).reshape(height, width, c, 2), np.concatenate(laps).reshape(height, width, c))
