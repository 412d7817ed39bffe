"""The atom-block read plan's scenarios (tests/test_store_read.py) on a store on S3 (moto on loopback)."""

from __future__ import annotations

import pytest
import test_store_read
from s3server import UrlPath

pytest_plugins = ["s3server"]

store = test_store_read.store  # the scenarios' run, built where ``tmp_path`` points: here, on S3
globals().update({name: getattr(test_store_read, name) for name in dir(test_store_read) if name.startswith("test_")})


@pytest.fixture
def tmp_path(s3_url):
    return UrlPath(s3_url)
