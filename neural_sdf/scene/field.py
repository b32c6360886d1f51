"""A scene's signed distance: tiles of SIRENs blended by a smooth partition of unity.

Each tile owns a *core* box (the cores of a scene cover its data's box) and was fitted on the
points of its *bounds*, the core grown by a margin on every side. A tile's weight is 1 in its core
and falls smoothly (a C1 smoothstep per axis) to 0 at its bounds, so where tiles overlap their
fields are averaged, and every point of the data's box has weight at least 1::

    f(x) = sum_t w_t(x) f_t(x) / sum_t w_t(x)

``SceneModel`` offers ``SDFModel``'s interface (``network``, ``normalization``, ``data_bounds``,
``support_points``, ``sdf``, ``gradient``, ``save``, ``load``): ``network`` is a module that evaluates
the blended field in the scene's normalized coordinates, so extraction, rendering, the viewer and
interpolation take a scene like any single model. The model file is one safetensors file (every
tile's weights; boxes and normalizations in its JSON metadata), and loads without running code.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .._typing import ArrayLike, Device, PathLike
from ..config import SirenConfig, config_from_dict, config_to_dict
from ..errors import InputError
from ..fields.far_field import FarField
from ..fields.sdf import SDFModel
from ..geometry import Mesh, Normalization, is_closed
from ..io.checkpoint import MODEL_FORMAT, load_model_file, save_model_file
from ..nn import Siren
from ..sampling import iter_chunks

__all__ = ["Tile", "SceneModel", "SceneField", "tile_weights"]

log = logging.getLogger(__name__)


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def tile_weights(points: np.ndarray, core: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Partition-of-unity weight of one tile at ``(N, 3)`` world points: ``(N,)`` in ``[0, 1]``.

    Per axis, ``smoothstep(d / m)`` with ``d`` the distance to the nearer face of ``bounds`` (0 outside)
    and ``m`` the margin between ``bounds`` and ``core`` on that side; the product over the axes.
    It is 1 in the core and 0 outside the bounds.
    """
    lo, hi = bounds
    margin_lo = np.maximum(core[0] - lo, 1e-12)
    margin_hi = np.maximum(hi - core[1], 1e-12)
    w = np.minimum(_smoothstep((points - lo) / margin_lo), _smoothstep((hi - points) / margin_hi))
    return np.prod(w, axis=1)


@dataclass
class Tile:
    """One tile of a scene.

    Attributes:
        name: stable name (``"t003"``), used for its work file and in messages.
        core: ``(2, 3)`` world box the tile answers for.
        bounds: ``(2, 3)`` world box its network was fitted over (the core plus a margin).
        model: the tile's fitted SDF (its own normalization maps ``bounds`` into its cube).
    """

    name: str
    core: np.ndarray
    bounds: np.ndarray
    model: SDFModel


class SceneField(torch.nn.Module):
    """The blended field as a module: ``(N, 3)`` scene-normalized points -> ``(N, 1)`` scene-normalized distances.

    Evaluation runs without autograd (it is for extraction and rendering); ``SceneModel.gradient``
    differentiates numerically. Points outside every tile's bounds get the distance to the nearest
    bounds (positive: no tile saw anything there).
    """

    def __init__(self, tiles: list[Tile], normalization: Normalization) -> None:
        super().__init__()
        self.tiles = tiles
        self.nets = torch.nn.ModuleList([t.model.network for t in tiles])
        self.normalization = normalization
        self._fast: Optional[list[Any]] = None

    def _forwards(self) -> list[Any]:
        from ..nn.fused import make_fast_forward, supports_fused

        if self._fast is None:
            self._fast = [make_fast_forward(n) if supports_fused(n) else n for n in self.nets]
        return self._fast

    def world_sdf(self, world: np.ndarray, distances: bool = False) -> np.ndarray:
        """Blended signed distance at ``(N, 3)`` float64 world points: ``(N,)`` world units.

        ``distances``: blend each tile's ``SDFModel.field()`` (a distance away from the surface too,
        where the tile has a far field) instead of its raw network.
        """
        n = len(world)
        acc = np.zeros(n)
        wsum = np.zeros(n)
        param = next(self.parameters())
        forwards = self._forwards()
        nearest = np.full(n, np.inf)
        for tile, forward in zip(self.tiles, forwards):
            lo, hi = tile.bounds
            gap = np.linalg.norm(np.maximum(np.maximum(lo - world, world - hi), 0.0), axis=1)
            nearest = np.minimum(nearest, gap)
            inside = np.flatnonzero(gap == 0.0)
            if not len(inside):
                continue
            w = tile_weights(world[inside], tile.core, tile.bounds)
            keep = w > 0
            inside, w = inside[keep], w[keep]
            if not len(inside):
                continue
            x = torch.as_tensor(tile.model.normalization.to_normalized(world[inside]), dtype=param.dtype, device=param.device)
            fn = tile.model.field() if distances and tile.model.far_field is not None else forward
            with torch.no_grad():
                f = fn(x)[:, 0].double().cpu().numpy() / tile.model.normalization.scale
            acc[inside] += w * f
            wsum[inside] += w
        covered = wsum > 0
        out = np.where(covered, acc / np.where(covered, wsum, 1.0), nearest)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        world = self.normalization.to_world(x.detach().double().cpu().numpy())
        f = self.world_sdf(world) * self.normalization.scale
        return torch.as_tensor(f, dtype=x.dtype, device=x.device).unsqueeze(-1)


