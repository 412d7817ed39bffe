"""The test S3 server does what the store relies on, before any store test trusts it."""

from __future__ import annotations

import icechunk
import numpy as np
import pytest
import zarr
from botocore.exceptions import BotoCoreError, ClientError

pytest_plugins = ["s3server"]


def _status(err: ClientError) -> int:
    return err.response["ResponseMetadata"]["HTTPStatusCode"]


def test_conditional_writes_are_refused_with_412(s3_server):
    s3 = s3_server.client()
    bucket = s3_server.make_bucket()
    first = s3.put_object(Bucket=bucket, Key="ref", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="ref", Body=b"2", IfNoneMatch="*")
    assert _status(err.value) == 412
    second = s3.put_object(Bucket=bucket, Key="ref", Body=b"3", IfMatch=first["ETag"])  # fresh: accepted
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="ref", Body=b"4", IfMatch=first["ETag"])  # stale: refused
    assert _status(err.value) == 412
    assert s3.get_object(Bucket=bucket, Key="ref")["Body"].read() == b"3"
    assert second["ETag"] != first["ETag"]


def test_icechunk_commits_conflict_on_the_server(s3_server):
    """Two sessions opened on the same snapshot: the second commit is refused, the first is intact."""
    bucket = s3_server.make_bucket()
    storage = icechunk.s3_storage(bucket=bucket, prefix="repo", endpoint_url=s3_server.endpoint, allow_http=True,
                                  access_key_id="testing", secret_access_key="testing", region="us-east-1",
                                  force_path_style=True)
    repo = icechunk.Repository.create(storage)
    a, b = repo.writable_session("main"), repo.writable_session("main")
    zarr.create_array(a.store, name="x", data=np.arange(3))
    zarr.create_array(b.store, name="x", data=np.arange(5))
    a.commit("a")
    with pytest.raises(icechunk.ConflictError):
        b.commit("b")
    reread = icechunk.Repository.open(storage).readonly_session(branch="main")
    np.testing.assert_array_equal(zarr.open_array(reread.store, path="x")[:], np.arange(3))


def test_proxy_cut_fails_requests_and_restore_recovers(s3_server, s3_proxy):
    s3 = s3_server.client(endpoint=s3_proxy.endpoint)
    bucket = s3_server.make_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3_proxy.cut()
    with pytest.raises(BotoCoreError):
        s3.get_object(Bucket=bucket, Key="k")
    s3_proxy.restore()
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_authentication_can_be_switched_on(s3_server):
    """With moto's authentication on, a wrong key gets 403 and the right key works."""
    bucket = s3_server.make_bucket()
    with s3_server.enforce_auth() as (key, secret):
        with pytest.raises(ClientError) as err:
            s3_server.client(access_key="AKIAWRONGWRONGWRONG0", secret_key="nope").put_object(
                Bucket=bucket, Key="k", Body=b"v")
        assert _status(err.value) == 403
        with pytest.raises(ClientError) as err:
            s3_server.client(access_key=key, secret_key="not-the-secret").put_object(Bucket=bucket, Key="k", Body=b"v")
        assert _status(err.value) == 403
        s3_server.client(access_key=key, secret_key=secret).put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3_server.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
