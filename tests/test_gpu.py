"""CUDA: the same fit on the GPU (``--device auto`` picks it), marked ``gpu``.

Skipped where no CUDA device is present (this project's CI machines have none); run with
``pytest -m gpu`` on a GPU machine.
"""

import numpy as np
import pytest
import torch

from neural_sdf.cli import main
from neural_sdf.config import ExtractConfig, SirenConfig, TrainConfig
from neural_sdf.geometry import PointCloud
from neural_sdf.reconstruct import FitOptions, reconstruct

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _sphere(n: int = 4000) -> PointCloud:
    d = np.random.default_rng(0).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return PointCloud(d, d)


def test_fit_on_cuda_matches_the_cpu_fit() -> None:
    options = FitOptions(siren=SirenConfig(hidden_dim=64, num_hidden_layers=2), train=TrainConfig(steps=200, checkpoint_every=0))
    cpu = reconstruct(_sphere(), options, ExtractConfig(resolution=64), progress=False)
    gpu = reconstruct(_sphere(), options, ExtractConfig(resolution=64), device="cuda", progress=False)
    assert gpu.model.device.type == "cuda"
    r_cpu = np.abs(np.linalg.norm(cpu.mesh.vertices, axis=1) - 1).mean()
    r_gpu = np.abs(np.linalg.norm(gpu.mesh.vertices, axis=1) - 1).mean()
    # Same recipe, other kernels: the same accuracy within a factor (not bit-equal).
    assert r_gpu < 2 * r_cpu + 1e-3, (r_gpu, r_cpu)
    q = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    np.testing.assert_allclose(gpu.model.sdf(q), [-1.0, 1.0], atol=0.05)


def test_cli_device_auto_uses_cuda(tmp_path) -> None:
    from neural_sdf.io import save_points
    from neural_sdf.scene import load_model

    save_points(_sphere(), tmp_path / "s.ply")
    rc = main([str(a) for a in ["fit", tmp_path / "s.ply", "-o", tmp_path / "m.nsdf", "--steps", "50", "--device", "auto", "--quiet"]])
    assert rc == 0
    assert load_model(tmp_path / "m.nsdf").info["device"].startswith("cuda")
