"""The ``neural-sdf`` command: parse, build configs, call the library, set the exit code.

Bad input (``InputError``, unreadable or unwritable files) prints one line on stderr and exits
with status 2; an interrupted run exits with 130. Nothing imports this module.
"""

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, get_type_hints

from .config import ExtractConfig, LossWeights, SamplingConfig, SirenConfig, TrainConfig
from .errors import InputError

log = logging.getLogger("neural_sdf")

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


# ----------------------------------------------------------------------------- config adapter
def _add_config_args(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    prefix: str = "",
    only: Optional[Sequence[str]] = None,
    skip: Sequence[str] = (),
    title: Optional[str] = None,
) -> None:
    """Add one ``--[prefix-]field-name`` flag per dataclass field, with the field's help text."""
    group = parser.add_argument_group(title or cls.__name__)
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in skip:
            continue
        flag = "--" + (prefix + "-" if prefix else "") + f.name.replace("_", "-")
        dest = f"{cls.__name__}.{f.name}"
        help_text = f.metadata.get("help", "")
        hint = hints[f.name]
        if hint is bool:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=f"{help_text} (default: {f.default})")
        else:
            kind = hint if hint in (int, float, str) else str
            group.add_argument(flag, dest=dest, type=kind, default=None, metavar=f.name.upper(), help=f"{help_text} (default: {f.default})")


