"""Norm-conserving PBE pseudopotentials for Ag and I, generated with QE's ``ld1.x``.

The Wannier analysis counts 4 centres per I⁻ and 5 per Ag⁺, so the
pseudopotentials must leave exactly 7 valence electrons on I (5s²5p⁵) and
11 on Ag (4d¹⁰5s¹). The pslibrary-style ``ld1.x`` inputs that define them
(Troullier–Martins, nonlinear core correction, scalar-relativistic PBE) are
committed in ``agi_data/data/pseudo/ld1/``; the UPF files they produce are
shipped in ``agi_data/data/pseudo/upf/`` so that every installation uses the
same files (same md5) by default.

Regenerated files differ from the shipped ones in the header date and in the
last digits between BLAS builds: compare them with :func:`compare_upf`
(numerical), never by hash.

Example
-------
>>> from agi_data.pseudo import generate_pseudopotentials, shipped_pseudopotentials, compare_upf
>>> new = generate_pseudopotentials("/tmp/pp")          # {'Ag': Path, 'I': Path}
>>> compare_upf(new["Ag"], shipped_pseudopotentials()["Ag"])   # max relative difference
"""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import numpy as np

__all__ = [
    "PseudoError",
    "LD1_INPUT_DIR",
    "UPF_DIR",
    "VALENCE",
    "ld1_inputs",
    "generate_pseudopotentials",
    "shipped_pseudopotentials",
    "upf_header",
    "read_upf_arrays",
    "compare_upf",
]

_DATA = Path(str(files("agi_data"))) / "data" / "pseudo"
#: the committed ld1.x inputs (one ``<El>.pbe-n-nc.in`` per element)
LD1_INPUT_DIR = _DATA / "ld1"
#: the shipped UPF files generated from them
UPF_DIR = _DATA / "upf"
#: valence electrons the analysis relies on (centres = valence/2 per ion)
VALENCE = {"Ag": 11, "I": 7}


class PseudoError(ValueError):
    """A pseudopotential could not be generated, found or read."""


def ld1_inputs() -> dict[str, Path]:
    """The committed ``ld1.x`` inputs, ``{element: path}``."""
    return {p.name.split(".")[0]: p for p in sorted(LD1_INPUT_DIR.glob("*.in"))}


def _output_name(ld1_input: Path) -> str:
    match = re.search(r"file_pseudopw\s*=\s*'([^']+)'", ld1_input.read_text())
    if not match:
        raise PseudoError(f"{ld1_input} does not name its output (file_pseudopw='...')")
    return match.group(1)


def generate_pseudopotentials(dest_dir: str | Path, elements=None, *, ld1: str = "ld1.x") -> dict[str, Path]:
    """Run ``ld1.x`` on the committed inputs and write the UPF files to ``dest_dir``.

    Parameters
    ----------
    dest_dir
        directory for the UPF files (created); ld1.x's scratch files go to a
        subdirectory ``ld1-work`` of it.
    elements
        subset of elements (default: every committed input, i.e. Ag and I).
    ld1
        the ``ld1.x`` executable (name on PATH or a path).

    Returns
    -------
    dict
        ``{element: Path}`` of the generated UPF files. Each takes < 1 s.

    Raises
    ------
    PseudoError
        ``ld1.x`` is missing, fails, or writes a file whose valence differs from :data:`VALENCE`.
    """
    exe = shutil.which(ld1)
    if exe is None:
        raise PseudoError(
            f"'{ld1}' not found on PATH: install QE's atomic code (Debian: `apt-get install quantum-espresso`, "
            "or `make setup`), or use the shipped files from shipped_pseudopotentials()"
        )
    inputs = ld1_inputs()
    wanted = list(inputs) if elements is None else list(elements)
    missing = [e for e in wanted if e not in inputs]
    if missing:
        raise PseudoError(f"no ld1.x input for {missing} in {LD1_INPUT_DIR}; available: {sorted(inputs)}")
    dest = Path(dest_dir)
    work = dest / "ld1-work"
    work.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for element in wanted:
        src = inputs[element]
        proc = subprocess.run([exe], stdin=src.open(), cwd=work, capture_output=True, text=True, timeout=120)
        (work / f"{element}.ld1.out").write_text(proc.stdout)
        produced = work / _output_name(src)
        if proc.returncode != 0 or not produced.is_file():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
            raise PseudoError(f"ld1.x failed on {src.name} (exit {proc.returncode}):\n{tail}")
        target = dest / produced.name
        shutil.move(produced, target)
        z = upf_header(target)["z_valence"]
        if element in VALENCE and round(z) != VALENCE[element]:
            raise PseudoError(f"{target.name} has z_valence={z}, expected {VALENCE[element]} for {element}")
        out[element] = target
    return out


