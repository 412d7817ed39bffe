"""Where a store lives: a local directory or a prefix on S3-compatible object storage.

A store location is written as

- a local path (``store/data``, ``/scratch/agi``, ``file:///scratch/agi``), or
- ``s3://BUCKET/PREFIX``, optionally with the endpoint of an S3-compatible
  server that is not AWS and its options as query parameters:
  ``s3://agi-runs/shared?endpoint_url=http://minio.lab:9000&region=eu-west-1&allow_http=true``.

Anything else that looks like a URL (``gs://``, ``http://``, ``s3:/bucket``,
``s3://`` without a bucket, a bucket name S3 would refuse) is refused with
:class:`StoreLocationError` before anything is created: ``open_store`` never
makes a local directory named like a URL. A local path that contains ``:``
near its start is written ``./name:with:colons``.

Settings of an S3 location, each from the first place that gives it:

========================  ==========================================================================
endpoint                  ``endpoint_url=`` argument, the URL's query, ``AWS_ENDPOINT_URL_S3`` /
                          ``AWS_ENDPOINT_URL`` / ``endpoint_url`` in the AWS config (boto3's rules);
                          AWS itself when none is set
region                    ``region=`` argument, the query, ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` /
                          the AWS config; ``us-east-1`` otherwise
credentials               boto3's chain: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY``
                          (+ ``AWS_SESSION_TOKEN``), ``AWS_PROFILE``, ``~/.aws/credentials``, …
                          They are never written into a location string.
plain HTTP                allowed for a loopback endpoint (``127.0.0.1``, ``localhost``, ``::1``);
                          elsewhere only with ``allow_http=True`` (argument or query)
========================  ==========================================================================

The string a store records for its runs (:attr:`S3Location.url`) is the
bucket and prefix plus, for a server that is not AWS, its endpoint: another
machine that can reach the same server and has credentials resolves it.
Runs recorded by older versions with a local path resolve as local paths.
"""

from __future__ import annotations

import ipaddress
import os
import re
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import NotAStoreError, StoreError

#: URL schemes a store location may use
SCHEMES = ("s3", "file")
#: ``scheme:`` at the start of a string: a URL, not a path
_URL_LIKE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
#: S3's bucket naming rules (3–63 characters, lowercase letters, digits, '.', '-')
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
#: characters allowed in a prefix segment
_SEGMENT = re.compile(r"^[A-Za-z0-9._=+-]+$")
_QUERY_KEYS = ("endpoint_url", "region", "allow_http")
#: seconds to wait for a connection / a response, and tries, before an S3 endpoint counts as unreachable
CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 30
MAX_TRIES = 3
#: the marker object of a store at the root of its prefix
MARKER = "agi-store.json"
#: names of runs being built (invisible until published)
STAGING_PREFIX = ".creating-"


class StoreLocationError(NotAStoreError, ValueError):
    """A store location that is malformed or of an unsupported kind: nothing was created."""


class StoreUnreachableError(StoreError, ConnectionError):
    """The object store could not be reached, refused the credentials, or has no such bucket."""


