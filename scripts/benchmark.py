"""Speed benchmark: training step, extraction and memory, measured side by side in one run.

Prints one table:

* fp32 matrix-product rate of this machine (the compute limit), with the same torch threads;
* training points/s of the fused step (``TrainConfig.step_impl="fused"``) and of the autograd
  reference at the same network and batch, interleaved, as a ratio and as a fraction of the
  matrix-product rate (FLOPs per point per step: 12 * sum(in * out) over the linear layers:
  forward, input gradient, and the double backward; 2.37 MFLOP for the paper's 256x3 network);
* the same step's matrix products alone (same shapes, no elementwise work): the floor of any step
  that keeps them, and each step's speed as a fraction of it;
* extraction at 256 and 512 with the paper's network fitted to a shape: network evaluations and
  seconds, sparse (default) vs dense (``--dense``); the dense path is timed on a sample of its
  grid chunks and extrapolated unless ``--dense-full`` (dense 512 is 134 M evaluations);
* peak resident memory of a 1-million-point input fitted and extracted at 512 (a subprocess).

Time-to-quality against Open3D Poisson is ``scripts/benchmark_quality.py``.

Usage::

    python scripts/benchmark.py                  # CPU, about 10-20 minutes on 2 busy cores
    python scripts/benchmark.py --quick          # smaller, a few minutes (a smoke run)
    python scripts/benchmark.py --train-only --compile   # training rows only, plus torch.compile
    python scripts/benchmark.py --device cuda    # see scripts/gpu_benchmark.sh
"""

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _shared import SHAPES_DIR as SHAPES

