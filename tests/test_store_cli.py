"""``agi store ls`` and ``show``: whole run ids, every attribute, JSON and plain output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from rich.console import Console

from agi_data.cli import main, store_cmds
from agi_data.store import open_store

LONG_ID = "demo-allegro-AgI-750K-nvt-" + "x" * 60


@pytest.fixture
def store_dir(tmp_path):
    store = open_store(tmp_path / "s")
    attrs = {f"attr_{i:02d}": i * 1.5 for i in range(20)} | {"temperature_K": 750.0, "potential": "allegro"}
    with store.create_run(LONG_ID, ["Ag", "I"], np.eye(3) * 5, 0.01, attrs=attrs) as w:
        w.append(np.zeros((3, 2, 3)))
    with store.create_run("b", ["Ag"], np.eye(3) * 5, 0.01) as w:
        w.append(np.zeros((1, 1, 3)))
    return tmp_path / "s"


def test_ls_plain_and_json_never_truncate(store_dir):
    plain = CliRunner().invoke(main, ["store", "ls", "--store", str(store_dir)])  # stdout is not a terminal
    assert plain.exit_code == 0, plain.output
    lines = plain.output.splitlines()
    assert lines[0].split("\t")[0] == "run_id"
    assert [line.split("\t")[0] for line in lines[1:]] == ["b", LONG_ID]
    assert lines[2].split("\t")[1] == "3"
    js = json.loads(CliRunner().invoke(main, ["store", "ls", "--json", "--store", str(store_dir)]).output)
    assert [r["run_id"] for r in js["runs"]] == ["b", LONG_ID] and js["runs"][1]["temperature_K"] == 750.0


def test_ls_in_an_80_column_terminal_shows_the_whole_id(store_dir, monkeypatch):
    term = Console(force_terminal=True, width=80, record=True)
    monkeypatch.setattr(store_cmds, "console", term)
    result = CliRunner().invoke(main, ["store", "ls", "--store", str(store_dir)])
    assert result.exit_code == 0
    assert LONG_ID in term.export_text()


def test_show_prints_every_attribute(store_dir):
    attrs = open_store(store_dir).attrs(LONG_ID)
    plain = CliRunner().invoke(main, ["store", "show", LONG_ID, "--store", str(store_dir)])
    assert plain.exit_code == 0, plain.output
    shown = {line.strip().split("\t")[0] for line in plain.output.splitlines() if line.startswith("  ")}
    assert set(attrs) <= shown, set(attrs) - shown
    assert f"run_id\t{LONG_ID}" in plain.output
    js = json.loads(CliRunner().invoke(main, ["store", "show", LONG_ID, "--json", "--store", str(store_dir)]).output)
    assert js["attrs"] == attrs and js["variables"]["positions"]["shape"] == [3, 2, 3]
    assert [h["message"] for h in js["history"]][:2] == ["append frames 0:3", f"create run {LONG_ID}"] and js["wannier"] is None


def test_rm_asks_then_removes(store_dir):
    no = CliRunner().invoke(main, ["store", "rm", "b", "--store", str(store_dir)], input="n\n")
    assert no.exit_code == 1 and "b" in open_store(store_dir)
    yes = CliRunner().invoke(main, ["store", "rm", "b", "--store", str(store_dir)], input="y\n")
    assert yes.exit_code == 0 and "b" not in open_store(store_dir)
    scripted = CliRunner().invoke(main, ["store", "rm", LONG_ID, "--yes", "--store", str(store_dir)])
    assert scripted.exit_code == 0 and open_store(store_dir).run_ids() == []