def _truthy(value: str | bool | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise StoreLocationError(f"allow_http must be true or false, got {value!r}")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_aws(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    return host.endswith(".amazonaws.com") or host == "amazonaws.com"


@dataclass(frozen=True)
class S3Location:
    """A store at ``s3://bucket/prefix`` on AWS or another S3-compatible server.

    Build it with :func:`parse_location`. It is picklable (credentials are
    resolved again where it is unpickled) and its :attr:`url` resolves to
    the same store on any machine that can reach the server.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    allow_http: bool = False
    _clients: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    # ------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """The location as a string that :func:`parse_location` reads back (no credentials)."""
        base = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        query = {}
        if self.endpoint_url:
            query["endpoint_url"] = self.endpoint_url
            query["region"] = self.region
            if self.allow_http and not _is_loopback(urlsplit(self.endpoint_url).hostname):
                query["allow_http"] = "true"
        return base + ("?" + urlencode(query, safe=":/") if query else "")

    def __str__(self) -> str:
        return self.url

    @property
    def root(self) -> str:
        """What messages and provenance name the store by (the URL; a local store's is its directory)."""
        return self.url

    def __getstate__(self):
        return {k: getattr(self, k) for k in ("bucket", "prefix", "endpoint_url", "region", "allow_http")}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)
        object.__setattr__(self, "_clients", {})

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the store's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def describe(self) -> str:
        where = self.endpoint_url or "AWS S3"
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/") + f" (endpoint {where})"

    # --------------------------------------------------------- credentials
    @cached_property
    def _session(self):
        import boto3

        return boto3.Session(region_name=self.region)

    def credentials(self):
        """boto3's frozen credentials for this location; :class:`StoreUnreachableError` when there are none."""
        creds = self._session.get_credentials()
        if creds is None:
            raise StoreUnreachableError(
                f"no S3 credentials for {self.describe()}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or AWS_PROFILE, or write them to ~/.aws/credentials"
            )
        return creds.get_frozen_credentials()

    def client(self):
        """A boto3 S3 client with bounded timeouts and retries (one per process)."""
        pid = os.getpid()
        if pid not in self._clients:
            from botocore.config import Config

            creds = self.credentials()
            self._clients.clear()  # a forked child builds its own
            self._clients[pid] = self._session.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                aws_session_token=creds.token,
                config=Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                              retries={"max_attempts": MAX_TRIES, "mode": "standard"},
                              s3={"addressing_style": "path" if self.endpoint_url else "auto"}),
            )
        return self._clients[pid]

    # ------------------------------------------------------------ icechunk
    def icechunk_storage(self, *parts: str):
        """Icechunk's S3 storage for the repository at ``prefix/parts``."""
        import icechunk

        creds = self.credentials()
        return icechunk.s3_storage(
            bucket=self.bucket, prefix=self.key(*parts), region=self.region, endpoint_url=self.endpoint_url,
            allow_http=self.allow_http, access_key_id=creds.access_key, secret_access_key=creds.secret_key,
            session_token=creds.token, force_path_style=self.endpoint_url is not None,
            network_stream_timeout_seconds=READ_TIMEOUT_S,
        )

    @staticmethod
    def repository_config():
        """Icechunk settings that bound how long a failing request is retried."""
        import icechunk

        retries = icechunk.StorageRetriesSettings(max_tries=MAX_TRIES, initial_backoff_ms=100, max_backoff_ms=2000)
        return icechunk.RepositoryConfig(storage=icechunk.StorageSettings(retries=retries))

    # ------------------------------------------------------------- objects
    def explain(self, err: Exception, doing: str) -> StoreError:
        """A clear error for a failed request: unreachable endpoint, bad credentials, missing bucket."""
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(err, ClientError):
            code = err.response.get("Error", {}).get("Code", "")
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return StoreUnreachableError(
                    f"{doing}: bucket {self.bucket!r} does not exist at {self.describe()}; create it first "
                    "(e.g. `aws s3 mb s3://{}`) or check the bucket name".format(self.bucket))
            if status == 403 or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                return StoreUnreachableError(
                    f"{doing}: {self.describe()} refused the credentials ({code}): check AWS_ACCESS_KEY_ID / "
                    "AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the bucket's permissions")
            return StoreError(f"{doing}: {self.describe()} answered {status} {code}: {err}")
        if isinstance(err, NoCredentialsError):
            return StoreUnreachableError(f"{doing}: no S3 credentials for {self.describe()}")
        if isinstance(err, EndpointConnectionError) or "connect" in type(err).__name__.lower() \
                or "timeout" in type(err).__name__.lower() or isinstance(err, OSError):
            return StoreUnreachableError(
                f"{doing}: cannot reach {self.describe()} ({type(err).__name__}) after {MAX_TRIES} tries of "
                f"≤ {CONNECT_TIMEOUT_S} s to connect: check the endpoint URL, the network and that the server runs")
        return StoreError(f"{doing}: {self.describe()}: {type(err).__name__}: {err}")

    def _call(self, doing: str, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client(), method)(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as err:
            raise self.explain(err, doing) from err

    def get_json(self, *parts: str) -> dict | None:
        """The JSON object at ``parts``, or None when there is none."""
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client().get_object(Bucket=self.bucket, Key=self.key(*parts))["Body"].read()
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self.explain(err, f"reading {self.key(*parts)}") from err
        except BotoCoreError as err:
            raise self.explain(err, f"reading {self.key(*parts)}") from err
        try:
            return json.loads(body)
        except ValueError as err:
            raise NotAStoreError(f"{self.describe()}: {self.key(*parts)} is not JSON: {err}") from None

    def put_json_new(self, data: dict, *parts: str) -> bool:
        """Write ``data`` at ``parts`` only if nothing is there (``If-None-Match: *``); False if something was."""
        import json

        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client().put_object(Bucket=self.bucket, Key=self.key(*parts), Body=json.dumps(data).encode(),
                                     IfNoneMatch="*", ContentType="application/json")
        except ClientError as err:
            if err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise self.explain(err, f"writing {self.key(*parts)}") from err
        except BotoCoreError as err:
            raise self.explain(err, f"writing {self.key(*parts)}") from err
        return True

    def list_names(self, *parts: str) -> list[str]:
        """Names directly under ``parts/`` (objects and sub-prefixes), sorted."""
        prefix = self.key(*parts)
        prefix = prefix + "/" if prefix else ""
        from botocore.exceptions import BotoCoreError, ClientError

        names: set[str] = set()
        pager = self.client().get_paginator("list_objects_v2")
        try:
            for page in pager.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                names.update(o["Key"][len(prefix):] for o in page.get("Contents", []))
                names.update(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
        except (BotoCoreError, ClientError) as err:
            raise self.explain(err, f"listing {prefix or 'the bucket'}") from err
        return sorted(n for n in names if n)

    def delete_tree(self, *parts: str) -> int:
        """Delete every object under ``parts/``; returns how many."""
        prefix = self.key(*parts) + "/"
        from botocore.exceptions import BotoCoreError, ClientError

        count = 0
        pager = self.client().get_paginator("list_objects_v2")
        try:
            for page in pager.paginate(Bucket=self.bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.client().delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                    count += len(keys)
        except (BotoCoreError, ClientError) as err:
            raise self.explain(err, f"deleting {prefix}") from err
        return count


    # ------------------------------------------------ the store's backend interface
    # (the same members as the local location of agi_data.store.run; see there)
    #
    # Layout under the prefix:
    #   agi-store.json               marker: format and schema version
    #   index/<run_id>.json          the run exists: {"repo": <name>}; written last, removed first
    #   repos/<name>/                its Icechunk repository (name = .creating-<run_id>-<hex8>)
    #   locks/<run_id>@<part>.lease  writer leases (see agi_data.store.lease)
    #
    # Object storage has no rename: a run is built under a staged name and
    # published by writing its index object with If-None-Match, which is atomic
    # and refuses a second creator; removing the index object hides a run at once.

    def _index(self, run_id: str) -> dict | None:
        return self.get_json("index", f"{run_id}.json")

    def repository_name(self, name: str) -> str:
        """The repository of a run id (through its index object) or of a staged name."""
        from .errors import RunNotFoundError

        if name.startswith(STAGING_PREFIX):
            return name
        info = self._index(name)
        if info is None or not isinstance(info.get("repo"), str):
            raise RunNotFoundError(f"no run {name!r} in the store at {self.url}")
        return info["repo"]

    def storage(self, name: str):
        return self.icechunk_storage("repos", self.repository_name(name))

    def repository_dir(self, name: str) -> None:
        """None: a run's files are objects, read through Icechunk."""
        return None

    def lock(self, run_id: str, part: str):
        from .lease import CommitGuard, S3Lease

        what = f"run {run_id!r}" + ("" if part == "writer" else f" ({part})")
        if part == "commit":
            return CommitGuard(self, run_id, what)
        return S3Lease(self, f"locks/{run_id}@{part}.lease", what)

    def entries(self) -> dict[str, str | None]:
        from . import validate

        out = {}
        for name in self.list_names("index"):
            run_id = name.removesuffix(".json")
            if name.endswith(".json") and validate.is_run_id(run_id):
                out[run_id] = None
        return out

    def has(self, run_id: str) -> bool:
        return self._index(run_id) is not None

    def stage(self, run_id: str) -> str:
        return f"{STAGING_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"

    def publish(self, staged: str, run_id: str) -> None:
        from .errors import RunExistsError

        if not self.put_json_new({"repo": staged}, "index", f"{run_id}.json"):
            raise RunExistsError(f"run {run_id!r} already exists in {self.url}; use open_run() to append to it")

    def leftovers(self, run_id: str) -> list[str]:
        prefix = f"{STAGING_PREFIX}{run_id}-"
        info = self._index(run_id)
        live = info.get("repo") if info else None
        return [n for n in self.list_names("repos")
                if n.startswith(prefix) and len(n) == len(prefix) + 8 and n != live]

    def discard(self, name: str) -> None:
        self.delete_tree("repos", name)

    def remove(self, run_id: str) -> None:
        repo = self.repository_name(run_id)
        self._call(f"removing run {run_id!r}", "delete_object", Key=self.key("index", f"{run_id}.json"))
        self.discard(repo)

    def seal(self, name: str) -> None:
        """Nothing to record: an S3 server checks every object's checksum on upload and keeps its own."""

    def check_seals(self, name: str) -> tuple[list[str], list[str]]:
        """No local seals on object storage (its integrity at rest is the server's); nothing to report."""
        return [], []

    # ------------------------------------------------------------ the marker
    def open(self, *, create: bool = True, schema: dict | None = None) -> dict:
        """Check the store is there (or make it): its marker, or an empty prefix to put one in.

        Fails within ``MAX_TRIES × CONNECT_TIMEOUT_S`` seconds when the
        endpoint cannot be reached, and with a clear error for missing
        credentials, a refused key or a missing bucket; never writes into a
        prefix that holds something other than a store.
        """
        info = self.get_json(MARKER)
        if info is not None:
            return info
        if self.list_names():
            raise NotAStoreError(
                f"{self.describe()} holds objects but no {MARKER}: it is not an agi-data store "
                "(choose an empty or new prefix)")
        if not create or schema is None:
            raise NotAStoreError(f"there is no agi-data store at {self.describe()}")
        self.put_json_new(schema, MARKER)  # of two creators racing, either marker is the store's
        return self.get_json(MARKER) or schema


def is_url(text: str | os.PathLike) -> bool:
    """Whether a location string is a URL (``scheme:…``), to be left alone rather than resolved as a path."""
    return isinstance(text, str) and _URL_LIKE.match(text) is not None


def parse_location(location: str | os.PathLike | S3Location, *, endpoint_url: str | None = None,
                   region: str | None = None, allow_http: bool | None = None) -> Path | S3Location:
    """A local :class:`~pathlib.Path` or an :class:`S3Location` for a store location string.

    Raises :class:`StoreLocationError` for an unsupported scheme or a
    malformed URL; creates nothing.
    """
    if isinstance(location, S3Location):
        return location
    if isinstance(location, Path):
        return location.expanduser()
    text = os.fspath(location)
    if not isinstance(text, str):
        raise StoreLocationError(f"a store location is a path or an s3:// URL, got {location!r}")
    m = _URL_LIKE.match(text)
    if not m:
        if endpoint_url or region or allow_http:
            raise StoreLocationError(f"endpoint_url, region and allow_http apply to s3:// locations, not to {text!r}")
        return Path(text).expanduser()
    scheme = m.group(1).lower()
    if scheme not in SCHEMES:
        raise StoreLocationError(
            f"unsupported store location {text!r}: the scheme {scheme!r} is not one of {list(SCHEMES)}; "
            "give a local path or s3://bucket/prefix (a local path with ':' in its name is written ./name)"
        )
    parts = urlsplit(text)
    if not text.lower().startswith(scheme + "://"):
        raise StoreLocationError(f"malformed store URL {text!r}: write {scheme}://…")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or parts.query or not parts.path:
            raise StoreLocationError(f"malformed file URL {text!r}: write file:///absolute/path")
        return Path(parts.path)
    return _parse_s3(text, parts, endpoint_url, region, allow_http)


def _parse_s3(text, parts, endpoint_url, region, allow_http) -> S3Location:
    bucket = parts.netloc
    if not bucket:
        raise StoreLocationError(f"malformed S3 URL {text!r}: no bucket; write s3://bucket/prefix")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StoreLocationError(
            f"malformed S3 URL {text!r}: {bucket!r} is not a valid bucket name "
            "(3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)"
        )
    segments = [s for s in parts.path.split("/") if s]
    bad = [s for s in segments if s in (".", "..") or not _SEGMENT.match(s)]
    if bad or parts.fragment:
        raise StoreLocationError(
            f"malformed S3 URL {text!r}: prefix segment {bad[0] if bad else '#' + parts.fragment!r} is not allowed "
            "(use letters, digits and . _ = + -, no '..')"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - set(_QUERY_KEYS))
    if unknown:
        raise StoreLocationError(f"unknown option(s) {unknown} in {text!r}; known: {list(_QUERY_KEYS)}")
    endpoint = endpoint_url or query.get("endpoint_url") or _configured_endpoint()
    if endpoint:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname:
            raise StoreLocationError(f"endpoint {endpoint!r} must be an http:// or https:// URL with a host")
        endpoint = endpoint.rstrip("/")
        if _is_aws(endpoint):
            endpoint = None
    http = _truthy(allow_http) if allow_http is not None else _truthy(query.get("allow_http"))
    if endpoint and urlsplit(endpoint).scheme == "http":
        if http is None:
            http = _is_loopback(urlsplit(endpoint).hostname)
        if not http:
            raise StoreLocationError(
                f"endpoint {endpoint} is plain HTTP and not on this machine: pass allow_http=True "
                "(or add allow_http=true to the URL) if you mean it"
            )
    return S3Location(bucket=bucket, prefix="/".join(segments), endpoint_url=endpoint,
                      region=region or query.get("region") or _configured_region(), allow_http=bool(http))


def _configured_endpoint() -> str | None:
    """The S3 endpoint boto3 would use from the environment or the AWS config (None: AWS itself)."""
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import botocore.session

        value = botocore.session.get_session().get_scoped_config().get("endpoint_url")
    except Exception:  # noqa: BLE001 - a broken or missing AWS config means: no configured endpoint
        return None
    return value if isinstance(value, str) else None


def _configured_region() -> str:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        import botocore.session

        value = botocore.session.get_session().get_config_variable("region")
    except Exception:  # noqa: BLE001 - a broken AWS config: fall back to the default region
        value = None
    return value or "us-east-1"


def location_string(location: Path | S3Location) -> str:
    """What a run records as the place of its store: the URL, or the absolute local path."""
    return location.url if isinstance(location, S3Location) else str(Path(location).expanduser().resolve())


def run_reference(location: Path | S3Location, run_id: str, version: str | None = None) -> dict:
    """``{"store_path", "run_id"[, "version"]}``: how provenance points at a run (at a version)."""
    ref = {"store_path": location_string(location), "run_id": run_id}
    if version is not None:
        ref["version"] = version
    return ref
