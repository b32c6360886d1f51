"""The viewer's one settings object, and the command line that sets its initial state.

UI callbacks change fields of ``ViewerSettings``; ``ViewerApp.apply`` turns the settings into the
scene. Every field can be set from the command line, which is how tests drive the UI without
clicking (``--show-normals``, ``--slice-axis z --slice-offset 0.3``, ``--interp-t 0.5``).
"""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

Shading = Literal["lit", "wireframe", "normals"]
Compare = Literal["overlay", "side", "toggle"]
SHADINGS: tuple[str, ...] = ("lit", "wireframe", "normals")
COMPARES: tuple[str, ...] = ("overlay", "side", "toggle")
SCREENSHOT_TIMEOUT_S = 180.0
"""Default watchdog limit of a ``--screenshot`` run (window start-up 5-10 s, meshing a model at the
default resolution 128 a few seconds, a frame 0.1-10 s on the CPU; scripts/README.md "Viewer")."""
FRAME_TIMEOUT_S = 60.0
"""Added to the limit per frame of ``--export-interp`` (each frame is meshed, then drawn offscreen)."""

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("W", "cycle shading: lit / wireframe / colour by normal"),
    ("N", "show or hide normals"),
    ("O", "show or hide the input cloud overlay"),
    ("X Y Z", "slice along that axis (again: hide the slice)"),
    ("[ ]", "move the slice plane"),
    (", .", "interpolation time - / +"),
    ("T", "toggle between the compared items"),
    ("+ -", "point size"),
    ("R", "reset the camera"),
    ("S", "save a screenshot"),
)


@dataclass
class ViewerSettings:
    """Everything the user can change; the scene is a function of these and the loaded data."""

    shading: Shading = "lit"
    point_size: float = 3.0
    show_normals: bool = False
    normal_length: float = 0.02
    """Normal glyph length as a fraction of the scene's bounding-box diagonal."""
    max_glyphs: int = 20_000
    show_overlay: bool = True
    """Draw a model's input points (its support subsample) over its mesh."""
    slice_axis: Optional[str] = None
    """``"x"``, ``"y"``, ``"z"`` or None (no slice)."""
    slice_offset: float = 0.0
    """Slice position in [-1, 1] across the bounding box."""
    slice_resolution: int = 64
    interp_t: float = 0.0
    compare: Compare = "overlay"
    active: int = 0
    """With ``compare == "toggle"``, the index of the item shown."""
    resolution: int = 128
    """Grid resolution for meshing models and interpolation frames."""
    show_panel: bool = True


def build_parser() -> argparse.ArgumentParser:
    """Return the ``python -m viewer`` argument parser."""
    p = argparse.ArgumentParser(prog="python -m viewer", description="Look at meshes, point clouds and SDF model files.")
    p.add_argument("paths", type=Path, nargs="+", help="meshes (.obj .ply .stl .off .glb), point clouds, model files (.nsdf)")
    p.add_argument("--screenshot", type=Path, default=None, help="open the window, save the first complete frame to this PNG, exit")
    p.add_argument("--size", default="1024x768", help="window size WxH (default: 1024x768)")
    p.add_argument("--gt", type=Path, default=None, help="ground-truth mesh: the info panel shows metrics against it")
    p.add_argument("--shading", choices=SHADINGS, default="lit", help="initial shading (default: lit)")
    p.add_argument("--point-size", type=float, default=3.0, help="point size in pixels (default: 3)")
    p.add_argument("--show-normals", action="store_true", help="start with normal glyphs shown")
    p.add_argument("--no-overlay", action="store_true", help="do not draw a model's input points over its mesh")
    p.add_argument("--slice-axis", choices=("x", "y", "z"), default=None, help="start with an SDF slice normal to this axis")
    p.add_argument("--slice-offset", type=float, default=0.0, help="slice position in [-1, 1] across the bounding box (default: 0)")
    p.add_argument("--interp-t", type=float, default=0.0, help="interpolation time in [0, 1] between two model files (default: 0)")
    p.add_argument("--compare", choices=COMPARES, default="overlay", help="how several items are shown (default: overlay)")
    p.add_argument("--active", type=int, default=0, help="with --compare toggle, the item shown first (default: 0)")
    p.add_argument("--resolution", type=int, default=128, help="grid resolution for meshing models (default: 128)")
    p.add_argument("--hide-panel", action="store_true", help="start with the side panel hidden")
    p.add_argument(
        "--export-interp", type=Path, default=None,
        help="render the interpolation sequence to this .gif, .mp4 or folder of PNGs, then exit",
    )
    p.add_argument("--frames", type=int, default=11, help="frames in an exported interpolation sequence (default: 11)")
    p.add_argument(
        "--timeout", type=float, default=None,
        help="with --screenshot or --export-interp: seconds before the run is killed and started once more "
        f"(default: {SCREENSHOT_TIMEOUT_S:.0f}, plus {FRAME_TIMEOUT_S:.0f} per exported frame; 0: no watchdog)",
    )
    return p


def settings_from_args(args: argparse.Namespace) -> ViewerSettings:
    """Build the initial settings from parsed arguments.

    Raises:
        ValueError: an option is out of range (message names it).
    """
    if not -1.0 <= args.slice_offset <= 1.0:
        raise ValueError(f"--slice-offset must be in [-1, 1], got {args.slice_offset}")
    if not 0.0 <= args.interp_t <= 1.0:
        raise ValueError(f"--interp-t must be in [0, 1], got {args.interp_t}")
    if not 8 <= args.resolution <= 1024:
        raise ValueError(f"--resolution must be in 8..1024, got {args.resolution}")
    if args.point_size <= 0:
        raise ValueError(f"--point-size must be > 0, got {args.point_size}")
    if args.timeout is not None and args.timeout < 0:
        raise ValueError(f"--timeout must be >= 0, got {args.timeout}")
    return ViewerSettings(
        shading=args.shading,
        point_size=args.point_size,
        show_normals=args.show_normals,
        show_overlay=not args.no_overlay,
        slice_axis=args.slice_axis,
        slice_offset=args.slice_offset,
        interp_t=args.interp_t,
        compare=args.compare,
        active=args.active,
        resolution=args.resolution,
        show_panel=not args.hide_panel,
    )


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ValueError(f"--size must look like 1024x768, got {text!r}") from exc
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ValueError(f"--size must be between 64 and 8192 pixels per side, got {text}")
    return w, h
