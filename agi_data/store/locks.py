"""Advisory file locks: one writer per run (and per Wannier set) at a time.

``fcntl.flock`` locks belong to the open file and vanish when the process
dies, even by SIGKILL: a crashed writer never leaves a run locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import RunLockedError


class FileLock:
    def __init__(self, path: Path, what: str, *, blocking: bool = False):
        self.path = Path(path)
        self.what = what
        self.blocking = blocking
        self._fd: int | None = None

    def acquire(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self.blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLockedError(
                f"{self.what} is open for writing by another writer (lock {self.path}); "
                "close that writer first — one writer per run at a time"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
