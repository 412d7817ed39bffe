"""``agi.wannier_batch`` parser: each frame's pw.x, pw2wannier90.x and wannier90.x outputs, in that order.

A frame is good when pw.x converged and finished with a gap of at least
``parameters['pw']['min_gap_eV']``, pw2wannier90.x finished, and wannier90.x
converged with the expected number of centres per ion (the checks of
:func:`~agi_data.aiida.parsers.wannier90.wannier_result`). The first check a
frame fails names its failure (the names of :mod:`agi_data.aiida.exit_codes`).

pw.x may have run several times for a frame (``<seed>.pw.out``, then the restarts
``<seed>.pw.<k>.out`` the job script's gate let run): the last attempt decides, and the frame's
``scf`` entry (:func:`scf_record`) says what each attempt used and cost and whether the frame was
recovered or refused (``stalled``, ``restarts_used_up``, ``metallic``).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..calculations.wannier_batch import frame_seednames
from ..calculations.wannier_chain import occupied_bands, pw_restart_inputs, wannier90_keywords
from .qe_stdout import parse_pw_stdout, qe_error, qe_wall_seconds
from .wannier90 import retrieved_reader, wannier_result, werr_message


def scf_record(params: dict, texts: list[str], log: str | None) -> tuple[dict, dict]:
    """``(last attempt's parse, record)`` of one frame's pw.x attempts (their stdout, in order).

    The record has the keys of :func:`~agi_data.aiida.workflows.pw_restarts.restart_record`
    (``restarts``, ``mixing_beta``, ``electron_maxstep``, ``scf_iterations`` per attempt,
    ``wall_seconds``, ``extra_wall_seconds`` — pw.x wall time of all attempts and of those before the
    last —, ``recovered`` set by the caller) and ``verdicts``: the gate's lines of ``<seed>.scf.log``
    (``attempt verdict slope steps_needed``).
    """
    pw = params["pw"]
    settings = [(float(pw["mixing_beta"]), int(pw["electron_maxstep"])), *pw_restart_inputs(params)]
    parsed = [parse_pw_stdout(text) for text in texts]
    walls = [p["wall_time_seconds"] or 0.0 for p in parsed]
    record = {"recovered": False, "restarts": len(parsed) - 1,
              "mixing_beta": [b for b, _ in settings[:len(parsed)]],
              "electron_maxstep": [n for _, n in settings[:len(parsed)]],
              "scf_iterations": [len(p.pop("scf_accuracy_Ry")) for p in parsed],
              "wall_seconds": round(sum(walls), 2), "extra_wall_seconds": round(sum(walls[:-1]), 2),
              "verdicts": [line.split() for line in (log or "").splitlines() if line.strip()]}
    return parsed[-1], record


def _pw_texts(read, seed: str, n_attempts: int) -> list[str]:
    """The stdout of a frame's pw.x attempts that ran, in order (``<seed>.pw.out``, ``<seed>.pw.2.out``, …)."""
    texts = []
    for k in range(1, n_attempts + 1):
        text = read(f"{seed}.pw.out" if k == 1 else f"{seed}.pw.{k}.out")
        if text is None:
            break
        texts.append(text)
    return texts


class WannierBatchParser(Parser):
    """Per-frame results and failures of a :class:`WannierBatchCalculation`."""

    def parse(self, **kwargs):
        read = retrieved_reader(self)
        if read is None:
            return self.exit_codes.ERROR_NO_RETRIEVED_FOLDER
        params = self.node.inputs.parameters.get_dict()
        settings = {"expected_centres": params.get("expected_centres") or {},
                    "assign_radius": float(params.get("assign_radius", 1.2))}
        min_gap = params["pw"].get("min_gap_eV")
        z_valence = {kind: pseudo.z_valence for kind, pseudo in self.node.inputs.pseudos.items()}
        frames, failures = {}, {}
        for key, seed in frame_seednames(self.node.inputs.structures).items():
            structure = self.node.inputs.structures[key]
            symbols = [site.kind_name for site in structure.sites]
            result: dict = {"seedname": seed}
            frames[key] = result

            def fail(name: str, key=key, **fmt) -> None:
                failures[key] = {"exit_code": name, "exit_status": self.exit_codes[name].status,
                                 "message": self.exit_codes[name].format(label=key, **fmt).message}

            texts = _pw_texts(read, seed, len(pw_restart_inputs(params)) + 1)
            if not texts:
                fail("ERROR_PW_FAILED", message="pw.x wrote no output (did it start?)")
                continue
            pw, scf = scf_record(params, texts, read(f"{seed}.scf.log"))
            result["pw"], result["scf"] = pw, scf
            if pw["converged"] is False:
                last = scf["verdicts"][-1][1] if scf["verdicts"] else None
                scf["refused"] = "stalled" if last == "stalled" else "restarts_used_up"
                fail("ERROR_SCF_NOT_CONVERGED")
                continue
            if not pw["job_done"] or pw["converged"] is None:
                fail("ERROR_PW_FAILED", message=pw["error"] or "pw.x stopped before the end of the SCF")
                continue
            if min_gap is not None and int(params["pw"]["n_empty_bands"]) > 0:
                if pw["gap_eV"] is None:
                    fail("ERROR_UNPARSABLE_OUTPUT", message="no 'highest occupied, lowest unoccupied level' line")
                    continue
                if pw["gap_eV"] < float(min_gap):
                    scf["refused"] = "metallic"
                    fail("ERROR_METALLIC", gap=pw["gap_eV"], min_gap=min_gap)
                    continue
            scf["recovered"] = scf["restarts"] > 0

            p2w_text = read(f"{seed}.p2w.out")
            if p2w_text is None or "JOB DONE" not in p2w_text:
                fail("ERROR_PW2WANNIER90_FAILED",
                     message=(qe_error(p2w_text) if p2w_text else None) or "pw2wannier90.x did not finish")
                continue
            result["pw2wannier90_wall_time_seconds"] = qe_wall_seconds(p2w_text, "PW2WANNIER")

            werr = read(f"{seed}.werr")
            message = werr_message(werr) if werr else None
            if message:
                fail("ERROR_WANNIER90_FAILED", message=message)
                continue
            wout = read(f"{seed}.wout")
            if wout is None:
                fail("ERROR_WANNIER90_FAILED", message=f"no {seed}.wout (did wannier90.x start?)")
                continue
            w90 = wannier_result(wout, read(f"{seed}_centres.xyz"), structure.get_ase(),
                                 wannier90_keywords(params, occupied_bands(symbols, z_valence)), settings)
            if w90.parsed is not None:
                result["wannier90"] = w90.parsed
            if w90.failure is not None:
                name, fmt = w90.failure
                fail(name, **fmt)  # the same names as the single wannier90.x CalcJob's
                continue
            self.out(f"centres.{key}", w90.centres)

        scf = [f["scf"] for f in frames.values() if "scf" in f]
        self.out("output_parameters", orm.Dict({
            "frames": frames, "failures": failures, "n_frames": len(frames), "n_failed": len(failures),
            "n_scf_recovered": sum(r["recovered"] for r in scf), "n_scf_refused": sum("refused" in r for r in scf),
            "scf_extra_wall_seconds": round(sum(r["extra_wall_seconds"] for r in scf if r["recovered"]), 2)}))
        if not failures:
            return None
        if len(failures) < len(frames):
            summary = ", ".join(f"{k}: {v['exit_code']}" for k, v in failures.items())
            return self.exit_codes.ERROR_SOME_FRAMES_FAILED.format(
                n_failed=len(failures), n_frames=len(frames), summary=summary)
        first = failures[next(iter(failures))]  # every frame failed: the first one's own exit code and message
        return ExitCode(first["exit_status"], first["message"])
