"""The ``--quality`` presets of the image, video and PDE commands: one field config, network and schedule each.

``fast``, ``default`` and ``high`` were chosen by measuring quality per second on the 2-core
development CPU (scripts ``benchmark_image.py``, ``benchmark_video.py`` and ``benchmark_pde.py``;
tables in ``scripts/FIELDS.md``); ``paper`` is the SIREN paper's network, steps and learning
rate. Explicit settings override a preset. Plain configs only (no torch), so the command line
can show them in ``--help``.
"""

from dataclasses import dataclass
from typing import Any, Optional

from ..config import ImageConfig, PDEConfig, SirenConfig, TrainConfig, VideoConfig

__all__ = ["AppPreset", "QUALITIES", "image_preset", "video_preset", "pde_preset"]

QUALITIES = ("fast", "default", "high", "paper")


@dataclass(frozen=True)
class AppPreset:
    """One ``--quality`` setting of an app.

    Attributes:
        config: the field's config (``ImageConfig``, ``VideoConfig`` or ``PDEConfig``).
        siren: width, depth and ``w0`` of the network.
        train: steps and learning-rate schedule.
        laplacian_blur: Laplacian supervision only: ``(start, end, fraction)``, the target's
            Gaussian blur shrinking from ``start`` to ``end`` pixels over ``fraction`` of the
            steps (``fields.image.LaplacianBlur``); None: the raw Laplacian.
    """

    config: Any
    siren: SirenConfig
    train: TrainConfig
    laplacian_blur: Optional[tuple[float, float, float]] = None


def _check(quality: str) -> None:
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {list(QUALITIES)}, got {quality!r}")


def image_preset(quality: str = "default", supervise: str = "values", laplacian_loss: str = "energy") -> AppPreset:
    """Settings of ``image --quality fast|default|high|paper``.

    ``paper``: SIREN 256 x 3 (first-layer w0 30), 10,000 full-batch float32 Adam steps at a
    constant 1e-4 (the SIREN reference code's image fit). The others: the same network with
    first-layer w0 90, random batches of 4,096 pixels, lr 1e-3 with cosine decay to 5e-5 and
    bfloat16 hidden layers where the hardware has them; 300 / 700 steps (about 20 s and 45 s at
    256 x 256 on one busy core). ``high``: 3,000 steps at lr 5e-4 (100 warm-up steps) decaying to
    1e-5, because lr 1e-3 held for longer diverges. Every fit keeps the parameters of its best
    measured PSNR (``run_fit(keep_best=True)``). At equal time
    on a 256 x 256 photograph (``scripts/benchmark_image.py --sweep``) each of these beat the
    paper's choice: batches of 4,096 pixels against the full image, lr 1e-3 against 1e-4,
    bfloat16 against float32, w0 90 against 30; batches of 2,048 diverged at lr 1e-3.
    """
    _check(quality)
    if supervise != "values":
        return _poisson_image_preset(quality, supervise, laplacian_loss)
    if quality == "paper":
        return AppPreset(
            ImageConfig(batch_size=0, precision="float32", eval_every=500),
            SirenConfig(hidden_dim=256, num_hidden_layers=3, w0_first=30.0, w0=30.0),
            TrainConfig(steps=10_000, lr=1e-4, checkpoint_every=0),
        )
    siren = SirenConfig(hidden_dim=256, num_hidden_layers=3, w0_first=90.0, w0=30.0)
    if quality == "high":
        # lr 1e-3 held for longer than ~400 steps degrades and then collapses (measured: 28.3 dB at
        # step 300, 10.3 dB from step 800 of a 4,000-step cosine); half of it, decaying further.
        return AppPreset(
            ImageConfig(batch_size=4096, eval_every=100),
            siren,
            TrainConfig(steps=3000, lr=5e-4, lr_final_ratio=0.02, warmup_steps=100, checkpoint_every=0),
        )
    steps = {"fast": 300, "default": 700}[quality]
    return AppPreset(
        ImageConfig(batch_size=4096, eval_every=100),
        siren,
        TrainConfig(steps=steps, lr=1e-3, lr_final_ratio=0.05, checkpoint_every=0),
    )