@dataclass
class SceneModel:
    """A fitted scene: tiles of SDFs blended into one field, with ``SDFModel``'s interface.

    Attributes:
        tiles: the tiles (cores cover ``data_bounds``).
        normalization: world <-> the scene's normalized coordinates (its data box in ``[-0.9, 0.9]^3``).
        data_bounds: ``(2, 3)`` world box of the scene's data (the extraction grid covers it).
        info: JSON-able record (plan, options, timings, per-tile records).
        support_points: ``(K, 3)`` world subsample of the input (clean-up, trimming, overlays).
    """

    tiles: list[Tile]
    normalization: Normalization
    data_bounds: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    support_points: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if not self.tiles:
            raise ValueError("a scene needs at least one tile")
        self.network = SceneField(self.tiles, self.normalization)

    @property
    def device(self) -> torch.device:
        """Device of the tiles' parameters."""
        return next(self.network.parameters()).device

    def to(self, device: Device) -> "SceneModel":
        """Move every tile to ``device`` (in place) and return self."""
        self.network.to(device)
        self.network._fast = None
        return self

    def sdf(self, points: ArrayLike, chunk_size: int = 262_144) -> np.ndarray:
        """Signed distance at world points ``(N, 3)``: ``(N,)`` world units (negative inside).

        Each tile answers with ``SDFModel.sdf``'s field when ``attach_far_fields`` gave it one (a
        distance away from the surface too: to the scene's mesh within the tile's box), else with
        its network (a distance only near the surface); beyond every tile, the distance to the
        nearest tile box.
        """
        return self._evaluate(points, chunk_size, distances=True)

    def network_sdf(self, points: ArrayLike, chunk_size: int = 262_144) -> np.ndarray:
        """The blended networks at world points ``(N, 3)``: ``(N,)`` world units (what is meshed)."""
        return self._evaluate(points, chunk_size, distances=False)

    def _evaluate(self, points: ArrayLike, chunk_size: int, distances: bool) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.empty(len(pts))
        for sl in iter_chunks(len(pts), chunk_size):
            out[sl] = self.network.world_sdf(pts[sl], distances=distances)
        return out

    def attach_far_fields(self, mesh: Mesh) -> None:
        """Give every tile the distances to the part of the scene's ``mesh`` (world units) within
        its box (``SDFModel.attach_far_field``).

        A tile sees only part of a closed surface, so its own network cannot tell inside from
        outside far from its data; when the scene's mesh is closed, the signs come from one grid
        over the whole scene, signed by connectivity to its border (``build_far_field``).
        """
        from ..fields.far_field import build_far_field, padded_box

        sign_from = None
        if is_closed(mesh.faces):
            scene_norm = Mesh(self.normalization.to_normalized(mesh.vertices), mesh.faces)

            def scene_sign(x: np.ndarray) -> np.ndarray:
                return self.network.world_sdf(self.normalization.to_world(x))

            overall = build_far_field(scene_norm, scene_sign, padded_box(self.normalization, self.data_bounds))

            def sign_from(world: np.ndarray) -> np.ndarray:
                x = torch.as_tensor(self.normalization.to_normalized(world), dtype=torch.float32)
                return overall.lookup(x).numpy()

        from ..extract import _submesh

        # Face centroids in float32, a million faces at a time: (F, 3, 3) float64 at once was the
        # stage's largest transient (216 MB on the eight-object scene's 3M faces). They are kept
        # relative to the mesh's corner, so that geo-referenced coordinates (636,000 map units)
        # keep their float32 precision against the scene's extent, not against the offset.
        corner = mesh.vertices.min(axis=0)
        centroids = np.empty((len(mesh.faces), 3), dtype=np.float32)
        for start in range(0, len(mesh.faces), 1_000_000):
            f = mesh.faces[start : start + 1_000_000]
            centroids[start : start + len(f)] = (mesh.vertices[f[:, 0]] + mesh.vertices[f[:, 1]] + mesh.vertices[f[:, 2]]) / 3.0 - corner
        for tile in self.tiles:
            lo, hi = tile.bounds - corner
            pad = 0.25 * (hi - lo)
            keep = np.all((centroids >= lo - pad) & (centroids <= hi + pad), axis=1)
            if keep.any():
                tile.model.attach_far_field(_submesh(mesh, keep), sign_from=sign_from)

    def gradient(self, points: ArrayLike, step: Optional[float] = None) -> np.ndarray:
        """Gradient of the signed distance at world points ``(N, 3)``: ``(N, 3)`` (unitless).

        Central differences with ``step`` (default: a thousandth of the smallest tile's size), since
        the blend mixes several networks.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if step is None:
            step = 1e-3 * min(float(np.min(t.bounds[1] - t.bounds[0])) for t in self.tiles)
        grad = np.empty_like(pts)
        for axis in range(3):
            e = np.zeros(3)
            e[axis] = step
            grad[:, axis] = (self.sdf(pts + e) - self.sdf(pts - e)) / (2 * step)
        return grad

    def save(self, path: PathLike) -> None:
        """Write one self-contained model file (every tile's weights, boxes, normalizations); atomic."""
        tensors: dict[str, torch.Tensor] = {}
        tiles = []
        for i, tile in enumerate(self.tiles):
            for key, value in tile.model.network.state_dict().items():
                tensors[f"tile{i}.net.{key}"] = value
            if tile.model.far_field is not None:
                for key, value in tile.model.far_field.to_tensors().items():
                    tensors[f"tile{i}.{key}"] = value
            tiles.append({
                "name": tile.name,
                "core": np.asarray(tile.core, dtype=float).tolist(),
                "bounds": np.asarray(tile.bounds, dtype=float).tolist(),
                "siren": config_to_dict(tile.model.network.config),
                "normalization": tile.model.normalization.to_dict(),
                "info": tile.model.info,
            })
        if self.support_points is not None:
            tensors["support_points"] = torch.as_tensor(self.normalization.to_normalized(self.support_points), dtype=torch.float32)
        meta = {
            "kind": "scene",
            "normalization": self.normalization.to_dict(),
            "data_bounds": np.asarray(self.data_bounds, dtype=float).tolist(),
            "tiles": tiles,
            "info": self.info,
        }
        save_model_file(path, tensors, meta, format=MODEL_FORMAT)

    @classmethod
    def load(cls, path: PathLike, device: Device = "cpu") -> "SceneModel":
        """Load a scene model file written by ``save``; no code is executed.

        Raises:
            InputError: the file is not a neural_sdf scene model.
        """
        tensors, meta = load_model_file(path)
        return cls.from_file_contents(path, tensors, meta, device)

    @classmethod
    def from_file_contents(cls, path: PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any], device: Device = "cpu") -> "SceneModel":
        """Build the model from a loaded file's tensors and metadata (see ``load``)."""
        if meta.get("kind") != "scene":
            raise InputError(f"{path}: model file holds a {meta.get('kind', 'unknown')!r} model, expected a scene model")
        try:
            normalization = Normalization.from_dict(meta["normalization"])
            tiles = []
            for i, record in enumerate(meta["tiles"]):
                network = Siren(config_from_dict(SirenConfig, record["siren"]))
                prefix = f"tile{i}.net."
                network.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
                bounds = np.asarray(record["bounds"], dtype=np.float64).reshape(2, 3)
                far = FarField.from_tensors({k[len(f"tile{i}."):]: v for k, v in tensors.items() if k.startswith(f"tile{i}.far.")})
                model = SDFModel(
                    network.to(device).eval(), Normalization.from_dict(record["normalization"]), bounds, record.get("info", {}), far_field=far
                )
                tiles.append(Tile(str(record["name"]), np.asarray(record["core"], dtype=np.float64).reshape(2, 3), bounds, model))
            support = tensors.get("support_points")
            return cls(
                tiles,
                normalization,
                np.asarray(meta["data_bounds"], dtype=np.float64).reshape(2, 3),
                meta.get("info", {}),
                None if support is None else normalization.to_world(support.double().numpy()),
            )
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise InputError(f"{path}: corrupt scene model file ({str(exc).splitlines()[0][:120]})") from exc
