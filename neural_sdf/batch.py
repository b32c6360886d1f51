"""Batch reconstruction: many inputs to meshes and models, in local processes or as Ray tasks.

``reconstruct_batch`` expands files, folders, globs and manifests into items, skips items already
done with the same settings, runs the rest (``jobs`` spawned processes, or one Ray task each),
writes every output atomically from the driver, and returns one ``ItemResult`` per item, failures
included. Layout of ``out_dir`` for an item named ``NAME``:

* ``NAME.ply`` (or the chosen mesh format) and ``NAME.nsdf``: the mesh and the model;
* ``NAME.done.json``: written last, it records the settings hash; a rerun skips the item when the
  hash still matches and both outputs exist;
* ``NAME.ckpt``: a resumable fit checkpoint while the item runs (removed when its fit completes);
* ``summary.csv`` and ``summary.json``: one row per item.
"""

import csv
import dataclasses
import glob
import hashlib
import io
import json
import logging
import os
import socket
import tempfile
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union, get_type_hints

from ._typing import Device, PathLike
from .config import ExtractConfig, config_from_dict, config_to_dict
from .errors import InputError
from .io import MESH_EXTENSIONS, atomic_write
from .io.pointcloud import INPUT_EXTENSIONS
from .reconstruct import FitOptions

__all__ = [
    "BatchItem",
    "ItemResult",
    "reconstruct_batch",
    "expand_inputs",
    "apply_overrides",
    "settings_hash",
    "format_report",
    "write_summary",
    "MANIFEST_EXTENSIONS",
    "SUMMARY_COLUMNS",
]

log = logging.getLogger(__name__)

BATCH_FORMAT = "neural_sdf.batch/1"
"""Version tag mixed into every settings hash (bump it when outputs change meaning)."""

MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
"""Inputs with these extensions are read as manifests (one item per row or line)."""

_RESERVED_KEYS = ("input", "output", "gt", "options")
_SECTIONS: dict[str, type] = {
    **{
        f.name: hint
        for f, hint in ((f, get_type_hints(FitOptions)[f.name]) for f in dataclasses.fields(FitOptions))
        if dataclasses.is_dataclass(hint)  # config sections; FitOptions.adapt_w0 / adapt_normal_weight follow siren.w0_first / weights.normal
    },
    "extract": ExtractConfig,
}
"""Option sections a manifest or ``BatchItem.overrides`` may set: the ``FitOptions`` fields, and ``extract``."""

SUMMARY_COLUMNS = (
    "input",
    "status",
    "error",
    "seconds",
    "peak_memory_mb",
    "name",
    "mesh",
    "model",
    "reused",
    "attempts",
    "fit_seconds",
    "extract_seconds",
    "num_vertices",
    "num_faces",
    "settings_hash",
    "worker",
    "gt",
)
"""Fixed leading columns of ``summary.csv``; metric columns (``metric_*``) follow when any item has a ground truth."""


# ----------------------------------------------------------------------------- items
@dataclass(frozen=True)
class BatchItem:
    """One input of a batch.

    Attributes:
        input: point cloud or mesh file (any format ``load_points`` reads).
        name: output name: the mesh is ``NAME.<mesh format>``, the model ``NAME.nsdf`` (default:
            the input's stem).
        overrides: per-item settings on top of the batch's, as ``{"section.field": value}`` with
            section a ``FitOptions`` field (``siren train sampling weights``...) or ``extract`` (e.g. ``{"train.steps": 500}``), or a
            bare field name that only one section has (``{"resolution": 128}``).
        gt: ground-truth mesh for metrics (default: a file named like the item in ``gt_dir``).
    """

    input: Path
    name: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    gt: Optional[Path] = None