from neural_sdf import ExtractConfig, FitOptions, LossWeights, SamplingConfig, SirenConfig, TrainConfig
from neural_sdf.extract import evaluate_grid, extraction_grid, marching_cubes, sparse_marching_cubes
from neural_sdf.fields.sdf import SDFModel, make_sdf_step
from neural_sdf.nn import Siren
from neural_sdf.nn.fused import make_fast_forward
from neural_sdf.reconstruct import fit_sdf


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_rate(device: str, n: int = 2048, reps: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n x n matrix product."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    best = math.inf
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_point(net: Siren) -> float:
    """Forward + input gradient + double backward: 12 * sum(in * out) over the linear layers."""
    layers = [layer.linear for layer in net.layers] + [net.last]
    return 12.0 * sum(m.in_features * m.out_features for m in layers)


def matmul_floor_step(net: Siren, rows: int, device: str):
    """Return a function that runs only the matrix products of one training step of ``net``.

    Per linear layer (in -> out) over ``rows`` points: two ``rows x in x out`` products (forward,
    adjoint of the gradient chain), two ``rows x out x in`` (gradient chain, backward of the
    forward chain) and one weight gradient over ``2 rows`` (what the fused step fuses): 12 * rows
    * in * out FLOPs, the step's whole FLOP count. Its time is the floor of any step that keeps
    these products, at this machine's rate for these shapes.
    """
    layers = [layer.linear for layer in net.layers] + [net.last]
    bufs = []
    for m in layers:
        i, o = m.in_features, m.out_features
        bufs.append((torch.randn(rows, i, device=device), torch.randn(rows, o, device=device),
                     torch.randn(i, o, device=device), torch.randn(2 * rows, o, device=device),
                     torch.randn(2 * rows, i, device=device)))

    def run(_: int) -> None:
        for a, b, w, ga, gb in bufs:
            a @ w, a @ w, b @ w.t(), b @ w.t(), ga.t() @ gb

    return run


def compiled_fused_step(fused_step, device: str):
    """Wrap a fused step so that its row chunks run through ``torch.compile`` (inductor).

    The fused step calls ``neural_sdf.fields.fused_sdf.fused_chunk`` by module lookup; the wrapper swaps in
    the compiled chunk for its own calls only, so the other steps of the interleaved loop stay eager.
    Returns the wrapped step and the seconds its first call (compilation included) took.
    """
    import neural_sdf.fields.fused_sdf as fused_module

    eager = fused_module.fused_chunk
    compiled = torch.compile(eager, dynamic=False)

    def step(rep: int) -> None:
        fused_module.fused_chunk = compiled
        try:
            fused_step(rep)
        finally:
            fused_module.fused_chunk = eager

    _sync(device)
    t = time.perf_counter()
    step(0)
    _sync(device)
    return step, time.perf_counter() - t


def train_rate(hidden: int, layers: int, batch: int, reps: int, device: str, compile_step: bool = False) -> dict:
    """Points/s of the fused and the autograd step, interleaved (same network, same batches)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    d = torch.randn(100_000, 3, generator=g)
    pts = (0.5 * d / d.norm(dim=1, keepdim=True)).to(device)
    nrm = (d / d.norm(dim=1, keepdim=True)).to(device)
    net = Siren(SirenConfig(hidden_dim=hidden, num_hidden_layers=layers)).to(device)
    sampling = SamplingConfig(batch_size=batch)
    steps = {impl: make_sdf_step(net, pts, nrm, sampling, LossWeights(), 0, impl) for impl in ("fused", "autograd")}
    steps["matmul_floor"] = matmul_floor_step(net, 2 * batch, device)
    compile_s = None
    if compile_step:
        steps["compiled"], compile_s = compiled_fused_step(steps["fused"], device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for rep in range(reps + 1):  # the first round warms up
        for impl, step in steps.items():
            net.zero_grad(set_to_none=True)
            _sync(device)
            t = time.perf_counter()
            step(rep)
            _sync(device)
            if rep:
                times[impl].append(time.perf_counter() - t)
    rows = 2 * batch  # surface + off-surface samples per step
    out = {"network": f"{hidden}x{layers}", "rows_per_step": rows, "flops_per_point": flops_per_point(net)}
    for impl, ts in times.items():
        out[impl] = {"median_pts_s": rows / statistics.median(ts), "best_pts_s": rows / min(ts)}
    out["ratio_median"] = out["fused"]["median_pts_s"] / out["autograd"]["median_pts_s"]
    out["ratio_best"] = out["fused"]["best_pts_s"] / out["autograd"]["best_pts_s"]
    out["fused_of_floor"] = out["fused"]["median_pts_s"] / out["matmul_floor"]["median_pts_s"]
    out["autograd_of_floor"] = out["autograd"]["median_pts_s"] / out["matmul_floor"]["median_pts_s"]
    if compile_step:
        out["compile_s"] = compile_s
        out["compiled_over_fused"] = out["compiled"]["median_pts_s"] / out["fused"]["median_pts_s"]
    return out


def fit_model(shape: Path, steps: int, batch: int, device: str) -> SDFModel:
    options = FitOptions(
        siren=SirenConfig(),  # the paper's 256 x 3
        train=TrainConfig(steps=steps, lr=3e-4, checkpoint_every=0),
        sampling=SamplingConfig(batch_size=batch),
    )
    return fit_sdf(shape, options, device=device, progress=True)


class Counter:
    """Wrap an SDF function and count its evaluations."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.count += x.shape[0]
        return self.fn(x)


def extraction(model: SDFModel, resolution: int, dense_full: bool, sample_points: int, device: str) -> dict:
    """Sparse extraction (timed fully) and dense extraction (fully, or sampled and extrapolated)."""
    fn = make_fast_forward(model.network)
    grid = extraction_grid(model.normalization.to_normalized(model.data_bounds), ExtractConfig(resolution=resolution))
    counter = Counter(fn)
    _sync(device)
    t = time.perf_counter()
    result = sparse_marching_cubes(counter, grid, lipschitz=ExtractConfig().lipschitz, device=device, progress=True)
    _sync(device)
    sparse_s = time.perf_counter() - t
    out = {
        "resolution": resolution,
        "grid_points": grid.num_points,
        "sparse_evals": counter.count,
        "sparse_s": sparse_s,
        "sparse_faces": len(result.mesh.faces),
        "dense_evals": grid.num_points,
    }
    if dense_full:
        t = time.perf_counter()
        volume = evaluate_grid(fn, grid, device=device, progress=True)
        mesh = marching_cubes(volume, grid)
        out.update(dense_s=time.perf_counter() - t, dense_measured="full", dense_faces=len(mesh.faces))
    else:
        # Time the network on a sample of grid chunks at the dense path's chunk size, and marching
        # cubes on a full-size volume with the same surface (sparse values, far cells filled with
        # their sign); the sum estimates the dense wall time.
        chunk = 65536
        k = max(1, sample_points // chunk)
        rng = np.random.default_rng(0)
        starts = rng.integers(0, max(grid.num_points - chunk, 1), size=k)
        xs, ys, zs = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in grid.axes())
        nx, ny, nz = grid.shape
        t = time.perf_counter()
        with torch.no_grad():
            for s in starts.tolist():
                idx = torch.arange(s, s + chunk, device=device)
                coords = torch.stack([xs[idx // (ny * nz)], ys[(idx // nz) % ny], zs[idx % nz]], -1)
                fn(coords)[:, 0].cpu().numpy()
        eval_s = (time.perf_counter() - t) * grid.num_points / (k * chunk)
        volume = _surface_volume(result.mesh, grid)
        t = time.perf_counter()
        marching_cubes(volume, grid)
        mc_s = time.perf_counter() - t
        out.update(dense_s=eval_s + mc_s, dense_measured=f"estimated ({k * chunk / grid.num_points:.1%} of the grid timed)")
    out["eval_ratio"] = out["dense_evals"] / out["sparse_evals"]
    out["time_ratio"] = out["dense_s"] / out["sparse_s"]
    return out


def _surface_volume(mesh, grid) -> np.ndarray:
    """A ``grid.shape`` volume whose zero set is near ``mesh`` (for timing marching cubes only)."""
    vol = np.full(grid.shape, 1.0, dtype=np.float32)
    if mesh.is_empty:
        return vol
    idx = np.round((mesh.vertices - np.asarray(grid.origin)) / grid.spacing).astype(np.int64)
    idx = np.clip(idx, 1, np.asarray(grid.shape) - 2)
    vol[tuple(idx.T)] = -1.0
    return vol


def peak_memory(shape: Path, model_path: Path, points: int, resolution: int, steps: int, device: str) -> dict:
    """Peak RSS of a child process: load ``points`` samples, fit ``steps`` steps, extract at ``resolution``.

    The extraction uses the weights of ``model_path`` (the benchmark's fitted 256x3 network).
    """
    code = f"""
import json, resource, time
import torch
from neural_sdf import ExtractConfig, FitOptions, SamplingConfig, SirenConfig, TrainConfig
from neural_sdf.fields.sdf import SDFModel
from neural_sdf.io import load_points
from neural_sdf.reconstruct import fit_sdf, extract_mesh
cloud = load_points({str(shape)!r}, num_mesh_samples={points}, seed=0)
t = time.perf_counter()
options = FitOptions(siren=SirenConfig(), train=TrainConfig(steps={steps}, checkpoint_every=0), sampling=SamplingConfig(batch_size=5000), adapt_w0=False)
model = fit_sdf(cloud, options, device={device!r}, progress=False)  # the paper's 256 x 3, like the model below
# Extract the benchmark's fitted network (a few steps leave an unrepresentative, noisy SDF).
model.network.load_state_dict(SDFModel.load({str(model_path)!r}).network.state_dict())
mesh = extract_mesh(model, ExtractConfig(resolution={resolution}))
print(json.dumps({{"points": len(cloud), "faces": len(mesh.faces), "seconds": time.perf_counter() - t,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smaller run (smoke test)")
    parser.add_argument("--shape", type=Path, default=SHAPES / "armadillo.obj", help="shape to fit for the extraction rows")
    parser.add_argument("--model", type=Path, default=None, help="use this fitted 256x3 model for extraction instead of fitting")
    parser.add_argument("--fit-steps", type=int, default=150, help="steps of the fit used for extraction (default 150)")
    parser.add_argument("--reps", type=int, default=5, help="timed training steps per implementation and network")
    parser.add_argument("--dense-full", action="store_true", help="run the dense extraction fully (slow at 512)")
    parser.add_argument("--resolutions", default="256,512")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--compile", action="store_true", help="also time the fused step under torch.compile")
    parser.add_argument("--train-only", action="store_true", help="only the training rows (no extraction, no memory)")
    args = parser.parse_args()
    device = args.device
    if args.quick:
        args.reps, args.fit_steps, args.resolutions = 2, 20, "64,128"
    res = {"device": device, "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; load average {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)

    res["matmul_gflops"] = matmul_rate(device)
    print(f"fp32 matmul: {res['matmul_gflops']:.0f} GFLOP/s", flush=True)

    nets = [(256, 3), (128, 3), (128, 2), (64, 3)] if not args.quick else [(256, 3), (64, 3)]
    res["train"] = []
    for hidden, layers in nets:
        row = train_rate(hidden, layers, 5000, args.reps, device, args.compile)
        res["train"].append(row)
        print(f"train {row['network']}: fused {row['fused']['median_pts_s']:.0f} pts/s, autograd {row['autograd']['median_pts_s']:.0f} pts/s, x{row['ratio_median']:.2f}", flush=True)
    if args.train_only:
        print_table(res, args)
        return

    model = SDFModel.load(args.model, device=device) if args.model else fit_model(args.shape, args.fit_steps, 2500, device)
    res["extract"] = []
    for r in [int(v) for v in args.resolutions.split(",")]:
        row = extraction(model, r, args.dense_full, 2_000_000 if not args.quick else 300_000, device)
        res["extract"].append(row)
        print(f"extract {r}: sparse {row['sparse_evals']:,} evals {row['sparse_s']:.1f} s, dense {row['dense_evals']:,} evals {row['dense_s']:.1f} s ({row['dense_measured']})", flush=True)

    mem_points = 1_000_000 if not args.quick else 100_000
    model_path = args.model
    if model_path is None:
        model_path = Path("/tmp") / "neural_sdf_benchmark_model.nsdf"
        model.save(model_path)
    res["memory"] = peak_memory(args.shape, model_path, mem_points, 512 if not args.quick else 256, 5, device)
    res["self_peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    print_table(res, args)

def print_table(res: dict, args: argparse.Namespace) -> None:
    """Print the results as Markdown tables (and write ``--json``)."""
    device = res["device"]
    lines = ["", f"## neural_sdf speed benchmark ({device}, {res['threads']} threads, torch {res['torch']})", ""]
    lines.append(f"fp32 matrix product (2048^3): {res['matmul_gflops']:.0f} GFLOP/s")
    lines.append("")
    lines.append("| network | rows/step | fused pts/s | autograd pts/s | fused / autograd | fused % of matmul rate | autograd % "
                 "| products alone pts/s | fused % of that | autograd % of that |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for row in res["train"]:
        f, a = row["fused"]["median_pts_s"], row["autograd"]["median_pts_s"]
        fl = row["flops_per_point"] / 1e9
        lines.append(
            f"| {row['network']} | {row['rows_per_step']} | {f:,.0f} | {a:,.0f} | {row['ratio_median']:.2f}x (best {row['ratio_best']:.2f}x) "
            f"| {100 * f * fl / res['matmul_gflops']:.0f} % | {100 * a * fl / res['matmul_gflops']:.0f} % "
            f"| {row['matmul_floor']['median_pts_s']:,.0f} | {100 * row['fused_of_floor']:.0f} % | {100 * row['autograd_of_floor']:.0f} % |"
        )
    compiled = [row for row in res["train"] if "compile_s" in row]
    if compiled:
        lines.append("")
        lines.append("| network | torch.compile of the fused step vs eager fused | first step (compilation) s |")
        lines.append("|---|---|---|")
        for row in compiled:
            lines.append(f"| {row['network']} | {row['compiled_over_fused']:.2f}x | {row['compile_s']:.1f} |")
    if res.get("extract"):
        lines.append("")
        lines.append("| extraction | sparse evals | dense evals | fewer evals | sparse s | dense s | faster | dense timing |")
        lines.append("|---|---|---|---|---|---|---|---|")
    for row in res.get("extract", []):
        lines.append(
            f"| {row['resolution']} | {row['sparse_evals']:,} | {row['dense_evals']:,} | {row['eval_ratio']:.1f}x "
            f"| {row['sparse_s']:.1f} | {row['dense_s']:.1f} | {row['time_ratio']:.1f}x | {row['dense_measured']} |"
        )
    if "memory" in res:
        m = res["memory"]
        lines.append("")
        lines.append(
            f"peak memory: {m['points']:,}-point input, fit (5 steps) + sparse extraction at {512 if not args.quick else 256}: "
            f"{m['peak_rss_gb']:.2f} GB resident (this process: {res['self_peak_rss_gb']:.2f} GB)"
        )
    lines.append("Absolute numbers come from whatever else runs on the machine; the ratios are measured side by side.")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
