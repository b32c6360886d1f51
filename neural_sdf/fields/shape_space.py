"""Learned shape spaces: one SIREN conditioned on a per-shape latent code, trained as an auto-decoder.

The network is the package's ``Siren`` core, driven through its phase-shift input: a small
mapping network turns a latent code ``z`` (``latent_dim``) into one shift per sine layer and unit,
``sin(w0 (W x + b) + shift_l(z))`` (shift modulations as in pi-GAN, Chan et al. 2021, and
Mehta et al. 2021, "Modulated periodic activations"). Training is DeepSDF's auto-decoder (Park et
al. 2019, Sec. 4): the codes are free parameters optimized jointly with the network under the
SIREN SDF loss (``fields.sdf.sdf_loss``) plus a Gaussian prior on the codes. A new shape is fitted
by optimizing its code alone with the network frozen.

Every shape lives in its own normalized frame (``fit_normalization``: bounding-box centre at the
origin, longest side spanning ``2 * NORMALIZED_RADIUS``), so the space models shape, not position
or size.

Because a shift is a constant added to a layer's pre-activation, a decoded shape is *baked* into an
ordinary ``Siren`` by adding ``shift / w0`` to each sine layer's bias (``ModulatedSiren.bake``):
codes decode to plain ``SDFModel``s that ``extract``, ``view`` and blending use unchanged.
"""

