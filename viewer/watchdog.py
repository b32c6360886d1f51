"""Run a command under a watchdog: kill it when it runs past a time limit, then try once more.

The viewer's unattended modes (``--screenshot``, ``--export-interp``) use it because Mesa's CPU
Vulkan driver (lavapipe) now and then never finishes a lit frame: one llvmpipe thread loops in
JIT-compiled shader code and nothing in the process can interrupt it (scripts/README.md, "Viewer"), while a
fresh process renders the same frame in seconds. The interactive window is not guarded: a person
can close it.
"""

import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Mapping, Optional, Sequence

__all__ = ["WatchdogTimeout", "run_with_watchdog", "remove_partial_outputs"]

log = logging.getLogger(__name__)


class WatchdogTimeout(RuntimeError):
    """Every attempt of ``run_with_watchdog`` ran past its time limit and was killed."""


def remove_partial_outputs(outputs: Sequence[Path]) -> list[Path]:
    """Delete the temporary files that ``neural_sdf.io.atomic_write`` leaves when its process is killed.

    For a folder output (numbered PNG frames) the leftovers of the files inside it are removed too.

    Returns:
        The paths removed.
    """
    from neural_sdf.io import partial_files, partial_files_in

    removed = []
    for out in outputs:
        out = Path(out)
        leftovers = partial_files(out) + (partial_files_in(out) if out.is_dir() else [])
        for leftover in leftovers:
            try:
                leftover.unlink()
                removed.append(leftover)
            except OSError:
                pass
    return removed


def run_with_watchdog(
    cmd: Sequence[str],
    timeout_s: float,
    attempts: int = 2,
    env: Optional[Mapping[str, str]] = None,
    outputs: Sequence[Path] = (),
) -> int:
    """Run ``cmd``; kill it (with its process group) after ``timeout_s`` seconds and start it again.

    The child shares this process's stdin, stdout and stderr. After a kill, partial outputs of
    ``outputs`` are removed (see ``remove_partial_outputs``).

    Args:
        cmd: the command line.
        timeout_s: seconds an attempt may run (wall time), > 0.
        attempts: how many times to start it, >= 1.
        env: the child's environment (default: this process's).
        outputs: files or folders the command writes.

    Returns:
        The exit status of the first attempt that finished in time.

    Raises:
        WatchdogTimeout: every attempt was killed.
    """
    if timeout_s <= 0 or attempts < 1:
        raise ValueError(f"need timeout_s > 0 and attempts >= 1, got {timeout_s} and {attempts}")
    for attempt in range(1, attempts + 1):
        proc = subprocess.Popen(list(cmd), env=dict(env) if env is not None else None, start_new_session=True)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        remove_partial_outputs(outputs)
        log.warning("attempt %d of %d did not finish within %.0f s and was killed (the CPU Vulkan driver sometimes "
                    "hangs)%s", attempt, attempts, timeout_s, "; starting again" if attempt < attempts else "")
    raise WatchdogTimeout(f"no result after {attempts} attempts of {timeout_s:.0f} s each (CPU Vulkan driver hang?)")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