def shipped_pseudopotentials() -> dict[str, Path]:
    """The UPF files shipped with the package, ``{element: path}``."""
    found = {p.name.split(".")[0]: p for p in sorted(UPF_DIR.glob("*.UPF"))}
    if not found:
        raise PseudoError(f"no UPF files in {UPF_DIR}: reinstall agi-data or run generate_pseudopotentials()")
    return found


def upf_header(path: str | Path) -> dict:
    """Attributes of the ``<PP_HEADER>`` of a UPF v2 file (element, z_valence as float, functional, …)."""
    text = Path(path).read_text(errors="replace")
    match = re.search(r"<PP_HEADER(.*?)/?>", text, re.S)
    if not match:
        raise PseudoError(f"{path} is not a UPF v2 file (no <PP_HEADER>)")
    header = {k: v.strip() for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', match.group(1))}
    for key in ("z_valence", "total_psenergy"):
        if key in header:
            header[key] = float(header[key])
    return header


_ARRAY_TAGS = ("PP_R", "PP_RAB", "PP_NLCC", "PP_LOCAL", "PP_BETA.1", "PP_BETA.2", "PP_DIJ",
               "PP_CHI.1", "PP_CHI.2", "PP_CHI.3", "PP_RHOATOM")


def read_upf_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The numerical blocks of a UPF v2 file (radial mesh, local and nonlocal parts, atomic charge)."""
    text = Path(path).read_text(errors="replace")
    arrays = {}
    for tag in _ARRAY_TAGS:
        match = re.search(rf"<{re.escape(tag)}[^>]*>(.*?)</{re.escape(tag)}>", text, re.S)
        if match:
            arrays[tag] = np.array(match.group(1).replace("D", "E").split(), dtype=float)
    if "PP_LOCAL" not in arrays:
        raise PseudoError(f"{path}: no <PP_LOCAL> block; not a UPF v2 pseudopotential")
    return arrays


def compare_upf(a: str | Path, b: str | Path) -> float:
    """Largest difference between two UPF files' arrays, relative to each array's largest magnitude.

    The header (date) and formatting are ignored. Raises :class:`PseudoError` if the two
    files do not have the same blocks of the same lengths or differ in z_valence.
    """
    ha, hb = upf_header(a), upf_header(b)
    if ha.get("z_valence") != hb.get("z_valence") or ha.get("element") != hb.get("element"):
        raise PseudoError(f"{a} and {b} differ in element or valence: {ha.get('element')}/{ha.get('z_valence')} "
                          f"vs {hb.get('element')}/{hb.get('z_valence')}")
    xa, xb = read_upf_arrays(a), read_upf_arrays(b)
    if set(xa) != set(xb) or any(xa[k].shape != xb[k].shape for k in xa):
        raise PseudoError(f"{a} and {b} have different blocks or mesh sizes")
    worst = 0.0
    for key in xa:
        scale = max(np.abs(xa[key]).max(), np.abs(xb[key]).max(), 1e-300)
        worst = max(worst, float(np.abs(xa[key] - xb[key]).max() / scale))
    return worst
