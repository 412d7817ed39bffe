"""Shared test fixtures.

AiiDA's own fixtures (``aiida_profile``, ``aiida_localhost``,
``aiida_code_installed``, ``submit_and_await``…) come from its pytest plugin.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

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


# --- PostgreSQL + RabbitMQ on loopback (scripts/services.sh, what `make services` runs) -------------
ROOT = Path(__file__).resolve().parents[1]
PG = {"user": os.environ.get("AGI_PG_USER", "agi"), "password": os.environ.get("AGI_PG_PASSWORD", "agi")}


def psql_storage(database: str, repository: Path) -> dict:
    """The core.psql_dos storage config of a test database on the loopback PostgreSQL."""
    return {"database_engine": "postgresql_psycopg", "database_hostname": "127.0.0.1", "database_port": 5432,
            "database_username": PG["user"], "database_password": PG["password"], "database_name": database,
            "repository_uri": repository.as_uri()}


@pytest.fixture(scope="module")
def services():
    """Start PostgreSQL + RabbitMQ (installed if missing) and make a fresh database for this module."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import psycopg

    name = f"agi_test_{secrets.token_hex(6)}"
    with psycopg.connect(host="127.0.0.1", dbname="postgres", autocommit=True, **PG) as con:
        con.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(host="127.0.0.1", dbname="postgres", autocommit=True, **PG) as con:
        con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def psql_profile(services, aiida_config, aiida_profile_factory, tmp_path_factory):
    storage = psql_storage(services, tmp_path_factory.mktemp("psql-repo"))
    with aiida_profile_factory(aiida_config, storage_backend="core.psql_dos", storage_config=storage,
                               broker_backend="core.rabbitmq") as profile:
        from agi_data.aiida.testing import prepare_profile

        prepare_profile(tmp_path_factory.mktemp("psql-work"))
        yield profile


