"""LAMMPS as an MD engine: the classical rigid-ion AgI model through Debian's ``lmp``.

The engine writes a data file (positions and velocities at full precision),
an input script and the force field's potential file into a working
directory, starts ``lmp`` (under ``mpirun -np N`` for N > 1 ranks) and reads
the frames back while LAMMPS runs, from a binary ``dump custom`` (positions,
velocities, forces, per-atom energies) and a ``fix print`` file (pressure).
A frame is handed on once LAMMPS has written it completely.

Langevin noise: LAMMPS's ``fix langevin`` cannot be reseeded, so the script
runs one ``run`` per stored frame and re-creates the fix with the seed of
that frame (:func:`~agi_data.md.base.langevin_seed`) — a continued run then
repeats the frames an uninterrupted one writes. This costs one extra set-up
per frame (a few % at 20 steps per frame, measured in docs/md.md).
Nosé–Hoover (``fix nvt``) and NVE need no reseeding; the Nosé–Hoover chain
variables are not restored on a continuation (they start from zero).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms

from ..elements import mass
from .base import Engine, Frame, MDSettings, langevin_seed
from .errors import EngineNotFoundError, MDBlowUpError, MDError
from .forcefields import AGI_SHIMOJO_KOBAYASHI, RigidIonForceField

#: 1 bar in GPa
BAR_IN_GPA = 1e-4

#: LAMMPS messages that mean the dynamics went unstable
_BLOWUP_MESSAGES = ("Out of range atoms", "Lost atoms", "Non-numeric", "Atom count changed", "Bond atoms missing",
                    "Too many neighbor bins", "Neighbor list overflow", "Inconsistent image flags")

#: dumped per-atom columns; the forces are those of the potential, stored by ``fix store/force`` before a
#: thermostat (``fix langevin``) adds its friction and noise to LAMMPS's force array
_COLUMNS = ("id", "type", "x", "y", "z", "vx", "vy", "vz", "f_fpot[1]", "f_fpot[2]", "f_fpot[3]", "c_pea")


def find_lammps(executable: str = "lmp") -> str:
    path = shutil.which(executable)
    if path is None:
        raise EngineNotFoundError(
            f"the LAMMPS executable {executable!r} is not on PATH; install it (Debian: apt-get install lammps) "
            "or pass the path of an lmp binary built with the KSPACE and MANYBODY packages"
        )
    return path


def lammps_version(executable: str = "lmp") -> str:
    out = subprocess.run([find_lammps(executable), "-h"], capture_output=True, text=True, timeout=60).stdout
    for line in out.splitlines():
        if "Large-scale Atomic/Molecular Massively Parallel Simulator" in line:
            return line.split("Simulator - ")[-1].strip()
    return "unknown"


def check_lammps_cell(cell: np.ndarray) -> None:
    """LAMMPS wants a = (ax,0,0), b = (bx,by,0), c = (cx,cy,cz) with positive diagonal."""
    c = np.asarray(cell, dtype=float)
    if abs(c[0, 1]) > 1e-10 or abs(c[0, 2]) > 1e-10 or abs(c[1, 2]) > 1e-10 or np.any(np.diag(c) <= 0):
        raise MDError(
            "the cell is not in LAMMPS orientation (rows a=(ax,0,0), b=(bx,by,0), c=(cx,cy,cz)); rotate the "
            "structure first, e.g. with ase.calculators.lammps.Prism"
        )


def _num(x) -> str:
    """A float written so that reading it back gives the same double."""
    return repr(float(x))


def write_data_file(path: Path, atoms: Atoms, velocities: np.ndarray, elements: tuple[str, ...],
                    charges: dict[str, float]) -> None:
    """A LAMMPS ``atom_style charge`` data file with velocities, every number at full precision."""
    cell = atoms.cell.array
    check_lammps_cell(cell)
    types = np.array([elements.index(s) + 1 for s in atoms.get_chemical_symbols()])
    lines = ["agi-data: LAMMPS data file", "", f"{len(atoms)} atoms", f"{len(elements)} atom types", "",
             f"0.0 {_num(cell[0, 0])} xlo xhi", f"0.0 {_num(cell[1, 1])} ylo yhi", f"0.0 {_num(cell[2, 2])} zlo zhi"]
    if np.any(np.abs([cell[1, 0], cell[2, 0], cell[2, 1]]) > 0):
        lines.append(f"{_num(cell[1, 0])} {_num(cell[2, 0])} {_num(cell[2, 1])} xy xz yz")
    lines += ["", "Masses", ""] + [f"{t} {_num(mass(el))}" for t, el in enumerate(elements, 1)]
    lines += ["", "Atoms # charge", ""]
    pos = atoms.positions
    for i in range(len(atoms)):
        el = elements[types[i] - 1]
        lines.append(f"{i + 1} {types[i]} {_num(charges[el])} {_num(pos[i, 0])} {_num(pos[i, 1])} {_num(pos[i, 2])}")
    lines += ["", "Velocities", ""]
    for i in range(len(atoms)):
        v = velocities[i]
        lines.append(f"{i + 1} {_num(float(v[0]))} {_num(float(v[1]))} {_num(float(v[2]))}")
    path.write_text("\n".join(lines) + "\n")


class BinaryDumpReader:
    """Reads complete snapshots of a growing LAMMPS binary ``dump custom`` file (format revision 2)."""

    def __init__(self, path: Path):
        self.path = path
        self._buf = b""
        self._offset = 0

    def _read_more(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        self._buf += data

    def snapshots(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """New complete snapshots: (step, box (3,2) lo/hi [+ tilt], data (natoms, ncols))."""
        self._read_more()
        out = []
        while True:
            snap = self._parse_one(self._buf)
            if snap is None:
                break
            used, step, box, data = snap
            self._buf = self._buf[used:]
            out.append((step, box, data))
        return out

    @staticmethod
    def _parse_one(b: bytes):
        p = 0

        def take(fmt):
            nonlocal p
            size = struct.calcsize(fmt)
            if p + size > len(b):
                raise IndexError
            vals = struct.unpack_from(fmt, b, p)
            p += size
            return vals

        try:
            (magic,) = take("<q")
            if magic >= 0:
                raise MDError("unsupported LAMMPS binary dump (no magic string; LAMMPS older than 2021?)")
            take(f"<{-magic}s")
            endian, revision = take("<ii")
            if endian != 1 or revision < 2:
                raise MDError(f"unsupported LAMMPS binary dump revision {revision} (endian flag {endian})")
            step, natoms = take("<qq")
            (triclinic,) = take("<i")
            take("<6i")
            box = np.array(take("<6d"))
            tilt = np.array(take("<3d")) if triclinic else np.zeros(3)
            (size_one,) = take("<i")
            (ulen,) = take("<i")
            if ulen:
                take(f"<{ulen}s")
            (tflag,) = take("<b")
            if tflag:
                take("<d")
            (clen,) = take("<i")
            take(f"<{clen}s")
            (nchunk,) = take("<i")
            chunks = []
            for _ in range(nchunk):
                (n,) = take("<i")
                if p + 8 * n > len(b):
                    raise IndexError
                chunks.append(np.frombuffer(b, dtype="<f8", count=n, offset=p))
                p += 8 * n
        except IndexError:
            return None
        data = np.concatenate(chunks).reshape(natoms, size_one)
        return p, int(step), np.concatenate([box, tilt]), data


class LammpsEngine(Engine):
    """Classical MD with LAMMPS (``lmp``) for a rigid-ion force field.

    Parameters
    ----------
    force_field
        A :class:`~agi_data.md.forcefields.RigidIonForceField` (default: the
        Shimojo–Kobayashi AgI model).
    executable
        The LAMMPS binary (``lmp``).
    mpi_ranks
        MPI ranks (``mpirun -np``); 1 runs ``lmp`` directly.
    workdir
        Where inputs and outputs go (default: a temporary directory, removed
        after the run unless ``keep_files``).
    """

    name = "lammps"

    def __init__(self, force_field: RigidIonForceField = AGI_SHIMOJO_KOBAYASHI, *, executable: str = "lmp",
                 mpi_ranks: int = 1, mpirun: str = "mpirun", workdir: str | Path | None = None,
                 keep_files: bool = False, poll_s: float = 0.02):
        self.force_field = force_field
        self.executable = executable
        self.mpi_ranks = int(mpi_ranks)
        self.mpirun = mpirun
        self.workdir = Path(workdir) if workdir is not None else None
        self.keep_files = keep_files
        self.poll_s = poll_s
        self.last_workdir: Path | None = None
        self.pressures_GPa: list[float] = []

    @property
    def elements(self):
        return self.force_field.elements

    def describe(self) -> dict:
        return {
            "engine": "lammps",
            "engine_version": lammps_version(self.executable),
            "potential": self.force_field.name,
            "potential_citation": self.force_field.citation,
            "potential_source": self.force_field.source,
            "potential_cutoff_A": self.force_field.cutoff,
            "kspace": f"pppm {self.force_field.kspace_accuracy}",
            "mpi_ranks": self.mpi_ranks,
        }

    # ----------------------------------------------------------------- script
    def input_script(self, settings: MDSettings, *, first_step: int, n_frames: int) -> str:
        ff = self.force_field
        dt_ps = settings.timestep_fs * 1e-3
        damp_ps = settings.damping_fs * 1e-3
        s = settings.stride
        lines = [
            "# agi-data: classical MD of AgI (written by agi_data.md.lammps_engine)",
            "units metal", "atom_style charge", "atom_modify map array", "boundary p p p",
            "read_data data.lmp",
            *ff.lammps_commands("potential.vashishta"),
            "neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes",
            "thermo_modify lost error flush yes",
            f"timestep {dt_ps!r}",
            f"reset_timestep {first_step}",
            "compute pea all pe/atom",
            "fix fpot all store/force",  # defined before any thermostat fix, so it sees the potential's forces
            f"dump frames all custom {s} frames.bin {' '.join(_COLUMNS)}",
            "dump_modify frames sort id",
            f'fix thermo all print {s} "$(step) $(press:%.10g) $(temp:%.10g) $(pe:%.15g)" file thermo.dat screen no',
            f"thermo {max(s, 100)}",
        ]
        T = settings.temperature_K
        if settings.ensemble == "nose-hoover":
            lines += [f"fix integrate all nvt temp {T!r} {T!r} {damp_ps!r}", f"run {n_frames * s}"]
        elif settings.ensemble == "nve":
            lines += ["fix integrate all nve", f"run {n_frames * s}"]
        else:  # langevin: one run per frame, the noise reseeded per frame
            lines.append("fix integrate all nve")
            first_frame = first_step // s
            if n_frames == 0:
                lines.append("run 0")
            for k in range(n_frames):
                seed = langevin_seed(settings.seed, first_frame + k)
                lines += [f"fix noise all langevin {T!r} {T!r} {damp_ps!r} {seed} zero yes",
                          f"run {s} post no", "unfix noise"]
        return "\n".join(lines) + "\n"

    # -------------------------------------------------------------------- run
    def run(self, atoms, velocities, settings, *, first_frame, n_frames, include_initial, state=None
            ) -> Iterator[Frame]:
        self.check_species(atoms.get_chemical_symbols())
        exe = find_lammps(self.executable)
        if self.mpi_ranks > 1 and shutil.which(self.mpirun) is None:
            raise EngineNotFoundError(f"{self.mpirun!r} not found: install Open MPI or use mpi_ranks=1")
        ff = self.force_field
        work = Path(tempfile.mkdtemp(prefix="agi-lammps-", dir=self.workdir))
        self.last_workdir = work
        write_data_file(work / "data.lmp", atoms, np.asarray(velocities, dtype=np.float64), ff.elements, ff.charges)
        ff.write_lammps_potential(work / "potential.vashishta")
        first_step = first_frame * settings.stride
        (work / "in.lammps").write_text(self.input_script(settings, first_step=first_step, n_frames=n_frames))
        cmd = [exe, "-in", "in.lammps", "-log", "log.lammps", "-screen", "none", "-nocite"]
        if self.mpi_ranks > 1:
            cmd = [self.mpirun, "-np", str(self.mpi_ranks), *cmd]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        stderr = open(work / "stderr.txt", "wb")
        proc = subprocess.Popen(cmd, cwd=work, stdout=stderr, stderr=subprocess.STDOUT, env=env)
        reader = BinaryDumpReader(work / "frames.bin")
        thermo: dict[int, float] = {}
        last_step = first_step - (1 if include_initial else 0)
        final_step = first_step + n_frames * settings.stride
        cols = {c: i for i, c in enumerate(_COLUMNS)}
        try:
            while True:
                alive = proc.poll() is None
                snaps = reader.snapshots()
                if snaps:
                    self._read_thermo(work / "thermo.dat", thermo)
                for step, box, data in snaps:
                    if step <= last_step:
                        continue  # written again at the set-up of the next run
                    yield self._frame(step, box, data, cols, thermo)
                    last_step = step
                if last_step >= final_step:
                    break
                if not alive:  # it exited before writing every frame, and all it wrote has been read
                    self._raise_failure(proc.returncode, work, last_step, settings.stride)
                if not snaps:
                    time.sleep(self.poll_s)
            proc.wait(timeout=60)
            if proc.returncode:
                self._raise_failure(proc.returncode, work, last_step, settings.stride)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stderr.close()
            if not self.keep_files:
                shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _read_thermo(path: Path, thermo: dict) -> None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 4 and not line.startswith("#"):
                try:
                    thermo[int(float(parts[0]))] = (float(parts[1]) * BAR_IN_GPA, float(parts[2]), float(parts[3]))
                except ValueError:
                    pass

    @staticmethod
    def _frame(step, box, data, cols, thermo) -> Frame:
        order = np.argsort(data[:, cols["id"]])
        d = data[order]
        lo, hi, tilt = box[[0, 2, 4]], box[[1, 3, 5]], box[6:9]
        # bounding box → cell for triclinic: LAMMPS writes xlo_bound etc.
        xy, xz, yz = tilt
        xlo = lo[0] - min(0.0, xy, xz, xy + xz)
        xhi = hi[0] - max(0.0, xy, xz, xy + xz)
        ylo = lo[1] - min(0.0, yz)
        yhi = hi[1] - max(0.0, yz)
        cell = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, hi[2] - lo[2]]])
        origin = np.array([xlo, ylo, lo[2]])
        return Frame(
            step=int(step),
            positions=d[:, cols["x"]:cols["z"] + 1] - origin,
            velocities=d[:, cols["vx"]:cols["vz"] + 1].copy(),
            forces=d[:, cols["f_fpot[1]"]:cols["f_fpot[3]"] + 1].copy(),
            energy=float(d[:, cols["c_pea"]].sum()),
            cell=cell,
            pressure_GPa=thermo[int(step)][0] if int(step) in thermo else None,
            extra={"temperature_K": thermo[int(step)][1], "pe_thermo": thermo[int(step)][2]} if int(step) in thermo else {},
        )

    def _raise_failure(self, returncode, work: Path, last_step: int, stride: int):
        text = ""
        for name in ("log.lammps", "stderr.txt"):
            try:
                text += (work / name).read_text(errors="replace")
            except FileNotFoundError:
                pass
        errors = [ln.strip() for ln in text.splitlines() if "ERROR" in ln]
        msg = errors[0] if errors else "\n".join(text.splitlines()[-15:])
        if any(m in msg for m in _BLOWUP_MESSAGES):
            raise MDBlowUpError(
                f"LAMMPS stopped: the dynamics blew up after step {last_step} ({msg}); the time step is too large "
                "for this potential or the structure is unphysical — reduce timestep_fs; frames written before "
                "the blow-up are kept",
                last_good_frame=last_step // stride,
            )
        raise MDError(f"LAMMPS failed (exit code {returncode}): {msg}; inputs in {work if self.keep_files else 'a temporary directory (use keep_files=True)'}")
