"""``agi setup``: the embedded AiiDA profile, the ``localhost`` computer, the codes and the pseudopotential family.

Everything is idempotent: a second call finds what exists and creates nothing.

* **Profile** ``agi`` (or ``$AGI_AIIDA_PROFILE``) on ``core.sqlite_dos`` with the ZeroMQ
  broker that aiida-core 2.9 bundles (no server to install). Its configuration
  lives in :func:`agi_data.config.aiida_path` (``<data root>/aiida``) unless
  ``$AIIDA_PATH`` says otherwise; use ``verdi`` on it with
  ``AIIDA_PATH=<data root>/aiida verdi process list``.
* **Computer** ``localhost``: ``core.local`` transport, ``core.direct`` scheduler,
  ``mpirun -np N`` (with ``--allow-run-as-root`` when run as root), one BLAS
  thread per MPI rank.
* **Codes** ``pw@localhost``, ``pw2wannier90@localhost``, ``wannier90@localhost``:
  ``InstalledCode`` s of the executables found on ``PATH``.
* **Pseudopotential family** ``agi-nc-pbe`` (aiida-pseudo): the norm-conserving
  PBE files for Ag (11 e) and I (7 e) of :mod:`agi_data.pseudo`.

All functions except :func:`setup`, :func:`load_agi_profile` and
:func:`ensure_profile` work on the profile that is loaded, so tests call them
on the test profile.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SCHEDULERS",
    "SetupError",
    "MissingCodeError",
    "MissingPseudoError",
    "PROFILE_NAME",
    "COMPUTER_LABEL",
    "PSEUDO_FAMILY",
    "CODES",
    "configure_aiida_path",
    "enable_sqlite_wal",
    "ensure_profile",
    "load_agi_profile",
    "ensure_computer",
    "ensure_codes",
    "ensure_pseudo_family",
    "get_code",
    "setup",
]

PROFILE_NAME = os.environ.get("AGI_AIIDA_PROFILE", "agi")
COMPUTER_LABEL = "localhost"
PSEUDO_FAMILY = "agi-nc-pbe"
#: code label -> (executable, default CalcJob plugin)
CODES = {
    "pw": ("pw.x", "quantumespresso.pw"),
    "pw2wannier90": ("pw2wannier90.x", "quantumespresso.pw2wannier90"),
    "wannier90": ("wannier90.x", "agi.wannier90"),
}
#: the Debian package each executable comes from (for `version` extras and hints)
_DEBIAN = {"pw.x": "quantum-espresso", "pw2wannier90.x": "quantum-espresso", "wannier90.x": "wannier90"}


class SetupError(ValueError):
    """The AiiDA environment could not be set up."""


class MissingCodeError(SetupError):
    """An executable or its AiiDA code is missing."""


class MissingPseudoError(SetupError):
    """A pseudopotential family or an element in it is missing."""


def configure_aiida_path(path: str | Path | None = None) -> Path:
    """Point AiiDA at the project's configuration directory (``$AIIDA_PATH`` or ``<data root>/aiida``).

    Sets ``$AIIDA_PATH`` for this process (and the daemon it starts) and reloads
    AiiDA's configuration if it had been read from elsewhere. Returns the directory.
    """
    from agi_data.config import aiida_path

    target = Path(path) if path is not None else aiida_path()
    target.mkdir(parents=True, exist_ok=True)
    if os.environ.get("AIIDA_PATH") != str(target):
        os.environ["AIIDA_PATH"] = str(target)
    from aiida.manage.configuration import settings

    config_dir = target if target.name == settings.DEFAULT_CONFIG_DIR_NAME else target / settings.DEFAULT_CONFIG_DIR_NAME
    if settings.AiiDAConfigDir.get() != config_dir:
        from aiida.manage.configuration import reset_config

        reset_config()
        settings.AiiDAConfigDir.set(config_dir)
    return target


def ensure_profile(name: str = PROFILE_NAME, *, email: str = "agi@localhost", quiet: bool = True):
    """Load profile ``name``, creating it (core.sqlite_dos + core.zeromq) in the configured directory if missing."""
    from aiida.manage.configuration import create_profile, get_config, load_profile
    from aiida.plugins import BrokerFactory

    config = get_config(create=True)
    if name not in config.profile_names:
        storage = Path(config.dirpath) / "repository" / name
        profile = create_profile(
            config, name=name, email=email, storage_backend="core.sqlite_dos",
            storage_config={"filepath": str(storage)}, broker_backend="core.zeromq",
            broker_config=BrokerFactory("core.zeromq").get_default_config(),
        )
        config.set_option("runner.poll.interval", 1, scope=profile.name)
        config.set_option("warnings.development_version", False, scope=profile.name)
        if config.default_profile_name is None or config.default_profile_name not in config.profile_names:
            config.set_default_profile(profile.name, overwrite=True)
        config.store()
        if not quiet:
            print(f"created AiiDA profile '{name}' (core.sqlite_dos + core.zeromq) in {config.dirpath}")
        enable_sqlite_wal(profile)
    return load_profile(name, allow_switch=True)


def enable_sqlite_wal(profile=None) -> bool:
    """Switch a ``core.sqlite_dos`` profile's database to write-ahead logging (persistent, idempotent).

    AiiDA commits a few hundred times per CalcJob; with SQLite's default rollback journal
    each commit costs several fsyncs (~6 ms here), with WAL one (~0.6 ms), with the same
    durability. Returns True when the database is (now) in WAL mode.
    """
    import sqlite3

    from aiida.manage import get_manager

    profile = profile or get_manager().get_profile()
    if profile is None or profile.storage_backend != "core.sqlite_dos":
        return False
    path = Path(profile.storage_config["filepath"]) / "database.sqlite"
    if not path.is_file():
        return False
    with sqlite3.connect(path, timeout=30) as con:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    return mode.lower() == "wal"


def load_agi_profile(name: str | None = None):
    """The loaded AiiDA profile; if none is loaded, the project's profile (set up on first use)."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if profile is not None and name in (None, profile.name):
        return profile
    configure_aiida_path()
    from aiida.manage.configuration import get_config

    name = name or PROFILE_NAME
    if name not in get_config(create=True).profile_names:
        setup(profile=name, quiet=True)
    from aiida import load_profile

    return load_profile(name, allow_switch=True)


