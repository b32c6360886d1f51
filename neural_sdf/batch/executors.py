"""Executors: run independent jobs in local spawned processes or as Ray tasks, with retries.

A caller (the batch: one job per item; a scene: one job per tile) gives ``run_local`` or
``run_ray`` a module-level worker function, ``Job``s with picklable payloads and an ``on_result``
callback. Each job's result dict comes back to the driver, which writes the outputs, so workers
never need the output folder. Nothing here knows about meshes or batch items.

Ray set-up: ``connect_ray`` joins a cluster started with ``ray start`` (by ``HOST:PORT`` or
``auto``) or starts a private local instance. Ray 2.60 enables token authentication on such
clusters by default; joining sends the token from Ray's own sources (``RAY_AUTH_TOKEN``, the file
``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``).
"""

import hashlib
import logging
import os
import socket
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .._typing import PathLike
from ..errors import InputError
from .manifest import file_sha256

__all__ = [
    "Job",
    "Worker",
    "OnResult",
    "run_local",
    "run_ray",
    "connect_ray",
    "check_ray_address",
    "job_file",
    "cpu_count",
    "one_line",
]

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One unit of work for ``run_local`` or ``run_ray``.

    Attributes:
        index: unique, stable id of the job (e.g. an item's position); ``on_result`` gets the job back.
        name: what messages call it ("chair.ply", "tile 3_1_0").
        payload: everything the worker function needs; picklable, since it travels to a spawned
            process or a Ray task.
    """

    index: int
    name: str
    payload: Any


Worker = Callable[[Any, str, int], dict[str, Any]]
"""``fn(payload, device, threads) -> result``: runs one job in a worker.

``device`` is "cpu", "cuda" or "cuda:N" and ``threads`` the torch threads granted (the executor
has already called ``torch.set_num_threads``). The result is a plain picklable dict with ``"ok"``;
a job's own failure is ``{"ok": False, "error": "one line"}`` (plus ``"traceback"`` when useful),
never an exception. ``fn`` must be a module-level function so that it pickles by reference. The
executor adds ``"seconds"`` (wall time of the call), ``"peak_memory_mb"`` (peak resident memory of
the worker process during the call, MiB) and ``"worker"`` (``host:pid``) unless ``fn`` set them.
"""

OnResult = Callable[[Job, dict[str, Any], int], None]
"""``on_result(job, result, attempts)``: called in the driver, once per job, as each finishes.

``attempts`` counts the runs started for the job (above 1 after a local worker process died; 1 on
Ray, which retries inside the task). A job that never returned (its worker died on every attempt,
or Ray gave up on it) gets ``{"ok": False, "error": ...}`` from the executor.
"""


# ----------------------------------------------------------------------------- helpers
def one_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (its type name when it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def cpu_count() -> int:
    """Return the cores this process may use (its affinity set on Linux)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- the worker side
_shipped = threading.local()
"""``files``: ``{path: (sha256, ObjectRef)}`` the driver shipped with the Ray job running in this thread."""


def job_file(path: str, tmp: PathLike) -> tuple[str, bool]:
    """In a worker: return a readable path holding the driver's bytes of ``path``.

    ``run_ray(..., inputs=...)`` ships the files a job names. Where this machine has the same
    bytes at ``path`` (the driver's machine, or a shared file system), that path is returned;
    elsewhere the shipped bytes are written under ``tmp`` (same file name) and the copy is
    returned. A file that was not shipped (local processes) is returned as it is, so the worker's
    loader reports a missing file under its real name.

    Args:
        path: the file's path on the driver, as the payload names it.
        tmp: a folder of the worker's for copies (e.g. a ``tempfile.TemporaryDirectory``).

    Returns:
        ``(path to read, True when it is a copy)``.
    """
    entry = getattr(_shipped, "files", {}).get(path)
    if entry is None:
        return path, False
    sha256, ref = entry
    p = Path(path)
    if p.is_file():
        try:
            if file_sha256(p) == sha256:
                return path, False
        except OSError:
            pass
    import ray

    folder = Path(tmp) / sha256[:16]  # two shipped files may share a name
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / p.name
    copy.write_bytes(ray.get(ref))
    return str(copy), True


def _reset_peak_memory() -> None:
    # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM), so a reused worker reports the
    # peak of the current job rather than of its whole life.
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


def _call(fn: Worker, payload: Any, device: str, threads: int) -> dict[str, Any]:
    """Run one job in this worker; add its time, peak memory and worker name to the result."""
    _reset_peak_memory()
    t0 = time.perf_counter()
    try:
        result = fn(payload, device, threads)
    except Exception as exc:  # a bug of the worker function: recorded for this job, the others go on
        result = {"ok": False, "error": f"{type(exc).__name__}: {one_line(exc)}", "traceback": traceback.format_exc()}
    if not isinstance(result, dict):
        result = {"ok": False, "error": f"the worker function returned {type(result).__name__}, not a dict"}
    result.setdefault("seconds", time.perf_counter() - t0)
    result.setdefault("peak_memory_mb", _peak_memory_mb())
    result.setdefault("worker", f"{socket.gethostname()}:{os.getpid()}")
    return result


def _watch_parent(parent_pid: int) -> None:
    """Exit this worker when the driver is gone (e.g. SIGKILLed), so no orphan keeps computing."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(0.5)


def _worker_main(conn: Any, parent_pid: int, fn: Worker, threads: int, device: str, log_level: int) -> None:
    """Entry point of a spawned worker process: run the payloads sent on ``conn`` until told to stop."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and ends its workers
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    logging.basicConfig(level=log_level, format=f"neural-sdf[worker {os.getpid()}]: %(message)s", force=True)
    torch.set_num_threads(threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        (payload,) = message
        conn.send(_call(fn, payload, device, threads))


def _ray_job(fn: Worker, payload: Any, device: str, threads: int, shipped: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """Body of a Ray task: one job with the CPU threads (and GPU) Ray granted."""
    import torch

    torch.set_num_threads(max(1, threads))
    if device != "cpu" and not torch.cuda.is_available():
        device = "cpu"
    _shipped.files = shipped
    try:
        return _call(fn, payload, device, threads)
    finally:
        _shipped.files = {}


# ----------------------------------------------------------------------------- local processes
@dataclass
class _Slot:
    process: Any
    conn: Any
    job: Optional[Job] = None


def _check_jobs(jobs: Sequence[Job]) -> None:
    indices = [j.index for j in jobs]
    if len(set(indices)) != len(indices):
        raise ValueError("jobs must have unique indices")


def run_local(
    fn: Worker,
    jobs: Sequence[Job],
    *,
    processes: int,
    threads: int,
    devices: Sequence[str],
    retries: int,
    on_result: OnResult,
) -> None:
    """Run ``jobs`` on ``processes`` spawned worker processes; call ``on_result`` for each as it finishes.

    Worker ``i`` runs ``threads`` torch threads on ``devices[i % len(devices)]`` and takes jobs one
    at a time. A worker process that dies (crash, out of memory, killed) is replaced and its job
    retried up to ``retries`` times. Workers ignore Ctrl-C and exit when the driver is gone; on
    any exception here (Ctrl-C included) the workers are ended before it propagates.

    Args:
        fn: module-level worker function (see ``Worker``).
        jobs: the jobs, started in order.
        processes: worker processes (at most one per job).
        threads: torch threads per worker.
        devices: torch devices the workers are spread over, e.g. ``["cpu"]`` or ``["cuda:0", "cuda:1"]``.
        retries: extra attempts of a job whose worker process died.
        on_result: called in this process for each finished job (see ``OnResult``).

    Raises:
        ValueError: non-positive counts, no devices, or duplicate job indices.
        RuntimeError: worker processes keep exiting on start-up.
    """
    import multiprocessing as mp
    from multiprocessing.connection import wait

    if processes < 1 or threads < 1 or retries < 0:
        raise ValueError(f"processes and threads must be >= 1 and retries >= 0, got {processes}, {threads}, {retries}")
    if not devices:
        raise ValueError("devices must name at least one device, got none")
    _check_jobs(jobs)
    if not jobs:
        return
    ctx = mp.get_context("spawn")
    queue = deque(jobs)
    attempts: dict[int, int] = {j.index: 0 for j in jobs}
    slots: list[Optional[_Slot]] = [None] * min(processes, len(jobs))
    start_failures = 0
    level = max(logging.getLogger("neural_sdf").getEffectiveLevel(), logging.WARNING)

    def start(i: int) -> _Slot:
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), fn, threads, devices[i % len(devices)], level),
            name=f"neural-sdf-worker-{i}",
            daemon=True,
        )
        proc.start()
        child.close()
        return _Slot(proc, parent)

    try:
        for i in range(len(slots)):
            slots[i] = start(i)
        while queue or any(s is not None and s.job is not None for s in slots):
            for s in slots:
                if s is not None and s.job is None and queue:
                    job = queue.popleft()
                    attempts[job.index] += 1
                    s.job = job
                    s.conn.send((job.payload,))
            busy = [s for s in slots if s is not None and s.job is not None]
            wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=1.0)
            for i, s in enumerate(slots):
                if s is None or s.job is None:
                    continue
                job = s.job
                result = None
                if s.conn.poll():
                    try:
                        result = s.conn.recv()
                    except (EOFError, OSError):
                        result = None
                if result is not None:
                    s.job = None
                    on_result(job, result, attempts[job.index])
                    continue
                if s.process.is_alive():
                    continue
                code = s.process.exitcode
                s.conn.close()
                slots[i] = start(i)
                if attempts[job.index] <= retries:
                    log.warning("%s: worker process died (exit code %s); retrying", job.name, code)
                    queue.appendleft(job)
                else:
                    error = f"worker process died (exit code {code}) on each of {attempts[job.index]} attempts"
                    on_result(job, {"ok": False, "error": error}, attempts[job.index])
            for i, s in enumerate(slots):
                if s is not None and s.job is None and not s.process.is_alive():
                    start_failures += 1
                    if start_failures > 2 * len(slots) + 2:
                        raise RuntimeError(f"worker processes exit on start-up (exit code {s.process.exitcode})")
                    s.conn.close()
                    slots[i] = start(i)
    finally:
        for s in slots:
            if s is None:
                continue
            if s.job is None and s.process.is_alive():
                try:
                    s.conn.send(None)
                except OSError:
                    pass
            else:
                s.process.terminate()
        for s in slots:
            if s is None:
                continue
            s.process.join(timeout=5)
            if s.process.is_alive():
                s.process.kill()
                s.process.join()
            s.conn.close()


