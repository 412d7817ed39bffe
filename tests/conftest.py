"""Shared test fixtures.

AiiDA's own fixtures (``aiida_profile``, ``aiida_localhost``,
``aiida_code_installed``, ``submit_and_await``…) come from its pytest plugin.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest_plugins = ["aiida.tools.pytest_fixtures"]

# MPI as root (CI containers) needs these.
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def store_dir(tmp_path):
    """A fresh directory for a store (not created yet)."""
    return tmp_path / "store"
