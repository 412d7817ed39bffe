"""The exit codes of every agi process (WorkChains, CalcJobs, parsers): one table, one number per meaning.

Bands as in aiida-quantumespresso:

* ``2xx`` invalid input: nothing was run (a missing code or pseudopotential, a bad structure or setting);
* ``3xx`` unrecoverable failure of a code (pw.x, pw2wannier90.x, wannier90.x, nequip-train, the MD);
* ``4xx`` failures of sub-processes (a batch job without per-frame results, some frames failed, an electronic job);
* ``7xx`` warnings (reserved).

(aiida-core keeps ``< 200`` for itself: ``1xx`` are the scheduler's and the engine's.)

A name means the same failure in every route: a frame whose SCF does not converge is
``ERROR_SCF_NOT_CONVERGED`` in ``agi.reference``, in the ``steps`` route of ``agi.wannier`` and in a
``agi.wannier_batch`` job alike, and a number is never given to a second name. Names are the
contract — handlers and tests refer to codes by name; where a number changed, ``docs/provenance.md``
lists the old and the new one (:data:`RENUMBERED`). Each process declares the names it can return
with :func:`define_exit_codes`; ``docs/provenance.md``'s table is :func:`markdown_table` (a test
checks that they agree).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExitCodeSpec", "EXIT_CODES", "RENUMBERED", "define_exit_codes", "markdown_table", "name_of"]


@dataclass(frozen=True)
class ExitCodeSpec:
    status: int
    name: str
    message: str      #: a full sentence; ``{label}``/``{message}``/… filled by ``ExitCode.format``
    when: str         #: one line for the documentation table


_TABLE = [
    # ---------------------------------------------------------------- 2xx invalid input
    ExitCodeSpec(201, "ERROR_CODE_NOT_FOUND",
                 "The executable of code {code} does not exist on {computer}: {path}. Run `agi setup` or fix the code.",
                 "a code's executable is missing on its computer"),
    ExitCodeSpec(202, "ERROR_MISSING_PSEUDO_FAMILY",
                 "No pseudopotential family {family!r}: run `agi setup` or `aiida-pseudo install ...` "
                 "(see docs/provenance.md).", "no such aiida-pseudo family"),
    ExitCodeSpec(203, "ERROR_MISSING_PSEUDO", "Pseudopotential family {family!r} has no pseudopotential for {elements}.",
                 "the family lacks an element of the structure"),
    ExitCodeSpec(204, "ERROR_ODD_ELECTRONS",
                 "Structure {label} has {n_electrons} valence electrons: fixed occupations need an even number.",
                 "fixed occupations need an even electron count"),
    ExitCodeSpec(205, "ERROR_NO_STRUCTURES", "No frames or structures were given.", "nothing to compute"),
    ExitCodeSpec(206, "ERROR_INVALID_INPUTS", "Invalid inputs: {message}", "inputs that contradict each other"),
    ExitCodeSpec(207, "ERROR_INVALID_TEMPERATURE", "{message}", "MD temperature not positive and finite"),
    ExitCodeSpec(208, "ERROR_OVERLAPPING_ATOMS", "{message}", "two atoms closer than `checks.min_distance`"),
    ExitCodeSpec(209, "ERROR_SPECIES_MISMATCH", "{message}", "elements the potential does not know"),
    ExitCodeSpec(210, "ERROR_ENGINE_NOT_FOUND", "{message}", "the MD engine (LAMMPS, nequip) is not installed"),
    ExitCodeSpec(211, "ERROR_STORE_UNREACHABLE",
                 "The store at {path} cannot be reached from where the process runs: {message}",
                 "the store path recorded in the inputs is gone or not a store"),
    ExitCodeSpec(212, "ERROR_RUN_LOCKED", "Another writer holds the run: {message}",
                 "two jobs or WorkChains asked to write one run: the second stops, nothing written"),
    ExitCodeSpec(213, "ERROR_PREDICTIONS_EXIST", "The run already holds predictions: {message}",
                 "(electronic predict) the run holds another model's predictions (or these frames'): "
                 "nothing written; `replace` swaps them, the old ones stay readable by version"),
    ExitCodeSpec(214, "ERROR_MODEL_INCOMPATIBLE", "The model cannot predict on this run: {message}",
                 "(electronic predict) another species or cutoff than asked, or elements the model does not know"),
    ExitCodeSpec(215, "ERROR_MODEL_UNREADABLE", "The model file cannot be read: {message}",
                 "(electronic predict) a truncated, corrupt or foreign model file"),
    ExitCodeSpec(216, "ERROR_FRAMES_OUT_OF_RANGE", "{message}",
                 "(electronic predict) the frame range asked for is not inside the run"),
    # ---------------------------------------------------------------- 3xx failures of the codes
    ExitCodeSpec(300, "ERROR_NO_RETRIEVED_FOLDER", "The retrieved folder could not be accessed.",
                 "(CalcJobs) nothing came back from the job"),
    ExitCodeSpec(301, "ERROR_MISSING_OUTPUT", "The code produced no {what}: see its log.",
                 "(nequip-train) an expected output file is missing"),
    ExitCodeSpec(310, "ERROR_SCF_NOT_CONVERGED", "pw.x SCF did not converge for {label}.",
                 "pw.x SCF not converged (`electron_maxstep`)"),
    ExitCodeSpec(311, "ERROR_METALLIC", "The snapshot {label} turned metallic: Γ gap {gap:.3f} eV < {min_gap} eV.",
                 "Γ HOMO–LUMO gap below `pw.min_gap_eV` (a snapshot that turned metallic)"),
    ExitCodeSpec(312, "ERROR_PW_FAILED", "pw.x failed for {label}: {message}", "any other pw.x failure"),
    ExitCodeSpec(313, "ERROR_UNPARSABLE_OUTPUT", "Unparsable output for {label}: {message}",
                 "an output file exists but cannot be read (pw.x, wannier90.x)"),
    ExitCodeSpec(330, "ERROR_PW2WANNIER90_FAILED", "pw2wannier90.x failed for {label}: {message}",
                 "pw2wannier90.x did not finish"),
    ExitCodeSpec(340, "ERROR_WANNIER90_FAILED", "wannier90.x failed for {label}: {message}",
                 "wannier90.x stopped (its `.werr`), wrote no `.wout`, or `-pp` wrote no `.nnkp`"),
    ExitCodeSpec(341, "ERROR_WANNIER_NOT_CONVERGED", "wannier90.x did not converge for {label}: {message}",
                 "spread not converged (`conv_tol` over `conv_window`)"),
    ExitCodeSpec(342, "ERROR_WRONG_CENTRE_COUNT", "Wrong number of Wannier centres per ion for {label}: {message}",
                 "an ion does not own its `expected_centres` within `assign_radius`"),
    ExitCodeSpec(350, "ERROR_STORE_WRITE", "Writing to the store failed: {message}", "the store refused a write"),
    ExitCodeSpec(360, "ERROR_TRAINING_FAILED", "nequip-train failed: {message}", "nequip-train failed"),
    ExitCodeSpec(361, "ERROR_NOT_FINITE", "The training diverged (non-finite test errors).",
                 "the trained model gives non-finite errors"),
    ExitCodeSpec(362, "ERROR_PACKAGING_FAILED", "Packaging or compiling the model failed: {message}",
                 "nequip-package / nequip-compile failed"),
    ExitCodeSpec(370, "ERROR_MD_BLOW_UP", "{message}",
                 "the MD blew up (forces, energy rise, atoms too close); the frames before are kept"),
    ExitCodeSpec(371, "ERROR_MD_INTERRUPTED",
                 "The MD job ended before its run was complete ({n_frames} of {n_total} frames stored): "
                 "continue it from the last stored frame.",
                 "(MD job) wall time, scancel or a node failure: the WorkChain continues the run"),
    ExitCodeSpec(372, "ERROR_RUN_INCONSISTENT", "The stored run is not what the MD job reported: {message}",
                 "(MD job) frames, version or time axis of the run disagree with the job's report"),
    ExitCodeSpec(380, "ERROR_PREDICTION_NOT_FINITE", "{message}",
                 "(electronic predict) the model gave non-finite moments: nothing written"),
    # ---------------------------------------------------------------- 4xx failures of sub-processes
    ExitCodeSpec(400, "ERROR_SOME_FRAMES_FAILED",
                 "{n_failed} of {n_frames} frames failed ({summary}); the others' results are output.",
                 "(batch job) some frames failed, the others' centres are output"),
    ExitCodeSpec(401, "ERROR_BATCH_FAILED", "The batch job for {label} gave no per-frame results: {message}",
                 "(batched) a batch job could not run, retrieve or parse at all"),
    ExitCodeSpec(402, "ERROR_NO_PROGRESS",
                 "Two restarts in a row stored no new frame ({n_frames} frames); giving up.",
                 "(agi.md_base) restarted MD jobs stopped making progress"),
    ExitCodeSpec(403, "ERROR_MD_JOB_FAILED", "The MD job failed: {message}",
                 "(agi.md, job route) the agi.md_base WorkChain failed; its exit message says why"),
    ExitCodeSpec(404, "ERROR_ELECTRONIC_JOB_FAILED", "The {what} job failed: {message}",
                 "(agi.electronic) the agi.electronic_train or agi.electronic_predict job failed; its exit "
                 "message says why"),
]

#: name -> spec
EXIT_CODES: dict[str, ExitCodeSpec] = {spec.name: spec for spec in _TABLE}

#: numbers that changed when the per-process tables became this one: (process, old status, old name, new name)
RENUMBERED = [
    ("agi.reference, agi.wannier", 301, "ERROR_CODE_NOT_FOUND", "ERROR_CODE_NOT_FOUND"),
    ("agi.reference, agi.wannier", 302, "ERROR_MISSING_PSEUDO_FAMILY", "ERROR_MISSING_PSEUDO_FAMILY"),
    ("agi.reference, agi.wannier", 303, "ERROR_MISSING_PSEUDO", "ERROR_MISSING_PSEUDO"),
    ("agi.reference, agi.wannier", 304, "ERROR_ODD_ELECTRONS", "ERROR_ODD_ELECTRONS"),
    ("agi.wannier", 305, "ERROR_NO_STRUCTURES", "ERROR_NO_STRUCTURES"),
    ("agi.reference, agi.wannier, agi.train, agi.md", 320, "ERROR_INVALID_INPUTS", "ERROR_INVALID_INPUTS"),
    ("agi.md", 321, "ERROR_INVALID_TEMPERATURE", "ERROR_INVALID_TEMPERATURE"),
    ("agi.md", 322, "ERROR_OVERLAPPING_ATOMS", "ERROR_OVERLAPPING_ATOMS"),
    ("agi.md", 323, "ERROR_SPECIES_MISMATCH", "ERROR_SPECIES_MISMATCH"),
    ("agi.md", 301, "ERROR_ENGINE_NOT_FOUND", "ERROR_ENGINE_NOT_FOUND"),
    ("agi.md", 330, "ERROR_MD_BLOW_UP", "ERROR_MD_BLOW_UP"),
    ("agi.train", 330, "ERROR_TRAINING_FAILED", "ERROR_TRAINING_FAILED"),
    ("agi.train", 340, "ERROR_PACKAGING_FAILED", "ERROR_PACKAGING_FAILED"),
    ("agi.wannier", 343, "ERROR_BATCH_FAILED", "ERROR_BATCH_FAILED"),
    ("agi.nequip_train", 300, "ERROR_MISSING_OUTPUT", "ERROR_MISSING_OUTPUT"),
    ("agi.nequip_train", 310, "ERROR_TRAINING_FAILED", "ERROR_TRAINING_FAILED"),
    ("agi.nequip_train", 311, "ERROR_NOT_FINITE", "ERROR_NOT_FINITE"),
    ("agi.wannier90", 310, "ERROR_OUTPUT_WOUT_MISSING", "ERROR_WANNIER90_FAILED"),
    ("agi.wannier90", 311, "ERROR_OUTPUT_UNPARSABLE", "ERROR_UNPARSABLE_OUTPUT"),
    ("agi.wannier90", 312, "ERROR_NNKP_MISSING", "ERROR_WANNIER90_FAILED"),
    ("agi.wannier90", 313, "ERROR_CENTRES_MISSING", "ERROR_UNPARSABLE_OUTPUT"),
    ("agi.wannier90", 320, "ERROR_WANNIER90_ERROR", "ERROR_WANNIER90_FAILED"),
    ("agi.wannier90", 330, "ERROR_NOT_CONVERGED", "ERROR_WANNIER_NOT_CONVERGED"),
    ("agi.wannier90", 340, "ERROR_WRONG_CENTRE_COUNT", "ERROR_WRONG_CENTRE_COUNT"),
    ("agi.electronic_train", 300, "ERROR_MISSING_OUTPUT", "ERROR_MISSING_OUTPUT"),
    ("agi.electronic_train", 311, "ERROR_NOT_FINITE", "ERROR_NOT_FINITE"),
]


def define_exit_codes(spec, *names: str) -> None:
    """Declare the exit codes ``names`` (from :data:`EXIT_CODES`) on a process ``spec``."""
    for name in names:
        code = EXIT_CODES[name]
        spec.exit_code(code.status, code.name, message=code.message)


def name_of(status: int | None) -> str | None:
    """The name of exit status ``status`` in the table, or None (0, aiida-core's own, unknown)."""
    for code in _TABLE:
        if code.status == status:
            return code.name
    return None


def markdown_table() -> str:
    """The table of :data:`EXIT_CODES` as Markdown (``docs/provenance.md`` holds it verbatim)."""
    lines = ["| status | name | when |", "|---|---|---|"]
    lines += [f"| {c.status} | `{c.name}` | {c.when} |" for c in _TABLE]
    return "\n".join(lines)


def renumbered_table() -> str:
    """The old → new numbers as Markdown."""
    lines = ["| process | old | old name | new | name now |", "|---|---|---|---|---|"]
    lines += [f"| {p} | {old} | `{old_name}` | {EXIT_CODES[new].status} | `{new}` |"
              for p, old, old_name, new in RENUMBERED]
    return "\n".join(lines)
