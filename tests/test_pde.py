"""PDEs (issue 7): the analytic references satisfy their equations, SIREN solves Helmholtz on a
coarse grid below measured error and residual thresholds, and the ``pde`` command.
"""

import csv
import json

import numpy as np
import pytest
import torch

from neural_sdf.apps.pde import solve_pde
from neural_sdf.cli import main
from neural_sdf.config import PDEConfig, SirenConfig, TrainConfig
from neural_sdf.fields.pde import HelmholtzProblem, PoissonProblem, WaveProblem

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fd_second(fn, pts: np.ndarray, axis: int, h: float = 1e-3) -> np.ndarray:
    e = np.zeros(2)
    e[axis] = h
    return (fn(pts + e) - 2 * fn(pts) + fn(pts - e)) / h**2


def test_references_satisfy_their_equations():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.9, 0.9, size=(200, 2))
    config = PDEConfig()
    # Poisson: lap u* = f.
    p = PoissonProblem(config)
    lap = _fd_second(p.reference, pts, 0) + _fd_second(p.reference, pts, 1)
    f = p._source(torch.as_tensor(pts)).numpy()
    np.testing.assert_allclose(lap, f, atol=1e-3 * np.abs(f).max())
    # Helmholtz: (lap + k^2) u* = 0 away from the source, u* = (i/4) H0(kr) (outgoing: e^{ikr} / sqrt(r)).
    hz = HelmholtzProblem(config)
    far = pts[np.linalg.norm(pts, axis=1) > 0.3]
    u = hz.reference(far)
    lap = _fd_second(hz.reference, far, 0) + _fd_second(hz.reference, far, 1)
    k2u = config.wavenumber**2 * u
    np.testing.assert_allclose(lap + k2u, 0.0, atol=1e-3 * np.abs(k2u).max())
    # Wave: u_tt = c^2 u_xx, with t = (tau + 1) / 2, so u_tt = 4 u_tautau.
    w = WaveProblem(config)
    res = 4 * _fd_second(w.reference, pts, 1) - config.wave_speed**2 * _fd_second(w.reference, pts, 0)
    np.testing.assert_allclose(res, 0.0, atol=1e-3 * config.wave_speed**2 / config.pulse_width**2)
    np.testing.assert_allclose(w.reference(np.array([[0.3, -1.0]]))[0, 0], np.exp(-0.09 / (2 * config.pulse_width**2)))


def test_helmholtz_source_residual_is_zero_for_the_gaussian_field():
    # The loss uses residual / k^2 = (lap u + k^2 u + f) / k^2; far from the source f vanishes.
    hz = HelmholtzProblem(PDEConfig())
    f = hz._source(torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64))
    s = hz.config.source_sigma
    assert f[0, 0].item() == pytest.approx(np.exp(0.5 * (hz.config.wavenumber * s) ** 2) / (2 * np.pi * s**2))
    assert f[1, 0].item() < 1e-30 and torch.all(f[:, 1] == 0)


def test_siren_solves_helmholtz_on_a_coarse_grid():
    # Measured (seed 0, width 64, 3 hidden layers, w0 = 10, lr 1e-3, 512 + 25% source + 128
    # boundary points, 250 steps, 31x31 grid, k = 10): relative L2 error 0.54 (1.78 at step 0),
    # residual 0.23. A short coarse run: ``scripts/benchmark_pde.py`` runs longer ones.
    config = PDEConfig(batch_size=512, boundary_batch_size=128, eval_resolution=31, eval_every=125)
    result = solve_pde(
        "helmholtz",
        config=config,
        siren=SirenConfig(hidden_dim=64, w0_first=10.0, w0=10.0),
        train=TrainConfig(steps=250, lr=1e-3, checkpoint_every=0),
        progress=False,
    )
    assert result.relative_error < 0.65
    assert result.residual_rms < 0.3
    assert result.curve[-1][1] < result.curve[0][1]


def test_pde_command_writes_outputs(tmp_path):
    out = tmp_path / "poisson"
    code = main(["pde", "poisson", "-o", str(out), "--steps", "30", "--hidden-dim", "32", "--batch-size", "256",
                 "--boundary-batch-size", "64", "--eval-resolution", "21", "--eval-every", "10", "--lr", "1e-3", "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["relative_error"] < 2.0 and metrics["problem"] == "poisson"
    rows = list(csv.reader((out / "error.csv").open()))
    assert rows[0] == ["step", "relative_error", "loss"] and [r[0] for r in rows[1:]] == ["0", "10", "20", "30"]
    assert (out / "solution.png").stat().st_size > 0 and (out / "error.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [(["laplace"], "unknown PDE"), (["wave", "--steps", "-3"], "steps must be >= 1")])
def test_pde_command_bad_input(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["pde", *args, "-o", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not out.exists()
