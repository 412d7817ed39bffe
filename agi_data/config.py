"""Where agi-data keeps its data.

The data root holds the Zarr store (``data/``), the embedded AiiDA profile's
configuration and repository (``aiida/``) and the demo reports
(``reports/``). It is, in order:

1. ``$AGI_HOME`` when set;
2. the ``store/`` directory of the source checkout the package runs from
   (a developer's clone: ``make demo`` keeps everything inside it);
3. ``~/.agi`` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    env = os.environ.get("AGI_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "store").is_dir():
        return checkout / "store"
    return Path.home() / ".agi"


def store_path() -> Path:
    """The default Zarr store: ``<data root>/data``."""
    return data_root() / "data"


def aiida_path() -> Path:
    """The embedded AiiDA configuration directory: ``<data root>/aiida`` (unless ``$AIIDA_PATH`` is set)."""
    env = os.environ.get("AIIDA_PATH")
    return Path(env) if env else data_root() / "aiida"


def reports_path() -> Path:
    return data_root() / "reports"