def _poisson_image_preset(quality: str, supervise: str, laplacian_loss: str = "energy") -> AppPreset:
    """Gradient / Laplacian supervision (Poisson reconstruction, paper Sec. 4.1).

    Input derivatives need float32 and a gentler fit than values: on the 256 x 256 ``camera``,
    150 steps of 4,096 pixels reached 18.9 dB with first-layer w0 30 and lr 1e-4, 12.7 dB with
    w0 90, and lr 1e-3 did not move from the initial 10.9 dB. Laplacians: the discrete Poisson
    energy (``ImageConfig.laplacian_loss``, ``fields.image.dirichlet_energy_loss``) on a
    coarse-to-fine blur of the target (``AppPreset.laplacian_blur``), 1,000 / 3,000 / 8,000 steps;
    ``laplacian_loss="pointwise"``: the network's own Laplacian, 600 / 1,500 / 5,000 steps.
    ``paper``: full batch, constant lr 1e-4, 10,000 steps, the raw target, pointwise (the
    reference code's Poisson fits).
    """
    if supervise not in ("gradient", "laplacian"):
        raise ValueError(f"supervise must be one of ['values', 'gradient', 'laplacian'], got {supervise!r}")
    if laplacian_loss not in ("energy", "pointwise"):
        raise ValueError(f"laplacian_loss must be one of ['energy', 'pointwise'], got {laplacian_loss!r}")
    siren = SirenConfig(hidden_dim=256, num_hidden_layers=3, w0_first=30.0, w0=30.0)
    if quality == "paper":
        return AppPreset(
            ImageConfig(supervise=supervise, laplacian_loss="pointwise", batch_size=0, precision="float32", eval_every=500),
            siren,
            TrainConfig(steps=10_000, lr=1e-4, checkpoint_every=0),
        )
    # Only the steps, the Laplacian loss and its target's blur differ between the cases below.
    fields: dict[str, Any] = {}
    blur = None
    if supervise == "laplacian" and laplacian_loss == "energy":
        # The discrete Poisson energy on 64 patches of 8 x 8 pixels (about 0.09 s a step on one
        # core, a quarter of the pointwise step). Probes on the 256 x 256 camera, 1,500 steps, PSNR
        # with the constant only removed: blur 32 -> 0 px over 90% of the steps 22.9 dB, 32 -> 0.5
        # px 22.1, 32 -> 1 px 21.4, 8 -> 0 px 22.6, 32 -> 0 px over 60% 20.5; no blur at all 13.2
        # after 300 steps (21.6 with it); lr 3e-4 19.8. scripts/FIELDS.md, image_poisson_energy*.json.
        steps = {"fast": 1000, "default": 3000, "high": 8000}[quality]
        fields["laplacian_loss"], blur = "energy", (32.0, 0.0, 0.9)
    elif supervise == "laplacian":
        # The network's own Laplacian: a sharp photograph's Laplacian weights its Fourier modes by
        # |k|^2 and the loss by |k|^4: with the raw target the fit stays at the image's mean (256 x
        # 256 camera: 11.2 dB after 200 steps, 11.3 after 387). Coarse to fine instead
        # (fields.image.LaplacianBlur): the target blurred by 32 pixels at the start, shrinking to
        # 1 pixel over 90% of the steps. Probes of 600 steps, PSNR with the affine ramp removed
        # (the constant only): 19.6 dB (15.3) when the blur reached 1 pixel at 60% of the steps,
        # 20.2 (16.1) at 90%; 1,500 steps: 21.1 (15.4). scripts/FIELDS.md, image_poisson_laplacian*.json.
        steps = {"fast": 600, "default": 1500, "high": 5000}[quality]
        fields["laplacian_loss"], blur = "pointwise", (32.0, 1.0, 0.9)
    else:
        # Gradient on the 256 x 256 camera: 26.6 dB after 1,000 steps (241 CPU s), 31.1 dB after 3,000
        # (698 CPU s; 30 dB from step 2,200); image_poisson*.json. ``high`` (8,000) is not measured.
        steps = {"fast": 1000, "default": 3000, "high": 8000}[quality]
    return AppPreset(
        ImageConfig(supervise=supervise, batch_size=4096, precision="float32", eval_every=100, **fields),
        siren,
        TrainConfig(steps=steps, lr=1e-4, lr_final_ratio=0.1, checkpoint_every=0),
        laplacian_blur=blur,
    )


