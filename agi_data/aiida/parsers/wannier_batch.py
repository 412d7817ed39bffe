"""``agi.wannier_batch`` parser: each frame's pw.x, pw2wannier90.x and wannier90.x outputs, in that order.

A frame is good when pw.x converged and finished with a gap of at least
``parameters['pw']['min_gap_eV']``, pw2wannier90.x finished, and wannier90.x
converged with the expected number of centres per ion (the checks of
:func:`~agi_data.aiida.parsers.wannier90.wannier_result`). The first check a
frame fails names its failure (the names of :mod:`agi_data.aiida.exit_codes`).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..calculations.wannier_batch import frame_seednames
from ..calculations.wannier_chain import occupied_bands, wannier90_keywords
from .qe_stdout import parse_pw_stdout, qe_error, qe_wall_seconds
from .wannier90 import retrieved_reader, wannier_result, werr_message


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

            pw_text = read(f"{seed}.pw.out")
            if pw_text is None:
                fail("ERROR_PW_FAILED", message="pw.x wrote no output (did it start?)")
                continue
            pw = parse_pw_stdout(pw_text)
            result["pw"] = pw
            if pw["converged"] is False:
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
                    fail("ERROR_METALLIC", gap=pw["gap_eV"], min_gap=min_gap)
                    continue

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

        self.out("output_parameters", orm.Dict({"frames": frames, "failures": failures,
                                                "n_frames": len(frames), "n_failed": len(failures)}))
        if not failures:
            return None
        if len(failures) < len(frames):
            summary = ", ".join(f"{k}: {v['exit_code']}" for k, v in failures.items())
            return self.exit_codes.ERROR_SOME_FRAMES_FAILED.format(
                n_failed=len(failures), n_frames=len(frames), summary=summary)
        first = failures[next(iter(failures))]  # every frame failed: the first one's own exit code and message
        return ExitCode(first["exit_status"], first["message"])
