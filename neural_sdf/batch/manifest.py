"""Batch inputs: files, folders, globs and manifests expanded into items, per-item overrides, and
the plan of each item (its resolved settings, output paths and settings hash)."""

import csv
import dataclasses
import glob
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union, get_type_hints

from .._typing import PathLike
from ..config import ExtractConfig, config_from_dict, config_to_dict, field_value
from ..errors import InputError
from ..io.pointcloud import INPUT_EXTENSIONS
from ..recipe import keep_explicit
from ..reconstruct import FitOptions

BATCH_FORMAT = "neural_sdf.batch/1"
"""Version tag mixed into every settings hash (bump it when outputs change meaning)."""

MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
"""Inputs with these extensions are read as manifests (one item per row or line)."""

FOLDER_EXTENSIONS = tuple(e for e in INPUT_EXTENSIONS if e not in (".csv", ".txt"))
"""Files a folder scan takes as inputs: ``.txt`` and ``.csv`` point files are read when named
(a ``.csv`` then as a manifest), but in a folder they are more often notes and tables."""

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
class _Plan:
    """A resolved item: concrete settings, output paths and hashes (driver side)."""

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
    gt_sha256: Optional[str] = None


# ----------------------------------------------------------------------------- input expansion
def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _scan_folder(folder: Path) -> list[Path]:
    files = [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in FOLDER_EXTENSIONS and not _is_hidden(p, folder)
    ]
    if not files:
        raise InputError(f"{folder}: folder holds no point cloud or mesh files ({' '.join(FOLDER_EXTENSIONS)})")
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
    """Turn a CSV cell into the type of the config field ``key`` names (``config.field_value``)."""
    section, name = _split_key(key, where)
    try:
        return field_value(_SECTIONS[section], name, text, from_text=True)
    except ValueError as exc:
        reason = str(exc).split(": ", 1)[-1]  # drop the field name: the column names it
        raise InputError(f"{where}: column {key!r}: {reason}") from None


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
            files = [m for m in matches if m.is_file() and m.suffix.lower() in FOLDER_EXTENSIONS]
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
    explicit = [f"{section}.{name}" for section, values in grouped.items() for name in values]
    return keep_explicit(dataclasses.replace(options, **changed), explicit), new_extract


# ----------------------------------------------------------------------------- hashing
def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
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
