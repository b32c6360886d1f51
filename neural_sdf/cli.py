"""The ``neural-sdf`` command: parse, build configs, call the library, set the exit code.

Bad input (``InputError``, unreadable or unwritable files) prints one line on stderr and exits
with status 2; an interrupted run exits with 130. Nothing imports this module.
"""

import argparse
import dataclasses
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, get_type_hints

from .config import (
    ExtractConfig,
    LossWeights,
    SamplingConfig,
    SirenConfig,
    TrainConfig,
    default_sdf_sampling,
    default_sdf_siren,
    default_sdf_train,
    default_sdf_weights,
)
from .errors import InputError

log = logging.getLogger("neural_sdf")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


# ----------------------------------------------------------------------------- library words to flags
PARAMETER_FLAGS = {"ray_address": "--ray"}
"""Library parameters whose flag is not ``--`` plus the name with dashes (``weights.x`` is ``--weight-x``)."""

_PARAMETER = re.compile(r"`([A-Za-z_][\w.]*)(?:=([^`]*))?`")


def flag_of(name: str) -> str:
    """The flag of a library parameter: ``max_points`` -> ``--max-points``, ``weights.normal`` -> ``--weight-normal``."""
    if name in PARAMETER_FLAGS:
        return PARAMETER_FLAGS[name]
    section, _, field = name.rpartition(".")
    return "--" + ("weight-" if section == "weights" else "") + field.replace("_", "-")


def flag_text(text: str, flags: Optional[set] = None) -> str:
    """Say a library message in the command's words.

    The library names parameters in backquotes (``\`max_points\```, ``\`normals='given'\```,
    ``\`cleanup=False\```); here they become ``--max-points``, ``--normals given`` and
    ``--no-cleanup``. Names that are no flag of ``flags`` (all flags when None) stay as they are.
    """

    def say(match: "re.Match[str]") -> str:
        name, value = match.group(1), match.group(2)
        flag = flag_of(name)
        if flags is not None and flag not in flags:
            return match.group(0)
        if value is None or value == "True":
            return flag
        if value == "False":
            return "--no-" + flag[2:]
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and " " not in value:
            value = value[1:-1]
        return f"{flag} {value}"

    return _PARAMETER.sub(say, text)


def _parser_flags(parser: argparse.ArgumentParser) -> set:
    """Every option string of ``parser`` and its subcommands."""
    found = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        choices = getattr(action, "choices", None)
        for sub in choices.values() if isinstance(choices, dict) else ():
            if isinstance(sub, argparse.ArgumentParser):
                found |= _parser_flags(sub)
    return found


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged, not what it was when the command
    started (a caller that swaps stderr, such as a test's capture, may close the old one)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class sets it; sys.stderr is always used
        pass


class _FlagFormatter(logging.Formatter):
    """Log lines of the library in the command's words (``flag_text``); the records stay as they are."""

    def __init__(self, fmt: str, flags: set) -> None:
        super().__init__(fmt)
        self.flags = flags

    def format(self, record: logging.LogRecord) -> str:
        return flag_text(super().format(record), self.flags)


# ----------------------------------------------------------------------------- config adapter
def _add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    prefix: str = "",
    only: Optional[Sequence[str]] = None,
    skip: Sequence[str] = (),
    title: Optional[str] = None,
    defaults: Any = None,
) -> None:
    """Add one ``--[prefix-]field-name`` flag per dataclass field, with the field's help text.

    ``defaults`` (an instance of ``cls``) supplies the defaults shown in the help, where a command's
    defaults differ from the bare dataclass's (e.g. ``reconstruct``'s measured recipe)."""
    group = parser.add_argument_group(title or cls.__name__)
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in skip:
            continue
        flag = "--" + (prefix + "-" if prefix else "") + f.name.replace("_", "-")
        dest = f"{cls.__name__}.{f.name}"
        help_text = flag_text(f.metadata.get("help", ""))
        shown = getattr(defaults, f.name) if defaults is not None else f.default
        hint = hints[f.name]
        if hint is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=f"{help_text} (default: {shown})")
        else:
            kind = hint if hint in (int, float, str) else str
            group.add_argument(flag, dest=dest, type=kind, default=None, metavar=f.name.upper(), help=f"{help_text} (default: {shown})")


def _config_from_args(cls: type, args: argparse.Namespace, base: Any = None, **overrides: Any) -> Any:
    """Build ``cls`` from the flags ``_add_config_args`` added; unset flags keep ``base``'s values
    (a preset) or the defaults."""
    values = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f"{cls.__name__}.{f.name}", None)
        if v is not None:
            values[f.name] = v
    values.update(overrides)
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ValueError as exc:
        raise InputError(f"invalid option: {exc}") from exc