import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .._typing import Device, PathLike
from ..config import (
    LossWeights,
    SamplingConfig,
    ShapeSpaceConfig,
    SirenConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from ..errors import InputError
from ..geometry import Normalization, PointCloud, bounds, fit_normalization
from ..io import SPACE_FORMAT, check_input_file, file_kind, load_model_file, save_model_file
from ..io.pointcloud import PointSource, load_points
from ..nn import Siren
from ..sampling import SDFBatch, concat_batches, sample_sdf_batch, step_generator
from ..train import StepFn, fit
from .sdf import SDFModel, cloud_to_tensors, sdf_loss

__all__ = [
    "SPACE_FORMAT",
    "ModulatedSiren",
    "ShapeSpace",
    "SpaceOptions",
    "fit_shape_space",
    "fit_latent",
    "latent_of",
]

log = logging.getLogger(__name__)


SUPPORT_POINTS_PER_SHAPE = 10_000
"""Input points kept per training shape in a space file (for the stray-piece clean-up)."""


class ModulatedSiren(nn.Module):
    """A ``Siren`` whose sine layers are phase-shifted by a mapping network of a latent code.

    Args:
        siren: shape of the SIREN core.
        space: latent size and mapping network.

    Shapes:
        ``shifts(latent (..., D))`` -> ``(..., num_sine_layers, hidden_dim)``;
        ``forward(coords (..., N, 3), latent (..., D))`` -> ``(..., N, 1)``.
    """

    def __init__(self, siren: SirenConfig, space: ShapeSpaceConfig) -> None:
        super().__init__()
        self.siren = Siren(siren)
        self.space_config = space
        num_layers, hidden = self.siren.num_sine_layers, siren.hidden_dim
        layers: list[nn.Module] = []
        width = space.latent_dim
        for _ in range(space.mapping_layers):
            layers += [nn.Linear(width, space.mapping_hidden_dim), nn.ReLU()]
            width = space.mapping_hidden_dim
        last = nn.Linear(width, num_layers * hidden)
        # Zero shifts at initialization: the conditioned network starts as the plain SIREN with
        # its paper initialization; codes separate the shapes as training proceeds.
        with torch.no_grad():
            last.bias.zero_()
        layers.append(last)
        self.mapping = nn.Sequential(*layers)

    def shifts(self, latent: torch.Tensor) -> torch.Tensor:
        """Per-layer phase shifts ``(..., num_sine_layers, hidden_dim)`` of codes ``(..., D)``."""
        if latent.shape[-1] != self.space_config.latent_dim:
            raise ValueError(f"latent must be (..., {self.space_config.latent_dim}), got {tuple(latent.shape)}")
        out = self.mapping(latent)
        return out.reshape(*latent.shape[:-1], self.siren.num_sine_layers, self.siren.config.hidden_dim)

    def forward(self, coords: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """SDF ``(..., N, 1)`` at ``coords`` ``(..., N, 3)`` of the shapes with codes ``latent`` ``(..., D)``."""
        return self.siren(coords, self.shifts(latent).unsqueeze(-3))

    def bake(self, latent: torch.Tensor) -> Siren:
        """Return a plain ``Siren`` equal to this network at code ``latent`` ``(D,)`` (a new copy).

        ``sin(w0 (W x + b) + s) = sin(w0 (W x + b + s / w0))``, so each layer's bias absorbs its
        shift; results agree with ``forward`` to float rounding.
        """
        with torch.no_grad():
            shift = self.shifts(latent.reshape(-1).to(next(self.parameters())))
            net = copy.deepcopy(self.siren)
            for i, layer in enumerate(net.layers):
                layer.linear.bias.add_(shift[i] / layer.w0)
        return net.eval()


class _Conditioned(nn.Module):
    """``coords (M, 3) -> (M, 1)`` for a batch whose rows belong to different shapes (shifts per row)."""

    def __init__(self, siren: Siren, row_shifts: torch.Tensor) -> None:
        super().__init__()
        self.siren = siren
        self.row_shifts = row_shifts

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.siren(coords, self.row_shifts)


class _SpaceParams(nn.Module):
    """What the auto-decoder optimizes: the network and the codes (``codes = raw * latent_lr_scale``).

    The fit loop gives every parameter one learning rate; scaling the raw parameter makes Adam's
    steps on the codes ``latent_lr_scale`` times larger (Adam's step is invariant to gradient scale).
    """

    def __init__(self, network: Optional[ModulatedSiren], codes: torch.Tensor, lr_scale: float) -> None:
        super().__init__()
        self.network = network
        self.lr_scale = float(lr_scale)
        self.raw = nn.Parameter(codes / self.lr_scale)

    @property
    def codes(self) -> torch.Tensor:
        return self.raw * self.lr_scale


@dataclass(frozen=True)
class SpaceOptions:
    """Everything that determines a shape-space fit (saved with the space)."""

    siren: SirenConfig = field(default_factory=SirenConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    weights: LossWeights = field(default_factory=LossWeights)
    space: ShapeSpaceConfig = field(default_factory=ShapeSpaceConfig)


@dataclass
class ShapeSpace:
    """A trained shape space.

    Attributes:
        network: the conditioned SIREN (normalized ``(N, 3)`` -> ``(N, 1)`` per code).
        latents: ``(K, D)`` float32 codes of the training shapes.
        names: ``K`` shape names (input file stems).
        normalizations: each training shape's world <-> normalized transform.
        data_bounds: ``(K, 2, 3)`` world bounding boxes of the training shapes.
        info: JSON-able record (options, timings, loss history).
        support_points: per shape ``(S, 3)`` world subsample of its input, or None.
    """

    network: ModulatedSiren
    latents: torch.Tensor
    names: list[str]
    normalizations: list[Normalization]
    data_bounds: np.ndarray
    info: dict[str, Any]
    support_points: Optional[list[np.ndarray]] = None

    @property
    def num_shapes(self) -> int:
        """Number of training shapes ``K``."""
        return int(self.latents.shape[0])

    @property
    def latent_dim(self) -> int:
        """Code size ``D``."""
        return int(self.latents.shape[1])

    @property
    def fingerprint(self) -> str:
        """Hash of the weights and codes; models decoded from this space record it."""
        h = hashlib.sha256()
        for key, value in sorted(self.network.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.latents.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:32]

    def index(self, name_or_index: str | int) -> int:
        """Index of a training shape given by name or index.

        Raises:
            InputError: no such shape.
        """
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            i = int(name_or_index)
            if 0 <= i < self.num_shapes:
                return i
        elif name_or_index in self.names:
            return self.names.index(name_or_index)
        raise InputError(f"shape space has no shape {name_or_index!r}; it holds {', '.join(self.names)}")

    def decode(
        self,
        latent: torch.Tensor,
        normalization: Normalization,
        data_bounds: np.ndarray,
        info: Optional[dict[str, Any]] = None,
        support_points: Optional[np.ndarray] = None,
    ) -> SDFModel:
        """Bake code ``latent`` ``(D,)`` into a plain ``SDFModel`` placed by ``normalization``.

        The model's ``info["space"]`` records the code and this space's fingerprint, so that latent
        interpolation can find its way back to the space.
        """
        z = latent.detach().reshape(-1).float().cpu()
        record = dict(info or {})
        record["space"] = {"fingerprint": self.fingerprint, "latent": [float(v) for v in z]}
        net = self.network.bake(latent.detach().reshape(-1))
        return SDFModel(net, normalization, np.asarray(data_bounds, dtype=np.float64).reshape(2, 3), record, support_points)

    def shape_model(self, name_or_index: str | int) -> SDFModel:
        """The training shape ``name_or_index`` as a plain ``SDFModel`` in its world frame."""
        i = self.index(name_or_index)
        support = None if self.support_points is None else self.support_points[i]
        return self.decode(self.latents[i], self.normalizations[i], self.data_bounds[i], {"source": self.names[i]}, support)

    def to(self, device: Device) -> "ShapeSpace":
        """Move network and codes to ``device`` (in place) and return self."""
        self.network.to(device)
        self.latents = self.latents.to(device)
        return self

    def save(self, path: PathLike) -> None:
        """Write the space to one file of format ``SPACE_FORMAT`` (safetensors + JSON); atomic."""
        meta = {
            "kind": "shape_space",
            "siren": config_to_dict(self.network.siren.config),
            "space": config_to_dict(self.network.space_config),
            "names": list(self.names),
            "normalizations": [n.to_dict() for n in self.normalizations],
            "data_bounds": np.asarray(self.data_bounds, dtype=float).tolist(),
            "info": self.info,
        }
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        tensors["latents"] = self.latents.detach().float()
        if self.support_points is not None:
            for i, (pts, norm) in enumerate(zip(self.support_points, self.normalizations)):
                tensors[f"support.{i}"] = torch.as_tensor(norm.to_normalized(pts), dtype=torch.float32)
        save_model_file(path, tensors, meta, format=SPACE_FORMAT)

    @classmethod
    def load(cls, path: PathLike, device: Device = "cpu") -> "ShapeSpace":
        """Load a space written by ``save``; no code is executed.

        Raises:
            InputError: missing or corrupt file, or a file that is not a shape space (for
                instance an SDF model file).
        """
        if file_kind(check_input_file(path, kind="shape-space")) == "model":
            raise InputError(f"{path}: is an SDF model file, expected a shape space (written by fit-space)")
        tensors, meta = load_model_file(path, format=SPACE_FORMAT)
        try:
            network = ModulatedSiren(config_from_dict(SirenConfig, meta["siren"]), config_from_dict(ShapeSpaceConfig, meta["space"]))
            network.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
            norms = [Normalization.from_dict(d) for d in meta["normalizations"]]
            latents = tensors["latents"]
            names = [str(n) for n in meta["names"]]
            if latents.shape != (len(names), network.space_config.latent_dim) or len(norms) != len(names):
                raise ValueError("codes, names and normalizations disagree in number")
            support = None
            if all(f"support.{i}" in tensors for i in range(len(names))):
                support = [n.to_world(tensors[f"support.{i}"].double().numpy()) for i, n in enumerate(norms)]
            space = cls(
                network=network.eval(),
                latents=latents,
                names=names,
                normalizations=norms,
                data_bounds=np.asarray(meta["data_bounds"], dtype=np.float64).reshape(len(names), 2, 3),
                info=meta.get("info", {}),
                support_points=support,
            )
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise InputError(f"{path}: corrupt shape-space file ({str(exc).splitlines()[0][:120]})") from exc
        return space.to(device)


def latent_of(model: SDFModel) -> Optional[tuple[torch.Tensor, str]]:
    """The code ``(D,)`` and space fingerprint recorded in a model decoded from a space, or None."""
    record = model.info.get("space") if isinstance(model.info, dict) else None
    if not isinstance(record, dict) or "latent" not in record:
        return None
    return torch.tensor(record["latent"], dtype=torch.float32), str(record.get("fingerprint", ""))


def _load_clouds(sources: Sequence[PointSource], options: SpaceOptions) -> tuple[list[str], list[PointCloud]]:
    names, clouds = [], []
    for k, src in enumerate(sources):
        name = str(src) if isinstance(src, (str, Path)) else f"shape{k}"
        cloud = load_points(src, num_mesh_samples=options.space.num_points, seed=options.train.seed)
        if cloud.normals is None:
            raise InputError(f"{name}: the cloud has no normals; the SDF fit needs oriented points")
        names.append(name)
        clouds.append(cloud)
    return names, clouds


def _short_names(names: list[str]) -> list[str]:
    stems = [Path(n).stem if Path(n).suffix else n for n in names]
    out = []
    for i, s in enumerate(stems):
        out.append(s if stems.count(s) == 1 else f"{s}_{i}")
    return out


def _space_loss(
    siren: Siren, shifts: torch.Tensor, batches: list[SDFBatch], weights: LossWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    """The SDF loss of several shapes' batches at once: rows are conditioned on their shape's shift."""
    rows = torch.cat([torch.full((len(b.coords),), k, dtype=torch.long, device=shifts.device) for k, b in enumerate(batches)])
    batch = concat_batches(batches)
    return sdf_loss(_Conditioned(siren, shifts[rows]), batch, weights)  # type: ignore[arg-type]


def _make_space_step(
    params: _SpaceParams,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    sampling: SamplingConfig,
    weights: LossWeights,
    latent_reg: float,
    seed: int,
    frozen: Optional[ModulatedSiren] = None,
) -> StepFn:
    """Step of the auto-decoder: every shape's SDF batch, plus ``latent_reg * mean(z**2)``."""
    network = frozen if frozen is not None else params.network
    assert network is not None

    def step_fn(step: int) -> dict[str, float]:
        batches = [
            sample_sdf_batch(pts, nrm, sampling, step_generator(seed + 7919 * k, step, pts.device))
            for k, (pts, nrm) in enumerate(data)
        ]
        codes = params.codes
        loss, terms = _space_loss(network.siren, network.shifts(codes), batches, weights)
        prior = (codes**2).mean()
        loss = loss + latent_reg * prior
        loss.backward()
        return {"loss": float(loss.detach()), **terms, "latent_prior": float(prior.detach())}

    return step_fn


def fit_shape_space(
    sources: Sequence[PointSource],
    options: SpaceOptions = SpaceOptions(),
    *,
    names: Optional[Sequence[str]] = None,
    device: Device = "cpu",
    progress: bool = True,
) -> ShapeSpace:
    """Train a shape space on a collection of oriented clouds or meshes (auto-decoder).

    Each step draws one SDF batch per shape (``options.sampling``, each in the shape's own
    normalized frame) and minimizes the SIREN SDF loss of all of them, conditioned on their codes,
    plus ``latent_reg`` times the mean squared code entry (a Gaussian prior, as in DeepSDF).

    Args:
        sources: two or more paths, ``PointCloud``s or arrays (see ``load_points``); meshes are
            sampled with ``options.space.num_points`` points.
        options: network, training, sampling, loss and space settings.
        names: shape names (default: file stems).
        device: torch device.
        progress: show a progress bar with loss and ETA.

    Returns:
        The trained ``ShapeSpace``.

    Raises:
        InputError: fewer than two shapes, or an unusable input.
    """
    t0 = time.perf_counter()
    if len(sources) < 2:
        which = f" ({sources[0]})" if len(sources) == 1 and isinstance(sources[0], (str, Path)) else ""
        raise InputError(f"a shape space needs at least 2 shapes, got {len(sources)}{which}; use fit for one shape")
    full_names, clouds = _load_clouds(sources, options)
    short = list(names) if names is not None else _short_names(full_names)
    if len(short) != len(clouds):
        raise ValueError(f"names must have {len(clouds)} entries, got {len(short)}")
    norms = [fit_normalization(c.points) for c in clouds]
    data = [cloud_to_tensors(c, n, device) for c, n in zip(clouds, norms)]
    torch.manual_seed(options.train.seed)  # initialization only
    network = ModulatedSiren(options.siren, options.space).to(device)
    gen = torch.Generator().manual_seed(options.train.seed)
    codes = torch.randn((len(clouds), options.space.latent_dim), generator=gen) * options.space.latent_init_std
    params = _SpaceParams(network, codes.to(device), options.space.latent_lr_scale)
    step_fn = _make_space_step(params, data, options.sampling, options.weights, options.space.latent_reg, options.train.seed)
    result = fit(params, step_fn, options.train, progress=progress, desc="fit-space")
    network.eval()
    rng = np.random.default_rng(options.train.seed)
    support = []
    for c in clouds:
        keep = rng.choice(len(c), size=min(SUPPORT_POINTS_PER_SHAPE, len(c)), replace=False)
        support.append(c.points[np.sort(keep)])
    info = {
        "sources": full_names,
        "num_points": [len(c) for c in clouds],
        "options": config_to_dict(options),
        "fit_seconds": time.perf_counter() - t0,
        "train_seconds": result.seconds,
        "history": result.history,
    }
    return ShapeSpace(
        network=network,
        latents=params.codes.detach().clone(),
        names=short,
        normalizations=norms,
        data_bounds=np.stack([bounds(c.points) for c in clouds]),
        info=info,
        support_points=support,
    )


def fit_latent(
    source: PointSource,
    space: ShapeSpace,
    train: TrainConfig = TrainConfig(),
    sampling: SamplingConfig = SamplingConfig(),
    weights: LossWeights = LossWeights(),
    *,
    num_mesh_samples: int = 100_000,
    progress: bool = True,
) -> SDFModel:
    """Fit a new shape by optimizing only its latent code; the space's network stays frozen.

    The code starts at the mean of the training codes and is optimized under the same SDF loss
    and prior as in training (``space.network.space_config.latent_reg``); its learning rate is
    ``train.lr * latent_lr_scale``.

    Returns:
        A plain ``SDFModel`` (the code baked into a ``Siren``) in the input's world frame; its
        ``info["space"]`` records the code and the space's fingerprint.

    Raises:
        InputError: unusable input, or a cloud without normals.
    """
    t0 = time.perf_counter()
    cloud = load_points(source, num_mesh_samples=num_mesh_samples, seed=train.seed)
    name = str(source) if isinstance(source, (str, Path)) else type(source).__name__
    if cloud.normals is None:
        raise InputError(f"{name}: the cloud has no normals; the SDF fit needs oriented points")
    norm = fit_normalization(cloud.points)
    device = next(space.network.parameters()).device
    data = [cloud_to_tensors(cloud, norm, device)]
    network = space.network.eval()
    for p in network.parameters():
        p.requires_grad_(False)
    try:
        cfg = space.network.space_config
        params = _SpaceParams(None, space.latents.mean(dim=0, keepdim=True).detach().clone(), cfg.latent_lr_scale)
        step_fn = _make_space_step(params, data, sampling, weights, cfg.latent_reg, train.seed, frozen=network)
        result = fit(params, step_fn, train, progress=progress, desc="fit-latent")
    finally:
        for p in network.parameters():
            p.requires_grad_(True)
    rng = np.random.default_rng(train.seed)
    keep = rng.choice(len(cloud), size=min(50_000, len(cloud)), replace=False)
    info: dict[str, Any] = {
        "source": name,
        "num_points": len(cloud),
        "options": {"train": config_to_dict(train), "sampling": config_to_dict(sampling), "weights": config_to_dict(weights)},
        "fit_seconds": time.perf_counter() - t0,
        "train_seconds": result.seconds,
        "history": result.history,
    }
    return space.decode(params.codes.detach()[0], norm, bounds(cloud.points), info, cloud.points[np.sort(keep)])
