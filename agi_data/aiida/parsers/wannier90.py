"""``agi.wannier90`` parser: centres, spreads, convergence and centre counts of a ``wannier90.x`` run.

Every failure maps to a named exit code of :class:`~agi_data.aiida.calculations.wannier90.Wannier90Calculation`:
an ``aiida.werr`` (320), no output (310), unparsable output (311), no
``.nnkp`` after ``-pp`` (312), no centres file (313), a minimisation that
did not meet ``conv_tol`` over ``conv_window`` (330) and ions that do not own
the expected number of centres (340). Centres are always output when they
could be read, so a failed frame can still be inspected.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from ..calculations.wannier90 import SEEDNAME

_FLOAT = r"[-+]?\d*\.?\d+(?:[eEdD][-+]?\d+)?"


class WannierParseError(ValueError):
    """The text of a wannier90 output file is not what the parser expects."""


def _version(text: str) -> str | None:
    m = re.search(r"(?:Release|Version):?\s+([\d.]+)", text)
    return m.group(1) if m else None


def parse_wout(text: str) -> dict:
    """Version, final spreads (Å²), iterations, convergence and timing from an ``aiida.wout``."""
    out: dict = {}
    out["wannier90_version"] = _version(text)
    if "All done" not in text and "Final State" not in text and "-pp" not in text:
        raise WannierParseError("aiida.wout is incomplete: neither 'Final State' nor 'All done' found")
    for label, key in (("Omega I", "omega_i"), ("Omega D", "omega_d"), ("Omega OD", "omega_od"),
                       ("Omega Total", "omega_total")):
        m = re.findall(rf"{label}\s*=\s*({_FLOAT})", text)
        if m:
            out[key] = float(m[-1])
    # "iter  delta  [rms gradient]  spread  time  <-- CONV" (no gradient column at Γ)
    iters = re.findall(r"^\s*(\d+)\s+" + rf"{_FLOAT}\s+(?:{_FLOAT}\s+)?{_FLOAT}\s+{_FLOAT}\s+<-- CONV", text, re.M)
    out["n_iterations"] = int(iters[-1]) if iters else 0
    out["converged"] = "convergence criteria satisfied" in text
    m = re.search(r"Total Execution Time\s+(" + _FLOAT + r")", text)
    out["wall_time_seconds"] = float(m.group(1)) if m else None
    final = text.split("Final State")[-1] if "Final State" in text else ""
    spreads = re.findall(r"WF centre and spread\s+\d+\s+\(\s*" + rf"{_FLOAT},\s*{_FLOAT},\s*{_FLOAT}\s*\)\s+({_FLOAT})",
                         final)
    out["spreads"] = [float(s) for s in spreads]
    return out


def parse_centres_xyz(text: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Centres (X lines) and atoms of a ``_centres.xyz`` file: (centres (n,3) Å, symbols, positions)."""
    lines = text.splitlines()
    try:
        n = int(lines[0].split()[0])
        body = [ln.split() for ln in lines[2:2 + n]]
        centres = np.array([[float(x) for x in b[1:4]] for b in body if b[0] == "X"])
        atoms = [b for b in body if b[0] != "X"]
        symbols = [b[0] for b in atoms]
        positions = np.array([[float(x) for x in b[1:4]] for b in atoms]).reshape(-1, 3)
    except (IndexError, ValueError) as exc:
        raise WannierParseError(f"aiida_centres.xyz is malformed: {exc}") from exc
    if len(body) != n or centres.size == 0:
        raise WannierParseError(f"aiida_centres.xyz announces {n} lines but has {len(body)}, {len(centres)} centres")
    return centres, symbols, positions


def assign_owners(centres: np.ndarray, positions: np.ndarray, cell: np.ndarray, radius: float) -> np.ndarray:
    """Index of the nearest ion (minimum image) of each centre, or −1 when none lies within ``radius`` Å."""
    from agi_data.pbc import distances

    d = distances(centres, positions, cell)  # (n_centres, n_atoms)
    owner = d.argmin(axis=1)
    owner[d[np.arange(len(centres)), owner] > radius] = -1
    return owner


def count_problems(owner: np.ndarray, symbols: list[str], expected: dict[str, int]) -> list[str]:
    """Descriptions of the ions whose centre count differs from ``expected[element]`` (and of unowned centres)."""
    counts = np.bincount(owner[owner >= 0], minlength=len(symbols))
    problems = [f"{symbols[i]}{i} owns {counts[i]} (expected {expected[symbols[i]]})"
                for i in range(len(symbols)) if symbols[i] in expected and counts[i] != expected[symbols[i]]]
    n_free = int((owner < 0).sum())
    if n_free:
        problems.append(f"{n_free} centre(s) farther than the assignment radius from every ion")
    return problems


def werr_message(text: str) -> str | None:
    """The error wannier90.x wrote to its ``.werr`` file, on one line; None when it wrote none."""
    message = " ".join(text.replace("Exiting.......", "").split())
    return message or None


@dataclass
class WannierResult:
    """What one ``wannier90.x`` minimisation gave: ``output_parameters`` content, the centres node, a failure.

    ``failure`` is ``(exit code name, {"message": ...})`` or None; names from :mod:`agi_data.aiida.exit_codes`.
    """

    parsed: dict | None
    centres: orm.ArrayData | None
    failure: tuple[str, dict] | None