# ----------------------------------------------------------------------------- Ray
_TOKEN_HINT = (
    "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to the head's token "
    "(on the head: `ray get-auth-token` prints it; Ray keeps it in ~/.ray/auth_token)"
)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError("Ray is not installed; install the 'cluster' extra: pip install 'neural-sdf[cluster]'") from exc
    return ray


def _default_token_file() -> Optional[Path]:
    """Ray's default token file, ``~/.ray/auth_token`` (None without a home folder)."""
    try:
        return Path.home() / ".ray" / "auth_token"
    except RuntimeError:
        return None


def _has_text(path: Path) -> bool:
    try:
        return path.is_file() and bool(path.read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        return False


def _ray_token_source() -> Optional[str]:
    """Name where Ray will read its auth token from, in Ray's order; None when nowhere. Never the token.

    Ray 2.60 reads ``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH`` names, else
    ``~/.ray/auth_token``.
    """
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "")
    if named:
        return f"RAY_AUTH_TOKEN_PATH ({named})" if _has_text(Path(named)) else None
    default = _default_token_file()
    return str(default) if default is not None and _has_text(default) else None


def _check_ray_token(address: str) -> None:
    """Fail fast (one line) when the token settings cannot work, before any work starts."""
    named = os.environ.get("RAY_AUTH_TOKEN_PATH", "")
    if named and not os.environ.get("RAY_AUTH_TOKEN", "").strip() and not _has_text(Path(named)):
        raise InputError(f"`ray_address={address}`: RAY_AUTH_TOKEN_PATH={named}: no such file, or it is empty; {_TOKEN_HINT}")
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode == "token" and _ray_token_source() is None:
        raise InputError(f"`ray_address={address}`: RAY_AUTH_MODE=token but no Ray token was found; {_TOKEN_HINT}")