@dataclass
class ItemResult:
    """The outcome of one batch item (one row of the summary).

    Attributes:
        input: the input path, as listed.
        name: output name.
        status: "ok" or "failed".
        error: one-line error message of a failed item; for an ok item, why it has no metrics
            (an unusable ground truth), else "".
        seconds: wall time of the item in its worker (load, fit, extraction, metrics), seconds.
        peak_memory_mb: peak resident memory of the worker while it ran the item, MiB.
        mesh, model: output files (None when failed).
        reused: True when the item was done by an earlier run with the same settings hash (its
            numbers come from that run).
        attempts: runs started for the item in this batch (more than 1 after a worker died).
        fit_seconds, extract_seconds: parts of ``seconds``.
        num_vertices, num_faces: size of the mesh.
        settings_hash: hash of the input's bytes and every setting that shapes the outputs.
        worker: ``host:pid`` of the process that ran the item.
        gt: ground-truth mesh the metrics compare against, if any.
        metrics: flat metrics against ``gt`` (Chamfer-L1, Hausdorff, F-scores, normal consistency).
        traceback: the worker's traceback of an unexpected error (not of bad input).
    """

    input: str
    name: str
    status: Literal["ok", "failed"]
    error: str = ""
    seconds: Optional[float] = None
    peak_memory_mb: Optional[float] = None
    mesh: Optional[str] = None
    model: Optional[str] = None
    reused: bool = False
    attempts: int = 0
    fit_seconds: Optional[float] = None
    extract_seconds: Optional[float] = None
    num_vertices: Optional[int] = None
    num_faces: Optional[int] = None
    settings_hash: str = ""
    worker: str = ""
    gt: Optional[str] = None
    metrics: dict[str, float] = field(default_factory=dict)
    traceback: Optional[str] = None

    @property
    def ok(self) -> bool:
        """True when the item produced its mesh and model."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass
class _Plan:
    """A resolved item: concrete settings, output paths and hash (driver side)."""

    item: BatchItem
    options: FitOptions
    extract: ExtractConfig
    mesh_path: Path
    model_path: Path
    done_path: Path
    ckpt_path: Optional[Path]
    gt: Optional[Path]
    input_sha256: str
    settings_hash: str


@dataclass
class _Task:
    """What a worker needs to run one item (pickled to a process or a Ray task)."""

    index: int
    input: str
    input_sha256: str
    name: str
    options: FitOptions
    extract: ExtractConfig
    mesh_suffix: str
    checkpoint: Optional[str]
    gt: Optional[str]
    gt_sha256: Optional[str]
    device: str = "cpu"
    threads: int = 1
    input_ref: Any = None  # Ray ObjectRef of the input's bytes (fetched only when the path is not local)
    gt_ref: Any = None


# ----------------------------------------------------------------------------- input expansion
def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _scan_folder(folder: Path) -> list[Path]:
    files = [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in INPUT_EXTENSIONS and not _is_hidden(p, folder)
    ]
    if not files:
        raise InputError(f"{folder}: folder holds no point cloud or mesh files ({' '.join(INPUT_EXTENSIONS)})")
    return files


def _check_input_path(path: Path, where: str) -> Path:
    if not path.exists():
        raise InputError(f"{where}: no such file")
    if path.is_dir():
        raise InputError(f"{where}: is a folder (list folders as inputs, not inside manifests)")
    if path.suffix.lower() not in INPUT_EXTENSIONS:
        raise InputError(f"{where}: unknown input extension {path.suffix or '(none)'!r}; expected one of {' '.join(INPUT_EXTENSIONS)}")
    return path


def _coerce_cell(key: str, text: str, where: str) -> Any:
    """Turn a CSV cell into the type of the config field ``key`` names."""
    section, name = _split_key(key, where)
    hint = get_type_hints(_SECTIONS[section])[name]
    try:
        if hint is bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError:
        raise InputError(f"{where}: column {key!r}: cannot read {text!r} as {getattr(hint, '__name__', hint)}") from None
    return text.strip()


def _split_key(key: str, where: str) -> tuple[str, str]:
    """Resolve ``section.field`` or a bare field name (unique across sections)."""
    norm = key.strip().replace("-", "_")
    if "." in norm:
        section, name = norm.split(".", 1)
        cls = _SECTIONS.get(section)
        if cls is None:
            raise InputError(f"{where}: unknown option {key!r}; sections are {', '.join(_SECTIONS)}")
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise InputError(f"{where}: unknown option {key!r}; {section} has {', '.join(f.name for f in dataclasses.fields(cls))}")
        return section, name
    owners = [s for s, cls in _SECTIONS.items() if norm in {f.name for f in dataclasses.fields(cls)}]
    if len(owners) == 1:
        return owners[0], norm
    if not owners:
        raise InputError(f"{where}: unknown option {key!r} (use section.field, sections: {', '.join(_SECTIONS)})")
    raise InputError(f"{where}: option {key!r} is ambiguous; write one of {', '.join(o + '.' + norm for o in owners)}")


def _flatten_options(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: 'options' must be a JSON object, got {type(value).__name__}")
    flat: dict[str, Any] = {}
    for key, val in value.items():
        if isinstance(val, dict):
            for sub, v in val.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = val
    return flat


def _manifest_item(row: Mapping[str, Any], base: Path, where: str) -> BatchItem:
    raw_input = row.get("input")
    if raw_input is None or (isinstance(raw_input, str) and not raw_input.strip()):
        raise InputError(f"{where}: missing 'input'")
    if not isinstance(raw_input, str):
        raise InputError(f"{where}: 'input' must be a path string, got {raw_input!r}")
    path = Path(raw_input.strip())
    if not path.is_absolute():
        path = base / path
    _check_input_path(path, f"{where}: {path}")
    name = str(row.get("output") or "").strip()
    gt_text = str(row.get("gt") or "").strip()
    gt = None
    if gt_text:
        gt = Path(gt_text) if Path(gt_text).is_absolute() else base / gt_text
        if not gt.is_file():
            raise InputError(f"{where}: ground truth {gt}: no such file")
    overrides: dict[str, Any] = {}
    if row.get("options") not in (None, ""):
        opts = row["options"]
        if isinstance(opts, str):
            try:
                opts = json.loads(opts)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: 'options' is not valid JSON ({exc.msg})") from None
        overrides.update(_flatten_options(opts, where))
    for key, value in row.items():
        if key in _RESERVED_KEYS or value is None or (isinstance(value, str) and not value.strip()):
            continue
        overrides[key] = value
    for key in overrides:
        _split_key(key, where)  # fail early on unknown names
    return BatchItem(path, name, overrides, gt)


def _read_manifest(path: Path) -> list[BatchItem]:
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read manifest ({exc})") from None
    items: list[BatchItem] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "input" not in columns:
            raise InputError(f"{path}: manifest has no 'input' column (columns: {', '.join(columns) or 'none'})")
        for key in columns:
            if key not in _RESERVED_KEYS:
                _split_key(key, f"{path}: column {key!r}")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            if None in row:
                raise InputError(f"{where}: more cells than columns")
            clean = {k.strip(): v for k, v in row.items()}
            if not any((v or "").strip() for v in clean.values()):
                continue
            typed = {
                k: (_coerce_cell(k, v, where) if k not in _RESERVED_KEYS and v is not None and v.strip() else v)
                for k, v in clean.items()
            }
            items.append(_manifest_item(typed, base, where))
    else:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
            items.append(_manifest_item(row, base, where))
    if not items:
        raise InputError(f"{path}: manifest lists no inputs")
    return items


def expand_inputs(inputs: Sequence[Union[PathLike, BatchItem]]) -> list[BatchItem]:
    """Expand files, folders (recursive), globs and manifests into batch items, in order.

    Args:
        inputs: paths of point clouds or meshes, folders (searched recursively for files with a
            readable extension, hidden files skipped), glob patterns (``scans/**/*.ply``),
            manifests (``.csv`` with an ``input`` column, or JSON lines with an ``input`` key;
            optional ``output`` name, ``gt`` path and options as extra columns/keys or a nested
            ``options`` object; relative paths are relative to the manifest), or ``BatchItem``s.

    Returns:
        Items with their output names filled in (the input's stem unless a manifest names it).
        The same file listed twice with the same name and options appears once.

    Raises:
        InputError: a missing file, an empty folder, a glob that matches nothing, a manifest with
            a missing column, unknown option or nonexistent path, or two items with one output name.
    """
    items: list[BatchItem] = []
    for entry in inputs:
        if isinstance(entry, BatchItem):
            _check_input_path(Path(entry.input), str(entry.input))
            items.append(entry)
            continue
        text = str(entry)
        path = Path(text)
        if path.is_dir():
            items.extend(BatchItem(p) for p in _scan_folder(path))
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            items.extend(_read_manifest(path))
        elif path.exists() or not _is_glob(text):
            items.append(BatchItem(_check_input_path(path, text)))
        else:
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
            files = [m for m in matches if m.is_file() and m.suffix.lower() in INPUT_EXTENSIONS]
            if not files:
                raise InputError(f"{text}: pattern matches no point cloud or mesh files")
            items.extend(BatchItem(m) for m in files)
    named = [dataclasses.replace(it, name=it.name or Path(it.input).stem) for it in items]
    unique: list[BatchItem] = []
    by_name: dict[str, BatchItem] = {}
    for it in named:
        _check_name(it)
        key = it.name.casefold()
        other = by_name.get(key)
        if other is not None:
            same = Path(other.input).resolve() == Path(it.input).resolve() and dict(other.overrides) == dict(it.overrides) and other.gt == it.gt
            if same:
                continue
            raise InputError(
                f"{it.input}: duplicate output name {it.name!r} (also used by {other.input}); "
                "give items distinct names with a manifest 'output' column"
            )
        by_name[key] = it
        unique.append(it)
    if not unique:
        raise InputError("no inputs")
    return unique


def _check_name(item: BatchItem) -> None:
    name = item.name
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in '/\\:*?"<>|\0'):
        raise InputError(f"{item.input}: unusable output name {name!r} (no path separators, no leading dot)")


def apply_overrides(
    options: FitOptions, extract: ExtractConfig, overrides: Mapping[str, Any], where: str = "options"
) -> tuple[FitOptions, ExtractConfig]:
    """Return ``(options, extract)`` with ``{"section.field": value}`` overrides applied and checked.

    Raises:
        InputError: unknown names, values of the wrong type, or values the configs reject.
    """
    grouped: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = _split_key(key, where)
        grouped.setdefault(section, {})[name] = value
    changed: dict[str, Any] = {}
    for section, values in grouped.items():
        base = extract if section == "extract" else getattr(options, section)
        try:
            changed[section] = config_from_dict(_SECTIONS[section], {**config_to_dict(base), **values})
        except ValueError as exc:
            raise InputError(f"{where}: {exc}") from None
    new_extract = changed.pop("extract", extract)
    if "w0_first" in grouped.get("siren", {}):
        changed["adapt_w0"] = False  # an explicit first-layer w0 is kept as given
    if "normal" in grouped.get("weights", {}):
        changed["adapt_normal_weight"] = False  # likewise an explicit normal weight
    return dataclasses.replace(options, **changed), new_extract


# ----------------------------------------------------------------------------- hashing and records
def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings_hash(input_sha256: str, options: FitOptions, extract: ExtractConfig, mesh_suffix: str) -> str:
    """Hash of everything that shapes an item's outputs: input bytes, fit and extraction settings.

    Args:
        input_sha256: SHA-256 hex digest of the input file's bytes.
        options, extract: the item's resolved settings.
        mesh_suffix: mesh format, e.g. ".ply".

    Returns:
        24 hex characters. The device, the worker count and the output folder do not enter it.
    """
    record = {
        "format": BATCH_FORMAT,
        "input_sha256": input_sha256,
        "fit": config_to_dict(options),
        "extract": config_to_dict(extract),
        "mesh": mesh_suffix.lower(),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:24]


def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def _read_done(plan: _Plan) -> Optional[dict[str, Any]]:
    """The done record of an item if it matches the current settings and its outputs exist."""
    try:
        record = json.loads(plan.done_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("settings_hash") != plan.settings_hash:
        return None
    if not (plan.mesh_path.is_file() and plan.model_path.is_file()):
        return None
    return record


# ----------------------------------------------------------------------------- the worker side
def _reset_peak_memory() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so a reused worker reports the
    # peak of the current item rather than of its whole life.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_memory_mb() -> Optional[float]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    except (ImportError, OSError):
        return None


def _local_copy(path: str, sha256: str, ref: Any, tmp: Path) -> tuple[str, bool]:
    """Return a readable path of the input: its own path when this machine has the same bytes,
    else the driver's bytes (a Ray object) written to ``tmp``. The flag says whether it is a copy."""
    p = Path(path)
    if p.is_file():
        try:
            if ref is None or _file_sha256(p) == sha256:
                return path, False
        except OSError:
            pass
    if ref is None:
        return path, False  # let the loader report the problem with the real name
    import ray

    data = ray.get(ref)
    copy = tmp / p.name
    copy.write_bytes(data)
    return str(copy), True


def _run_item(task: _Task) -> dict[str, Any]:
    """Load, fit, extract and (optionally) evaluate one item; never raises for item errors.

    Returns:
        A plain dict: ``ok``; the model and mesh file bytes when ok, else ``error`` (one line) and
        ``traceback``; timings, peak memory, mesh size and metrics.
    """
    from .io import load_mesh, save_mesh
    from .metrics import evaluate_meshes
    from .reconstruct import reconstruct

    _reset_peak_memory()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"index": task.index, "worker": f"{socket.gethostname()}:{os.getpid()}"}
    source = task.input
    try:
        with tempfile.TemporaryDirectory(prefix="neural_sdf_batch_") as tmpdir:
            tmp = Path(tmpdir)
            source, copied = _local_copy(task.input, task.input_sha256, task.input_ref, tmp)
            ckpt = task.checkpoint
            if ckpt is not None and not os.access(Path(ckpt).parent, os.W_OK):
                ckpt = None  # a remote worker without the output folder: no resumable checkpoint
            result = reconstruct(source, task.options, task.extract, device=task.device, checkpoint=ckpt, progress=False)
            if copied:
                result.model.info["source"] = task.input
            model_file = tmp / f"{task.name}.nsdf"
            mesh_file = tmp / f"{task.name}{task.mesh_suffix}"
            result.model.save(model_file)
            save_mesh(result.mesh, mesh_file)
            out.update(
                ok=True,
                model_bytes=model_file.read_bytes(),
                mesh_bytes=mesh_file.read_bytes(),
                fit_seconds=result.fit_seconds,
                extract_seconds=result.extract_seconds,
                num_vertices=int(len(result.mesh.vertices)),
                num_faces=int(len(result.mesh.faces)),
            )
            if task.gt is not None:
                gt_path, _ = _local_copy(task.gt, task.gt_sha256 or "", task.gt_ref, tmp)
                try:
                    out["metrics"] = _flat_metrics(evaluate_meshes(result.mesh, load_mesh(gt_path)))
                except InputError as exc:  # the outputs are fine; only the comparison is not possible
                    out["metrics_error"] = f"no metrics: ground truth {_one_line(exc).replace(gt_path, task.gt)}"
    except Exception as exc:  # an item's failure is data for the summary, not a crash of the batch
        message = _one_line(exc)
        if source != task.input:
            message = message.replace(source, task.input)
        if not isinstance(exc, InputError):
            message = f"{type(exc).__name__}: {message}"
            out["traceback"] = traceback.format_exc()
        out.update(ok=False, error=message)
    out["seconds"] = time.perf_counter() - t0
    out["peak_memory_mb"] = _peak_memory_mb()
    return out