def video_preset(quality: str = "default") -> AppPreset:
    """Settings of ``video --quality fast|default|high|paper``.

    ``paper``: the SIREN reference code's video fit (``train_video.py``): 1024 x 3, w0 30, every
    frame at full size, 38e-4 of bikes' pixels per step (165,000), Adam at 1e-4 for 100,000
    steps. The others: 25 frames at 256 pixels on the longer side, SIREN 256 x 3 with
    first-layer w0 60 and 6 along time (``VideoConfig.w0_time``), 8,192 random samples per step,
    lr 5e-4 (100 warm-up steps) decaying to 1e-5, bfloat16 hidden layers where the hardware has
    them; 1,000 / 3,000 / 8,000 steps. Measured on bikes (256 x 109): at lr 1e-3 the fit reached
    32.1 dB after 500 steps and then collapsed to 13.7 dB, hence the lower rate (and every fit keeps
    its best measured state). Frames between the fitted ones (fit on even frames, compared with the
    odd ones): 20.3 dB with w0 60 along time, 28.7 dB with 15, 29.6 dB with 6, against 29.5 dB for the
    average of the two neighbours (``scripts/FIELDS.md``).
    """
    _check(quality)
    if quality == "paper":
        return AppPreset(
            VideoConfig(frames=0, max_side=0, batch_size=165_000, w0_time=0.0, precision="float32", eval_every=1000),
            SirenConfig(hidden_dim=1024, num_hidden_layers=3, w0_first=30.0, w0=30.0),
            TrainConfig(steps=100_000, lr=1e-4, checkpoint_every=0),
        )
    steps = {"fast": 1000, "default": 3000, "high": 8000}[quality]
    return AppPreset(
        VideoConfig(frames=25, max_side=256, batch_size=8192, w0_time=6.0, eval_every=250),
        SirenConfig(hidden_dim=256, num_hidden_layers=3, w0_first=60.0, w0=30.0),
        TrainConfig(steps=steps, lr=5e-4, lr_final_ratio=0.02, warmup_steps=100, checkpoint_every=0),
    )


_PDE_STEPS = {
    "poisson": {"fast": 300, "default": 1000, "high": 3000},
    "helmholtz": {"fast": 1000, "default": 7000, "high": 10_000},
    "wave": {"fast": 1000, "default": 3000, "high": 6000},
}
_PDE_PAPER = {
    # (width, hidden layers, lr, steps): the SIREN reference code's train_helmholtz.py and
    # train_wave_equation.py (Adam at 2e-5, no schedule); Poisson (not in the paper as a
    # PDE on a square) gets the image fit's 256 x 3 at 1e-4.
    "poisson": (256, 3, 1e-4, 10_000),
    "helmholtz": (256, 3, 2e-5, 50_000),
    "wave": (512, 3, 2e-5, 100_000),
}


