"""The viewer window: view (widgets, scene) and controller (callbacks, worker jobs) over ``data``.

Model / view / controller: ``data`` holds the loaded items and computes meshes, slices and
interpolation frames; ``ViewerSettings`` is the one settings object; UI callbacks only change
settings and call ``ViewerApp.apply``, the one function that turns settings and data into the
scene. Heavy work runs in worker threads that hand their results to the UI thread with
``gui.Application.instance.post_to_main_thread``.
"""

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

import neural_sdf as ns

from . import data
from .data import AXES
from .settings import (
    COMPARES,
    FRAME_TIMEOUT_S,
    SCREENSHOT_TIMEOUT_S,
    SHADINGS,
    SHORTCUTS,
    ViewerSettings,
    build_parser,
    parse_size,
    settings_from_args,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
PANEL_EM = 20
MESH_COLOR = (0.72, 0.74, 0.80)
ITEM_COLORS = ((0.72, 0.74, 0.80), (0.85, 0.65, 0.45), (0.55, 0.80, 0.60), (0.75, 0.60, 0.85))
POINT_COLOR = (0.15, 0.30, 0.85)
OVERLAY_COLOR = (0.95, 0.55, 0.05)


def display_problem() -> Optional[str]:
    """Return why no window can be opened here (no or unreachable X display), or None."""
    if sys.platform != "linux":
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return "no display ($DISPLAY is not set)"
    if os.environ.get("DISPLAY"):
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("X11")
        if name:
            x11 = ctypes.CDLL(name)
            x11.XOpenDisplay.restype = ctypes.c_void_p
            x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
            handle = x11.XOpenDisplay(None)
            if not handle:
                return f"cannot open display {os.environ['DISPLAY']!r}"
            x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
            x11.XCloseDisplay(handle)
    return None


class ViewerApp:
    """One viewer window over a list of items.

    Args:
        items: loaded items (models are meshed in worker threads after the window opens).
        settings: initial settings.
        size: window size in pixels.
        gt: ground-truth mesh for metrics, or None.
        screenshot: save the first complete frame here and quit, or None.
        export_interp: export the interpolation sequence here and quit, or None.
        num_frames: frames in an exported sequence.
    """

    def __init__(
        self,
        items: list[data.Item],
        settings: ViewerSettings,
        size: tuple[int, int] = (1024, 768),
        gt: Optional[ns.Mesh] = None,
        screenshot: Optional[Path] = None,
        export_interp: Optional[Path] = None,
        num_frames: int = 11,
    ) -> None:
        import open3d.visualization.gui as gui
        import open3d.visualization.rendering as rendering

        self.gui, self.rendering = gui, rendering
        self.items, self.settings, self.gt = items, settings, gt
        self.screenshot_path, self.export_path, self.num_frames = screenshot, export_interp, num_frames
        self.exit_code = EXIT_OK
        self.errors: list[str] = []
        self.jobs: dict[str, threading.Thread] = {}
        self.jobs_started = 0
        self.jobs_done = 0
        self.slice: Optional[data.SdfSlice] = None
        self.slice_key: Optional[tuple] = None
        self._camera_ready = False
        self._finishing = False
        self._shot_counter = 0
        self._laid_out = False
        self._waiting_renders: list[Callable[[np.ndarray], None]] = []
        models = [it for it in items if it.kind == "model"]
        self.interp: Optional[data.InterpolationCache] = None
        if len(models) >= 2:
            self.interp = data.InterpolationCache(models[0].model, models[1].model, settings.resolution)

        app = gui.Application.instance
        self.window = app.create_window("neural_sdf viewer", size[0], size[1])
        w = self.window
        em = w.theme.font_size
        self.em = em
        self.scene = gui.SceneWidget()
        self.scene.scene = rendering.Open3DScene(w.renderer)
        self.scene.scene.set_background([1.0, 1.0, 1.0, 1.0])
        self.scene.scene.scene.set_sun_light([-0.4, -0.6, -0.7], [1.0, 1.0, 1.0], 90000)
        self.scene.scene.scene.enable_sun_light(True)
        if os.environ.get("NEURAL_SDF_VIEWER_LEAN", "0") == "1":
            view = self.scene.scene.view
            view.set_post_processing(False)
            view.set_shadowing(False)
            view.set_ambient_occlusion(False)
            view.set_antialiasing(False)
        w.add_child(self.scene)
        self._build_panel()
        w.set_on_layout(self._on_layout)
        w.set_on_key(self._on_key)
        w.set_on_tick_event(self._on_tick)
        self._start_initial_jobs()
        self.apply()

    # ------------------------------------------------------------------ view: widgets
    def _build_panel(self) -> None:
        gui, em = self.gui, self.em
        margins = gui.Margins(int(0.5 * em), int(0.5 * em), int(0.5 * em), int(0.5 * em))
        self.panel = gui.ScrollableVert(int(0.25 * em), margins)

        self.info = gui.Label("")
        box = gui.CollapsableVert("Items", int(0.25 * em), margins)
        box.add_child(self.info)
        self.panel.add_child(box)

        box = gui.CollapsableVert("Display", int(0.25 * em), margins)
        self.w_shading = gui.Combobox()
        for name in SHADINGS:
            self.w_shading.add_item(name)
        self.w_shading.set_on_selection_changed(lambda text, i: self.update(shading=SHADINGS[i]))
        box.add_child(self._row("Shading", self.w_shading))
        self.w_point = gui.Slider(gui.Slider.INT)
        self.w_point.set_limits(1, 15)
        self.w_point.set_on_value_changed(lambda v: self.update(point_size=float(v)))
        box.add_child(self._row("Point size", self.w_point))
        self.w_normals = gui.Checkbox("Normals (N)")
        self.w_normals.set_on_checked(lambda c: self.update(show_normals=bool(c)))
        box.add_child(self.w_normals)
        self.w_overlay = gui.Checkbox("Input cloud overlay (O)")
        self.w_overlay.set_on_checked(lambda c: self.update(show_overlay=bool(c)))
        box.add_child(self.w_overlay)
        self.w_compare = gui.Combobox()
        for name in COMPARES:
            self.w_compare.add_item(name)
        self.w_compare.set_on_selection_changed(lambda text, i: self.update(compare=COMPARES[i]))
        box.add_child(self._row("Compare", self.w_compare))
        b = gui.Button("Toggle item (T)")
        b.set_on_clicked(self._toggle_active)
        box.add_child(b)
        self.panel.add_child(box)

        box = gui.CollapsableVert("SDF slice", int(0.25 * em), margins)
        self.w_axis = gui.Combobox()
        for name in ("none",) + AXES:
            self.w_axis.add_item(name)
        self.w_axis.set_on_selection_changed(lambda text, i: self.update(slice_axis=None if i == 0 else AXES[i - 1]))
        box.add_child(self._row("Axis", self.w_axis))
        self.w_offset = gui.Slider(gui.Slider.DOUBLE)
        self.w_offset.set_limits(-1.0, 1.0)
        self.w_offset.set_on_value_changed(lambda v: self.update(slice_offset=float(v)))
        box.add_child(self._row("Position", self.w_offset))
        self.panel.add_child(box)

        box = gui.CollapsableVert("Interpolation", int(0.25 * em), margins)
        self.w_t = gui.Slider(gui.Slider.DOUBLE)
        self.w_t.set_limits(0.0, 1.0)
        self.w_t.set_on_value_changed(lambda v: self.update(interp_t=float(v)))
        box.add_child(self._row("t", self.w_t))
        b = gui.Button("Export sequence")
        b.set_on_clicked(lambda: self.export_sequence(self.export_path or Path("interpolation.gif")))
        box.add_child(b)
        self.panel.add_child(box)

        row = gui.Horiz(int(0.25 * em))
        b = gui.Button("Reset camera (R)")
        b.set_on_clicked(self.reset_camera)
        row.add_child(b)
        b = gui.Button("Screenshot (S)")
        b.set_on_clicked(self.save_screenshot)
        row.add_child(b)
        self.panel.add_child(row)

        self.progress = gui.ProgressBar()
        self.status = gui.Label("")
        self.panel.add_child(self.progress)
        self.panel.add_child(self.status)
        keys = "\n".join(f"{k:>6}  {text}" for k, text in SHORTCUTS)
        box = gui.CollapsableVert("Keyboard shortcuts", int(0.25 * em), margins)
        box.add_child(gui.Label(keys))
        self.panel.add_child(box)
        self.window.add_child(self.panel)

    def _row(self, label: str, widget: Any) -> Any:
        row = self.gui.Horiz(int(0.25 * self.em))
        row.add_child(self.gui.Label(label))
        row.add_child(widget)
        return row

    def _on_layout(self, context: Any) -> None:
        r = self.window.content_rect
        width = PANEL_EM * self.em if self.settings.show_panel else 0
        self.scene.frame = self.gui.Rect(r.x, r.y, r.width - width, r.height)
        self.panel.frame = self.gui.Rect(r.get_right() - width, r.y, width, r.height)
        self.panel.visible = self.settings.show_panel
        self._laid_out = self.scene.frame.width > 1 and self.scene.frame.height > 1

    def _sync_widgets(self) -> None:
        s = self.settings
        self.w_shading.selected_index = SHADINGS.index(s.shading)
        self.w_point.int_value = int(round(s.point_size))
        self.w_normals.checked = s.show_normals
        self.w_overlay.checked = s.show_overlay
        self.w_compare.selected_index = COMPARES.index(s.compare)
        self.w_axis.selected_index = 0 if s.slice_axis is None else 1 + AXES.index(s.slice_axis)
        self.w_offset.double_value = s.slice_offset
        self.w_t.double_value = s.interp_t
        self.w_t.enabled = self.interp is not None
        total = max(self.jobs_started, 1)
        self.progress.value = self.jobs_done / total if self.jobs else 1.0
        text = ("working: " + ", ".join(sorted(self.jobs))) if self.jobs else "ready"
        if self.errors:
            text += "\nerror: " + self.errors[-1]
        self.status.text = text
        self.info.text = self._info_text()

    def _info_text(self) -> str:
        lines = []
        for i, it in enumerate(self.items):
            lines.append(f"[{i}] {it.name} ({it.kind})")
            mesh = it.mesh
            if mesh is not None:
                summary = it.info.get("summary") or data.mesh_summary(mesh)
                it.info["summary"] = summary
                lines.append(f"    {summary['vertices']:,} vertices, {summary['faces']:,} faces")
                lines.append(f"    watertight: {'yes' if summary['watertight'] else 'no'}")
                lines.append(f"    box {data.format_box(summary['bounds'])}")
            elif it.kind == "model":
                lines.append("    extracting mesh ...")
            if it.cloud is not None:
                lines.append(f"    {len(it.cloud):,} points" + (" with normals" if it.cloud.has_normals else ""))
                if it.kind == "points":
                    lines.append(f"    box {data.format_box(data.box_of(it.cloud.points))}")
            if "metrics" in it.info:
                lines.append("    vs GT: " + it.info["metrics"])
        if self.interp is not None:
            frame = self.interp.get(self.settings.interp_t)
            state = "computing ..." if frame is None else f"{len(frame.vertices):,} vertices"
            lines.append(f"interpolation t={self.interp.key(self.settings.interp_t) / self.interp.steps:.2f}: {state}")
        if self.slice is not None and self.settings.slice_axis is not None:
            v = self.slice.values
            lines.append(f"slice {self.settings.slice_axis}={self.slice.position:.4g}: SDF {v.min():.3g} .. {v.max():.3g}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ controller
    def update(self, **changes: Any) -> None:
        """Change settings (the only way callbacks change state) and re-apply them."""
        for key, value in changes.items():
            if not hasattr(self.settings, key):
                raise AttributeError(f"ViewerSettings has no field {key!r}")
            setattr(self.settings, key, value)
        self.apply()

    def _toggle_active(self) -> None:
        self.update(compare="toggle", active=(self.settings.active + 1) % max(len(self.items), 1))

    def _on_key(self, event: Any) -> bool:
        gui = self.gui
        if event.type != gui.KeyEvent.DOWN:
            return False
        s, k, K = self.settings, event.key, gui.KeyName
        if k == K.W:
            self.update(shading=SHADINGS[(SHADINGS.index(s.shading) + 1) % len(SHADINGS)])
        elif k == K.N:
            self.update(show_normals=not s.show_normals)
        elif k == K.O:
            self.update(show_overlay=not s.show_overlay)
        elif k in (K.X, K.Y, K.Z):
            axis = {K.X: "x", K.Y: "y", K.Z: "z"}[k]
            self.update(slice_axis=None if s.slice_axis == axis else axis)
        elif k == K.LEFT_BRACKET:
            self.update(slice_offset=max(-1.0, s.slice_offset - 0.05))
        elif k == K.RIGHT_BRACKET:
            self.update(slice_offset=min(1.0, s.slice_offset + 0.05))
        elif k == K.COMMA:
            self.update(interp_t=max(0.0, s.interp_t - 0.05))
        elif k == K.PERIOD:
            self.update(interp_t=min(1.0, s.interp_t + 0.05))
        elif k == K.T:
            self._toggle_active()
        elif k == K.EQUALS:
            self.update(point_size=min(15.0, s.point_size + 1))
        elif k == K.MINUS:
            self.update(point_size=max(1.0, s.point_size - 1))
        elif k == K.R:
            self.reset_camera()
        elif k == K.S:
            self.save_screenshot()
        elif k == K.H:
            self.update(show_panel=not s.show_panel)
            self.window.set_needs_layout()
        else:
            return False
        return True

    # ------------------------------------------------------------------ worker jobs
    def _start_job(self, name: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work`` in a thread; ``done(result)`` then runs on the UI thread."""
        app = self.gui.Application.instance

        def run() -> None:
            t0 = time.perf_counter()
            try:
                result, error = work(), None
            except Exception as exc:  # reported in the UI and, for --screenshot, as the exit status
                log.exception("%s failed", name)
                result, error = None, f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            log.info("%s took %.2f s", name, time.perf_counter() - t0)

            def finish() -> None:
                self.jobs.pop(name, None)
                self.jobs_done += 1
                if error is None:
                    done(result)
                else:
                    self.errors.append(error)
                self.apply()

            app.post_to_main_thread(self.window, finish)

        thread = threading.Thread(target=run, name=f"viewer-{name}", daemon=True)
        self.jobs[name] = thread
        self.jobs_started += 1
        thread.start()

    def _start_initial_jobs(self) -> None:
        res = self.settings.resolution
        for it in self.items:
            if it.kind == "model" and it.mesh is None and (self.interp is None or it.model not in (self.interp.a, self.interp.b)):
                self._start_job(f"extract {it.name}", lambda it=it: data.extract(it.model, res), lambda m, it=it: self._set_mesh(it, m))

    def _set_mesh(self, item: data.Item, mesh: ns.Mesh) -> None:
        item.mesh = mesh
        item.info.pop("summary", None)
        if self.gt is not None and not mesh.is_empty:
            gt = self.gt

            def metrics() -> str:
                m = ns.evaluate_meshes(mesh, gt, num_samples=20_000, seed=0)
                f = ", ".join(f"F@{k} {v:.3f}" for k, v in m.fscore.items())
                return f"Chamfer-L1 {m.chamfer_l1:.4g}, Hausdorff {m.hausdorff:.4g}, {f}, NC {m.normal_consistency:.3f}"

            self._start_job(f"metrics {item.name}", metrics, lambda text: item.info.__setitem__("metrics", text))

    def _wanted_slice_key(self) -> Optional[tuple]:
        s = self.settings
        if s.slice_axis is None:
            return None
        if self.interp is not None:
            return ("interp", s.slice_axis, round(s.slice_offset, 3), self.interp.key(s.interp_t), s.slice_resolution)
        if any(it.kind == "model" for it in self.items):
            return ("model", s.slice_axis, round(s.slice_offset, 3), s.slice_resolution)
        return None

    def _request_work(self) -> None:
        """Start the jobs the current settings need (slice, interpolation frame) unless running."""
        s = self.settings
        key = self._wanted_slice_key()
        if key is not None and key != self.slice_key and "slice" not in self.jobs:
            if self.interp is not None:
                sdf = self.interp.blend(s.interp_t)
                box = data.padded_bounds(sdf.data_bounds, 0.05)
            else:
                model = next(it.model for it in self.items if it.kind == "model")
                sdf, box = model, data.padded_bounds(model.data_bounds, 0.1)
            axis, offset, res = s.slice_axis, s.slice_offset, s.slice_resolution

            def done(result: data.SdfSlice, key: tuple = key) -> None:
                self.slice, self.slice_key = result, key

            self._start_job("slice", lambda: data.sdf_slice(sdf, box, axis, offset, res), done)
        if self.interp is not None and self.interp.get(s.interp_t) is None and "interpolation" not in self.jobs:
            t = s.interp_t
            self._start_job("interpolation", lambda: self.interp.compute(t), lambda mesh: None)

    # ------------------------------------------------------------------ the one apply function
    def _shown(self) -> list[tuple[int, data.Item, Optional[ns.Mesh]]]:
        """Items to draw with the mesh each shows (interpolation replaces its two models)."""
        out = []
        interp_done = False
        for i, it in enumerate(self.items):
            mesh = it.mesh
            if self.interp is not None and it.model is not None and it.model in (self.interp.a, self.interp.b):
                if interp_done:
                    continue
                interp_done = True
                mesh = self.interp.get(self.settings.interp_t)
            out.append((i, it, mesh))
        if self.settings.compare == "toggle" and out:
            out = [out[self.settings.active % len(out)]]
        return out

    def _scene_box(self) -> Optional[np.ndarray]:
        boxes = []
        for it in self.items:
            if it.mesh is not None and len(it.mesh.vertices):
                boxes.append(data.box_of(it.mesh.vertices))
            elif it.model is not None:
                boxes.append(np.asarray(it.model.data_bounds, dtype=np.float64))
            elif it.cloud is not None and len(it.cloud):
                boxes.append(data.box_of(it.cloud.points))
        if not boxes:
            return None
        b = np.stack(boxes)
        return np.stack([b[:, 0].min(axis=0), b[:, 1].max(axis=0)])

    def apply(self) -> None:
        """Rebuild the scene from the settings and the data, then start any work they need."""
        import open3d as o3d

        rendering = self.rendering
        s = self.settings
        scene = self.scene.scene
        scene.clear_geometry()
        box = self._scene_box()
        diag = float(np.linalg.norm(box[1] - box[0])) if box is not None else 1.0
        shown = self._shown()
        for slot, (i, it, mesh) in enumerate(shown):
            shift = np.zeros(3)
            if s.compare == "side" and box is not None:
                shift[0] = slot * 1.1 * float(box[1, 0] - box[0, 0])
            color = ITEM_COLORS[i % len(ITEM_COLORS)]
            if mesh is not None and not mesh.is_empty:
                self._add_mesh(f"mesh{i}", mesh, color, shift)
                if s.show_normals:
                    self._add_glyphs(f"mnormals{i}", mesh.vertices + shift, data.vertex_normals(mesh), diag)
            cloud = it.cloud
            if self.interp is not None and it.model is not None and it.model in (self.interp.a, self.interp.b):
                # An in-between frame has no input points; the endpoints show their own.
                key = self.interp.key(s.interp_t)
                owner = {0: self.interp.a, self.interp.steps: self.interp.b}.get(key)
                cloud = next((x.cloud for x in self.items if owner is not None and x.model is owner), None)
            if cloud is not None and (it.kind == "points" or s.show_overlay):
                pts = cloud.points + shift
                pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
                if s.shading == "normals" and cloud.normals is not None:
                    pcd.colors = o3d.utility.Vector3dVector(data.normal_colors(cloud.normals))
                else:
                    pcd.paint_uniform_color(POINT_COLOR if it.kind == "points" else OVERLAY_COLOR)
                mat = rendering.MaterialRecord()
                mat.shader = "defaultUnlit"
                mat.point_size = s.point_size * self.window.scaling
                scene.add_geometry(f"cloud{i}", pcd, mat)
                if s.show_normals and cloud.normals is not None:
                    self._add_glyphs(f"cnormals{i}", pts, cloud.normals, diag)
        if s.slice_axis is not None and self.slice is not None:
            sl = self.slice
            self._add_slice_plane(sl)
            if len(sl.zero_lines):
                n = len(sl.zero_lines) // 2
                self._add_lines("slice_zero", sl.zero_lines, np.arange(2 * n).reshape(n, 2), (0.0, 0.0, 0.0), 3.0)
        if box is not None and not self._camera_ready:
            self.reset_camera()
        self._request_work()
        self._sync_widgets()
        self.window.post_redraw()
        self._maybe_finish()

    def _add_mesh(self, name: str, mesh: ns.Mesh, color: tuple, shift: np.ndarray) -> None:
        import open3d as o3d

        s, rendering = self.settings, self.rendering
        m = o3d.geometry.TriangleMesh(
            o3d.utility.Vector3dVector(mesh.vertices + shift), o3d.utility.Vector3iVector(mesh.faces.astype(np.int32))
        )
        mat = rendering.MaterialRecord()
        if s.shading == "wireframe":
            edges = np.asarray(o3d.geometry.LineSet.create_from_triangle_mesh(m).lines)
            self._add_lines(name, mesh.vertices + shift, edges, (0.1, 0.1, 0.2), 1.0)
            return
        if s.shading == "normals":
            # Open3D's "normals" shader colours by world normal, (n + 1) / 2 like data.normal_colors;
            # the same colours as vertex colours took 4 s per frame on Mesa's CPU Vulkan, this 0.06 s.
            m.vertex_normals = o3d.utility.Vector3dVector(data.vertex_normals(mesh))
            mat.shader = "normals"
        else:
            m.compute_vertex_normals()
            mat.shader = "defaultLit"
            mat.base_color = [*color, 1.0]
        self.scene.scene.add_geometry(name, m, mat)

    def _add_slice_plane(self, sl: data.SdfSlice) -> None:
        """Draw the slice as one textured quad, seen from both sides.

        The colours are a texture, not per-vertex colours: on Mesa's CPU Vulkan driver a
        vertex-coloured grid filling the view took 45 s per frame, the textured quad under 0.1 s.
        """
        import open3d as o3d

        r = sl.values.shape[0]
        corners = sl.vertices[[0, (r - 1) * r, r * r - 1, r - 1]]  # (u0 v0) (u1 v0) (u1 v1) (u0 v1), grid is "ij"
        faces = np.array([[0, 1, 2], [0, 2, 3], [0, 2, 1], [0, 3, 2]], dtype=np.int32)  # front, then back
        # Texel centres sit on the grid samples: the quad's edges map to half a texel inside.
        lo, hi = 0.5 / r, 1.0 - 0.5 / r
        uv = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
        quad = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(corners), o3d.utility.Vector3iVector(faces))
        quad.triangle_uvs = o3d.utility.Vector2dVector(uv[faces.ravel()])
        image = (sl.colors.reshape(r, r, 3).transpose(1, 0, 2) * 255.0 + 0.5).astype(np.uint8)  # rows along v
        mat = self.rendering.MaterialRecord()
        mat.shader = "defaultUnlit"
        mat.albedo_img = o3d.geometry.Image(np.ascontiguousarray(image))
        self.scene.scene.add_geometry("slice", quad, mat)

    def _add_glyphs(self, name: str, points: np.ndarray, normals: np.ndarray, diag: float) -> None:
        s = self.settings
        ends, lines = data.normal_glyphs(points, normals, s.normal_length * diag, s.max_glyphs)
        self._add_lines(name, ends, lines, (0.05, 0.45, 0.1), 1.5)

    def _add_lines(self, name: str, points: np.ndarray, lines: np.ndarray, color: tuple, width: float) -> None:
        import open3d as o3d

        ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(points), o3d.utility.Vector2iVector(lines.astype(np.int32)))
        ls.paint_uniform_color(list(color))
        mat = self.rendering.MaterialRecord()
        mat.shader = "unlitLine"
        mat.line_width = width * self.window.scaling
        self.scene.scene.add_geometry(name, ls, mat)

    def reset_camera(self) -> None:
        """Frame everything loaded (the model boxes before their meshes arrive)."""
        import open3d as o3d

        box = self._scene_box()
        if box is None:
            return
        if self.settings.compare == "side":
            box = box.copy()
            box[1, 0] += (len(self._shown()) - 1) * 1.1 * float(box[1, 0] - box[0, 0])
        aabb = o3d.geometry.AxisAlignedBoundingBox(box[0], box[1])
        self.scene.setup_camera(60.0, aabb, aabb.get_center())
        self._camera_ready = True

    # ------------------------------------------------------------------ pictures
    def _on_tick(self) -> bool:
        # Renders asked for before the first layout wait until the view has its real size.
        if self._laid_out and self._waiting_renders:
            waiting, self._waiting_renders = self._waiting_renders, []
            for on_image in waiting:
                self._render(on_image)
        return False

    def _render(self, on_image: Callable[[np.ndarray], None]) -> None:
        """Render the 3D view on the next frame and call ``on_image((H, W, 3) uint8)`` on the UI thread."""
        app = self.gui.Application.instance
        if not self._laid_out:
            self._waiting_renders.append(on_image)
            return

        def got(image: Any) -> None:
            arr = np.asarray(image)[..., :3].copy()
            app.post_to_main_thread(self.window, lambda: on_image(arr))

        self.scene.scene.scene.render_to_image(got)
        self.window.post_redraw()

    def save_screenshot(self, path: Optional[Path] = None) -> None:
        """Save the 3D view as PNG (default: ``viewer_NNN.png`` in the working folder)."""
        if path is None:
            self._shot_counter += 1
            path = Path(f"viewer_{self._shot_counter:03d}.png")

        def write(arr: np.ndarray) -> None:
            ns.save_image(arr, path)
            log.info("wrote %s (%dx%d)", path, arr.shape[1], arr.shape[0])
            self.status.text = f"saved {path}"

        self._render(write)

    def export_sequence(self, path: Path) -> None:
        """Render the interpolation at ``num_frames`` times in [0, 1] and write a GIF, MP4 or PNG folder.

        The frames are drawn offscreen, each in a fresh watched child process
        (``neural_sdf.render_sequence``), with one camera framing all of them, at the
        3D view's size: drawn in this window, frame after frame, the export of the test models hung
        in 3 of 4 runs on Mesa's CPU Vulkan driver (scripts/README.md, "Viewer"). All of it runs in a worker.
        """
        if self.interp is None:
            self.errors.append("export: interpolation needs two model files")
            self._sync_widgets()
            return
        times = [k / max(self.num_frames - 1, 1) for k in range(self.num_frames)]
        interp = self.interp
        frame = self.scene.frame
        width, height = max(int(frame.width), 16), max(int(frame.height), 16)
        normals = self.settings.shading == "normals"
        camera = self._camera_pose()

        def work() -> Path:
            meshes = [interp.compute(t) for t in times]
            if all(m.is_empty for m in meshes):
                raise ValueError("export: no frame of the interpolation has a surface")
            options = ns.RenderOptions(width=width, height=height, normals=normals, camera=camera)
            frames = ns.render_sequence(meshes, options)
            log.info("export: %d frames rendered", len(frames))
            return ns.save_animation(frames, path, fps=EXPORT_FPS)

        self._start_job("export", work, self._exported)

    def _camera_pose(self) -> Optional[tuple]:
        """The 3D view's camera as ``(eye, center, up, vertical fov)`` (``RenderOptions.camera``), or None."""
        cam = self.scene.scene.camera
        view = np.asarray(cam.get_view_matrix(), dtype=float)  # world -> camera; the camera looks along -z
        rot, shift = view[:3, :3], view[:3, 3]
        eye = -rot.T @ shift
        box = self._scene_box()
        dist = float(np.linalg.norm((box[0] + box[1]) / 2 - eye)) if box is not None else 1.0
        fov = float(cam.get_field_of_view())
        if not np.all(np.isfinite(view)) or not 1.0 <= fov <= 170.0:
            return None
        center = eye - rot[2] * max(dist, 1e-9)
        return tuple(map(float, eye)), tuple(map(float, center)), tuple(map(float, rot[1])), fov

    def _exported(self, path: Path) -> None:
        log.info("wrote %s", path)
        self.status.text = f"saved {path}"
        if self.export_path is not None and self.screenshot_path is None:
            self.quit()

    def _maybe_finish(self) -> None:
        """For ``--screenshot`` / ``--export-interp``: act once every job is done."""
        if self._finishing or self.jobs:
            return
        if self.screenshot_path is None and self.export_path is None:
            return
        self._finishing = True
        if self.errors and self.screenshot_path is not None:
            sys.stderr.write(f"viewer: error: {self.errors[0]}\n")
            self.exit_code = EXIT_FAILED
            self.quit()
            return
        if self.export_path is not None:
            self.export_sequence(self.export_path)
            return
        path = self.screenshot_path

        def write(arr: np.ndarray) -> None:
            ns.save_image(arr, path)
            log.info("wrote %s (%dx%d)", path, arr.shape[1], arr.shape[0])
            self.quit()

        self._render(write)

    def quit(self) -> None:
        """Close the window (ends ``Application.run``).

        A watched unattended child (``WATCHED_ENV``) whose outputs are written exits at once
        instead: on the CPU Vulkan driver the GUI's teardown can hang after the file is written
        (measured in one checkout: the screenshot written, then no exit within 120 s on every
        attempt), and nothing is left to do but report the exit code.
        """
        if os.environ.get(WATCHED_ENV) and (self.screenshot_path is not None or self.export_path is not None):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.exit_code)
        self.gui.Application.instance.quit()


EXPORT_FPS = 10.0
"""Frames per second of an exported interpolation (GIF or MP4)."""


def main(argv: Optional[list[str]] = None) -> int:
    """Run the viewer; return the exit status (0 ok, 1 failed, 2 bad input or no display)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="viewer: %(message)s", stream=sys.stderr)
    try:
        settings = settings_from_args(args)
        size = parse_size(args.size)
        if args.screenshot is not None:
            if args.screenshot.suffix.lower() != ".png":
                raise ns.InputError(f"{args.screenshot}: screenshots are written as .png")
            from neural_sdf.io import check_writable

            check_writable(args.screenshot)
        problem = display_problem()
        if problem is not None:
            sys.stderr.write(
                f"viewer: error: {problem}; the viewer needs a window. For pictures without one use "
                "`neural-sdf render PATH... -o out.png`, or run under a virtual display: `xvfb-run -a neural-sdf view ...`\n"
            )
            return EXIT_BAD_INPUT
        if args.export_interp is not None:
            check_export_target(args.export_interp)
        # Unattended runs go to a watched child (which loads and checks the inputs itself).
        if (args.screenshot is not None or args.export_interp is not None) and os.environ.get(WATCHED_ENV) is None:
            timeout = args.timeout
            if timeout is None:
                timeout = SCREENSHOT_TIMEOUT_S + (FRAME_TIMEOUT_S * args.frames if args.export_interp is not None else 0.0)
            if timeout > 0:
                return _run_watched(list(sys.argv[1:] if argv is None else argv), timeout, args)
        items = [data.load_item(p) for p in args.paths]
        gt = ns.load_mesh(args.gt) if args.gt is not None else None
        if args.export_interp is not None and sum(it.kind == "model" for it in items) < 2:
            raise ns.InputError(f"{args.export_interp}: exporting an interpolation needs two model files")
    except (ns.InputError, ValueError) as exc:
        sys.stderr.write(f"viewer: error: {str(exc).splitlines()[0]}\n")
        return EXIT_BAD_INPUT
    except OSError as exc:
        sys.stderr.write(f"viewer: error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return EXIT_BAD_INPUT

    import open3d.visualization.gui as gui

    gui.Application.instance.initialize()
    viewer = ViewerApp(
        items, settings, size, gt=gt, screenshot=args.screenshot, export_interp=args.export_interp, num_frames=args.frames
    )
    gui.Application.instance.run()
    return viewer.exit_code


WATCHED_ENV = "NEURAL_SDF_VIEWER_WATCHED"
"""Set in the environment of a viewer that runs under ``_run_watched``'s watchdog (so it does not start another)."""


def check_export_target(out: Path) -> None:
    """Check an ``--export-interp`` target: a ``.gif`` or ``.mp4`` file, or a folder for PNG frames.

    Raises:
        InputError: another extension, a file where a folder is wanted, or a folder that cannot be written.
    """
    from neural_sdf.io import ANIMATION_EXTENSIONS, check_output_dir, check_writable

    if out.suffix and out.suffix.lower() not in ANIMATION_EXTENSIONS:
        raise ns.InputError(f"{out}: sequences are written as .gif, .mp4 or a folder of PNGs")
    if out.suffix:
        check_writable(out)
    else:
        check_output_dir(out, parents=False)


def _run_watched(argv: list[str], timeout_s: float, args: Any) -> int:
    """Run this viewer again as a child under a watchdog (``--screenshot`` and ``--export-interp``).

    A child that runs past ``timeout_s`` is killed, its partial outputs removed, and started once
    more; if that one hangs too, one line on stderr and status 1.
    """
    from .watchdog import WatchdogTimeout, run_with_watchdog

    outputs = [p for p in (args.screenshot, args.export_interp) if p is not None]
    try:
        return run_with_watchdog(
            [sys.executable, "-m", "viewer", *argv], timeout_s, env={**os.environ, WATCHED_ENV: "1"}, outputs=outputs
        )
    except WatchdogTimeout as exc:
        sys.stderr.write(f"viewer: error: {outputs[0]}: {exc}; try --shading normals, or `neural-sdf render`\n")
        return EXIT_FAILED