def _use_ray_token(address: str) -> Optional[str]:
    """Make this process send Ray's token when it joins a cluster; return the token's source.

    A cluster started with ``ray start --head`` requires a token when one existed on the head at
    start-up (Ray 2.60 default). ``ray.init(address="auto")`` then switches token mode on by itself
    when a token is found, but an explicit ``HOST:PORT`` (or "auto" resolved through
    ``RAY_ADDRESS``) does not, and the GCS answers "InvalidAuthToken: Authentication token is
    missing or incorrect". So, as Ray does for "auto": with ``RAY_AUTH_MODE`` unset and a token
    available, set ``RAY_AUTH_MODE=token`` for this process (its children inherit it). A cluster
    without authentication ignores the token. An explicit ``RAY_AUTH_MODE`` is left as it is.
    """
    _check_ray_token(address)
    source = _ray_token_source()
    if os.environ.get("RAY_AUTH_MODE") is None and source is not None:
        os.environ["RAY_AUTH_MODE"] = "token"
        log.info("Ray: joining %s with token authentication (token from %s)", address, source)
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token":
        # Ray reads its config, the auth mode included, once at import and caches the token:
        # re-read both, as Ray itself does when it switches token mode on.
        try:
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        except (ImportError, AttributeError):  # another Ray version: it reads the environment itself
            pass
    return source