def _flat_metrics(m: Any) -> dict[str, float]:
    flat = {
        "chamfer_l1": m.chamfer_l1,
        "chamfer_l1_rel": m.chamfer_l1_rel,
        "hausdorff": m.hausdorff,
        "hausdorff_rel": m.hausdorff_rel,
        "normal_consistency": m.normal_consistency,
    }
    for key, value in m.fscore.items():
        flat[f"fscore@{key}"] = value
    return {k: float(v) for k, v in flat.items()}


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker when the driver is gone (e.g. SIGKILLed), so no orphan keeps computing."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(0.5)


def _worker_main(conn: Any, parent_pid: int, threads: int, device: str, log_level: int) -> None:
    """Entry point of a spawned worker process: run the tasks sent on ``conn`` until told to stop."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and ends its workers
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    logging.basicConfig(level=log_level, format=f"neural-sdf[worker {os.getpid()}]: %(message)s", force=True)
    torch.set_num_threads(threads)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        task.device = device
        task.threads = threads
        conn.send(_run_item(task))


def _ray_item(task: _Task) -> dict[str, Any]:
    """Body of a Ray task: one item with the CPU threads (and GPU) Ray granted."""
    import torch

    torch.set_num_threads(max(1, task.threads))
    if task.device != "cpu" and not torch.cuda.is_available():
        task.device = "cpu"
    return _run_item(task)


# ----------------------------------------------------------------------------- executors
def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


OnResult = Callable[[_Task, dict[str, Any], int], None]


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: Optional[_Task] = None


def _run_local(tasks: list[_Task], jobs: int, threads: int, devices: list[str], retries: int, on_result: OnResult) -> None:
    """Run ``tasks`` on ``jobs`` spawned processes; a task whose process dies is retried ``retries`` times."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    queue = deque(tasks)
    attempts: dict[int, int] = {t.index: 0 for t in tasks}
    workers: list[Optional[_Worker]] = [None] * min(jobs, len(tasks))
    start_failures = 0
    level = max(logging.getLogger("neural_sdf").getEffectiveLevel(), logging.WARNING)

    def start(slot: int) -> _Worker:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), threads, devices[slot % len(devices)], level),
            name=f"neural-sdf-batch-{slot}",
            daemon=True,
        )
        proc.start()
        child.close()
        return _Worker(proc, parent)

    try:
        for slot in range(len(workers)):
            workers[slot] = start(slot)
        while queue or any(w is not None and w.task is not None for w in workers):
            for slot, w in enumerate(workers):
                if w is not None and w.task is None and queue:
                    task = queue.popleft()
                    attempts[task.index] += 1
                    w.task = task
                    w.conn.send(task)
            busy = [w for w in workers if w is not None and w.task is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            for slot, w in enumerate(workers):
                if w is None or w.task is None:
                    continue
                task = w.task
                message = None
                if w.conn.poll():
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        message = None
                if message is not None:
                    w.task = None
                    on_result(task, message, attempts[task.index])
                    continue
                if w.process.is_alive():
                    continue
                code = w.process.exitcode
                w.conn.close()
                workers[slot] = start(slot)
                if attempts[task.index] <= retries:
                    log.warning("%s: worker process died (exit code %s); retrying", task.input, code)
                    queue.appendleft(task)
                else:
                    on_result(task, {"ok": False, "index": task.index, "error": f"worker process died (exit code {code}) on each of {attempts[task.index]} attempts"}, attempts[task.index])
            for slot, w in enumerate(workers):
                if w is not None and w.task is None and not w.process.is_alive():
                    start_failures += 1
                    if start_failures > 2 * len(workers) + 2:
                        raise RuntimeError(f"batch worker processes exit on start-up (exit code {w.process.exitcode})")
                    w.conn.close()
                    workers[slot] = start(slot)
    finally:
        for w in workers:
            if w is None:
                continue
            if w.task is None and w.process.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            else:
                w.process.terminate()
        for w in workers:
            if w is None:
                continue
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()


def _check_ray_address(address: str) -> None:
    """Fail fast (one line) when a ``HOST:PORT`` Ray address does not answer."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise InputError(f"--ray {address}: cannot reach a Ray cluster there ({reason})") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("Ray is not installed; install the 'cluster' extra: pip install 'neural-sdf[cluster]'") from exc
    return ray


def _connect_ray(address: Optional[str]) -> bool:
    """Join ``address`` or start a local Ray instance, unless connected already; True if this call connected."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            try:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... for a bad cluster
                raise InputError(f"--ray {address}: cannot join the Ray cluster ({_one_line(exc)})") from None
        else:
            ray.init(num_cpus=_cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        started = True
    return started


def _run_ray(tasks: list[_Task], threads: Optional[int], retries: int, started: bool, on_result: OnResult) -> None:
    """Run every task as a Ray task (a GPU each when the cluster has GPUs); inputs travel as objects.

    ``started``: this batch connected to Ray, so it disconnects (and stops a local instance) at the end.
    """
    ray = _import_ray()
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0) > 0
        cpus_per_task = threads or 1
        remote = ray.remote(_ray_item).options(
            num_cpus=cpus_per_task, num_gpus=1 if gpus else 0, max_retries=retries, retry_exceptions=False
        )
        # Keep a bounded number of tasks (and their input bytes) in flight.
        limit = max(2, 2 * int(resources.get("CPU", 1) // cpus_per_task))
        queue = deque(tasks)
        running: dict[Any, _Task] = {}
        try:
            while queue or running:
                while queue and len(running) < limit:
                    task = queue.popleft()
                    task.threads = cpus_per_task
                    task.device = "cuda" if gpus else "cpu"
                    task.input_ref = ray.put(Path(task.input).read_bytes())
                    if task.gt is not None:
                        task.gt_ref = ray.put(Path(task.gt).read_bytes())
                    running[remote.remote(task)] = task
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    task = running.pop(ref)
                    try:
                        message = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        message = {"ok": False, "index": task.index, "error": f"Ray task failed after {retries + 1} attempts: {_one_line(exc)}"}
                    on_result(task, message, 1)
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- the batch
def _find_gt(gt_dir: Optional[Path], item: BatchItem) -> Optional[Path]:
    if item.gt is not None:
        return Path(item.gt)
    if gt_dir is None:
        return None
    own = Path(item.input).resolve()
    for stem in dict.fromkeys([item.name, Path(item.input).stem]):
        for ext in MESH_EXTENSIONS:
            for cand in (gt_dir / f"{stem}{ext}", gt_dir / f"{stem}{ext.upper()}"):
                if cand.is_file() and cand.resolve() != own:  # never the input itself
                    return cand
    return None


def _check_out_dir(out: Path, inputs: Sequence[Union[PathLike, BatchItem]]) -> None:
    resolved = out.resolve()
    for entry in inputs:
        if isinstance(entry, BatchItem):
            continue
        p = Path(str(entry))
        if p.is_dir():
            folder = p.resolve()
            if resolved == folder or folder in resolved.parents:
                raise InputError(
                    f"{out}: output folder is inside input folder {p}; a rerun would read the outputs as inputs"
                )
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: output path exists and is not a folder")
    parent = out.resolve().parent
    if not out.exists() and not parent.exists():
        raise InputError(f"{out}: parent folder {parent} does not exist")


def reconstruct_batch(
    inputs: Sequence[Union[PathLike, BatchItem]],
    out_dir: PathLike,
    options: FitOptions = FitOptions(),
    extract: ExtractConfig = ExtractConfig(),
    *,
    jobs: int = 1,
    threads: Optional[int] = None,
    executor: Literal["process", "ray"] = "process",
    ray_address: Optional[str] = None,
    gt_dir: Optional[PathLike] = None,
    retries: int = 1,
    device: Device = "cpu",
    mesh_format: str = ".ply",
    checkpoints: bool = True,
    progress: bool = True,
) -> list[ItemResult]:
    """Reconstruct every input to a mesh and a model in ``out_dir``; keep going past failures.

    Everything is checked before any work starts (inputs, manifests, names, folders, the Ray
    address). Items whose ``NAME.done.json`` records the same settings hash and whose outputs
    exist are not run again (``reused``). The others run in ``jobs`` spawned processes (each with
    ``threads`` torch threads, default ``cores // jobs``; with CUDA devices, worker ``i`` uses GPU
    ``i % num_gpus``) or, with ``executor="ray"``, as one Ray task each. Workers return the file
    bytes and this process writes them atomically, so no half-written file ever has a final name.
    A worker that dies (crash, out of memory, killed) is replaced and its item retried up to
    ``retries`` times; an item that raises is recorded as failed. ``summary.csv`` and
    ``summary.json`` are written at the end (also after Ctrl-C, for the items finished so far).

    Args:
        inputs: files, folders, globs, manifests or ``BatchItem``s (see ``expand_inputs``).
        out_dir: output folder (created if missing; must not lie inside an input folder).
        options, extract: settings of every item (a manifest's per-item options override them).
        jobs: items run at once by local processes (ignored by Ray, which schedules by resources).
        threads: torch threads per item; local default ``max(1, cores // jobs)``, Ray default 1
            (each Ray task requests this many CPUs).
        executor: "process" (local spawned processes) or "ray".
        ray_address: Ray cluster to join (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``); None
            starts a local Ray instance, unless this process is already connected to one.
        gt_dir: folder of ground-truth meshes; an item gets metrics when a mesh named like it (its
            output name or input stem, any mesh extension) is there.
        retries: extra attempts of an item whose worker process died (Ray's ``max_retries``).
        device: "cpu", "cuda" (local workers spread over all GPUs) or "cuda:N".
        mesh_format: mesh extension, e.g. ".ply" or ".obj".
        checkpoints: write ``NAME.ckpt`` during fits so an interrupted item resumes.
        progress: show one overall progress bar (done / failed / remaining, ETA).

    Returns:
        One ``ItemResult`` per item, in input order, failures included.

    Raises:
        InputError: bad inputs, options or folders, or an unreachable Ray cluster (before any work).
        KeyboardInterrupt: on Ctrl-C, after stopping the workers and writing the summary.
    """
    from tqdm.auto import tqdm

    if executor not in ("process", "ray"):
        raise ValueError(f"executor must be one of ['process', 'ray'], got {executor!r}")
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be >= 1, got {threads}")
    if retries < 0:
        raise InputError(f"--retries must be >= 0, got {retries}")
    suffix = mesh_format if mesh_format.startswith(".") else "." + mesh_format
    if suffix.lower() not in MESH_EXTENSIONS:
        raise InputError(f"mesh format {mesh_format!r}: expected one of {', '.join(MESH_EXTENSIONS)}")
    out = Path(out_dir)
    gt_root = Path(gt_dir) if gt_dir is not None else None
    if gt_root is not None and not gt_root.is_dir():
        raise InputError(f"{gt_root}: ground-truth folder does not exist")
    _check_out_dir(out, inputs)
    items = expand_inputs(inputs)
    plans = []
    for item in items:
        opts, ext = apply_overrides(options, extract, item.overrides, str(item.input))
        try:
            sha = _file_sha256(Path(item.input))
        except OSError as exc:
            raise InputError(f"{item.input}: cannot read ({exc.strerror or exc})") from None
        plans.append(
            _Plan(
                item=item, options=opts, extract=ext,
                mesh_path=out / f"{item.name}{suffix}", model_path=out / f"{item.name}.nsdf",
                done_path=out / f"{item.name}.done.json",
                ckpt_path=(out / f"{item.name}.ckpt") if checkpoints else None,
                gt=_find_gt(gt_root, item), input_sha256=sha, settings_hash=settings_hash(sha, opts, ext, suffix),
            )
        )
    device_name = str(device)
    devices = [device_name]
    if executor == "process" and device_name == "cuda":
        import torch

        devices = [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    if executor == "ray":
        _import_ray()
        if ray_address:
            _check_ray_address(ray_address)

    results: list[Optional[ItemResult]] = [None] * len(plans)
    tasks: list[_Task] = []
    for i, plan in enumerate(plans):
        record = _read_done(plan)
        if record is not None:
            results[i] = _reused_result(plan, record)
        else:
            tasks.append(
                _Task(
                    index=i, input=str(plan.item.input), input_sha256=plan.input_sha256, name=plan.item.name,
                    options=plan.options, extract=plan.extract, mesh_suffix=suffix,
                    checkpoint=str(plan.ckpt_path) if plan.ckpt_path is not None else None,
                    gt=str(plan.gt) if plan.gt is not None else None,
                    gt_sha256=_file_sha256(plan.gt) if plan.gt is not None else None,
                )
            )
    ray_started = _connect_ray(ray_address) if executor == "ray" and tasks else False
    out.mkdir(parents=True, exist_ok=True)
    reused = len(plans) - len(tasks)
    if reused:
        log.info("%d of %d items already done with the same settings; reusing them", reused, len(plans))

    counts = {"ok": reused, "failed": 0}
    bar = tqdm(total=len(plans), initial=reused, desc="batch", unit="item", disable=not progress, dynamic_ncols=True)

    def on_result(task: _Task, message: dict[str, Any], attempts: int) -> None:
        plan = plans[task.index]
        result = _store_result(plan, task, message, attempts)
        results[task.index] = result
        counts[result.status] += 1
        if not result.ok:
            log.warning("failed: %s", result.error if result.error.startswith(result.input) else f"{result.input}: {result.error}")
        bar.set_postfix(done=counts["ok"], failed=counts["failed"], remaining=len(plans) - counts["ok"] - counts["failed"], refresh=False)
        bar.update(1)

    bar.set_postfix(done=counts["ok"], failed=0, remaining=len(tasks), refresh=True)
    t0 = time.perf_counter()
    try:
        if tasks:
            if executor == "ray":
                _run_ray(tasks, threads, retries, ray_started, on_result)
            else:
                jobs_now = min(jobs, len(tasks))
                per_item = threads or max(1, _cpu_count() // jobs)
                _run_local(tasks, jobs_now, per_item, devices, retries, on_result)
    finally:
        bar.close()
        done = [r for r in results if r is not None]
        if done:
            write_summary(done, out)
    log.info("batch finished in %.1f s", time.perf_counter() - t0)
    return [r for r in results if r is not None]


def _reused_result(plan: _Plan, record: dict[str, Any]) -> ItemResult:
    result = ItemResult(
        input=str(plan.item.input), name=plan.item.name, status="ok", reused=True,
        mesh=str(plan.mesh_path), model=str(plan.model_path), settings_hash=plan.settings_hash,
        seconds=record.get("seconds"), peak_memory_mb=record.get("peak_memory_mb"),
        fit_seconds=record.get("fit_seconds"), extract_seconds=record.get("extract_seconds"),
        num_vertices=record.get("num_vertices"), num_faces=record.get("num_faces"),
        worker=record.get("worker", ""), attempts=0,
    )
    if plan.gt is not None:
        result.gt = str(plan.gt)
        gt_sha = _file_sha256(plan.gt)
        if record.get("gt_sha256") == gt_sha and record.get("metrics"):
            result.metrics = dict(record["metrics"])
        else:  # ground truth added or changed since: evaluate the existing mesh here
            from .io import load_mesh
            from .metrics import evaluate_meshes

            try:
                result.metrics = _flat_metrics(evaluate_meshes(load_mesh(plan.mesh_path), load_mesh(plan.gt)))
            except InputError as exc:
                result.error = f"no metrics: ground truth {_one_line(exc)}"
                return result
            _write_json(plan.done_path, {**record, "gt": str(plan.gt), "gt_sha256": gt_sha, "metrics": result.metrics})
    return result


def _store_result(plan: _Plan, task: _Task, message: dict[str, Any], attempts: int) -> ItemResult:
    """Write an item's files (model, mesh, then the done record) and return its summary row."""
    result = ItemResult(
        input=str(plan.item.input), name=plan.item.name, status="failed", attempts=attempts,
        settings_hash=plan.settings_hash, seconds=message.get("seconds"), peak_memory_mb=message.get("peak_memory_mb"),
        worker=message.get("worker", ""), gt=str(plan.gt) if plan.gt is not None else None,
        traceback=message.get("traceback"),
    )
    if not message.get("ok"):
        result.error = message.get("error", "unknown error")
        return result
    try:
        with atomic_write(plan.model_path) as tmp:
            tmp.write_bytes(message["model_bytes"])
        with atomic_write(plan.mesh_path) as tmp:
            tmp.write_bytes(message["mesh_bytes"])
    except (OSError, InputError) as exc:
        result.error = f"cannot write outputs: {_one_line(exc)}"
        return result
    result.status = "ok"
    result.mesh, result.model = str(plan.mesh_path), str(plan.model_path)
    for key in ("fit_seconds", "extract_seconds", "num_vertices", "num_faces"):
        setattr(result, key, message.get(key))
    result.metrics = dict(message.get("metrics") or {})
    if message.get("metrics_error"):
        result.error = message["metrics_error"]  # status stays ok: mesh and model are complete
        log.warning("%s: %s", result.input, result.error)
    record = {
        "format": BATCH_FORMAT,
        "input": result.input,
        "input_sha256": plan.input_sha256,
        "settings_hash": plan.settings_hash,
        "settings": {"fit": config_to_dict(plan.options), "extract": config_to_dict(plan.extract)},
        "mesh": plan.mesh_path.name,
        "model": plan.model_path.name,
        "gt": result.gt,
        "gt_sha256": task.gt_sha256,
        "metrics": result.metrics,
        **{k: getattr(result, k) for k in ("seconds", "peak_memory_mb", "fit_seconds", "extract_seconds", "num_vertices", "num_faces", "worker")},
    }
    _write_json(plan.done_path, record)
    return result


# ----------------------------------------------------------------------------- reporting
def write_summary(results: Sequence[ItemResult], out_dir: PathLike) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.json`` (one row per item) atomically; return their paths.

    Columns: ``SUMMARY_COLUMNS``, then ``metric_<name>`` for every metric any item has. Times
    are seconds, memory MiB; empty cells mean "not applicable".
    """
    out = Path(out_dir)
    metric_names = sorted({k for r in results for k in r.metrics})
    csv_path, json_path = out / "summary.csv", out / "summary.json"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(SUMMARY_COLUMNS) + [f"metric_{m}" for m in metric_names])
    for r in results:
        row = []
        for col in SUMMARY_COLUMNS:
            v = getattr(r, col)
            row.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
        row += [f"{r.metrics[m]:.6g}" if m in r.metrics else "" for m in metric_names]
        writer.writerow(row)
    with atomic_write(csv_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    ok = sum(r.ok for r in results)
    _write_json(
        json_path,
        {
            "format": BATCH_FORMAT,
            "items": len(results),
            "ok": ok,
            "failed": len(results) - ok,
            "results": [r.to_dict() for r in results],
        },
    )
    return csv_path, json_path


def format_report(results: Sequence[ItemResult], out_dir: Optional[PathLike] = None, max_rows: int = 20) -> str:
    """Return a short human-readable report: counts, the failures, and a few finished items."""
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    reused = sum(r.reused for r in ok)
    run = [r for r in results if not r.reused and r.seconds is not None]
    lines = [f"batch: {len(results)} items: {len(ok)} ok ({reused} reused from an earlier run), {len(failed)} failed"]
    if run:
        secs = sorted(r.seconds for r in run if r.seconds is not None)
        peak = max((r.peak_memory_mb or 0.0) for r in run)
        lines.append(f"  items run now: {len(run)}, median {secs[len(secs) // 2]:.1f} s per item, peak memory {peak:.0f} MiB")
    for r in failed[:max_rows]:
        lines.append(f"  FAILED {r.error}" if r.error.startswith(r.input) else f"  FAILED {r.input}: {r.error}")
    if len(failed) > max_rows:
        lines.append(f"  ... and {len(failed) - max_rows} more failures (see summary.csv)")
    for r in ok[: max(0, max_rows - len(failed))]:
        extra = f", Chamfer-L1 {r.metrics['chamfer_l1']:.4g}" if "chamfer_l1" in r.metrics else ""
        how = "reused" if r.reused else f"{r.seconds or 0:.1f} s"
        lines.append(f"  ok     {r.input} -> {r.mesh} ({r.num_faces} faces, {how}{extra})")
    if out_dir is not None:
        out = Path(out_dir)
        lines.append(f"summary: {out / 'summary.csv'}, {out / 'summary.json'}")
    return "\n".join(lines)