#: the schedulers a computer made by :func:`ensure_computer` can use (aiida-core's plugins)
SCHEDULERS = ("core.direct", "core.slurm")


def ensure_computer(label: str = COMPUTER_LABEL, *, workdir: str | Path | None = None,
                    mpiprocs: int | None = None, poll_interval: float = 1.0, scheduler: str = "core.direct"):
    """The ``core.local`` computer ``label`` of the loaded profile (created and configured if missing).

    ``scheduler`` is ``core.direct`` (jobs start at once as child processes) or ``core.slurm``
    (jobs go through ``sbatch`` to a Slurm cluster whose login node is this machine, e.g. the
    one-node cluster of ``scripts/slurm-cluster.sh``). An existing computer with another scheduler
    is an error rather than silently reused.

    ``poll_interval`` (s) is how often the engine asks the scheduler about running jobs. Each
    poll costs the engine ~40 ms of CPU here: at 0.2 s that was 15 % of a core while pw.x ran
    (measured), at 1 s 4 %, for an average 0.5 s delay in noticing that a job ended.
    """
    if scheduler not in SCHEDULERS:
        raise SetupError(f"scheduler {scheduler!r} is not supported here; choose one of {SCHEDULERS} "
                         "(for a remote cluster, use `verdi computer setup --config` with the templates of "
                         "docs/cluster.md)")
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        computer = orm.Computer.collection.get(label=label)
        if computer.scheduler_type != scheduler:
            raise SetupError(f"computer {label!r} exists with scheduler {computer.scheduler_type!r}, not "
                             f"{scheduler!r}; give another label")
    except NotExistent:
        if workdir is None:
            from aiida.manage import get_manager
            from aiida.manage.configuration import get_config

            workdir = Path(get_config().dirpath) / "scratch" / get_manager().get_profile().name
        mpirun = ["mpirun", "-np", "{tot_num_mpiprocs}", "--bind-to", "none"]
        if os.geteuid() == 0:
            mpirun.insert(1, "--allow-run-as-root")
        computer = orm.Computer(
            label=label, hostname="localhost", transport_type="core.local", scheduler_type=scheduler,
            workdir=str(workdir), description=f"this machine, jobs through {scheduler} (agi setup)",
        )
        computer.set_mpirun_command(mpirun)
        computer.set_default_mpiprocs_per_machine(mpiprocs or os.cpu_count() or 1)
        computer.set_prepend_text("export OMP_NUM_THREADS=1\nexport OMPI_ALLOW_RUN_AS_ROOT=1\n"
                                  "export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
        computer.set_minimum_job_poll_interval(poll_interval)
        computer.store()
    if not computer.is_configured:
        # no login shell: `bash -l` costs ~0.6 s per scheduler command on a loaded machine
        computer.configure(safe_interval=0.0, use_login_shell=False)
    return computer


def _package_version(executable: str) -> str:
    package = _DEBIAN.get(executable)
    if package and shutil.which("dpkg-query"):
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip():
            return f"{package} {proc.stdout.strip()} (Debian)"
    return "unknown"


def ensure_codes(computer=None, *, only: list[str] | None = None) -> dict:
    """``InstalledCode`` s for pw.x, pw2wannier90.x and wannier90.x on ``computer`` (created when missing).

    Raises :class:`MissingCodeError` naming every executable that is neither registered nor on ``PATH``.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    computer = computer or ensure_computer()
    codes, missing = {}, []
    for label in only or list(CODES):
        executable, plugin = CODES[label]
        try:
            codes[label] = orm.load_code(f"{label}@{computer.label}")
            continue
        except NotExistent:
            pass
        path = shutil.which(executable)
        if path is None:
            missing.append(executable)
            continue
        code = orm.InstalledCode(computer=computer, filepath_executable=path, label=label,
                                 default_calc_job_plugin=plugin,
                                 description=f"{executable} found on PATH by agi setup")
        code.store()
        code.base.extras.set("version", _package_version(executable))
        codes[label] = code
    if missing:
        raise MissingCodeError(
            f"executable(s) {missing} not found on PATH: install them (`make setup`, or Debian "
            "`apt-get install quantum-espresso wannier90`) or register your own with `verdi code create core.code."
            f"installed --label <pw|pw2wannier90|wannier90> --computer {computer.label} ...`")
    return codes


def ensure_python_code(computer, label: str, plugin: str, description: str, version: str, executable=None):
    """The ``label@<computer>`` InstalledCode running this environment's Python (created when missing).

    For the jobs that run a Python entry point of the agi-data environment (``nequip-train``, the MD
    job); ``version`` goes into the code's ``version`` extra.
    """
    import sys

    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(f"{label}@{computer.label}")
    except NotExistent:
        pass
    code = orm.InstalledCode(computer=computer, filepath_executable=str(executable or sys.executable), label=label,
                             default_calc_job_plugin=plugin, description=description)
    code.store()
    code.base.extras.set("version", version)
    return code


def get_code(label: str, computer_label: str = COMPUTER_LABEL):
    """The code ``label@computer`` of the loaded profile, with a message saying how to create it if missing."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    try:
        return orm.load_code(f"{label}@{computer_label}")
    except NotExistent:
        raise MissingCodeError(
            f"no AiiDA code '{label}@{computer_label}' in profile: run `agi setup` (registers pw.x, "
            f"pw2wannier90.x and wannier90.x from PATH) or pass your own code to the builder") from None


def ensure_pseudo_family(label: str = PSEUDO_FAMILY, *, source: str = "shipped", workdir: str | Path | None = None):
    """The aiida-pseudo family ``label`` with the Ag and I pseudopotentials (installed if missing).

    ``source='shipped'`` installs the UPF files shipped in the package (the same md5 everywhere);
    ``source='ld1'`` regenerates them with ``ld1.x`` into ``workdir`` first.
    """
    from aiida.common.exceptions import NotExistent
    from aiida.orm import QueryBuilder
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    from agi_data import pseudo

    found = QueryBuilder().append(PseudoPotentialFamily, filters={"label": label}).first(flat=True)
    if found is not None:
        return found
    if source == "shipped":
        files = pseudo.shipped_pseudopotentials()
    elif source == "ld1":
        import tempfile

        files = pseudo.generate_pseudopotentials(workdir or tempfile.mkdtemp(prefix="agi-ld1-"))
    else:
        raise SetupError(f"unknown pseudopotential source {source!r}: use 'shipped' or 'ld1'")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in files.values():
            shutil.copy(path, Path(tmp) / path.name)
        try:
            family = PseudoPotentialFamily.create_from_folder(
                Path(tmp), label, pseudo_type=UpfData,
                description="norm-conserving PBE (ld1.x, Troullier-Martins): Ag 4d10 5s1 (11 e), I 5s2 5p5 (7 e)")
        except ValueError as exc:  # a concurrent setup created it
            try:
                return PseudoPotentialFamily.collection.get(label=label)
            except NotExistent:
                raise SetupError(f"could not create pseudopotential family {label}: {exc}") from exc
    family.base.extras.set("source", source)
    return family


@dataclass
class SetupReport:
    profile: str
    aiida_path: Path
    computer: str
    codes: dict = field(default_factory=dict)
    family: str = PSEUDO_FAMILY


STAMP = "agi-setup.json"


def _stamp_is_current(path: Path, profile: str, pseudos: str) -> dict | None:
    """The stamp of a previous complete setup if everything it lists still exists (no AiiDA import: fast)."""
    import json

    try:
        stamp = json.loads((path / STAMP).read_text())
        config = json.loads((Path(stamp["config_dir"]) / "config.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    if stamp.get("profile") != profile or stamp.get("pseudos") != pseudos:
        return None
    prof = config.get("profiles", {}).get(profile)
    if not prof:
        return None
    storage = prof.get("storage", {}).get("config", {}).get("filepath")
    if prof.get("storage", {}).get("backend") == "core.sqlite_dos" and not (
            storage and (Path(storage) / "database.sqlite").is_file()):
        return None
    if not all(Path(exe).is_file() for exe in stamp.get("executables", {}).values()):
        return None
    return stamp


def setup(*, profile: str | None = None, aiida_path: str | Path | None = None, pseudos: str = "shipped",
          quiet: bool = False, force: bool = False) -> SetupReport:
    """Create (or find) the profile, computer, codes and pseudopotential family. Idempotent.

    A complete setup leaves ``agi-setup.json`` in the configuration directory; a later call
    whose profile, database and executables still exist returns at once without loading AiiDA
    (``force=True`` checks everything through AiiDA again).
    """
    import json

    from agi_data.config import aiida_path as default_aiida_path

    name = profile or PROFILE_NAME
    target = Path(aiida_path) if aiida_path is not None else default_aiida_path()
    stamp = None if force else _stamp_is_current(target, name, pseudos)
    if stamp is not None:
        return SetupReport(profile=name, aiida_path=target, computer=stamp["computer"], codes=stamp["codes"],
                           family=stamp["family"])
    path = configure_aiida_path(target)
    prof = ensure_profile(name, quiet=quiet)
    computer = ensure_computer()
    codes = ensure_codes(computer)
    family = ensure_pseudo_family(source=pseudos)
    from aiida.manage.configuration import get_config

    report = SetupReport(profile=prof.name, aiida_path=path, computer=computer.label,
                         codes={k: c.full_label for k, c in codes.items()}, family=family.label)
    (path / STAMP).write_text(json.dumps({
        "profile": prof.name, "config_dir": str(get_config().dirpath), "computer": computer.label,
        "codes": report.codes, "executables": {k: str(c.filepath_executable) for k, c in codes.items()
                                              if hasattr(c, "filepath_executable")},
        "family": family.label, "pseudos": pseudos}, indent=1))
    return report