def _is_auth_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: Optional[BaseException] = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = f"{type(cur).__name__}: {cur}"
        if any(key in text for key in ("InvalidAuthToken", "AuthenticationError", "Unauthenticated")):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def check_ray_address(address: Optional[str]) -> None:
    """Check, before any work, that Ray is installed and (for ``HOST:PORT``) that the cluster answers.

    Args:
        address: ``HOST:PORT``, ``ray://HOST:PORT``, ``auto``, or None / "" (a local instance).

    Raises:
        ImportError: Ray is not installed (names the extra to install).
        InputError: a malformed address, a ``HOST:PORT`` nobody answers on (one line, within
            5 s), or token settings that cannot work (``RAY_AUTH_TOKEN_PATH`` naming a missing
            file, ``RAY_AUTH_MODE=token`` without a token).
    """
    _import_ray()
    if not address:
        return
    if address != "auto":
        hostport = address.split("://", 1)[1] if "://" in address else address
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise InputError(f"`ray_address={address}`: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise InputError(f"`ray_address={address}`: cannot reach a Ray cluster there ({reason})") from None
    _check_ray_token(address)


def connect_ray(address: Optional[str]) -> bool:
    """Join the Ray cluster at ``address``, or start a private local instance; do nothing if connected.

    ``HOST:PORT`` (or ``ray://HOST:PORT``) joins a cluster started with ``ray start --head``;
    ``auto`` joins the one this machine belongs to (``RAY_ADDRESS``, else the latest ``ray start``
    here). Both send Ray's auth token when one is available (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), which Ray 2.60's clusters require by
    default. None or "" starts a private instance with this machine's cores, even where
    ``RAY_ADDRESS`` is set.

    Returns:
        True when this call connected (the caller then passes ``started=True`` to ``run_ray``,
        which disconnects at the end); False when this process was connected already.

    Raises:
        ImportError: Ray is not installed.
        InputError: the cluster cannot be joined; one line, which says what to set when the
            cluster refused (or was not sent) a token. The token itself is never printed.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if not address:
        # "local": a new instance even where RAY_ADDRESS or a `ray start` on this machine would
        # make ray.init() join that cluster (and reject num_cpus there).
        ray.init(address="local", num_cpus=cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        return True
    source = _use_ray_token(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, AuthenticationError, ... for a bad cluster
        if _is_auth_failure(exc):
            mode = os.environ.get("RAY_AUTH_MODE", "").strip()
            if mode.lower() not in ("", "token"):
                why = f"it requires a token, but RAY_AUTH_MODE={mode} keeps this process from sending one; unset RAY_AUTH_MODE and"
            elif source is not None:
                why = f"it refused the token from {source};"
            else:
                why = "it requires a token and none was found;"
            raise InputError(f"`ray_address={address}`: cannot join the Ray cluster: {why} {_TOKEN_HINT}") from None
        raise InputError(f"`ray_address={address}`: cannot join the Ray cluster ({one_line(exc)})") from None
    return True


class _Shipper:
    """Driver side of ``run_ray``'s file shipping: one Ray object per file while jobs that read it run."""

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._files: dict[str, list[Any]] = {}  # path -> [sha256, ref, jobs in flight]

    def acquire(self, paths: Sequence[str]) -> dict[str, tuple[str, Any]]:
        shipped = {}
        for path in dict.fromkeys(paths):
            entry = self._files.get(path)
            if entry is None:
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    continue  # not shipped: the worker reports the file under its own name
                entry = self._files[path] = [hashlib.sha256(data).hexdigest(), self._ray.put(data), 0]
            entry[2] += 1
            shipped[path] = (entry[0], entry[1])
        return shipped

    def release(self, paths: Sequence[str]) -> None:
        for path in dict.fromkeys(paths):
            entry = self._files.get(path)
            if entry is not None:
                entry[2] -= 1
                if entry[2] <= 0:
                    del self._files[path]


def run_ray(
    fn: Worker,
    jobs: Sequence[Job],
    *,
    threads: Optional[int],
    retries: int,
    started: bool,
    on_result: OnResult,
    inputs: Optional[Callable[[Job], Sequence[str]]] = None,
) -> None:
    """Run every job as a Ray task of the connected cluster; call ``on_result`` for each as it finishes.

    Each task requests ``threads`` CPUs (default 1) and, when the cluster has GPUs, one GPU (its
    device is then "cuda"; "cpu" on a node without CUDA). At most twice as many tasks as fit the
    cluster's CPUs are in flight at once (with their shipped files). A task whose worker dies is
    retried ``retries`` times by Ray. On any exception here (Ctrl-C included) the running tasks
    are cancelled before it propagates.

    Args:
        fn: module-level worker function (see ``Worker``); the cluster's nodes must import it.
        jobs: the jobs, submitted in order.
        threads: CPUs (torch threads) per task; None for 1.
        retries: extra attempts of a task whose worker died (Ray's ``max_retries``).
        started: this process connected to Ray for these jobs (``connect_ray`` returned True), so
            it disconnects at the end (stopping a private local instance).
        on_result: called in this process for each finished job (see ``OnResult``).
        inputs: files each job reads, as paths on this machine: their bytes travel as Ray objects
            (one per file while jobs that read it run), and the worker opens them with
            ``job_file``, so nodes without those files (or the same paths) can run the job.

    Raises:
        ImportError: Ray is not installed.
        ValueError: duplicate job indices.
    """
    ray = _import_ray()
    _check_jobs(jobs)
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0) > 0
        cpus_per_task = threads or 1
        device = "cuda" if gpus else "cpu"
        remote = ray.remote(_ray_job).options(
            num_cpus=cpus_per_task, num_gpus=1 if gpus else 0, max_retries=retries, retry_exceptions=False
        )
        limit = max(2, 2 * int(resources.get("CPU", 1) // cpus_per_task))
        queue = deque(jobs)
        running: dict[Any, tuple[Job, list[str]]] = {}
        shipper = _Shipper(ray)
        try:
            while queue or running:
                while queue and len(running) < limit:
                    job = queue.popleft()
                    paths = [str(p) for p in inputs(job)] if inputs is not None else []
                    shipped = shipper.acquire(paths)
                    running[remote.remote(fn, job.payload, device, cpus_per_task, shipped)] = (job, paths)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
                for ref in ready:
                    job, paths = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        result = {"ok": False, "error": f"Ray task failed after {retries + 1} attempts: {one_line(exc)}"}
                    shipper.release(paths)
                    on_result(job, result, 1)
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
    finally:
        if started:
            ray.shutdown()