def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quality", choices=["fast", "default", "high"], default="default",
        help="preset trading time for detail (scripts/README.md: quality table); explicit flags override it (default: default)",
    )
    _add_config_args(p, TrainConfig, only=["steps", "lr", "lr_final_ratio", "warmup_steps", "seed", "checkpoint_every", "step_impl", "precision"], title="training (defaults: --quality default)", defaults=default_sdf_train())
    _add_config_args(p, SirenConfig, only=["hidden_dim", "num_hidden_layers", "w0_first", "w0"], title="network (sparse clouds get a lower first-layer w0, down to the paper's 30, unless --w0-first is given)", defaults=default_sdf_siren())
    _add_config_args(p, SamplingConfig, title="sampling", defaults=default_sdf_sampling())
    _add_config_args(p, LossWeights, prefix="weight", title="loss weights (the paper's, except the normal weight: 300 for normals given with the input, the paper's 100 for estimated ones unless --weight-normal is given)", defaults=default_sdf_weights())
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--checkpoint", type=Path, default=None, help="resumable checkpoint file (default: OUTPUT.ckpt)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not write or resume checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")


def _add_extract_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p, ExtractConfig, title="extraction")


def _preset(args: argparse.Namespace):  # -> tuple[FitOptions, ExtractConfig]
    from .reconstruct import quality_preset

    return quality_preset(getattr(args, "quality", None) or "default")


def _fit_options(args: argparse.Namespace):  # -> FitOptions
    from .config import ScanConfig
    from .recipe import keep_explicit
    from .reconstruct import FitOptions

    base, _ = _preset(args)
    options = FitOptions(
        siren=_config_from_args(SirenConfig, args, base.siren),
        train=_config_from_args(TrainConfig, args, base.train),
        sampling=_config_from_args(SamplingConfig, args, base.sampling),
        weights=_config_from_args(LossWeights, args, base.weights),
        scan=_config_from_args(ScanConfig, args, base.scan),
    )
    # Flags the user gave are kept as given (e.g. no lowering of an explicit --w0-first).
    sections = {"SirenConfig": "siren", "TrainConfig": "train", "SamplingConfig": "sampling", "LossWeights": "weights", "ScanConfig": "scan"}
    explicit = [
        f"{sections[cls]}.{name}" for key, value in vars(args).items() if value is not None and "." in key
        for cls, name in [key.split(".", 1)] if cls in sections
    ]
    return keep_explicit(options, explicit)


def _add_scan_args(p: argparse.ArgumentParser) -> None:
    from .config import ScanConfig

    _add_config_args(p, ScanConfig, title="raw scans: clean-up and normals")


def _one_or_many(paths: list) -> Any:
    """A single input stays a path (its name in messages); several are merged by the library."""
    return paths[0] if len(paths) == 1 else paths


