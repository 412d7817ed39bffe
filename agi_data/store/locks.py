"""Locks of the store: one writer per run, commits to a run taking turns.

The store needs one primitive, :class:`Lock`; a backend supplies it. Its
contract (four members, no more):

``acquire(timeout_s)``
    take the lock, waiting at most ``timeout_s`` seconds (``0``: do not
    wait); on failure raise :class:`~agi_data.store.errors.RunLockedError`
    whose message names the holder (pid, host, since) — never wait forever.
``release()``
    give it back (idempotent).
``holder()``
    the current :class:`Holder` or ``None``.
``held``
    whether this object holds it.

A holder is *stale* when it can no longer release the lock: a process that
died (local) or a lease that expired (object storage). A stale holder never
blocks anyone: the local lock below is an ``fcntl.flock`` lock, which the
kernel drops when its process dies, even by SIGKILL; a lease-based lock
takes over an expired lease. A holder that is alive but stopped (SIGSTOP,
a hung network mount) is *not* stale: waiters give up at their bound with
an error that names it, and the user decides.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import RunLockedError

#: seconds a commit waits for another commit of the same run before giving up
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: process id, host name and since when (UTC, ISO 8601)."""

    pid: int
    host: str
    since: str

    @classmethod
    def me(cls) -> Holder:
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), now)

    @property
    def stale(self) -> bool:
        """True when the holder is a process of this host that no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self) -> str:
        state = " (stale: that process no longer exists)" if self.stale else ""
        return f"pid {self.pid} on {self.host} since {self.since}{state}"


class Lock(Protocol):
    """The locking primitive a store backend provides (see the module docstring)."""

    what: str

    def acquire(self, timeout_s: float = 0.0) -> Lock: ...

    def release(self) -> None: ...

    def holder(self) -> Holder | None: ...

    @property
    def held(self) -> bool: ...


def locked_error(what: str, holder: Holder | None, timeout_s: float, where: str) -> RunLockedError:
    """The error of a lock that could not be taken in time: who holds it and what to do."""
    who = holder.describe() if holder else "an unknown holder"
    waited = f"after waiting {timeout_s:g} s" if timeout_s > 0 else "without waiting"
    return RunLockedError(
        f"{what} is held by another writer: {who} ({where}); gave up {waited}. Let that writer finish or stop it "
        "(a stopped process keeps its lock until it is resumed or killed); one writer per run at a time"
    )


class FileLock:
    """:class:`Lock` on a local file: ``fcntl.flock`` plus the holder written into the file."""

    def __init__(self, path: Path, what: str):
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def acquire(self, timeout_s: float = 0.0) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        deadline = time.monotonic() + max(0.0, timeout_s)
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise locked_error(self.what, self.holder(), timeout_s, f"lock {self.path}") from None
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                pause = min(pause * 2, 0.2)
        record = json.dumps(Holder.me().__dict__).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd
        return self

    def holder(self) -> Holder | None:
        try:
            info = json.loads(self.path.read_bytes() or b"null")
            return Holder(int(info["pid"]), str(info["host"]), str(info["since"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
