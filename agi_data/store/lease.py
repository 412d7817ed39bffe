"""Writer leases on object storage: one writer per run where there is no ``fcntl``.

A lease is a small JSON object, ``<prefix>/locks/<run_id>@<part>.lease``,
holding who has it (pid, host, since), a token of this acquisition and the
lease's lifetime ``ttl_s``. Every change to it is a conditional write, so
each is atomic on the server:

take
    ``PUT`` with ``If-None-Match: *``: succeeds for exactly one of any number
    of writers racing for a free lease; the others get 412.
renew
    while held, a background thread rewrites it every ``ttl_s / 3`` with
    ``If-Match: <its ETag>``; the object's ``Last-Modified`` (the server's
    clock) moves forward. A renewal refused with 412 means someone took the
    lease over: from then on the lease is lost and the holder commits
    nothing more (see :meth:`S3Lease.ensure_fresh`).
expire / take over
    a lease whose ``Last-Modified`` is more than ``ttl_s`` (+ 1 s for the
    server's one-second clock resolution) older than the server's ``Date``
    is expired, and so is one whose holder is a process of this host that
    no longer exists. A contender takes it over with ``If-Match`` on the
    ETag it read: of several contenders only one succeeds.
release
    ``DELETE`` with ``If-Match``: a lease that was taken over is not removed
    under its new holder.

Both ages are measured on the server's clock, so the client clocks of
writer and contender need not agree.

**A writer that dies holding a lease** (SIGKILL, node lost) leaves the
object behind. Another process on the same host takes it over at once (its
pid is gone); a process on another host waits until ``ttl_s`` has passed
since the last renewal (default 60 s, ``AGI_STORE_LEASE_TTL_S``). Nothing
of the dead writer's interrupted append is visible: appends are Icechunk
transactions, published by one conditional write of the branch reference.

**A writer that stalls** (stopped, partitioned) longer than ``ttl_s`` loses
its lease; when it resumes, it renews before its next commit, gets 412 and
raises :class:`~agi_data.store.errors.RunLockedError` instead of
committing. Should a commit still race a takeover (a stall between the
renewal and the commit itself), Icechunk's conflict detection refuses the
second of two appends built on the same snapshot — both resize the same
arrays — so two writers never interleave frames silently.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import weakref
from email.utils import parsedate_to_datetime

from .errors import RunLockedError
from .locks import Holder, locked_error

#: default lifetime of a lease without renewal, seconds
DEFAULT_TTL_S = 60.0
#: added to ``ttl_s`` before a lease counts as expired: the server's clock has one-second resolution
CLOCK_RESOLUTION_S = 1.0


def default_ttl_s() -> float:
    """The lease lifetime: ``$AGI_STORE_LEASE_TTL_S`` or 60 s."""
    value = os.environ.get("AGI_STORE_LEASE_TTL_S")
    if not value:
        return DEFAULT_TTL_S
    try:
        ttl = float(value)
    except ValueError:
        raise ValueError(f"AGI_STORE_LEASE_TTL_S must be a number of seconds, got {value!r}") from None
    if not ttl > 0:
        raise ValueError(f"AGI_STORE_LEASE_TTL_S must be > 0, got {value!r}")
    return ttl


def _status(err) -> int | None:
    return getattr(err, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")


class S3Lease:
    """:class:`~agi_data.store.locks.Lock` on object storage: a lease renewed while held.

    ``location`` is an :class:`~agi_data.store.location.S3Location`; ``key``
    the lease object's path under its prefix. ``holder`` overrides who this
    process says it is (tests use it to play a writer on another host).
    """

    def __init__(self, location, key: str, what: str, *, ttl_s: float | None = None, holder: Holder | None = None):
        self.location = location
        self.key = key
        self.what = what
        self.ttl_s = float(ttl_s) if ttl_s is not None else default_ttl_s()
        self._me = holder
        self._etag: str | None = None
        self._renewed_at = 0.0  # time.monotonic() of the last successful write
        self._lost: str | None = None
        self._seen: Holder | None = None  # the holder that kept us out last time
        self._who: Holder = holder or Holder.me()  # this writer, since its latest acquisition
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    # ------------------------------------------------------------ protocol
    @property
    def held(self) -> bool:
        return self._etag is not None and self._lost is None

    def holder(self) -> Holder | None:
        info = self._read()
        return None if info is None else info[0]

    def acquire(self, timeout_s: float = 0.0) -> S3Lease:
        deadline = time.monotonic() + max(0.0, timeout_s)
        pause = 0.05
        races = 0
        while True:
            taken = self._try_take()
            if taken:
                break
            if taken is None and races < 5:  # released while we looked: it is free, try at once
                races += 1
                continue
            if time.monotonic() >= deadline:
                raise locked_error(self.what, self._seen or self.holder(), timeout_s, f"lease s3://{self.location.bucket}/{self._key}")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)
        _HELD.add(self)
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease {self.key}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None
        _HELD.discard(self)
        with self._mutex:
            etag, self._etag = self._etag, None
            if etag is not None and self._lost is None:
                from botocore.exceptions import ClientError

                try:
                    self.location.client().delete_object(Bucket=self.location.bucket, Key=self._key, IfMatch=etag)
                except ClientError as err:
                    if _status(err) not in (404, 412):  # gone or taken over: nothing of ours to remove
                        raise self.location.explain(err, f"releasing {self.what}") from err
            self._lost = None

    def __enter__(self) -> S3Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ---------------------------------------------------------------- state
    def ensure_fresh(self) -> None:
        """Before a commit: renew now unless renewed within ``ttl_s / 4``; raise if the lease is lost."""
        if self._etag is None:
            return
        if self._lost is None and time.monotonic() - self._renewed_at > self.ttl_s / 4:
            self._renew()
        if self._lost is not None:
            raise RunLockedError(
                f"{self.what}: this writer lost its lease ({self._lost}); nothing more was committed. "
                "Another writer took the run over after the lease expired; reopen the run to continue"
            )

    # ------------------------------------------------------------ internals
    @property
    def _key(self) -> str:
        return self.location.key(self.key)

    def _body(self) -> bytes:
        me = self._who
        # a fresh nonce on every write: S3's ETag is the body's MD5, so If-Match must see a new body each time
        return json.dumps({"holder": me.__dict__, "ttl_s": self.ttl_s, "nonce": uuid.uuid4().hex,
                           "renewed": time.time()}).encode()

    def _read(self):
        """``(holder, ttl_s, etag, age_s)`` of the lease object, or None when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.location.client().get_object(Bucket=self.location.bucket, Key=self._key)
            body = resp["Body"].read()
        except ClientError as err:
            if _status(err) == 404:
                return None
            raise self.location.explain(err, f"reading the lease of {self.what}") from err
        except BotoCoreError as err:
            raise self.location.explain(err, f"reading the lease of {self.what}") from err
        now = parsedate_to_datetime(resp["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - resp["LastModified"]).total_seconds()
        try:
            info = json.loads(body)
            h = info["holder"]
            holder = Holder(int(h["pid"]), str(h["host"]), str(h["since"]))
            ttl = float(info["ttl_s"])
        except (ValueError, KeyError, TypeError):
            holder, ttl = Holder(0, "?", "?"), 0.0  # unreadable: treat as expired
        return holder, ttl, resp["ETag"], age

    def _put(self, **condition) -> str | None:
        """Conditional write of a fresh body; its ETag, or None when the condition failed."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.location.client().put_object(Bucket=self.location.bucket, Key=self._key, Body=self._body(),
                                                     ContentType="application/json", **condition)
        except ClientError as err:
            if _status(err) in (409, 412):
                return None
            raise self.location.explain(err, f"writing the lease of {self.what}") from err
        except BotoCoreError as err:
            raise self.location.explain(err, f"writing the lease of {self.what}") from err
        return resp["ETag"]

    def _try_take(self) -> bool | None:
        """True: taken; False: held by a live holder; None: released between our two requests."""
        started = time.monotonic()
        self._who = self._me or Holder.me()
        etag = self._put(IfNoneMatch="*")
        if etag is None:
            info = self._read()
            if info is None:
                return None
            holder, ttl, current, age = info
            self._seen = holder
            if not (age > ttl + CLOCK_RESOLUTION_S or holder.stale):
                return False
            etag = self._put(IfMatch=current)  # take over; of several contenders one wins
            if etag is None:
                return None
        with self._mutex:
            self._etag, self._renewed_at, self._lost = etag, started, None
        return True

    def _renew(self) -> None:
        with self._mutex:
            if self._etag is None or self._lost is not None:
                return
            started = time.monotonic()
            try:
                etag = self._put(IfMatch=self._etag)
            except Exception as err:  # noqa: BLE001 - a failed renewal is retried; expiry decides
                if time.monotonic() - self._renewed_at > self.ttl_s:
                    self._lost = f"not renewed for {self.ttl_s:g} s: {err}"
                return
            if etag is None:
                self._lost = "it was taken over by another writer"
            else:
                self._etag, self._renewed_at = etag, started

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            self._renew()
            if self._lost is not None:
                return

    def __repr__(self) -> str:
        state = "held" if self.held else ("lost" if self._lost else "free")
        return f"<S3Lease {self.what} ({state})>"


#: leases this process holds, so a commit can check the writer's lease of its run
_HELD: weakref.WeakSet[S3Lease] = weakref.WeakSet()


class CommitGuard:
    """The ``commit`` lock of a run on object storage.

    Commits to one run need no lock there: Icechunk publishes a commit by a
    conditional write of the branch reference, so of two commits built on
    the same snapshot the second is refused and rebased (or, if both touched
    the same arrays, fails). What this guard adds: before a commit it
    renews every lease this process holds on the run, so a writer that lost
    its lease (it stalled past ``ttl_s`` and was taken over) raises
    :class:`~agi_data.store.errors.RunLockedError` instead of committing.
    """

    def __init__(self, location, run_id: str, what: str):
        self.location = location
        self.run_id = run_id
        self.what = what
        self._held = False

    def _mine(self) -> list[S3Lease]:
        prefix = self.location.key(f"locks/{self.run_id}@")
        return [lease for lease in list(_HELD)
                if lease.location.bucket == self.location.bucket and lease._key.startswith(prefix)]

    def acquire(self, timeout_s: float = 0.0) -> CommitGuard:
        for lease in self._mine():
            lease.ensure_fresh()
        self._held = True
        return self

    def release(self) -> None:
        self._held = False

    def holder(self) -> Holder | None:
        return None

    @property
    def held(self) -> bool:
        return self._held
