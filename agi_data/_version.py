"""The installed version of agi-data (a ground-floor module: anything may import it, it imports nothing of ours)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agi-data")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"
