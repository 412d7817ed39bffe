"""Options, arguments and the error style shared by every ``agi`` command.

One definition each, so ``--store`` means the same thing (and resolves the same way)
in ``agi store``, ``agi md``, ``agi demo`` and ``agi provenance``, and ``--scheduler``
(env ``AGI_DASK_SCHEDULER``) names the Dask scheduler wherever analyses run.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import click


class AgiCLIError(click.ClickException):
    """A command failed for a reason the user can act on: the message says what, ``remedy`` how to fix it.

    Printed by click as ``Error: <message>`` (plus the remedy) with exit status 1, never a traceback.
    """

    def __init__(self, message: str, remedy: str | None = None):
        super().__init__(f"{message}\n  {remedy}" if remedy else message)
        self.remedy = remedy


def _resolve_store(ctx, param, value):
    # a relative path means the caller's working directory, now: resolve it before anything
    # (a daemon or a job would otherwise resolve it in its own directory and record that)
    if value is None or _SCHEME.match(str(value)):  # a URL (s3://…, or a malformed one the store refuses)
        return value
    return Path(value).expanduser().resolve()


#: ``scheme:`` at the start: a URL, never a relative path (``s3:bucket`` would otherwise become a directory)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")

store_option = click.option(
    "--store", "store_path", default=None, callback=_resolve_store,
    help="Store directory or s3://bucket/prefix (default: <data root>/data; see AGI_HOME).",
)

scheduler_option = click.option(
    "--scheduler", "scheduler", default=None, envvar="AGI_DASK_SCHEDULER", show_envvar=True,
    help="Dask scheduler for the analyses: tcp://host:8786 (a running `dask scheduler` whose workers reach "
         "the store), local:N (N worker processes here) or threads (default).",
)


def protocol_option(workflow: str, default: str | None = None, **kwargs):
    """``--protocol NAME``: one of the protocols of ``agi_data/protocols/<workflow>.yaml``.

    Checked when the command runs (not when ``agi --help`` is built), with the known names in the error.
    """

    def check(ctx, param, value):
        if value is None:
            return value
        from agi_data.aiida.protocols import available_protocols

        known = available_protocols(workflow)
        if value not in known:
            raise click.BadParameter(f"{value!r} is not a {workflow} protocol; choose one of {sorted(known)}")
        return value

    help_text = kwargs.pop("help", f"protocol of agi_data/protocols/{workflow}.yaml")
    return click.option("--protocol", default=default, show_default=default is not None, callback=check,
                        help=help_text, **kwargs)


run_id_argument = click.argument("run_id")


def fail_cleanly(*errors: type[BaseException]):
    """Turn the given error classes (and the store's, ``ValueError`` and ``OSError``) into one clear line and exit 1.

    Usage: ``@fail_cleanly()`` or ``@fail_cleanly(MDError)``.
    """

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            from agi_data.store import StoreError  # here: `agi --help` and `agi setup` need not load Zarr

            try:
                return func(*args, **kwargs)
            except click.ClickException:
                raise
            except (StoreError, ValueError, *errors) as err:
                raise AgiCLIError(str(err)) from None
            except OSError as err:  # a file the command needed: the message names it and the reason
                raise AgiCLIError(f"{err.strerror or err}: {err.filename or ''}".rstrip(": ")) from None

        return wrapper

    return decorate