def wannier_result(wout_text: str, xyz_text: str | None, atoms, params: dict, settings: dict) -> WannierResult:
    """Parse a finished minimisation: spreads, centres (ArrayData ``centres``/``spreads``/``owner``), checks.

    ``params`` are the ``.win`` keywords, ``settings`` may give ``expected_centres`` ({element: n})
    and ``assign_radius`` (Å). Checks, in order: parsable output, a centres file, convergence over
    ``conv_window``, the number of centres per ion. The centres are returned whenever they could
    be read, so a failed frame can still be inspected.
    """
    try:
        parsed = parse_wout(wout_text)
    except WannierParseError as exc:
        return WannierResult(None, None, ("ERROR_UNPARSABLE_OUTPUT", {"message": str(exc)}))
    if xyz_text is None:
        return WannierResult(None, None, ("ERROR_UNPARSABLE_OUTPUT", {"message": "no aiida_centres.xyz: set write_xyz = .true. in the parameters"}))
    try:
        centres, _symbols, _positions = parse_centres_xyz(xyz_text)
    except WannierParseError as exc:
        return WannierResult(None, None, ("ERROR_UNPARSABLE_OUTPUT", {"message": str(exc)}))
    spreads = np.array(parsed.pop("spreads"), dtype=float)
    if len(spreads) != len(centres):
        return WannierResult(None, None, ("ERROR_UNPARSABLE_OUTPUT", {
            "message": f"{len(centres)} centres in the centres file but {len(spreads)} spreads in the .wout"}))

    radius = float(settings.get("assign_radius", 1.2))
    owner = assign_owners(centres, atoms.positions, atoms.cell.array, radius)
    node = orm.ArrayData()
    node.set_array("centres", centres)
    node.set_array("spreads", spreads)
    node.set_array("owner", owner.astype(np.int64))
    node.base.attributes.set("units", {"centres": "Å", "spreads": "Å^2"})

    symbols = atoms.get_chemical_symbols()
    expected = {str(k): int(v) for k, v in (settings.get("expected_centres") or {}).items()}
    problems = count_problems(owner, symbols, expected) if expected else []
    counts = np.bincount(owner[owner >= 0], minlength=len(symbols))
    per_element = {el: sorted({int(c) for c, s in zip(counts, symbols) if s == el}) for el in set(symbols)}
    parsed.update(num_wann=int(len(centres)), centres_per_ion=per_element, assign_radius=radius,
                  count_problems=problems, max_spread=float(spreads.max()))

    conv_window = int(params.get("conv_window", -1))
    if conv_window > 1 and int(params.get("num_iter", 100)) > 0 and not parsed["converged"]:
        return WannierResult(parsed, node, ("ERROR_WANNIER_NOT_CONVERGED", {"message": (
            f"the spread minimisation did not converge in {params.get('num_iter', 100)} iterations "
            f"(conv_tol={params.get('conv_tol', 1e-10)} Å² over conv_window={conv_window})")}))
    if problems:
        return WannierResult(parsed, node, ("ERROR_WRONG_CENTRE_COUNT", {"message": "; ".join(problems)}))
    return WannierResult(parsed, node, None)


def retrieved_reader(parser: Parser):
    """``read(name) -> text or None`` over a CalcJob's retrieved files; None when nothing was retrieved."""
    try:
        retrieved = parser.retrieved
    except Exception:  # noqa: BLE001 - aiida raises NotExistent
        return None
    names = set(retrieved.base.repository.list_object_names())
    return lambda name: retrieved.base.repository.get_object_content(name) if name in names else None


class Wannier90Parser(Parser):
    """Parse ``aiida.wout``, ``aiida.werr``, ``aiida_centres.xyz`` and (``-pp``) ``aiida.nnkp``."""

    def parse(self, **kwargs):
        read = retrieved_reader(self)
        if read is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER
        settings = self.node.inputs.settings.get_dict() if "settings" in self.node.inputs else {}
        params = {k.lower(): v for k, v in self.node.inputs.parameters.get_dict().items()}
        label = self.node.inputs.structure.label or f"structure pk {self.node.inputs.structure.pk}"

        werr = read(f"{SEEDNAME}.werr")
        message = werr_message(werr) if werr else None
        if message:
            return self.exit_codes.ERROR_WANNIER90_FAILED.format(label=label, message=message)
        wout = read(f"{SEEDNAME}.wout")
        if wout is None:
            return self.exit_codes.ERROR_WANNIER90_FAILED.format(
                label=label, message=f"no {SEEDNAME}.wout: the code did not start (is the executable there?)")

        if settings.get("postproc_setup", False):
            nnkp = read(f"{SEEDNAME}.nnkp")
            if nnkp is None:
                return self.exit_codes.ERROR_WANNIER90_FAILED.format(
                    label=label, message=f"wannier90.x -pp wrote no {SEEDNAME}.nnkp")
            self.out("nnkp_file", orm.SinglefileData(io.BytesIO(nnkp.encode()), filename=f"{SEEDNAME}.nnkp"))
            self.out("output_parameters", orm.Dict({"mode": "postproc_setup", "wannier90_version": _version(wout)}))
            return None

        result = wannier_result(wout, read(f"{SEEDNAME}_centres.xyz"), self.node.inputs.structure.get_ase(),
                                params, settings)
        if result.centres is not None:
            self.out("centres", result.centres)
        if result.parsed is not None:
            self.out("output_parameters", orm.Dict(result.parsed))
        if result.failure is not None:
            name, kwargs = result.failure
            return self.exit_codes[name].format(label=label, **kwargs)
        return None
