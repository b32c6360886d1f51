"""Headless pictures of meshes and point clouds with Open3D's offscreen renderer.

Open3D is imported lazily. On machines without a GPU, Open3D renders through Vulkan on the CPU
(Debian packages ``libvulkan1`` and ``mesa-vulkan-drivers``; Filament on Mesa's lavapipe/llvmpipe).

Speed on the CPU (measured with Open3D 0.20, Mesa 22.3, see scripts/README.md "Viewer"): the first
``render_to_image`` of a renderer pays about 5 s of shader compilation (LLVM JIT of Filament's
materials), so all views of a sheet share one renderer. After that, the cost does not depend on the
picture size but on the scene: an empty scene renders in 0.3 s and a triangle in 0.06 s, while some
meshes at some distances keep both llvmpipe threads busy in one fragment-shading loop for seconds.
Switching off post-processing, shadows, SSAO, anti-aliasing, the IBL, the skybox or the sun does
not change that, nor does forcing Filament's OpenGL backend (which also needs an X display here).
"""

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .geometry import Mesh, PointCloud
from .io import save_image

__all__ = [
    "RenderOptions",
    "bounds_of",
    "render_views",
    "render_views_guarded",
    "render_worker",
    "render_sequence",
    "RenderTimeout",
    "save_png",
    "parse_size",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderOptions:
    """How pictures are rendered."""

    width: int = 640
    height: int = 480
    views: int = 1
    """Views on a turntable around the vertical axis, tiled into a near-square sheet."""
    normals: bool = False
    """Colour surfaces and points by their normal (RGB = (n + 1) / 2)."""
    elevation_deg: float = 20.0
    background: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    point_size: float = 3.0
    bounds: Optional[tuple[tuple[float, float, float], tuple[float, float, float]]] = None
    """Frame this world box ``(lo, hi)`` instead of the items' own (keeps the camera still across
    the pictures of a sequence)."""
    camera: Optional[tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float], float]] = None
    """``(eye, center, up, vertical fov in degrees)``: look from here instead of the turntable (one
    view only; e.g. the viewer's current camera). Near and far planes come from the framed box."""

    def __post_init__(self) -> None:
        if not (16 <= self.width <= 8192 and 16 <= self.height <= 8192):
            raise ValueError(f"size must be between 16 and 8192 pixels per side, got {self.width}x{self.height}")
        if not 1 <= self.views <= 64:
            raise ValueError(f"views must be in 1..64, got {self.views}")
        if self.camera is not None and self.views != 1:
            raise ValueError(f"a fixed camera gives one view, got views={self.views}")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` into ``(W, H)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"size must look like 640x480, got {text!r}") from exc
    return w, h


def _to_o3d(item: Any, normals_colour: bool) -> Any:
    import open3d as o3d

    if isinstance(item, Mesh):
        m = item.to_open3d()
        m.compute_vertex_normals()
        if not normals_colour:
            m.paint_uniform_color([0.72, 0.74, 0.80])
        # Normal colours of a mesh come from Open3D's "normals" shader (RGB = (n + 1) / 2), not
        # from vertex colours: interpolated vertex colours on large triangles are llvmpipe's slow
        # case (the test's icosphere sheet took 205 s that way; the viewer measured the same).
        return m
    if isinstance(item, PointCloud):
        p = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(item.points))
        if item.normals is not None:
            p.normals = o3d.utility.Vector3dVector(item.normals)
            if normals_colour:
                p.colors = o3d.utility.Vector3dVector((item.normals + 1) / 2)
        if not normals_colour or item.normals is None:
            p.paint_uniform_color([0.2, 0.35, 0.8])
        return p
    raise TypeError(f"cannot render {type(item).__name__}")


def render_views(items: Sequence[Mesh | PointCloud], options: RenderOptions = RenderOptions()) -> np.ndarray:
    """Render meshes and clouds together from ``options.views`` turntable angles.

    Returns:
        ``(H, W, 3)`` uint8 picture: the views tiled into a sheet of ``ceil(sqrt(views))`` columns,
        each ``options.width x options.height``.
    """
    from open3d.visualization import rendering

    if not items:
        raise ValueError("nothing to render")
    renderer = rendering.OffscreenRenderer(options.width, options.height)
    scene = renderer.scene
    scene.set_background(list(options.background))
    lo, hi = (np.asarray(b, dtype=float) for b in (options.bounds or bounds_of(items)))
    for n, item in enumerate(items):
        geom = _to_o3d(item, options.normals)
        mat = rendering.MaterialRecord()
        if isinstance(item, Mesh):
            mat.shader = "normals" if options.normals else "defaultLit"
        else:
            mat.shader = "defaultUnlit"
            mat.point_size = options.point_size
        scene.add_geometry(f"g{n}", geom, mat)
    if options.normals:
        # Unlit normal colours are the data: no tone mapping, so RGB = (n + 1) / 2 exactly.
        scene.view.set_post_processing(False)
    scene.scene.set_sun_light([-0.4, -0.6, -0.7], [1.0, 1.0, 1.0], 90000)
    scene.scene.enable_sun_light(True)
    center = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2 or 1.0
    fov = 40.0
    dist = radius / math.sin(math.radians(fov / 2)) * 1.05
    tiles = []
    elev = math.radians(options.elevation_deg)
    for v in range(options.views):
        az = 2 * math.pi * v / options.views + math.radians(30)
        eye = center + dist * np.array([math.cos(elev) * math.sin(az), math.sin(elev), math.cos(elev) * math.cos(az)])
        look, up = center, np.array([0.0, 1.0, 0.0])
        if options.camera is not None:
            eye, look, up, fov = (np.asarray(options.camera[0], float), np.asarray(options.camera[1], float),
                                  np.asarray(options.camera[2], float), float(options.camera[3]))
        renderer.setup_camera(fov, look.tolist(), eye.tolist(), up.tolist())
        if options.bounds is not None or options.camera is not None:
            # setup_camera puts the far plane by the scene's own extent; a larger box would clip it.
            d = float(np.linalg.norm(center - eye))
            renderer.scene.camera.set_projection(fov, options.width / options.height, max(d - 2 * radius, d * 1e-3),
                                                 d + 2 * radius, rendering.Camera.FovType.Vertical)
        tiles.append(np.asarray(renderer.render_to_image())[..., :3].copy())
    cols = math.ceil(math.sqrt(options.views))
    rows = math.ceil(options.views / cols)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * cols - len(tiles))
    sheet = np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)
    del renderer
    return sheet


def bounds_of(items: Sequence[Mesh | PointCloud]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """World box ``(lo, hi)`` of meshes and clouds together (``RenderOptions.bounds`` of a sequence)."""
    lo = np.min([np.min(_points_of(i), axis=0) for i in items], axis=0)
    hi = np.max([np.max(_points_of(i), axis=0) for i in items], axis=0)
    return (float(lo[0]), float(lo[1]), float(lo[2])), (float(hi[0]), float(hi[1]), float(hi[2]))


class RenderTimeout(RuntimeError):
    """No picture came back from any attempt of ``render_views_guarded`` within its timeout."""


def render_worker(conn: Any, items: Sequence[Mesh | PointCloud], options: RenderOptions) -> None:
    """Child-process body of ``render_views_guarded`` (its ``worker``): render and send the picture back."""
    try:
        conn.send(("ok", render_views(items, options)))
    except Exception as exc:  # sent to the parent, which raises it there
        conn.send(("error", exc))
    finally:
        conn.close()


def render_views_guarded(
    items: Sequence[Mesh | PointCloud],
    options: RenderOptions = RenderOptions(),
    timeout_s: float = 120.0,
    attempts: int = 2,
    worker: Any = render_worker,
) -> np.ndarray:
    """``render_views`` in a child process that is killed and retried when it does not answer.

    On CPU-only machines Mesa's lavapipe now and then never finishes a lit frame (one thread loops
    in JIT-compiled shader code; scripts/README.md "Viewer"), and the call cannot be interrupted in-process.
    Each attempt runs in a fresh process (``spawn``: about 2 s of imports on top of the render);
    a hung attempt is killed after ``timeout_s`` seconds and the next one starts.

    Raises:
        RenderTimeout: every attempt timed out.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    for attempt in range(1, attempts + 1):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=worker, args=(child, list(items), options), daemon=True)
        proc.start()
        child.close()
        try:
            if parent.poll(timeout_s):
                status, payload = parent.recv()
                if status == "error":
                    raise payload
                return payload
        except EOFError:  # the child died without answering (e.g. a crash in the driver)
            pass
        finally:
            parent.close()
            proc.kill()
            proc.join()
        log.warning("render: attempt %d of %d gave no picture within %.0f s (the CPU Vulkan driver sometimes hangs)%s",
                    attempt, attempts, timeout_s, "; retrying" if attempt < attempts else "")
    raise RenderTimeout(f"no picture after {attempts} attempts of {timeout_s:.0f} s each (CPU Vulkan driver hang?)")


def _points_of(item: Mesh | PointCloud) -> np.ndarray:
    return item.vertices if isinstance(item, Mesh) else item.points


save_png = save_image
"""Write a picture as PNG, atomically: ``io.image.save_image`` (the one PNG writer), under the name
the render API has always offered."""


def render_sequence(
    meshes: Sequence[Mesh],
    options: RenderOptions = RenderOptions(),
    timeout_s: float = 120.0,
    progress: bool = False,
) -> list[np.ndarray]:
    """Render each mesh of a sequence (e.g. the frames of an interpolation) as one picture.

    All pictures share one camera: ``options.bounds``, or else the box of all non-empty meshes.
    Each frame renders in a fresh watched child (``render_views_guarded``): several renderers, or
    several frames of changed geometry, in one process hung on Mesa's CPU Vulkan driver within a
    few frames (scripts/README.md, "Viewer").

    Args:
        meshes: the frames, world units; an empty mesh gives a picture of the background.
        options: one view per picture (``views=1``); ``bounds`` and ``camera`` as in ``render_views``.
        timeout_s: seconds per attempt of each frame.
        progress: show a progress bar.

    Returns:
        One ``(H, W, 3)`` uint8 picture per mesh.

    Raises:
        ValueError: no mesh has a surface.
        RenderTimeout: a frame gave no picture.
    """
    import dataclasses

    from .progress import progress_bar

    shown = [m for m in meshes if not m.is_empty]
    if not shown:
        raise ValueError("no frame of the sequence has a surface")
    if options.bounds is None:
        options = dataclasses.replace(options, bounds=bounds_of(shown))
    colour = np.round(np.clip(np.asarray(options.background[:3]), 0.0, 1.0) * 255).astype(np.uint8)
    blank = np.broadcast_to(colour, (options.height, options.width, 3)).copy()
    pictures = []
    for k, mesh in enumerate(progress_bar(meshes, desc="render", unit="frame", disable=not progress, leave=False)):
        pictures.append(blank.copy() if mesh.is_empty else render_views_guarded([mesh], options, timeout_s=timeout_s))
        log.debug("render: frame %d of %d", k + 1, len(meshes))
    return pictures