"""Frozen dataclasses for every tunable, and safe (JSON, no code) save and load.

Each field carries its documentation in ``metadata["help"]``; the CLI turns that into ``--help``.
Defaults follow the SIREN paper (Sitzmann et al., NeurIPS 2020) unless a comment says why not.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

__all__ = [
    "ScanConfig",
    "NormalsMode",
    "SirenConfig",
    "SamplingConfig",
    "LossWeights",
    "TrainConfig",
    "ExtractConfig",
    "ImageConfig",
    "VideoConfig",
    "PDEConfig",
    "ShapeSpaceConfig",
    "config_to_dict",
    "config_from_dict",
    "field_value",
    "TRUE_WORDS",
    "FALSE_WORDS",
    "replace_given",
    "default_sdf_siren",
    "density_w0_first",
    "default_sdf_train",
    "default_sdf_weights",
    "default_sdf_sampling",
]

T = TypeVar("T")


def _f(default: Any, help: str) -> Any:
    """Declare a dataclass field with its help text."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SirenConfig:
    """Shape of a SIREN network (Sitzmann et al. 2020, Sec. 3)."""

    in_dim: int = _f(3, "input coordinates per point")
    out_dim: int = _f(1, "outputs per point (1 for an SDF)")
    hidden_dim: int = _f(256, "width of every hidden layer")
    num_hidden_layers: int = _f(3, "number of hidden sine layers after the first sine layer")
    w0_first: float = _f(30.0, "frequency factor of the first sine layer (paper: 30)")
    w0: float = _f(30.0, "frequency factor of the hidden sine layers (paper: 30)")
    activation: Literal["sine", "relu", "tanh"] = _f(
        "sine", "hidden activation; 'relu' and 'tanh' are baselines with default PyTorch init"
    )
    num_frequencies: int = _f(
        0, "positional-encoding frequencies applied to the input (0: none; the ReLU P.E. baseline uses them)"
    )

    def __post_init__(self) -> None:
        for name in ("in_dim", "out_dim", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_hidden_layers < 0:
            raise ValueError(f"num_hidden_layers must be >= 0, got {self.num_hidden_layers}")
        if self.w0_first <= 0 or self.w0 <= 0:
            raise ValueError(f"w0_first and w0 must be > 0, got {self.w0_first} and {self.w0}")
        if self.num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {self.num_frequencies}")
        _check_literal(self, "activation")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the SDF loss terms (SIREN paper, Eq. 6; values from its reference code)."""

    surface: float = _f(3000.0, "weight of |f| on surface samples")
    off_surface: float = _f(100.0, "weight of exp(-alpha |f|) on off-surface samples")
    normal: float = _f(100.0, "weight of 1 - cos(grad f, n) on surface samples")
    eikonal: float = _f(50.0, "weight of | |grad f| - 1 | on all samples")
    alpha: float = _f(100.0, "decay rate alpha of the off-surface term, in 1/normalized units")
    sign: float = _f(
        0.0, "weight of relu(-s f) on free-space samples whose side s the oriented input gives (0: off, as in the paper)"
    )


@dataclass(frozen=True)
class SamplingConfig:
    """How each training batch is drawn."""

    batch_size: int = _f(5000, "surface points per step (capped at the cloud size)")
    off_surface_ratio: float = _f(1.0, "uniform off-surface samples per surface sample")
    near_surface_ratio: float = _f(
        0.0, "extra samples jittered around surface points, per surface sample (eikonal only)"
    )
    near_surface_sigma: float = _f(0.01, "std of the near-surface jitter, normalized units")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.off_surface_ratio < 0 or self.near_surface_ratio < 0:
            raise ValueError("off_surface_ratio and near_surface_ratio must be >= 0")


Precision = Literal["auto", "float32", "bfloat16"]
"""Arithmetic of the hidden layers' matrix products: ``TrainConfig.precision`` (the SDF step),
``ImageConfig.precision`` and ``VideoConfig.precision`` (fitting values)."""


@dataclass(frozen=True)
class TrainConfig:
    """The optimization loop."""

    steps: int = _f(2000, "optimizer steps")
    lr: float = _f(1e-4, "Adam learning rate (paper: 1e-4)")
    lr_final_ratio: float = _f(1.0, "final / initial learning rate of a cosine schedule (1: constant)")
    warmup_steps: int = _f(
        0, "steps of a linear learning-rate warm-up before the schedule, capped at a tenth of the steps (0: none)"
    )
    seed: int = _f(0, "seed of the initialization and of every batch")
    checkpoint_every: int = _f(500, "steps between resumable checkpoints (0: never)")
    log_every: int = _f(10, "steps between progress updates")
    step_impl: Literal["fused", "autograd"] = _f(
        "fused",
        "SDF training step: 'fused' (closed-form SIREN gradient and hand-derived backward, same loss "
        "and gradients, faster; plain sine networks only, others use 'autograd') or 'autograd' (the reference)",
    )
    precision: Precision = _f(
        "float32",
        "hidden layers' matrix products of the fused SDF step: bfloat16 (float32 accumulation; about 1.5-2x "
        "faster on CPUs with native bfloat16, same surface), float32, or auto (bfloat16 on such CPUs)",
    )

    def __post_init__(self) -> None:
        _check_literal(self, "step_impl")
        _check_literal(self, "precision")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 < self.lr_final_ratio <= 1:
            raise ValueError(f"lr_final_ratio must be in (0, 1], got {self.lr_final_ratio}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass(frozen=True)
class ExtractConfig:
    """Meshing: grid evaluation, marching cubes and clean-up."""

    resolution: int = _f(384, "grid points along the longest side of the padded bounding box")
    chunk_size: int = _f(65536, "grid points evaluated per network call (bounds memory)")
    padding: float = _f(0.05, "grid margin around the data's bounding box, as a fraction of its size")
    keep_fraction: float = _f(
        0.5,
        "a connected piece is kept when at least this fraction of its vertices lies near the input",
    )
    keep_distance: float = _f(
        2.0,
        "'near the input' means within this many grid cells of an input point, or within this many "
        "local point spacings of it (half the distance to its 8th neighbour), whichever is larger",
    )
    keep_all_components: bool = _f(False, "keep every connected piece (no clean-up)")
    dense: bool = _f(
        False,
        "evaluate every grid point (the reference path) instead of the sparse coarse-to-fine "
        "evaluation, which meshes the same cells from far fewer evaluations",
    )
    lipschitz: float = _f(
        1.0,
        "sparse path: assumed bound on |grad f| used to skip cells that cannot hold the surface "
        "(eikonal training makes it about 1; cells it wrongly skips next to found surface are repaired)",
    )
    voxel_size: float = _f(
        0.0, "edge of the extraction grid's cells in the input's units, instead of `resolution` (0: use `resolution`; "
        "tiled scenes default to the point spacing)",
    )
    trim: Literal["auto", "on", "off"] = _f(
        "auto",
        "remove surface farther from the input than `trim_factor` local point spacings (auto: on for scenes and "
        "single-view scans, whose sides no sensor saw; off for objects, whose holes get capped)",
    )
    adaptive: Literal["auto", "on", "off"] = _f(
        "auto",
        "mesh at up to 4 times the voxel where the input's points are that sparse, and at the voxel near "
        "everything denser (auto: on for tiled scenes, off for single objects); needs trimming on",
    )
    trim_factor: float = _f(3.0, "trimming distance, in local point spacings (at least two grid cells)")
    target_faces: int = _f(
        0, "simplify the written mesh to about this many triangles (quadric decimation; 0: keep every face)"
    )

    def __post_init__(self) -> None:
        _check_literal(self, "trim")
        _check_literal(self, "adaptive")
        if self.target_faces < 0 or 0 < self.target_faces < 4:
            raise ValueError(f"target_faces must be 0 (off) or >= 4, got {self.target_faces}")
        if not (self.voxel_size >= 0 and self.voxel_size < float("inf")):
            raise ValueError(f"voxel_size must be >= 0 (0: use resolution), got {self.voxel_size}")
        if not self.trim_factor > 0:
            raise ValueError(f"trim_factor must be > 0, got {self.trim_factor}")
        if self.resolution < 8:
            raise ValueError(f"resolution must be >= 8, got {self.resolution}")
        if self.resolution > 4096:
            raise ValueError(f"resolution must be <= 4096, got {self.resolution}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not 0 <= self.padding <= 1:
            raise ValueError(f"padding must be in [0, 1], got {self.padding}")
        if not self.lipschitz > 0:
            raise ValueError(f"lipschitz must be > 0, got {self.lipschitz}")


NormalsMode = Literal["auto", "given", "estimate", "none"]
"""Where a scan's normals come from (``ScanConfig.normals``)."""


@dataclass(frozen=True)
class ScanConfig:
    """How raw scans are cleaned and oriented before the fit."""

    columns: str = _f(
        "",
        "what the columns of a text point file (.xyz .txt .csv .pts) hold, e.g. 'x y z nx ny nz' or "
        "'x y z r g b a' (skip a column with '-'); empty: read the file's header or guess from the count",
    )
    normals: NormalsMode = _f(
        "auto",
        "auto: the file's normals when present and usable, else estimate and orient them; given: the "
        "file's normals only; estimate: ignore the file's normals and estimate them; none: fit without "
        "normals (eikonal + annealed divergence loss)",
    )
    cleanup: bool = _f(True, "drop far outliers, exact repeats and local outliers (`cleanup=False` keeps every finite point)")
    denoise: bool = _f(True, "drop local outliers: points off the surface their neighbours define, and isolated points")
    dedupe: bool = _f(True, "drop exactly repeated points")
    outlier_neighbors: int = _f(16, "neighbours of the local outlier test")
    outlier_threshold: float = _f(
        8.0, "a point is off the surface when its distance to its neighbours' plane exceeds this many times "
        "the larger of their noise and half their spacing",
    )
    isolation_factor: float = _f(
        2.0, "a point is isolated when its 4th neighbour is farther than this many times the sparsest flat surface's 4th-neighbour distance"
    )
    max_outlier_share: float = _f(
        0.1, "when the outlier test would drop more than this share of the points, it drops none and warns"
    )
    far_factor: float = _f(
        20.0, "drop points farther from the median than this many times the 99th-percentile distance (0: off)"
    )
    max_points: int = _f(1_000_000, "larger clouds are voxel-downsampled to about this many points (keeps input points)")
    normal_neighbors: int = _f(24, "neighbours of the PCA normal estimate")
    orient_neighbors: int = _f(10, "neighbours of the orientation graph (small values keep thin parts apart)")
    orient_points: int = _f(20_000, "orientation runs on a subset of this many points, then spreads to the rest")
    divergence_weight: float = _f(
        10.0, "normal-free fits: weight of the divergence term |lap f| (DiGS), annealed to 0 during the fit"
    )

    def __post_init__(self) -> None:
        _check_literal(self, "normals")
        for name in ("outlier_neighbors", "normal_neighbors", "orient_neighbors"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must be >= 3, got {getattr(self, name)}")
        if self.max_points < 1000 or self.orient_points < 100:
            raise ValueError("max_points must be >= 1000 and orient_points >= 100")
        if self.outlier_threshold <= 0 or self.far_factor < 0 or self.divergence_weight < 0:
            raise ValueError("outlier_threshold must be > 0, far_factor and divergence_weight >= 0")
        if self.isolation_factor <= 0 or not 0 <= self.max_outlier_share <= 1:
            raise ValueError("isolation_factor must be > 0 and max_outlier_share in [0, 1]")


def replace_given(config: T, **values: Any) -> T:
    """``dataclasses.replace(config, ...)`` with only the values that are not None (flags left unset)."""
    return dataclasses.replace(config, **{k: v for k, v in values.items() if v is not None})


# ----------------------------------------------------------------------------- the reconstruction recipe
def default_sdf_siren() -> SirenConfig:
    """The reconstruction network: SIREN 3 -> 128 (4 sine layers) -> 1, first-layer ``w0`` 45,
    hidden ``w0`` 30, the paper's init.

    Narrower than the paper's 256: at equal wall time on the 2-core CPU the 128-wide network
    reaches a higher normal consistency, and 256 wide diverges at the learning rate below. The
    first layer's ``w0`` sets the finest detail the fit reaches quickly: 45 instead of the paper's
    30 resolves thin parts of dense clouds better (normal consistency: scorpion +0.0009, fertility
    +0.0013); 60 gained a little more but grew a sheet on the 10k-point sample torus (F-score
    0.71). On sparse clouds even 45 leaves small ripples between the points, so ``fit_sdf`` lowers
    it with ``density_w0_first`` (scripts/README.md, "Choosing the defaults").
    """
    return SirenConfig(hidden_dim=128, w0_first=45.0)


DENSE_SPACING = 0.0045
"""Median nearest-neighbour spacing (normalized units, longest side 1.8) up to which a cloud counts
as dense. The six benchmark shapes at 100k points measure 0.0031-0.0040."""
SPARSE_SPACING = 0.0065
"""Spacing from which a cloud counts as sparse: the sample torus (10k points) measures 0.0116, the
gargoyle scan (95k points, uneven) 0.0070."""


def density_w0_first(spacing: float, w0_first: float, sparse_w0_first: float = 30.0) -> float:
    """The first-layer ``w0`` for a cloud whose points lie ``spacing`` apart (normalized units).

    ``w0_first`` for dense clouds (spacing <= ``DENSE_SPACING``), ``sparse_w0_first`` (the paper's
    30) for sparse ones (>= ``SPARSE_SPACING``), linear in between; never above ``w0_first``.
    Measured at the two ends only (scripts/README.md, "Choosing the defaults"): w0 45 on the 10k-point torus
    gave normal consistency 0.9981 with visible ripples, w0 30 0.9988; on the 100k-point shapes 45
    beat 30 by up to 0.0013. The ramp between them is an interpolation, not a measurement.
    """
    t = min(max((spacing - DENSE_SPACING) / (SPARSE_SPACING - DENSE_SPACING), 0.0), 1.0)
    return min(w0_first, (1.0 - t) * w0_first + t * sparse_w0_first)


def default_sdf_train() -> TrainConfig:
    """The reconstruction schedule: 450 Adam steps, lr 1e-3 with cosine decay to 5e-5, no warm-up.

    The paper's constant 1e-4 needs thousands of steps; this schedule reaches Poisson-level
    accuracy on 100k points in about 35-45 s here. A 45-step warm-up cost 0.002-0.003 of normal
    consistency; it had been added because the sample torus came out in 40 pieces without it,
    which turned out to be the clean-up's fault (it now measures "near the input" in point
    spacings too) (scripts/README.md, "Choosing the defaults"). The hidden products run in bfloat16
    where the CPU has it natively (``precision="auto"``): the same surface on scorpion, fertility
    and the sample torus, in less time (scripts/README.md, "bfloat16 products").
    """
    return TrainConfig(steps=450, lr=1e-3, lr_final_ratio=0.05, precision="auto")


def default_sdf_weights() -> LossWeights:
    """The reconstruction's loss weights: the paper's, except a normal weight of 300 (paper: 100)
    and the free-space sign term at 3000 (not in the paper).

    ``LossWeights()`` keeps the paper's values. With the given normals weighted 3x more, the
    gradient follows them more closely in the same 450 steps: normal consistency on 100k points
    (``benchmark_recipe.py --shape S --weight-normal W``) with weights 100 / 300 / 1000: scorpion
    0.9779 / 0.9792 / 0.9794, fertility 0.9819 / 0.9835 / 0.9842, armadillo 0.9854 / 0.9861 /
    0.9866, fandisk 0.9886 / 0.9900 / 0.9399: at 1000 fandisk grew surface inside itself (area
    1.38x the original's, 28% of it over 1% of the diagonal away, F@0.5% 0.83), so 300 (scripts/README.md,
    "Choosing the defaults").

    The sign term (``losses.sdf_sign_loss``) keeps the inside of a scanned shell negative where its
    holes let outside and inside meet. Without it, a sphere with four holes of 1% of its area
    (100k points) came out with a second wall inside: 2.25x the sphere's area, 26 pieces; with
    weight 100 / 300 / 1000 / 3000: 2.17x / 2.14x / 1.003x / 1.002x, and a holed armadillo 1.20x
    / 1.20x / 1.12x / 0.999x. Closed shapes do not change (normal consistency within 0.0002 on
    the six shared shapes; ``scripts/benchmark_holes.py``).
    """
    return LossWeights(normal=300.0, sign=3000.0)


def default_sdf_sampling() -> SamplingConfig:
    """Each step: 5,000 surface points and 2,500 uniform off-surface points."""
    return SamplingConfig(batch_size=5000, off_surface_ratio=0.5)


Activation = Literal["sine", "relu", "relu-pe", "relu-ff", "tanh"]
"""Network choices of the image, video and PDE fields; 'relu-pe' is ReLU on a positional encoding,
'relu-ff' ReLU on random Fourier features (Tancik et al. 2020)."""


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) <= 0:
            raise ValueError(f"{name} must be > 0, got {getattr(obj, name)}")


@dataclass(frozen=True)
class ImageConfig:
    """Fitting an image ``(row, col) -> colour`` (SIREN paper, Sec. 4.1).

    The defaults are ``--quality default`` (``apps.presets.image_preset``); the paper's full-batch
    float32 fit is ``--quality paper``.
    """

    activation: Activation = _f(
        "sine", "network: sine (SIREN), or the relu, relu-pe (positional encoding), relu-ff (Fourier features), tanh baselines"
    )
    supervise: Literal["values", "gradient", "laplacian"] = _f(
        "values", "fit the pixel values, or only their gradient or Laplacian (Poisson reconstruction, paper Sec. 4.1)"
    )
    laplacian_loss: Literal["energy", "pointwise"] = _f(
        "energy",
        "Laplacian supervision: energy (the discrete Poisson problem on the pixel grid, which fixes the image up "
        "to a constant) or pointwise (the network's own Laplacian at each pixel, as in the paper; it cannot see "
        "ramps or any other harmonic function)",
    )
    max_side: int = _f(0, "downscale so that the longer side has at most this many pixels (0: keep the size)")
    batch_size: int = _f(4096, "pixels per step, drawn at random (0: every pixel, as in the paper)")
    eval_every: int = _f(100, "steps between PSNR measurements (on all pixels, or a fixed sample of 65,536 in larger images)")
    target_psnr: float = _f(0.0, "stop as soon as a measurement reaches this PSNR in dB (0: run every step)")
    precision: Precision = _f(
        "auto",
        "hidden layers' matrix products while fitting values: bfloat16 (about 2-3x faster on CPUs with "
        "AVX512-BF16 or AMX, and on GPUs; the first layer, the output and every measurement stay float32), "
        "float32, or auto (bfloat16 where the hardware has it)",
    )
    num_frequencies: int = _f(0, "relu-pe encoding frequencies (0: from the image size, the paper code's Nyquist rule)")
    ff_features: int = _f(256, "relu-ff: number of random Fourier features (Tancik et al.: 256)")
    ff_scale: float = _f(
        10.0, "relu-ff: standard deviation of the Fourier frequencies, cycles per unit of the [-1, 1] coordinates"
    )

    def __post_init__(self) -> None:
        _check_literal(self, "activation")
        _check_literal(self, "supervise")
        _check_literal(self, "laplacian_loss")
        _check_literal(self, "precision")
        _check_positive(self, "eval_every", "ff_features", "ff_scale")
        if self.max_side < 0 or self.batch_size < 0 or self.num_frequencies < 0:
            raise ValueError("max_side, batch_size and num_frequencies must be >= 0")
        if 0 < self.max_side < 2:
            raise ValueError(f"max_side must be 0 or >= 2, got {self.max_side}")
        if not self.target_psnr >= 0:
            raise ValueError(f"target_psnr must be >= 0 dB (0: off), got {self.target_psnr}")


@dataclass(frozen=True)
class VideoConfig:
    """Fitting a clip ``(t, row, col) -> colour`` (SIREN paper, Sec. 4.1, video).

    The defaults are ``--quality default`` (``apps.presets.video_preset``).
    """

    activation: Activation = _f("sine", "network: sine (SIREN), or the relu, relu-pe, relu-ff, tanh baselines")
    frames: int = _f(25, "use the first F frames of the clip (0: all)")
    max_side: int = _f(256, "downscale frames so the longer side has at most this many pixels (0: keep the size)")
    batch_size: int = _f(8192, "random (t, row, col) samples per step")
    w0_time: float = _f(
        6.0,
        "first-layer frequency factor along time (0: `w0_first`, as in the paper); lower values make the "
        "frames between the fitted ones smooth blends instead of oscillations",
    )
    eval_every: int = _f(250, "steps between PSNR measurements (on a fixed sample of 65,536 pixels of the clip)")
    target_psnr: float = _f(0.0, "stop as soon as a measurement reaches this PSNR in dB (0: run every step)")
    precision: Precision = _f(
        "auto", "hidden layers' matrix products: bfloat16, float32, or auto (bfloat16 where the hardware has it; see image)"
    )
    num_interpolated: int = _f(3, "frames written at fractional times t + 0.5 between decoded frames")
    num_frequencies: int = _f(0, "relu-pe encoding frequencies (0: from the clip size)")
    ff_features: int = _f(256, "relu-ff: number of random Fourier features")
    ff_scale: float = _f(10.0, "relu-ff: standard deviation of the Fourier frequencies, cycles per unit")

    def __post_init__(self) -> None:
        _check_literal(self, "activation")
        _check_literal(self, "precision")
        _check_positive(self, "batch_size", "eval_every", "ff_features", "ff_scale")
        if self.frames < 0 or self.max_side < 0 or self.num_interpolated < 0 or self.num_frequencies < 0:
            raise ValueError("frames, max_side, num_interpolated and num_frequencies must be >= 0")
        if 0 < self.max_side < 2:
            raise ValueError(f"max_side must be 0 or >= 2, got {self.max_side}")
        if not self.w0_time >= 0:
            raise ValueError(f"w0_time must be >= 0 (0: `w0_first`), got {self.w0_time}")
        if not self.target_psnr >= 0:
            raise ValueError(f"target_psnr must be >= 0 dB (0: off), got {self.target_psnr}")


@dataclass(frozen=True)
class PDEConfig:
    """Solving a PDE with the network as the solution (SIREN paper, Sec. 4.3). Domain [-1, 1]^2 (wave: times [0, T] too).

    The defaults are shared; each problem's ``--quality`` presets (``apps.presets.pde_preset``)
    set their own batch sizes and budgets.
    """

    activation: Activation = _f("sine", "network: sine (SIREN), or the relu, relu-pe, relu-ff, tanh baselines")
    batch_size: int = _f(2048, "interior collocation points per step")
    boundary_batch_size: int = _f(512, "boundary (and initial-condition) points per step")
    boundary_weight: float = _f(10.0, "weight of the boundary / initial-condition terms against the residual")
    wavenumber: float = _f(20.0, "Helmholtz: wavenumber k, in 1/normalized units (wavelength 2 pi / k; paper: 20)")
    source_sigma: float = _f(0.02, "Helmholtz: width of the Gaussian that stands for the point source")
    source_fraction: float = _f(
        0.1, "share of the collocation points drawn around the source (Helmholtz), or inside the pulse's domain of "
        "influence, the disc of radius c t + 3 s at time t (wave)",
    )
    physical_fraction: float = _f(0.25, "Helmholtz: share of the collocation points drawn in the physical region (the rest: the whole square)")
    exclude_radius: float = _f(0.1, "Helmholtz: error is measured at distance >= this from the source")
    pml_width: float = _f(0.5, "Helmholtz: width L of the absorbing layer inside each edge; the physical region is [-(1-L), 1-L]^2 (paper: 0.5)")
    pml_strength: float = _f(5.0, "Helmholtz: absorption a0 of the layer, s(d) = a0 k (d / L)^2 at depth d (paper: 5)")
    wave_speed: float = _f(1.0, "wave: propagation speed c (normalized length per unit time)")
    pulse_width: float = _f(0.1, "wave: standard deviation of the initial Gaussian pulse")
    duration: float = _f(0.7, "wave: simulated time T (t in [0, T])")
    initial_condition: Literal["exact", "penalty"] = _f(
        "penalty",
        "wave: 'exact': the network N enters as u = u0 + (c t / s)^2 N, which meets u(0) = u0 and u_t(0) = 0 by "
        "construction; 'penalty': u = N with loss terms for both (the paper's)",
    )
    reference_resolution: int = _f(
        201, "wave: grid points per side of the coarser finite-difference reference (the reference itself is computed at twice this resolution)"
    )
    eval_times: int = _f(8, "wave: times in [0, T] at which the error is measured and pictured")
    eval_resolution: int = _f(101, "points per side of the evaluation grid")
    eval_every: int = _f(100, "steps between error measurements")
    target_error: float = _f(0.0, "stop as soon as a measurement's relative error reaches this (0: run every step)")
    num_frequencies: int = _f(0, "relu-pe encoding frequencies (0: 6)")
    ff_features: int = _f(256, "relu-ff: number of random Fourier features")
    ff_scale: float = _f(3.0, "relu-ff: standard deviation of the Fourier frequencies, cycles per unit")

    def __post_init__(self) -> None:
        _check_literal(self, "activation")
        _check_literal(self, "initial_condition")
        _check_positive(
            self, "batch_size", "boundary_batch_size", "wavenumber", "source_sigma", "exclude_radius", "wave_speed",
            "pulse_width", "eval_every", "pml_width", "pml_strength", "duration", "ff_features", "ff_scale", "eval_times",
        )
        if self.boundary_weight < 0:
            raise ValueError(f"boundary_weight must be >= 0, got {self.boundary_weight}")
        if not (0 <= self.source_fraction and 0 <= self.physical_fraction and self.source_fraction + self.physical_fraction < 1):
            raise ValueError("source_fraction and physical_fraction must be >= 0 with a sum below 1")
        if self.pml_width >= 1.0 - self.exclude_radius:
            raise ValueError(
                f"pml_width {self.pml_width:g} leaves no physical region: the layer lies inside each edge of the "
                f"[-1, 1] square, so it must be below 1 - exclude_radius = {1 - self.exclude_radius:g}"
            )
        if self.eval_resolution < 8:
            raise ValueError(f"eval_resolution must be >= 8, got {self.eval_resolution}")
        if self.reference_resolution < 11:
            raise ValueError(f"reference_resolution must be >= 11, got {self.reference_resolution}")
        if self.num_frequencies < 0:
            raise ValueError(f"num_frequencies must be >= 0, got {self.num_frequencies}")
        if not self.target_error >= 0:
            raise ValueError(f"target_error must be >= 0 (0: off), got {self.target_error}")


@dataclass(frozen=True)
class ShapeSpaceConfig:
    """A learned shape space: one SIREN phase-shifted per layer by a mapping network of a latent code.

    Auto-decoder training as in DeepSDF (Park et al. 2019); shift modulations as in pi-GAN
    (Chan et al. 2021) and Mehta et al. 2021.
    """

    latent_dim: int = _f(64, "size of each shape's latent code")
    mapping_hidden_dim: int = _f(128, "width of the mapping network's hidden layers (latent -> per-layer shifts)")
    mapping_layers: int = _f(1, "hidden ReLU layers of the mapping network (0: a linear map)")
    latent_init_std: float = _f(0.01, "standard deviation of the initial latent codes (DeepSDF: 0.01)")
    latent_reg: float = _f(1.0, "weight of the mean squared norm of the latent codes (a Gaussian prior)")
    latent_lr_scale: float = _f(10.0, "latent codes learn this many times faster than the network weights")
    num_points: int = _f(100_000, "oriented points sampled per shape that is given as a mesh")

    def __post_init__(self) -> None:
        _check_positive(self, "latent_dim", "mapping_hidden_dim", "latent_init_std", "latent_lr_scale", "num_points")
        if self.mapping_layers < 0:
            raise ValueError(f"mapping_layers must be >= 0, got {self.mapping_layers}")
        if self.latent_reg < 0:
            raise ValueError(f"latent_reg must be >= 0, got {self.latent_reg}")


def _check_literal(obj: Any, name: str) -> None:
    hints = get_type_hints(type(obj))
    allowed = get_args(hints[name])
    value = getattr(obj, name)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a config dataclass (nested dataclasses become dicts)."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    return dataclasses.asdict(config)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a plain dict, checking names and types (no code runs).

    Raises:
        ValueError: on unknown keys or values of the wrong type.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = config_from_dict(hint, value)  # type: ignore[arg-type]
            continue
        kwargs[key] = _coerce(cls.__name__, key, hint, value)
    return cls(**kwargs)


TRUE_WORDS = ("1", "true", "yes", "on")
"""Text read as ``True`` for a boolean field (any case)."""

FALSE_WORDS = ("0", "false", "no", "off")
"""Text read as ``False`` for a boolean field (any case)."""


def field_value(cls: type, name: str, value: Any, *, from_text: bool = False) -> Any:
    """Return ``value`` as the type of the field ``name`` of config class ``cls``.

    The one conversion of outside values into config fields: ``config_from_dict`` (JSON values, which
    must already have the field's type) and batch manifests (CSV cells, ``from_text=True``) use it.

    Args:
        cls: a config dataclass.
        name: one of its fields.
        value: the value; with ``from_text``, a string read as the field's type (``TRUE_WORDS`` /
            ``FALSE_WORDS`` for booleans, numbers for ``int`` and ``float``, stripped text for ``str``).
        from_text: whether ``value`` is text to be read.

    Raises:
        ValueError: naming ``cls.name``, what was expected and what arrived.
    """
    hint = get_type_hints(cls)[name]
    return _coerce(cls.__name__, name, hint, value, from_text)


def _coerce(owner: str, key: str, hint: Any, value: Any, from_text: bool = False) -> Any:
    if from_text and isinstance(value, str):
        value = _read_text(owner, key, hint, value)
    origin = get_origin(hint)
    if origin is Literal:
        return value  # checked by __post_init__
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{owner}.{key}: expected a boolean, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{owner}.{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{owner}.{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{owner}.{key}: expected a string, got {value!r}")
        return value
    return value


def _read_text(owner: str, key: str, hint: Any, text: str) -> Any:
    """Text as the type ``hint`` (the caller checks the result's type)."""
    if hint is bool:
        low = text.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"{owner}.{key}: cannot read {text!r} as bool")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"{owner}.{key}: cannot read {text!r} as {hint.__name__}") from None
    return text.strip()


def dumps(config: Any) -> str:
    """Serialize a config dataclass to a JSON string."""
    return json.dumps(config_to_dict(config), sort_keys=True)