def pde_preset(problem: str, quality: str = "default") -> AppPreset:
    """Settings of ``pde PROBLEM --quality fast|default|high|paper``.

    ``paper``: the SIREN reference code's network, learning rate and steps (Helmholtz 256 x 3,
    Adam at 2e-5 for 50,000 steps; wave 512 x 3 at 2e-5 for 100,000 steps; Poisson 256 x 3 at
    1e-4 for 10,000), first-layer w0 30. The others: SIREN 128 x 3 (w0 30), cosine decay to 5%
    of the learning rate; steps per problem in ``_PDE_STEPS`` (Helmholtz 1,000 / 7,000 / 10,000,
    wave 1,000 / 3,000 / 6,000, Poisson 300 / 1,000 / 3,000). Poisson: 2,048 interior and 512 boundary points, lr
    1e-3. Helmholtz: the same points, 30% of them around the source, a source of width 0.03, lr
    3e-4. Wave: 1,024 interior points (half in the pulse's domain of influence) and 256 initial
    plus 256 wall points, lr 3e-4 (high: 1.5e-4), first-layer w0 15. The wavenumber, layer, pulse and reference grid are
    ``PDEConfig``'s defaults in every preset.
    """
    _check(quality)
    if problem not in _PDE_STEPS:
        raise ValueError(f"problem must be one of {list(_PDE_STEPS)}, got {problem!r}")
    if quality == "paper":
        width, depth, lr, steps = _PDE_PAPER[problem]
        return AppPreset(
            # The wave's reference code samples uniformly (no points drawn in the pulse's cone).
            PDEConfig(eval_every=1000, source_fraction=0.0 if problem == "wave" else PDEConfig.source_fraction),
            SirenConfig(hidden_dim=width, num_hidden_layers=depth, w0_first=30.0, w0=30.0),
            TrainConfig(steps=steps, lr=lr, checkpoint_every=0),
        )
    eval_every = 100 if quality == "fast" else 250
    if problem == "wave":
        # Half the points inside the pulse's domain of influence and lr 3e-4 (measured in
        # scripts/FIELDS.md: uniform points let the fit settle on u = 0; lr 1e-3 diverges).
        # First-layer w0 15 (the pulse is slow in space and time): 3,000 steps, relative error 0.038
        # in 212 CPU s (w0 30: 0.129, and longer runs at w0 30 blew up to u = 0, 0.978;
        # scripts/results/pde_wave_default.json, pde_wave_probes.json). High: 6,000 steps at lr 1.5e-4,
        # 0.019 in 423 CPU s (a longer schedule at 3e-4 keeps the rate high too long and blows up).
        return AppPreset(
            PDEConfig(batch_size=1024, boundary_batch_size=256, source_fraction=0.5, eval_every=eval_every),
            SirenConfig(hidden_dim=128, num_hidden_layers=3, w0_first=15.0, w0=30.0),
            TrainConfig(steps=_PDE_STEPS[problem][quality], lr=1.5e-4 if quality == "high" else 3e-4, lr_final_ratio=0.05, checkpoint_every=0),
        )
    if problem == "helmholtz":
        # lr 3e-4, 30% of the points around the source and a source of width 0.03 (the layer's
        # finite-difference solution with it is as close to the Hankel solution as with 0.02): at
        # step 600, relative error 0.73 against 0.95 with lr 1e-3, 10% and 0.02 (scripts/FIELDS.md).
        # 7,000 steps: relative error 0.0198 / 0.0328 (seeds 0 / 2) in about 645 CPU s of one core,
        # about 7 minutes on two; 5,500 steps had left seed 2 at 0.0698 (seeds 0 / 1: 0.047 / 0.044);
        # scripts/FIELDS.md, pde_helmholtz_seeds.json.
        return AppPreset(
            PDEConfig(batch_size=2048, boundary_batch_size=512, source_sigma=0.03, source_fraction=0.3, eval_every=eval_every),
            SirenConfig(hidden_dim=128, num_hidden_layers=3, w0_first=30.0, w0=30.0),
            TrainConfig(steps=_PDE_STEPS[problem][quality], lr=3e-4, lr_final_ratio=0.05, checkpoint_every=0),
        )
    return AppPreset(
        PDEConfig(batch_size=2048, boundary_batch_size=512, eval_every=eval_every),
        SirenConfig(hidden_dim=128, num_hidden_layers=3, w0_first=30.0, w0=30.0),
        TrainConfig(steps=_PDE_STEPS[problem][quality], lr=1e-3, lr_final_ratio=0.05, checkpoint_every=0),
    )
