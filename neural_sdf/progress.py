"""Progress for long work: a tqdm bar on a terminal, plain log lines everywhere else.

When stderr is a terminal, ``progress_bar`` is ``tqdm`` (bar, rate, ETA). When it is not (CI, batch
logs, ``2> log``), carriage-return bars would fill the log with fragments, so each stage prints one
plain line at most every tenth of the work or every 30 s, plus one at the end, with the same
ETA. ``disable=True`` (``--quiet``, ``progress=False``) prints nothing either way.
"""

import sys
import time
from typing import Any, Iterable, Iterator, Optional

__all__ = ["progress_bar", "PlainProgress", "PLAIN_EVERY_SECONDS", "PLAIN_EVERY_FRACTION"]

PLAIN_EVERY_SECONDS = 30.0
"""Longest wait between two plain progress lines of one stage."""

PLAIN_EVERY_FRACTION = 0.1
"""Share of a stage's total between two plain progress lines."""


class PlainProgress:
    """tqdm's interface (the part this package uses) writing whole lines to stderr."""

    def __init__(self, iterable: Optional[Iterable[Any]] = None, total: Optional[float] = None, desc: str = "",
                 unit: str = "it", initial: float = 0, disable: bool = False, **_: Any) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.n, self.disable = total, desc, unit, initial, disable
        self.start = self.last_time = time.monotonic()
        self.initial = self.last_n = initial
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = dict(ordered_dict or {}, **kwargs)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        step = PLAIN_EVERY_FRACTION * self.total if self.total else float("inf")
        if now - self.last_time >= PLAIN_EVERY_SECONDS or self.n - self.last_n >= step:
            self._line(now)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed and self.n != self.last_n:
            self._line(time.monotonic())
        self.closed = True

    def _line(self, now: float) -> None:
        self.last_time, self.last_n = now, self.n
        if self.disable:
            return
        elapsed = now - self.start
        done = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        text = f"{self.desc}: {done} {self.unit}, {elapsed:.0f} s"
        if self.total and self.n > self.initial and self.n < self.total:
            rate = (self.n - self.initial) / max(elapsed, 1e-9)
            text += f", about {(self.total - self.n) / rate:.0f} s left"
        if self.postfix:
            text += f" ({self.postfix})"
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def progress_bar(iterable: Optional[Iterable[Any]] = None, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)`` on a terminal, ``PlainProgress`` otherwise (same arguments)."""
    stream = sys.stderr
    if hasattr(stream, "isatty") and stream.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    return PlainProgress(iterable, **kwargs)
