"""One exit-code table: numbers unique and banded, every process's codes from it, the docs generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agi_data.aiida.exit_codes import EXIT_CODES, RENUMBERED, markdown_table, name_of, renumbered_table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "provenance.md"
BANDS = {2: "invalid input", 3: "failure of a code", 4: "failure of sub-processes", 7: "warning"}


def _processes():
    from agi_data.aiida.calculations.electronic import (
        ElectronicPredictCalculation,
        ElectronicTrainCalculation,
    )
    from agi_data.aiida.calculations.nequip_train import NequipTrainCalculation
    from agi_data.aiida.calculations.wannier90 import Wannier90Calculation
    from agi_data.aiida.calculations.wannier_batch import WannierBatchCalculation
    from agi_data.aiida.workflows.electronic import ElectronicWorkChain
    from agi_data.aiida.workflows.md import MDWorkChain
    from agi_data.aiida.workflows.reference import ReferenceWorkChain
    from agi_data.aiida.workflows.train import TrainWorkChain
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    return [ReferenceWorkChain, WannierWorkChain, TrainWorkChain, MDWorkChain, Wannier90Calculation,
            WannierBatchCalculation, NequipTrainCalculation, ElectronicTrainCalculation, ElectronicPredictCalculation,
            ElectronicWorkChain]


def test_numbers_are_unique_and_in_their_band():
    statuses = [c.status for c in EXIT_CODES.values()]
    assert len(statuses) == len(set(statuses))
    for code in EXIT_CODES.values():
        assert code.status // 100 in BANDS, code
        assert code.message.strip() and code.when.strip()
    # names that speak of input are 2xx, the sub-process ones 4xx
    assert EXIT_CODES["ERROR_INVALID_INPUTS"].status // 100 == 2
    assert EXIT_CODES["ERROR_BATCH_FAILED"].status // 100 == 4
    assert name_of(EXIT_CODES["ERROR_METALLIC"].status) == "ERROR_METALLIC" and name_of(0) is None


@pytest.mark.parametrize("process", _processes(), ids=lambda p: p.__name__)
def test_every_process_takes_its_codes_from_the_table(process):
    own = {name: code for name, code in process.exit_codes.items() if code.status >= 200}
    assert own, process
    for name, code in own.items():
        assert name in EXIT_CODES, f"{process.__name__}.{name} is not in the table"
        assert code.status == EXIT_CODES[name].status and code.message == EXIT_CODES[name].message


def test_a_missing_wout_has_one_name_in_every_route():
    """The single wannier90.x CalcJob, the batch job and the WorkChain all call it ERROR_WANNIER90_FAILED."""
    from agi_data.aiida.calculations.wannier90 import Wannier90Calculation
    from agi_data.aiida.calculations.wannier_batch import WannierBatchCalculation
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    statuses = {p.exit_codes.ERROR_WANNIER90_FAILED.status
                for p in (Wannier90Calculation, WannierBatchCalculation, WannierWorkChain)}
    assert statuses == {340}
    source = (Path(__file__).resolve().parents[1] / "agi_data/aiida/parsers/wannier90.py").read_text()
    assert "ERROR_OUTPUT_WOUT_MISSING" not in source and "ERROR_UNPARSABLE_OUTPUT" in source


def test_docs_hold_the_generated_tables():
    text = DOCS.read_text()
    table = re.search(r"<!-- exit-codes:[^>]*-->\n(.*?)\n<!-- /exit-codes -->", text, re.S).group(1)
    assert table == markdown_table()
    renumbered = re.search(r"<!-- renumbered -->\n(.*?)\n<!-- /renumbered -->", text, re.S).group(1)
    assert renumbered == renumbered_table()
    # every old number listed really changed (or the name did)
    for _process, old, old_name, new in RENUMBERED:
        assert (old, old_name) != (EXIT_CODES[new].status, new)
