"""The files a job (``python -m agi_data.mdjob``, ``python -m agi_data.predictjob``) reads and writes.

A CalcJob writes ``job.json`` (the settings) into the job's folder; the job
reads it, does its work and writes ``result.json`` there, which the parser
reads back. Both jobs exit 0 unless they crashed: a refusal is a status in
the result, so the parser maps it to a named exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULT_FILE = "result.json"
SETTINGS_FILE = "job.json"


def read_settings(argv: list[str] | None = None) -> tuple[dict, Path]:
    """The job's settings (``argv[0]`` or ``job.json`` in the working directory) and the folder holding them."""
    argv = sys.argv[1:] if argv is None else argv
    settings_path = Path(argv[0] if argv else SETTINGS_FILE)
    return json.loads(settings_path.read_text()), settings_path.parent


def write_result(workdir: Path, out: dict) -> None:
    """Write the job's outcome where the parser looks for it."""
    (workdir / RESULT_FILE).write_text(json.dumps(out, indent=1))
