"""Batch reconstruction: many inputs to meshes and models, in local processes or as Ray tasks.

``reconstruct_batch`` expands files, folders, globs and manifests into items (``manifest``), skips
items already done with the same settings, runs the rest (``jobs`` spawned processes, or one Ray
task each; ``executors``), writes every output atomically from the driver, and returns one
``ItemResult`` per item, failures included (``summary``). Layout of ``out_dir`` for an item named
``NAME``:

* ``NAME.ply`` (or the chosen mesh format) and ``NAME.nsdf``: the mesh and the model;
* ``NAME.done.json``: written last, it records the settings hash; a rerun skips the item when the
  hash still matches and both outputs exist;
* ``NAME.ckpt``: a resumable fit checkpoint while the item runs (removed when its fit completes);
* ``summary.csv`` and ``summary.json``: one row per item.
"""

import logging
import os
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

from .._typing import Device, PathLike
from ..config import ExtractConfig
from ..errors import InputError
from ..io import MESH_EXTENSIONS, check_output_dir
from ..reconstruct import FitOptions
from .executors import Job, check_ray_address, connect_ray, cpu_count, job_file, one_line, run_local, run_ray
from .manifest import BATCH_FORMAT as BATCH_FORMAT  # importable from here, as before the split
from .manifest import (
    MANIFEST_EXTENSIONS,
    BatchItem,
    _Plan,
    apply_overrides,
    expand_inputs,
    file_sha256,
    settings_hash,
)
from .summary import (
    SUMMARY_COLUMNS,
    ItemResult,
    _flat_metrics,
    _read_done,
    _reused_result,
    _store_result,
    format_report,
    write_summary,
)

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


@dataclass
class _Task:
    """What a worker needs to run one item (the payload of its ``Job``)."""

    input: str
    name: str
    options: FitOptions
    extract: ExtractConfig
    mesh_suffix: str
    checkpoint: Optional[str]
    gt: Optional[str]


# ----------------------------------------------------------------------------- the worker side
def _run_item(task: _Task, device: str, threads: int) -> dict[str, Any]:
    """Load, fit, extract and (optionally) evaluate one item; never raises for item errors.

    The batch's worker function (``executors.Worker``); ``threads`` is already applied to torch.

    Returns:
        A plain dict: ``ok``; the model and mesh file bytes when ok, else ``error`` (one line) and
        ``traceback``; timings, mesh size and metrics (the executor adds time, memory and worker).
    """
    from ..io import load_mesh, save_mesh
    from ..metrics import evaluate_meshes
    from ..reconstruct import reconstruct

    out: dict[str, Any] = {}
    source = task.input
    try:
        with tempfile.TemporaryDirectory(prefix="neural_sdf_batch_") as tmpdir:
            tmp = Path(tmpdir)
            source, copied = job_file(task.input, tmp)
            ckpt = task.checkpoint
            if ckpt is not None and not os.access(Path(ckpt).parent, os.W_OK):
                ckpt = None  # a remote worker without the output folder: no resumable checkpoint
            result = reconstruct(source, task.options, task.extract, device=device, checkpoint=ckpt, progress=False)
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
                gt_path, _ = job_file(task.gt, tmp)
                try:
                    out["metrics"] = _flat_metrics(evaluate_meshes(result.mesh, load_mesh(gt_path)))
                except InputError as exc:  # the outputs are fine; only the comparison is not possible
                    out["metrics_error"] = f"no metrics: ground truth {one_line(exc).replace(gt_path, task.gt)}"
    except Exception as exc:  # an item's failure is data for the summary, not a crash of the batch
        message = one_line(exc)
        if source != task.input:
            message = message.replace(source, task.input)
        if not isinstance(exc, InputError):
            message = f"{type(exc).__name__}: {message}"
            out["traceback"] = traceback.format_exc()
        out.update(ok=False, error=message)
    return out