def _config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the flags ``_add_config_args`` added (unset flags keep the defaults)."""
    values = {}
    for f in dataclasses.fields(cls):
        v = getattr(args, f"{cls.__name__}.{f.name}", None)
        if v is not None:
            values[f.name] = v
    values.update(overrides)
    try:
        return cls(**values)
    except ValueError as exc:
        raise InputError(f"invalid option: {exc}") from exc


def _add_training_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p, TrainConfig, only=["steps", "lr", "lr_final_ratio", "seed", "checkpoint_every", "step_impl"], title="training")
    _add_config_args(p, SirenConfig, only=["hidden_dim", "num_hidden_layers", "w0_first", "w0"], title="network")
    _add_config_args(p, SamplingConfig, title="sampling")
    _add_config_args(p, LossWeights, prefix="weight", title="loss weights")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--checkpoint", type=Path, default=None, help="resumable checkpoint file (default: OUTPUT.ckpt)")
    p.add_argument("--no-checkpoint", action="store_true", help="do not write or resume checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar, warnings and errors only")


def _add_extract_args(p: argparse.ArgumentParser) -> None:
    _add_config_args(p, ExtractConfig, title="extraction")


def _fit_options(args: argparse.Namespace):  # -> FitOptions
    from .reconstruct import FitOptions

    return FitOptions(
        siren=_config_from_args(SirenConfig, args),
        train=_config_from_args(TrainConfig, args),
        sampling=_config_from_args(SamplingConfig, args),
        weights=_config_from_args(LossWeights, args),
    )


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
def _cmd_reconstruct(args: argparse.Namespace) -> int:
    from .io import check_writable, save_mesh
    from .reconstruct import reconstruct

    _check_mesh_output(args.output)
    if args.model is not None:
        check_writable(args.model)
    options = _fit_options(args)
    extract = _config_from_args(ExtractConfig, args)
    device = resolve_device(args.device)
    result = reconstruct(
        args.input, options, extract, device=device, checkpoint=_checkpoint_path(args, args.output), progress=not args.quiet
    )
    if args.model is not None:
        result.model.save(args.model)
    save_mesh(result.mesh, args.output)
    log.info(
        "wrote %s (%d vertices, %d faces); fit %.1f s, extraction %.1f s",
        args.output, len(result.mesh.vertices), len(result.mesh.faces), result.fit_seconds, result.extract_seconds,
    )
    return EXIT_OK


def _cmd_fit(args: argparse.Namespace) -> int:
    from .io import check_writable
    from .reconstruct import fit_sdf

    check_writable(args.output)
    model = fit_sdf(
        args.input, _fit_options(args), device=resolve_device(args.device),
        checkpoint=_checkpoint_path(args, args.output), progress=not args.quiet,
    )
    model.save(args.output)
    log.info("wrote %s; fit %.1f s", args.output, model.info["fit_seconds"])
    return EXIT_OK


def _cmd_extract(args: argparse.Namespace) -> int:
    from .fields.sdf import SDFModel
    from .io import save_mesh
    from .reconstruct import extract_mesh

    _check_mesh_output(args.output)
    model = SDFModel.load(args.model, device=resolve_device(args.device))
    mesh = extract_mesh(model, _config_from_args(ExtractConfig, args), progress=not args.quiet)
    if mesh.is_empty:
        raise InputError(f"{args.model}: the SDF has no zero crossing in the grid; no surface to extract")
    save_mesh(mesh, args.output)
    log.info("wrote %s (%d vertices, %d faces)", args.output, len(mesh.vertices), len(mesh.faces))
    return EXIT_OK


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .io import load_mesh
    from .metrics import evaluate_meshes

    pred, gt = load_mesh(args.pred), load_mesh(args.gt)
    m = evaluate_meshes(pred, gt, num_samples=args.samples, seed=args.seed)
    if args.json:
        sys.stdout.write(json.dumps({"pred": str(args.pred), "gt": str(args.gt), **m.to_dict()}, indent=2) + "\n")
        return EXIT_OK
    lines = [
        f"pred {args.pred}  vs  gt {args.gt}  (GT bounding-box diagonal {m.gt_diagonal:.6g})",
        f"  Chamfer-L1          {m.chamfer_l1:.6g}   ({m.chamfer_l1_rel:.3e} of diagonal)",
        f"  Hausdorff           {m.hausdorff:.6g}   ({m.hausdorff_rel:.3e} of diagonal)",
    ]
    for key in m.fscore:
        lines.append(f"  F-score @{key:<5}     {m.fscore[key]:.4f}   (precision {m.precision[key]:.4f}, recall {m.recall[key]:.4f})")
    lines += [f"  normal consistency  {m.normal_consistency:.4f}", f"  definition: {m.definition}"]
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def load_renderable(path: Path, resolution: int = 192) -> list:
    """Load a mesh, point cloud or model file for display (a model is meshed at ``resolution``)."""
    from .io import MESH_EXTENSIONS, load_mesh, load_points
    from .io.mesh import check_input_file

    ext = path.suffix.lower()
    if ext in (".nsdf",) or (path.exists() and not path.is_dir() and _is_model_file(path)):
        from .fields.sdf import SDFModel
        from .reconstruct import extract_mesh

        model = SDFModel.load(path)
        mesh = extract_mesh(model, ExtractConfig(resolution=resolution))
        if mesh.is_empty:
            raise InputError(f"{path}: the SDF has no zero crossing; nothing to show")
        return [mesh]
    if ext in MESH_EXTENSIONS and ext != ".ply":
        return [load_mesh(path)]
    if ext == ".ply":
        check_input_file(path, (".ply",), "mesh or point cloud")
        from .io.mesh import _read_trimesh, mesh_from_object

        loaded = _read_trimesh(path)
        if len(getattr(loaded, "faces", [])):
            return [load_mesh(mesh_from_object(loaded, str(path)))]
    return [load_points(path)]


def _is_model_file(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return b"neural_sdf.model" in head


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import RenderOptions, parse_size, render_views, save_png

    if args.output.suffix.lower() != ".png":
        raise InputError(f"{args.output}: pictures are written as .png")
    from .io import check_writable

    check_writable(args.output)
    try:
        w, h = parse_size(args.size)
        options = RenderOptions(width=w, height=h, views=args.views, normals=args.normals)
    except ValueError as exc:
        raise InputError(f"invalid option: {exc}") from exc
    items = [g for p in args.paths for g in load_renderable(p)]
    image = render_views(items, options)
    save_png(image, args.output)
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
            _config_from_args(ExtractConfig, args),
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


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Return the ``neural-sdf`` argument parser."""
    parser = argparse.ArgumentParser(prog="neural-sdf", description="Neural signed distance fields with SIREN.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("reconstruct", help="fit an SDF to a point cloud or mesh and extract its mesh")
    p.add_argument("input", type=Path, help="point cloud (.ply .pcd .xyz .pts .npy .npz) or mesh (.obj .ply .stl .off .glb)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output mesh (.ply .obj .stl .off .glb)")
    p.add_argument("--model", type=Path, default=None, help="also save the fitted model here (e.g. shape.nsdf)")
    _add_training_args(p)
    _add_extract_args(p)
    p.set_defaults(func=_cmd_reconstruct)

    p = sub.add_parser("fit", help="fit an SDF model to a point cloud or mesh")
    p.add_argument("input", type=Path, help="point cloud or mesh")
    p.add_argument("-o", "--output", type=Path, required=True, help="model file to write (suggested extension .nsdf)")
    _add_training_args(p)
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("extract", help="extract the mesh of a fitted model")
    p.add_argument("model", type=Path, help="model file written by fit or reconstruct --model")
    p.add_argument("-o", "--output", type=Path, required=True, help="output mesh (.ply .obj .stl .off .glb)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_extract_args(p)
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("evaluate", help="compare a mesh with a ground-truth mesh")
    p.add_argument("pred", type=Path, help="reconstructed mesh")
    p.add_argument("gt", type=Path, help="ground-truth mesh")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--samples", type=int, default=100_000, help="surface samples per mesh (default: 100000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("render", help="render meshes, clouds or models to a PNG without a window")
    p.add_argument("paths", type=Path, nargs="+", help="meshes, point clouds or model files")
    p.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    p.add_argument("--normals", action="store_true", help="colour by normal")
    p.add_argument("--size", default="640x480", help="size of each view, WxH (default: 640x480)")
    p.add_argument("--views", type=int, default=1, help="turntable views tiled into one sheet (default: 1)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("batch", help="reconstruct many inputs (files, folders, globs, manifests) locally or on Ray")
    p.add_argument("inputs", nargs="+", help="point clouds or meshes, folders (recursive), globs, or manifests (.csv, .jsonl)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR", help="output folder (meshes, models, summary.csv, summary.json)")
    p.add_argument("--jobs", type=int, default=1, help="items run at once in separate processes (default: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per item (default: cores // jobs; 1 per Ray task)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS", help="run each item as a Ray task: no ADDRESS starts a local Ray instance, HOST:PORT or auto joins a cluster")
    p.add_argument("--gt", type=Path, default=None, metavar="DIR", help="ground-truth meshes named like the items; adds metrics to the summary")
    p.add_argument("--retries", type=int, default=1, help="retries of an item whose worker process died (default: 1)")
    p.add_argument("--mesh-format", default=".ply", help="mesh extension of the outputs (default: .ply)")
    _add_training_args(p)
    _add_extract_args(p)
    p.set_defaults(func=_cmd_batch)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``neural-sdf`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="neural-sdf: %(message)s", stream=sys.stderr, force=True)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except InputError as exc:
        sys.stderr.write(f"neural-sdf: error: {_one_line(exc)}\n")
        return EXIT_BAD_INPUT
    except OSError as exc:
        name = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"neural-sdf: error: {name}{exc.strerror or _one_line(exc)}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("neural-sdf: interrupted (checkpoints, if any, are kept for a resume)\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
