"""One process at a time appends to a home: its lock, who holds it, and a probe.

A training job holds the lock for its whole run, so readers can tell a job in
flight (its holder alive) from one whose coordinator was killed.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError, one_line

ENV_LOCK_WAIT = "BUBBLECHAIN_LOCK_WAIT"
DEFAULT_LOCK_WAIT = 30.0
NOTICE_AFTER = 1.0
"""Seconds of waiting for the lock before ``on_wait`` is told who holds it."""
PROBE_TRIES = 3
"""Tries, 50 ms apart, before a writer with no wait left gives up."""


def lock_wait_seconds() -> float:
    """How long opening for writing waits for another writer: $BUBBLECHAIN_LOCK_WAIT, or 30 s.

    One process at a time sequences a home, and a training job holds it for the
    whole job: a script that should queue behind one sets a longer wait.
    """
    text = os.environ.get(ENV_LOCK_WAIT)
    if text is None or not text.strip():
        return DEFAULT_LOCK_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise UsageError(f"{ENV_LOCK_WAIT} must be a number of seconds >= 0, got {text!r}")
    return seconds


class HomeLock:
    """An exclusive lock so that one process at a time sequences a home.

    The holder writes who it is (pid, start time, command) into the lock file,
    so that a process kept waiting, and its error, can name it.
    """

    def __init__(
        self, path: Path, timeout: float, on_wait: Callable[[str, float], None] | None = None
    ):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(path, timeout, on_wait)
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, _whoami().encode(errors="replace"), 0)
        except BaseException:  # timed out, interrupted, or the callback failed
            os.close(self.fd)
            raise

    def _acquire(
        self, path: Path, timeout: float, on_wait: Callable[[str, float], None] | None
    ) -> None:
        start = time.monotonic()
        told = on_wait is None
        tries = 0
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                waited = time.monotonic() - start
                tries += 1
                # Even with no wait, a few tries: a reader's probe holds the lock for
                # microseconds (`appending_process`) and must not fail a writer.
                if waited >= timeout and tries >= PROBE_TRIES:
                    raise UsageError(
                        f"ledger {path.parent} is in use by {self.holder()}; gave up after "
                        f"{timeout:g} s (lock {path}; {ENV_LOCK_WAIT} sets the wait)"
                    ) from None
                if not told and waited >= NOTICE_AFTER:
                    told = True
                    on_wait(self.holder(), timeout)
                time.sleep(0.05)

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it, or "another process"."""
        return _holder(self.fd)

    def release(self) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _holder(fd: int) -> str:
    text = one_line(os.pread(fd, 1000, 0).decode(errors="replace").strip())
    return f"another process ({text})" if text else "another process"


def appending_process(lock: Path) -> str | None:
    """Who holds a home's append lock now (as `HomeLock.holder` names it), or None.

    Probes without waiting: a writer that asks at the same instant retries 50 ms later.
    """
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _whoami() -> str:
    """This process as a lock holder: pid, start (UTC) and command line, on one line."""
    argv = list(sys.argv) or ["python"]
    script = Path(argv[0])
    argv[0] = f"python -m {script.parent.name}" if script.name == "__main__.py" else script.name
    since = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    return one_line(f"pid {os.getpid()} since {since}: {argv[0]} {shlex.join(argv[1:])}")[:500]


def is_appending(lock: Path, *, unknown: bool) -> bool:
    """Whether a process appends to the home of ``lock`` now; ``unknown`` when the lock
    cannot be read here (a caller that would claim something of it passes False)."""
    try:
        return appending_process(lock) is not None
    except OSError:
        return unknown