def resolve_device(name: str) -> str:
    """Resolve ``auto`` to ``cuda`` when available; fail early when a requested device is missing."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: CUDA is not available on this machine (use --device cpu or auto)")
        return name
    raise InputError(f"--device {name}: expected auto, cpu, cuda or cuda:N")


def _checkpoint_path(args: argparse.Namespace, output: Path) -> Optional[Path]:
    if args.no_checkpoint:
        return None
    return args.checkpoint if args.checkpoint is not None else output.with_name(output.name + ".ckpt")


def _check_mesh_output(path: Path) -> None:
    from .io import MESH_EXTENSIONS, check_writable

    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise InputError(f"{path}: unknown mesh extension {path.suffix or '(none)'!r}; expected one of {', '.join(MESH_EXTENSIONS)}")
    check_writable(path)


# ----------------------------------------------------------------------------- commands
def _add_tiling_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scenes: tiles (a cloud one network cannot hold is split into tiles fitted one SIREN each)")
    g.add_argument("--tiles", default="auto", metavar="auto|off|N", help="auto: tile when the cloud is large against its point spacing; off: one network; N: at least N tiles (default: auto)")
    g.add_argument("--tile-size", type=float, default=0.0, metavar="L", help="side of the tiles in the input's units (default: automatic k-d tiles)")
    g.add_argument("--jobs", type=int, default=1, help="tiles fitted at once in separate processes (default: 1)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help="one Ray task per tile: no ADDRESS starts a local Ray instance; HOST:PORT or auto joins a cluster (see batch --ray)")
    g.add_argument("--retries", type=int, default=1, help="attempts after the first for a failing tile (default: 1)")


def _prepare_and_plan(args: argparse.Namespace, options: Any, output: Path, extract: Optional[ExtractConfig] = None):
    """The data stage and the tile plan; the plan (and the voxel size of a tiled run) is logged before any fit."""
    from .cleanup import prepare_cloud
    from .scene import TilingConfig, check_tiling, plan_tiles

    if args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}: expected at least 1")
    if args.retries < 0:
        raise InputError(f"--retries {args.retries}: expected 0 or more")
    tiling = TilingConfig(tiles=args.tiles, tile_size=args.tile_size)
    check_tiling(tiling)  # before loading: a mistyped flag costs no time
    prepared = prepare_cloud(_one_or_many(args.input), options.scan, seed=options.train.seed, progress=not args.quiet)
    plan = plan_tiles(prepared.cloud.points, tiling)
    if plan.tiled and extract is not None:
        from .extract import extraction_grid
        from .geometry import bounds, fit_normalization

        voxel = extract.voxel_size if extract.voxel_size > 0 else plan.voxel_size
        box = bounds(prepared.cloud.points)
        norm = fit_normalization(box)
        grid = extraction_grid(norm.to_normalized(box), dataclasses.replace(extract, voxel_size=voxel), norm.scale)
        log.info("plan: %s; mesh voxel %.4g (grid %s)", plan.describe(), voxel, "x".join(str(n) for n in grid.shape))
    else:
        log.info("plan: %s", plan.describe())
    work = None if args.no_checkpoint else output.with_name(output.name + ".tiles")
    return prepared, plan, work


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    import shutil
    import time

    from .io import check_writable, save_mesh
    from .reconstruct import reconstruct_prepared
    from .scene import reconstruct_scene

    _check_mesh_output(args.output)
    if args.model is not None:
        check_writable(args.model)
    options = _fit_options(args)
    extract = _config_from_args(ExtractConfig, args, _preset(args)[1])
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    prepared, plan, work = _prepare_and_plan(args, options, args.output, extract)
    if plan.tiled:
        result = reconstruct_scene(
            prepared, options, extract, plan, work_dir=work, processes=args.jobs, ray=args.ray, retries=args.retries,
            device=device, progress=not args.quiet,
        )
    else:
        result = reconstruct_prepared(
            prepared, options, extract, device=device, checkpoint=_checkpoint_path(args, args.output), progress=not args.quiet, started=t0,
        )
    if args.model is not None:
        result.model.save(args.model)
    save_mesh(result.mesh, args.output)
    if plan.tiled and work is not None:
        shutil.rmtree(work, ignore_errors=True)
    log.info(
        "wrote %s (%d vertices, %d faces); fit %.1f s, extraction %.1f s",
        args.output, len(result.mesh.vertices), len(result.mesh.faces), result.fit_seconds, result.extract_seconds,
    )
    return _report_coverage(result.mesh, prepared.cloud.points, args.output)


def _report_coverage(mesh: Any, points: Any, output: Path) -> int:
    """Say how much of the input the mesh describes; exit status 1 when it is less than half."""
    from .reconstruct import COVERAGE_FAIL, COVERAGE_WARN, input_coverage

    share, tolerance = input_coverage(mesh, points)
    if share < COVERAGE_FAIL:
        sys.stderr.write(
            f"neural-sdf: error: {output}: the mesh describes only {100 * share:.1f}% of the input points (within "
            f"{tolerance:.4g} input units): the reconstruction failed here; the mesh is kept for inspection\n"
        )
        return EXIT_FAILED
    if share < COVERAGE_WARN:
        log.warning("the mesh describes only %.1f%% of the input points (within %.4g input units); check the result", 100 * share, tolerance)
    else:
        log.info("the mesh describes %.1f%% of the input points (within %.4g input units)", 100 * share, tolerance)
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    import shutil
    import time

    from .io import check_writable
    from .reconstruct import fit_prepared
    from .scene import fit_scene

    check_writable(args.output)
    if args.space is not None:
        args.input = _one_or_many(args.input)
        return _cmd_fit_latent(args)
    options = _fit_options(args)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    prepared, plan, work = _prepare_and_plan(args, options, args.output)
    if plan.tiled:
        model = fit_scene(
            prepared, options, plan, work_dir=work, processes=args.jobs, ray=args.ray, retries=args.retries,
            device=device, progress=not args.quiet,
        ).model
    else:
        model = fit_prepared(prepared, options, device=device, checkpoint=_checkpoint_path(args, args.output), progress=not args.quiet, started=t0)
        model.ensure_far_field()  # so that the saved model answers distances away from the surface
    model.save(args.output)
    if plan.tiled and work is not None:
        shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %s; fit %.1f s", args.output, model.info["fit_seconds"])
    return EXIT_OK


def _cmd_extract(args: argparse.Namespace) -> int:
    from .io import save_mesh
    from .reconstruct import extract_mesh
    from .scene import load_model

    _check_mesh_output(args.output)
    model = load_model(args.model, device=resolve_device(args.device))
    mesh = extract_mesh(model, _config_from_args(ExtractConfig, args), progress=not args.quiet)
    if mesh.is_empty:
        raise InputError(f"{args.model}: the SDF has no zero crossing in the grid; no surface to extract")
    save_mesh(mesh, args.output)
    log.info("wrote %s (%d vertices, %d faces)", args.output, len(mesh.vertices), len(mesh.faces))
    return EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import atomic_write, check_writable, load_query_points
    from .scene import load_model

    if args.output.suffix.lower() != ".npy":
        raise InputError(f"{args.output}: the answer is written as .npy")
    check_writable(args.output)
    points = load_query_points(args.points)
    model = load_model(args.model, device=resolve_device(args.device))
    values = model.sdf(points)
    if args.gradient:
        grad = model.gradient(points)
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        values = np.hstack([values[:, None], grad / np.maximum(norm, 1e-12)])
    with atomic_write(args.output) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, values)
    log.info("wrote %s: %s of %d points (input units)", args.output, "distance, unit normal" if args.gradient else "signed distance", len(points))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .io import load_mesh
    from .metrics import evaluate_meshes

    pred, gt = load_mesh(args.pred), load_mesh(args.gt)
    m = evaluate_meshes(pred, gt, num_samples=args.samples, seed=args.seed)
    exact = {}
    if args.exact:
        from .metrics import exact_fscore

        exact = exact_fscore(pred, gt, num_samples=args.samples, seed=args.seed)
    if args.json:
        extra = {"fscore_exact": {k: v["fscore"] for k, v in exact.items()}} if exact else {}
        sys.stdout.write(json.dumps({"pred": str(args.pred), "gt": str(args.gt), **m.to_dict(), **extra}, indent=2) + "\n")
        return EXIT_OK
    lines = [
        f"pred {args.pred}  vs  gt {args.gt}  (GT bounding-box diagonal {m.gt_diagonal:.6g})",
        f"  Chamfer-L1          {m.chamfer_l1:.6g}   ({m.chamfer_l1_rel:.3e} of diagonal)",
        f"  Hausdorff           {m.hausdorff:.6g}   ({m.hausdorff_rel:.3e} of diagonal)",
    ]
    for key in m.fscore:
        lines.append(f"  F-score @{key:<5}     {m.fscore[key]:.4f}   (precision {m.precision[key]:.4f}, recall {m.recall[key]:.4f})")
    for key, e in exact.items():
        lines.append(f"  F-score @{key:<5} exact distances {e['fscore']:.6f}   (precision {e['precision']:.6f}, recall {e['recall']:.6f})")
    lines += [f"  normal consistency  {m.normal_consistency:.4f}", f"  definition: {m.definition}"]
    if exact:
        lines.append("  exact distances: samples the nearest-sample distance puts at or beyond tau are re-measured "
                     "against the other mesh's triangles (neural_sdf.metrics.exact_fscore)")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def load_renderable(path: Path, resolution: int = 192) -> list:
    """Load a mesh, point cloud or model file for display (a model is meshed at ``resolution``)."""
    from .io import file_kind, load_mesh, load_points

    kind = file_kind(path)
    if kind == "model":
        from .reconstruct import extract_mesh
        from .scene import load_model

        model = load_model(path)
        mesh = extract_mesh(model, ExtractConfig(resolution=resolution))
        if mesh.is_empty:
            raise InputError(f"{path}: the SDF has no zero crossing; nothing to show")
        return [mesh]
    if kind == "mesh":
        return [load_mesh(path)]
    return [load_points(path)]


def _cmd_render(args: argparse.Namespace) -> int:
    from .io import check_writable, save_image
    from .render import RenderOptions, RenderTimeout, parse_size, render_views_guarded

    if args.output.suffix.lower() != ".png":
        raise InputError(f"{args.output}: pictures are written as .png")
    check_writable(args.output)
    try:
        w, h = parse_size(args.size)
        options = RenderOptions(width=w, height=h, views=args.views, normals=args.normals)
    except ValueError as exc:
        raise InputError(f"invalid option: {exc}") from exc
    items = [g for p in args.paths for g in load_renderable(p)]
    try:
        image = render_views_guarded(items, options, timeout_s=args.timeout)
    except RenderTimeout as exc:
        sys.stderr.write(f"neural-sdf: {args.output}: {exc}\n")
        return EXIT_FAILED
    save_image(image, args.output)
    log.info("wrote %s (%dx%d)", args.output, image.shape[1], image.shape[0])
    return EXIT_OK


def _cmd_batch(args: argparse.Namespace) -> int:
    from .batch import format_report, reconstruct_batch

    if args.checkpoint is not None:
        raise InputError("--checkpoint: batch writes one checkpoint per item (OUT_DIR/NAME.ckpt); use --no-checkpoint to turn them off")
    try:
        results = reconstruct_batch(
            args.inputs,
            args.output,
            _fit_options(args),
            _config_from_args(ExtractConfig, args, _preset(args)[1]),
            jobs=args.jobs,
            threads=args.threads,
            executor="ray" if args.ray is not None else "process",
            ray_address=args.ray or None,
            gt_dir=args.gt,
            retries=args.retries,
            device=resolve_device(args.device),
            mesh_format=args.mesh_format,
            checkpoints=not args.no_checkpoint,
            progress=not args.quiet,
        )
    except ImportError as exc:
        raise InputError(f"--ray: {exc}") from None
    sys.stdout.write(format_report(results, args.output) + "\n")
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _cmd_fit_latent(args: argparse.Namespace) -> int:
    """``fit INPUT --space SPACE``: fit a shape by optimizing only its latent code."""
    from .fields.shape_space import ShapeSpace, fit_latent

    if any(getattr(args, f"SirenConfig.{f.name}", None) is not None for f in dataclasses.fields(SirenConfig)):
        log.warning("network options are ignored with --space: the space fixes the network")
    space = ShapeSpace.load(args.space, device=resolve_device(args.device))
    model = fit_latent(
        args.input, space, _config_from_args(TrainConfig, args), _config_from_args(SamplingConfig, args),
        _config_from_args(LossWeights, args), num_mesh_samples=space.network.space_config.num_points,
        progress=not args.quiet,
    )
    model.info["space"]["path"] = str(Path(args.space).resolve())
    model.save(args.output)
    log.info("wrote %s (latent code of %s); fit %.1f s", args.output, args.space, model.info["fit_seconds"])
    return EXIT_OK


def _cmd_fit_space(args: argparse.Namespace) -> int:
    from .config import ShapeSpaceConfig
    from .fields.shape_space import SpaceOptions, fit_shape_space
    from .io import check_writable

    check_writable(args.output)
    if len(args.shapes) < 2:
        raise InputError(f"{args.shapes[0]}: a shape space needs at least 2 shapes, got 1; use fit for a single shape")
    if args.models is not None and args.models.exists() and not args.models.is_dir():
        raise InputError(f"{args.models}: --models must be a folder")
    options = SpaceOptions(
        siren=_config_from_args(SirenConfig, args),
        train=_config_from_args(TrainConfig, args),
        sampling=_config_from_args(SamplingConfig, args),
        weights=_config_from_args(LossWeights, args),
        space=_config_from_args(ShapeSpaceConfig, args),
    )
    space = fit_shape_space(args.shapes, options, device=resolve_device(args.device), progress=not args.quiet)
    space.save(args.output)
    log.info("wrote %s (%d shapes, latent size %d); fit %.1f s", args.output, space.num_shapes, space.latent_dim, space.info["fit_seconds"])
    if args.models is not None:
        args.models.mkdir(parents=True, exist_ok=True)
        for name in space.names:
            model = space.shape_model(name)
            model.info["space"]["path"] = str(Path(args.output).resolve())
            model.save(args.models / f"{name}.nsdf")
        log.info("wrote %d shape models to %s", space.num_shapes, args.models)
    return EXIT_OK


def _cmd_interpolate(args: argparse.Namespace) -> int:
    from .fields.sdf import SDFModel
    from .fields.shape_space import ShapeSpace
    from .interpolate import interpolate_meshes
    from .io import atomic_write, check_input_file, check_output_dir, file_kind, save_animation, save_mesh

    if args.frames < 2:
        raise InputError(f"--frames {args.frames}: need at least 2 frames (both endpoints)")
    check_output_dir(args.output, parents=False)
    device = resolve_device(args.device)
    models = []
    for path in (args.a, args.b):
        if file_kind(check_input_file(path, kind="model")) == "space":
            raise InputError(f"{path}: is a shape-space file, expected an SDF model (decode shapes with fit-space --models DIR, or fit INPUT --space {path})")
        models.append(SDFModel.load(path, device=device))
    space = None
    if args.method == "latent":
        space_path = args.space
        if space_path is None:
            record = models[0].info.get("space") if isinstance(models[0].info, dict) else None
            if not isinstance(record, dict):
                raise InputError(f"{args.a}: was not fitted through a shape space (no latent code); use --method blend")
            space_path = Path(record.get("path", ""))
            if not space_path.is_file():
                raise InputError(f"{args.a}: its shape space {space_path} is missing; pass --space SPACE")
        space = ShapeSpace.load(space_path, device=device)
    elif args.space is not None:
        log.warning("--space is ignored with --method blend")
    if getattr(args, "ExtractConfig.resolution", None) is None:
        setattr(args, "ExtractConfig.resolution", 128)
    config = _config_from_args(ExtractConfig, args)
    frames = interpolate_meshes(
        models[0], models[1], args.frames, config, method=args.method, space=space, align=not args.no_align,
        progress=not args.quiet,
    )
    empty = [f.t for f in frames if f.mesh.is_empty]
    if empty:
        raise InputError(
            f"{args.a}, {args.b}: frame t={empty[0]:.3g} has no surface (a blend of shapes that do not overlap can "
            "vanish); try aligning, --method latent, or a finer --resolution"
        )
    pictures = []
    if args.render:
        from .render import RenderOptions, RenderTimeout, parse_size, render_sequence

        try:
            w, h = parse_size(args.size)
            options = RenderOptions(width=w, height=h)
        except ValueError as exc:
            raise InputError(f"invalid option: {exc}") from exc
        try:
            pictures = render_sequence([f.mesh for f in frames], options, progress=not args.quiet)
        except RenderTimeout as exc:
            sys.stderr.write(f"neural-sdf: {args.output}: {exc}\n")
            return EXIT_FAILED
    args.output.mkdir(exist_ok=True)
    record = []
    for i, f in enumerate(frames):
        save_mesh(f.mesh, args.output / f"frame_{i:03d}.ply")
        item = {"index": i, "t": f.t, "mesh": f"frame_{i:03d}.ply", "vertices": len(f.mesh.vertices), "faces": len(f.mesh.faces)}
        if pictures:
            item["picture"] = f"frame_{i:03d}.png"
        record.append(item)
    if pictures:
        save_animation(pictures, args.output, fps=args.fps)  # frame_NNN.png beside the meshes
        save_animation(pictures + pictures[-2:0:-1], args.output / "interpolation.gif", fps=args.fps)  # forth and back
    summary = {"a": str(args.a), "b": str(args.b), "method": args.method, "align": not args.no_align, "frames": record}
    with atomic_write(args.output / "frames.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("wrote %d frames to %s%s", len(frames), args.output, " (with pictures and interpolation.gif)" if pictures else "")
    return EXIT_OK


def _app_configs(args: argparse.Namespace, preset: Any) -> dict[str, Any]:
    """Field, network and training configs of the image/video/pde commands: the ``--quality``
    preset (``apps.presets``), then the flags given."""
    return {
        "config": _config_from_args(type(preset.config), args, preset.config),
        "siren": _config_from_args(SirenConfig, args, preset.siren),
        "train": _config_from_args(TrainConfig, args, preset.train, checkpoint_every=0),
        "quality": args.quality,
        "device": resolve_device(args.device),
        "progress": not args.quiet,
    }


def _cmd_image(args: argparse.Namespace) -> int:
    from .apps.image import fit_image
    from .apps.presets import image_preset

    supervise = getattr(args, "ImageConfig.supervise", None) or "values"
    if supervise not in ("values", "gradient", "laplacian"):
        raise InputError(f"invalid option: supervise must be one of ['values', 'gradient', 'laplacian'], got {supervise!r}")
    loss = getattr(args, "ImageConfig.laplacian_loss", None) or "energy"
    if loss not in ("energy", "pointwise"):
        raise InputError(f"invalid option: laplacian_loss must be one of ['energy', 'pointwise'], got {loss!r}")
    result = fit_image(args.image, args.output, **_app_configs(args, image_preset(args.quality, supervise, loss)))
    log.info("wrote %s (PSNR %.2f dB, %d steps, %.1f s)", args.output, result.psnr, result.steps, result.seconds)
    return EXIT_OK


def _cmd_video(args: argparse.Namespace) -> int:
    from .apps.presets import video_preset
    from .apps.video import fit_video

    result = fit_video(args.video, args.output, **_app_configs(args, video_preset(args.quality)))
    log.info("wrote %s (mean PSNR %.2f dB over %d frames, %.1f s)", args.output, result.psnr, len(result.psnr_per_frame), result.seconds)
    return EXIT_OK


def _cmd_pde(args: argparse.Namespace) -> int:
    from .apps.pde import PDE_NAMES, solve_pde
    from .apps.presets import pde_preset

    if args.problem not in PDE_NAMES:
        raise InputError(f"{args.problem}: unknown PDE; expected one of {', '.join(PDE_NAMES)}")
    result = solve_pde(args.problem, args.output, **_app_configs(args, pde_preset(args.problem, args.quality)))
    log.info("wrote %s (relative L2 error %.4g, %.1f s)", args.output, result.relative_error, result.seconds)
    return EXIT_OK


def _cmd_view(args: argparse.Namespace) -> int:
    # The viewer is a separate program (neural_sdf never imports it): run it as a child process.
    import subprocess

    argv = [sys.executable, "-m", "viewer", *args.paths, *args.rest]
    return subprocess.run(argv, check=False).returncode


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Return the ``neural-sdf`` argument parser."""
    parser = argparse.ArgumentParser(prog="neural-sdf", description="Neural signed distance fields with SIREN.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("reconstruct", help="fit an SDF to a point cloud or mesh and extract its mesh")
    p.add_argument("input", type=Path, nargs="+", help="point clouds (.ply .pcd .xyz .pts .npy .npz) or meshes (.obj .ply .stl .off .glb); several are merged (same frame)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output mesh (.ply .obj .stl .off .glb)")
    p.add_argument("--model", type=Path, default=None, help="also save the fitted model here (e.g. shape.nsdf)")
    _add_training_args(p)
    _add_scan_args(p)
    _add_extract_args(p)
    _add_tiling_args(p)
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("fit", help="fit an SDF model to a point cloud or mesh")
    p.add_argument("input", type=Path, nargs="+", help="point clouds or meshes; several are merged (same frame)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (suggested extension .nsdf)")
    _add_training_args(p)
    _add_scan_args(p)
    _add_tiling_args(p)
    p.add_argument("--space", type=Path, default=None, help="fit only a latent code in this shape space (written by fit-space)")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("extract", help="extract the mesh of a fitted model")
    p.add_argument("model", type=Path, help="model file written by fit or reconstruct --model")
    p.add_argument("-o", "--output", type=Path, required=True, help="output mesh (.ply .obj .stl .off .glb)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_extract_args(p)
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("query", help="signed distances (and normals) of a model at given points, in the input's units")
    p.add_argument("model", type=Path, help="model file written by fit or reconstruct --model")
    p.add_argument("points", type=Path, help="points (.npy .ply .xyz .txt .csv .pcd; a mesh file's vertices)")
    p.add_argument("-o", "--output", type=Path, required=True, help=".npy to write: (N,) signed distances, negative inside; with --gradient (N, 4): distance, unit normal")
    p.add_argument("--gradient", action="store_true", help="also the unit gradient (outward normal direction) at each point")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="only errors")
    p.set_defaults(func=_cmd_query)

    p = sub.add_parser("evaluate", help="compare a mesh with a ground-truth mesh")
    p.add_argument("pred", type=Path, help="reconstructed mesh")
    p.add_argument("gt", type=Path, help="ground-truth mesh")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--samples", type=int, default=100_000, help="surface samples per mesh (default: 100000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--exact", action="store_true",
                   help="also F-scores with exact sample-to-surface distances (near F = 1 the nearest-sample ones are noisy)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("render", help="render meshes, clouds or models to a PNG without a window")
    p.add_argument("paths", type=Path, nargs="+", help="meshes, point clouds or model files")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--normals", action="store_true", help="colour by normal")
    p.add_argument("--size", default="640x480", help="size of each view, WxH (default: 640x480)")
    p.add_argument("--views", type=int, default=1, help="turntable views tiled into one sheet (default: 1)")
    p.add_argument(
        "--timeout", type=float, default=120.0,
        help="seconds to wait for the picture before the render is restarted once (CPU Vulkan drivers "
        "sometimes hang; default: 120)",
    )
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("view", help="open the interactive viewer (python -m viewer); --screenshot saves a PNG and exits")
    p.add_argument("paths", nargs="+", help="meshes, point clouds or model files")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="viewer options (see python -m viewer --help)")
    p.set_defaults(func=_cmd_view)

    p = sub.add_parser("batch", help="reconstruct many inputs (files, folders, globs, manifests) locally or on Ray")
    p.add_argument("inputs", nargs="+", help="point clouds or meshes, folders (recursive), globs, or manifests (.csv, .jsonl)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder (meshes, models, summary.csv, summary.json)")
    p.add_argument("--jobs", type=int, default=1, help="items run at once in separate processes (default: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per item (default: cores // jobs; 1 per Ray task)")
    p.add_argument(
        "--ray", nargs="?", const="", default=None, metavar="ADDRESS",
        help="run each item as a Ray task: no ADDRESS starts a private local Ray instance; HOST:PORT (the head's "
        "`ray start --head --port PORT`) or auto joins that cluster, sending Ray's token from RAY_AUTH_TOKEN, "
        "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token",
    )
    p.add_argument("--gt", type=Path, default=None, metavar="DIR", help="ground-truth meshes named like the items; adds metrics to the summary")
    p.add_argument("--retries", type=int, default=1, help="retries of an item whose worker process died (default: 1)")
    p.add_argument("--mesh-format", default=".ply", help="mesh extension of the outputs (default: .ply)")
    _add_training_args(p)
    _add_extract_args(p)
    p.set_defaults(func=_cmd_batch)
    from .config import ShapeSpaceConfig

    p = sub.add_parser("fit-space", help="train a shape space (one SIREN with per-shape latent codes) on a collection")
    p.add_argument("shapes", type=Path, nargs="+", metavar="SHAPES", help="two or more point clouds or meshes")
    p.add_argument("-o", "--output", type=Path, required=True, help="shape-space file to write (suggested extension .nss)")
    p.add_argument("--models", type=Path, default=None, help="also write each training shape as a model DIR/NAME.nsdf")
    _add_config_args(p, ShapeSpaceConfig, title="shape space")
    _add_config_args(p, TrainConfig, only=["steps", "lr", "lr_final_ratio", "seed"], title="training")
    _add_config_args(p, SirenConfig, only=["hidden_dim", "num_hidden_layers", "w0_first", "w0"], title="network")
    _add_config_args(p, SamplingConfig, title="sampling (per shape and step)")
    _add_config_args(p, LossWeights, prefix="weight", title="loss weights")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")
    p.set_defaults(func=_cmd_fit_space)

    p = sub.add_parser("interpolate", help="mesh the frames of a morph between two models")
    p.add_argument("a", type=Path, metavar="A", help="model at t=0")
    p.add_argument("b", type=Path, metavar="B", help="model at t=1")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for frame_NNN.ply (and .png, interpolation.gif)")
    p.add_argument("--frames", type=int, default=8, help="frames including both endpoints, >= 2 (default: 8)")
    p.add_argument("--method", choices=["blend", "latent"], default="blend", help="blend SDF values, or walk the shape space (default: blend)")
    p.add_argument("--space", type=Path, default=None, help="shape space for --method latent (default: the one recorded in A)")
    p.add_argument("--no-align", action="store_true", help="blend in world coordinates instead of aligning centres and scales")
    p.add_argument("--render", action="store_true", help="also render each frame to PNG and write interpolation.gif")
    p.add_argument("--size", default="320x240", help="picture size WxH with --render (default: 320x240)")
    p.add_argument("--fps", type=float, default=8.0, help="GIF frames per second (default: 8)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_extract_args(p)
    p.set_defaults(func=_cmd_interpolate)

    from .apps.presets import QUALITIES, image_preset, pde_preset, video_preset

    def add_app_args(p: argparse.ArgumentParser, preset: Any, title: str, shown: str = "--quality default") -> None:
        p.add_argument(
            "--quality", choices=QUALITIES, default="default",
            help="preset trading time for quality, measured on a 2-core CPU; paper: the SIREN paper's network, "
            "steps and learning rate (scripts/FIELDS.md); explicit flags override it (default: default)",
        )
        _add_config_args(p, type(preset.config), title=f"{title} (defaults: {shown})", defaults=preset.config)
        _add_config_args(p, TrainConfig, only=["steps", "lr", "lr_final_ratio", "warmup_steps", "seed"], title=f"training (defaults: {shown})", defaults=preset.train)
        _add_config_args(p, SirenConfig, only=["hidden_dim", "num_hidden_layers", "w0_first", "w0"], title=f"network (defaults: {shown})", defaults=preset.siren)
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
        p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")

    p = sub.add_parser("image", help="fit an image (values, gradient or Laplacian) with SIREN or a baseline")
    p.add_argument("image", type=Path, metavar="IMAGE", help="image file (.png .jpg .tif .bmp ...), colour, grayscale, 8 or 16 bits (alpha is dropped)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the reconstruction, plots and metrics.json")
    add_app_args(p, image_preset("default"), "image", "--quality default for values; gradient and laplacian have their own")
    p.set_defaults(func=_cmd_image)

    p = sub.add_parser("video", help="fit a video clip (t, row, col) -> colour with SIREN or a baseline")
    p.add_argument("video", type=Path, metavar="VIDEO", help="video file (.mp4 .mkv .avi .mov ...)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the clip, frames, plots and metrics.json")
    add_app_args(p, video_preset("default"), "video")
    p.set_defaults(func=_cmd_video)

    p = sub.add_parser("pde", help="solve poisson, helmholtz or wave with a network and compare with the reference")
    p.add_argument("problem", metavar="PDE", help="poisson, helmholtz or wave")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="folder for the plots and metrics.json")
    add_app_args(p, pde_preset("helmholtz", "default"), "problem", "helmholtz --quality default; each problem has its own")
    p.set_defaults(func=_cmd_pde)

    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``neural-sdf`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    flags = _parser_flags(parser)
    handler = _StderrHandler()
    handler.setFormatter(_FlagFormatter("neural-sdf: %(message)s", flags))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, handlers=[handler], force=True)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except InputError as exc:
        sys.stderr.write(f"neural-sdf: error: {flag_text(_one_line(exc), flags)}\n")
        return EXIT_BAD_INPUT
    except OSError as exc:
        name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"neural-sdf: error: {name}{flag_text(exc.strerror or _one_line(exc), flags)}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("neural-sdf: interrupted (checkpoints, if any, are kept for a resume)\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
