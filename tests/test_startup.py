"""Start-up: ``neural-sdf --help`` and the package import do not load torch, Open3D or trimesh.

Measured (2-core CPU, machine shared): ``neural-sdf --help`` 0.14-0.16 s, against 2.7-4.8 s when
``import neural_sdf`` imported torch through ``reconstruct``. The test checks the cause (which
modules a bare import loads), which does not depend on the machine's load, and calling the
package's ``reconstruct`` still works.
"""

import subprocess
import sys

HEAVY = ("torch", "open3d", "trimesh", "skimage", "scipy")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_package_and_cli_imports_load_no_heavy_library() -> None:
    for statement in ("import neural_sdf", "import neural_sdf.cli", "from neural_sdf.cli import build_parser; build_parser()"):
        heavy = set(HEAVY) & _loaded_after(statement)
        assert not heavy, f"{statement!r} imported {sorted(heavy)}"


def test_modules_without_networks_do_not_load_torch() -> None:
    # Files, clean-up and pictures need no network: ``render`` of a mesh used to load torch (about
    # 1.5 s) through a type alias and the model-file module (scripts/benchmark_startup.py).
    for module in ("neural_sdf.io", "neural_sdf.geometry", "neural_sdf.render", "neural_sdf.cleanup", "neural_sdf.normals"):
        assert "torch" not in _loaded_after(f"import {module}"), f"import {module} loaded torch"


def test_reconstruct_is_callable_after_its_module_is_imported() -> None:
    import numpy as np

    import neural_sdf
    import neural_sdf.reconstruct  # noqa: F401  (binds the module to neural_sdf.reconstruct)
    from neural_sdf.config import ExtractConfig, SirenConfig, TrainConfig

    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    options = neural_sdf.FitOptions(siren=SirenConfig(hidden_dim=16, num_hidden_layers=1), train=TrainConfig(steps=5))
    result = neural_sdf.reconstruct(neural_sdf.PointCloud(d, d), options, ExtractConfig(resolution=24), progress=False)
    assert isinstance(result, neural_sdf.ReconstructResult)
