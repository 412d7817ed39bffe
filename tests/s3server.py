"""A real S3-compatible server for the tests, started by the tests themselves.

moto's server mode (``moto[server]`` from PyPI, ``ThreadedMotoServer``)
serves the S3 REST API on 127.0.0.1 from a thread of the test process; its
objects live in that process's memory. The store talks to it through
:class:`TcpProxy`, a loopback TCP relay the test can *cut* (every open
connection is dropped and new ones are refused) to simulate a network
failure without stopping the server, and restore afterwards.

Load the fixtures with ``pytest_plugins = ["s3server"]`` in a test module.

What moto offers and what it does not (checked by ``tests/test_s3server.py``
before anything relies on it):

- conditional writes: a second ``PUT`` with ``If-None-Match: *`` and a
  ``PUT`` with a stale ``If-Match`` are refused with 412 — what Icechunk's
  commits and the store's writer leases rely on;
- authentication: off by default (any key is accepted). Switched on
  (``enforce_auth``), it checks every request's SigV4 signature against the
  access keys of IAM users created on the same server, so wrong credentials
  get 403.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import uuid
from dataclasses import dataclass

import pytest

REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpProxy:
    """A loopback TCP relay to ``upstream`` that a test can cut and restore.

    ``cut()`` drops every relayed connection at once (both ends are shut
    down, as a failed link would) and, until ``restore()``, closes each new
    connection as soon as it is accepted.
    """

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, name="s3-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                _drop(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _drop(client)
                continue
            with self._lock:
                self._conns.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _drop(s)
            with self._lock:
                self._conns.difference_update((src, dst))

    def cut(self) -> None:
        """Fail the link: drop every open connection and refuse new ones."""
        self._open.clear()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            _drop(s)

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


def _drop(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


class UrlPath:
    """Stands in for ``tmp_path`` in a scenario written for directories: ``UrlPath(url) / "name"`` is a URL."""

    def __init__(self, url: str):
        self.url = url

    def __truediv__(self, name: str) -> str:
        return f"{self.url}/{name}"


@dataclass
class S3Server:
    """The moto server of the test session (direct endpoint, no proxy)."""

    endpoint: str

    def client(self, endpoint: str | None = None, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=endpoint or self.endpoint, region_name=REGION,
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def make_bucket(self) -> str:
        """A new, empty bucket with a unique DNS-valid name."""
        name = f"agi-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    @contextlib.contextmanager
    def enforce_auth(self):
        """Switch on authentication; yields ``(access_key, secret_key)`` of a user allowed everything on S3.

        moto checks signatures only against IAM users of its own; the switch
        is global to the server, so it is restored on exit.
        """
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION,
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        user = f"agi-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self._reset_auth(0)
        try:
            yield key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            self._reset_auth(float("inf"))

    @staticmethod
    def _reset_auth(count: float) -> None:
        """moto's own switch (its ``/moto-api/reset-auth``): authenticate every request after ``count`` more."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        settings.INITIAL_NO_AUTH_ACTION_COUNT = count
        ActionAuthenticatorMixin.request_count = 0


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1, in a thread of the test process, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_proxy(s3_server):
    """A cuttable TCP relay in front of the session's server (one per test)."""
    host, port = s3_server.endpoint.removeprefix("http://").split(":")
    proxy = TcpProxy((host, int(port)))
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def s3_env(monkeypatch, s3_server, s3_proxy):
    """Point the standard AWS variables at the proxied server (child processes inherit them)."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_proxy.endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/agi-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/agi-test-aws-credentials")
    return s3_proxy


@pytest.fixture
def s3_url(s3_server, s3_env):
    """``s3://<fresh bucket>/store``: an empty store location reached through the proxy."""
    return f"s3://{s3_server.make_bucket()}/store"