def _item_files(job: Job) -> list[str]:
    """Files a remote worker of ``job`` reads (shipped to nodes that lack them)."""
    task: _Task = job.payload
    return [task.input] + ([task.gt] if task.gt is not None else [])


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
    check_output_dir(out, parents=False)


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
        ray_address: Ray cluster to join (``HOST:PORT``, ``ray://HOST:PORT`` or ``auto``), with
            Ray's auth token when one is available (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
            or ``~/.ray/auth_token``); None starts a private local Ray instance, unless this
            process is already connected to one.
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
    from ..progress import progress_bar

    if executor not in ("process", "ray"):
        raise ValueError(f"executor must be one of ['process', 'ray'], got {executor!r}")
    if jobs < 1:
        raise InputError(f"`jobs` must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise InputError(f"`threads` must be >= 1, got {threads}")
    if retries < 0:
        raise InputError(f"`retries` must be >= 0, got {retries}")
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
            sha = file_sha256(Path(item.input))
        except OSError as exc:
            raise InputError(f"{item.input}: cannot read ({exc.strerror or exc})") from None
        gt = _find_gt(gt_root, item)
        plans.append(
            _Plan(
                item=item, options=opts, extract=ext,
                mesh_path=out / f"{item.name}{suffix}", model_path=out / f"{item.name}.nsdf",
                done_path=out / f"{item.name}.done.json",
                ckpt_path=(out / f"{item.name}.ckpt") if checkpoints else None,
                gt=gt, input_sha256=sha, settings_hash=settings_hash(sha, opts, ext, suffix),
                gt_sha256=file_sha256(gt) if gt is not None else None,
            )
        )
    device_name = str(device)
    devices = [device_name]
    if executor == "process" and device_name == "cuda":
        import torch

        devices = [f"cuda:{i}" for i in range(max(1, torch.cuda.device_count()))]
    if executor == "ray":
        check_ray_address(ray_address)

    results: list[Optional[ItemResult]] = [None] * len(plans)
    work: list[Job] = []
    for i, plan in enumerate(plans):
        record = _read_done(plan)
        if record is not None:
            results[i] = _reused_result(plan, record)
        else:
            task = _Task(
                input=str(plan.item.input), name=plan.item.name, options=plan.options, extract=plan.extract,
                mesh_suffix=suffix, checkpoint=str(plan.ckpt_path) if plan.ckpt_path is not None else None,
                gt=str(plan.gt) if plan.gt is not None else None,
            )
            work.append(Job(index=i, name=str(plan.item.input), payload=task))
    ray_started = connect_ray(ray_address) if executor == "ray" and work else False
    out.mkdir(parents=True, exist_ok=True)
    reused = len(plans) - len(work)
    if reused:
        log.info("%d of %d items already done with the same settings; reusing them", reused, len(plans))

    counts = {"ok": reused, "failed": 0}
    bar = progress_bar(total=len(plans), initial=reused, desc="batch", unit="item", disable=not progress, dynamic_ncols=True)

    def on_result(job: Job, message: dict[str, Any], attempts: int) -> None:
        result = _store_result(plans[job.index], message, attempts)
        results[job.index] = result
        counts[result.status] += 1
        if not result.ok:
            log.warning("failed: %s", result.error if result.error.startswith(result.input) else f"{result.input}: {result.error}")
        bar.set_postfix(done=counts["ok"], failed=counts["failed"], remaining=len(plans) - counts["ok"] - counts["failed"], refresh=False)
        bar.update(1)

    bar.set_postfix(done=counts["ok"], failed=0, remaining=len(work), refresh=True)
    t0 = time.perf_counter()
    try:
        if work:
            if executor == "ray":
                run_ray(_run_item, work, threads=threads, retries=retries, started=ray_started, on_result=on_result, inputs=_item_files)
            else:
                run_local(
                    _run_item, work, processes=min(jobs, len(work)), threads=threads or max(1, cpu_count() // jobs),
                    devices=devices, retries=retries, on_result=on_result,
                )
    finally:
        bar.close()
        done = [r for r in results if r is not None]
        if done:
            write_summary(done, out)
    log.info("batch finished in %.1f s", time.perf_counter() - t0)
    return [r for r in results if r is not None]
