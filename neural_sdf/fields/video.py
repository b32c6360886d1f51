"""Video as a field ``(t, row, col) -> colour``: coordinates, random batches and the fitting loss.

Sample ``(k, i, j)`` of a ``T x H x W`` clip sits at ``(s t_k, r_i, c_j)``, each ``t, r, c``
``linspace(-1, 1, n)`` (``indexing="ij"``); frame index ``k`` may be fractional
(``frame_times``). ``s`` (``time_scale``, default 1) scales the time axis before the network:
with a SIREN it multiplies the first layer's frequencies along time, so ``s < 1`` limits how fast
the field may change between frames. Colours are mapped to [-1, 1] (``2 * value - 1``) like images.
"""

from typing import Callable, Optional

import numpy as np
import torch

from ..losses import mse_loss
from ..nn import Siren
from ..sampling import iter_chunks, step_generator
from ..train import StepFn

__all__ = ["frame_times", "video_coords", "video_targets", "make_video_step", "render_frames", "render_samples"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def frame_times(frames: np.ndarray | list[float], num_frames: int) -> np.ndarray:
    """Normalized times ``(K,)`` of (possibly fractional) frame indices in ``[0, num_frames - 1]``."""
    k = np.asarray(frames, dtype=np.float64)
    if num_frames < 2:
        return np.full_like(k, -1.0)
    return -1.0 + 2.0 * k / (num_frames - 1)


def video_coords(index: torch.Tensor, shape: tuple[int, int, int], dtype: torch.dtype = torch.float32, time_scale: float = 1.0) -> torch.Tensor:
    """Network inputs ``(M, 3)`` of flat sample indices ``(M,)`` (row-major over ``shape = (T, H, W)``)."""
    t, h, w = shape
    k, rest = index // (h * w), index % (h * w)
    i, j = rest // w, rest % w

    def norm(a: torch.Tensor, n: int) -> torch.Tensor:
        return a.to(dtype) * (2.0 / (n - 1)) - 1.0 if n > 1 else torch.full_like(a, -1.0, dtype=dtype)

    return torch.stack([norm(k, t) * time_scale, norm(i, h), norm(j, w)], dim=-1)


def video_targets(frames: np.ndarray, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Flatten ``(T, H, W, C)`` frames in [0, 1] to ``(T * H * W, C)`` targets in [-1, 1]."""
    f = np.asarray(frames)
    return torch.as_tensor(2.0 * f.reshape(-1, f.shape[-1]) - 1.0, dtype=dtype, device=device)


def make_video_step(
    network: Siren,
    targets: torch.Tensor,
    shape: tuple[int, int, int],
    batch_size: int,
    seed: int,
    forward: Optional[Forward] = None,
    time_scale: float = 1.0,
) -> StepFn:
    """Return a ``StepFn`` fitting ``batch_size`` random samples per step (drawn from ``(seed, step)``).

    ``forward`` replaces ``network``'s own forward pass (e.g. a mixed-precision one).
    """
    n = targets.shape[0]
    if n != shape[0] * shape[1] * shape[2]:
        raise ValueError(f"targets must have T*H*W = {shape[0] * shape[1] * shape[2]} rows, got {n}")
    fn = forward if forward is not None else network

    def step_fn(step: int) -> dict[str, float]:
        gen = step_generator(seed, step, targets.device)
        idx = torch.randint(n, (min(batch_size, n),), generator=gen, device=targets.device)
        loss = mse_loss(fn(video_coords(idx, shape, targets.dtype, time_scale)).float(), targets[idx])
        loss.backward()
        value = float(loss.detach())
        return {"loss": value, "values": value}

    return step_fn


def render_samples(
    network: Forward, index: torch.Tensor, shape: tuple[int, int, int], time_scale: float = 1.0, chunk_size: int = 65536
) -> torch.Tensor:
    """Evaluate the field at flat sample indices ``(M,)`` without autograd; returns ``(M, C)`` in network units."""
    dtype = next(network.parameters()).dtype if isinstance(network, torch.nn.Module) else torch.float32
    with torch.inference_mode():
        return torch.cat([network(video_coords(index[sl], shape, dtype, time_scale)) for sl in iter_chunks(len(index), chunk_size)])


def render_frames(
    network: Siren, times: np.ndarray, height: int, width: int, chunk_size: int = 65536, time_scale: float = 1.0
) -> np.ndarray:
    """Evaluate frames at normalized ``times`` ``(K,)``; returns ``(K, H, W, C)`` float64 in [0, 1] units (unclipped)."""
    param = next(network.parameters())
    r = torch.linspace(-1.0, 1.0, height, device=param.device, dtype=param.dtype)
    c = torch.linspace(-1.0, 1.0, width, device=param.device, dtype=param.dtype)
    rc = torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).reshape(-1, 2)
    out = []
    with torch.inference_mode():
        for t in np.asarray(times, dtype=np.float64):
            coords = torch.cat([torch.full_like(rc[:, :1], float(t) * time_scale), rc], dim=-1)
            frame = torch.cat([network(coords[sl]) for sl in iter_chunks(coords.shape[0], chunk_size)])
            out.append(frame.double().cpu().numpy().reshape(height, width, -1))
    return (np.stack(out) + 1.0) / 2.0
