"""Batch results: one ``ItemResult`` per item, the files a finished item leaves (outputs and its
done record), and the summary files and report of a run."""

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from .._typing import PathLike
from ..config import config_to_dict
from ..errors import InputError
from ..io import atomic_write
from .executors import one_line
from .manifest import BATCH_FORMAT, _Plan, file_sha256

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- done records
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
        gt_sha = plan.gt_sha256 or file_sha256(plan.gt)
        if record.get("gt_sha256") == gt_sha and record.get("metrics"):
            result.metrics = dict(record["metrics"])
        else:  # ground truth added or changed since: evaluate the existing mesh here
            from ..io import load_mesh
            from ..metrics import evaluate_meshes

            try:
                result.metrics = _flat_metrics(evaluate_meshes(load_mesh(plan.mesh_path), load_mesh(plan.gt)))
            except InputError as exc:
                result.error = f"no metrics: ground truth {one_line(exc)}"
                return result
            _write_json(plan.done_path, {**record, "gt": str(plan.gt), "gt_sha256": gt_sha, "metrics": result.metrics})
    return result


def _store_result(plan: _Plan, message: dict[str, Any], attempts: int) -> ItemResult:
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
        result.error = f"cannot write outputs: {one_line(exc)}"
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
        "gt_sha256": plan.gt_sha256,
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
