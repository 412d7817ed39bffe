"""A report: figures (PNG), a table of numbers with units, uncertainties and parameters, stage timings.

Written as ``report.html`` and ``report.md`` side by side in one directory;
the HTML links the provenance page when there is one. Every figure's caption
names the store run and the AiiDA node its data came from; every number
states the parameters it was computed with.

A number given with its *recipe* (the Python lines that compute it, setting
``value`` and, where it has one, ``stderr``) is also written to
``reproduce.py`` next to the report, with the recipes' shared prelude and the
store versions the report read (:meth:`Report.pin`), and to
``numbers.json``. ``python reproduce.py [--store PATH]`` recomputes every
number and exits 1 when one differs.
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


@dataclass
class Number:
    name: str
    value: float
    stderr: float | None
    units: str
    source: str
    params: dict = field(default_factory=dict)  # the parameters it was computed with
    recipe: str | None = None  # Python lines that set ``value`` (and ``stderr``)
    key: str | None = None

    @property
    def computed_with(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.params.items())


@dataclass
class Check:
    """A physics check: a reported number against its target (pass / miss)."""

    name: str
    label: str  # the run or model it is of
    value: float
    target: str  # e.g. "4.40 ± 0.10 Å"
    passed: bool
    key: str  # the number it reads

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "miss"


@dataclass
class Figure:
    file: str
    title: str
    caption: str


@dataclass
class Report:
    directory: Path
    title: str = "agi-data report"
    figures: list[Figure] = field(default_factory=list)
    numbers: list[Number] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    timings: list[tuple[str, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str = ""  # one paragraph: what the numbers allow, and no more
    provenance_page: str | None = None
    versions: dict = field(default_factory=dict)  # store run (or "wannier:<run>") → version the numbers read
    store_root: str | None = None
    prelude: str = ""
    _namespace: dict | None = field(default=None, repr=False)

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ content
    def number(self, name: str, value: float, units: str, source: str, stderr: float | None = None, *,
               params: dict | None = None, recipe: str | None = None, key: str | None = None) -> None:
        self.numbers.append(Number(name, float(value), None if stderr is None else float(stderr), units, source,
                                   dict(params or {}), recipe, key))

    def value(self, key: str) -> Number | None:
        """The number reported under ``key`` (the last one), or None."""
        return next((n for n in reversed(self.numbers) if n.key == key), None)

    def check(self, name: str, label: str, key: str, target: str, passed: bool) -> Check:
        """Add a physics check of the number ``key`` against ``target`` (already judged: ``passed``)."""
        c = Check(name, label, self.value(key).value, target, bool(passed), key)
        self.checks.append(c)
        return c

    def pin(self, name: str, version: str | None) -> None:
        """Record the store version a number's data was read at (``name``: a run id, or ``wannier:<run>``)."""
        if version:
            self.versions[name] = str(version)

    def bind_store(self, store) -> None:
        self.store_root = str(store.root)

    def namespace(self, prelude: str, store) -> dict:
        """The namespace recipes run in: ``prelude`` executed once with ``STORE`` and ``VERSIONS`` bound."""
        if self._namespace is None:
            ns = {"STORE": store, "VERSIONS": self.versions, "__name__": "agi_report_recipes"}
            exec(prelude, ns)  # our own prelude text, also written into reproduce.py
            self.prelude, self._namespace = prelude, ns
        return self._namespace

    def timing(self, stage: str, seconds: float, status: str = "ran") -> None:
        self.timings.append((stage, float(seconds), status))

    def curves(self, file: str, title: str, caption: str, curves: list[tuple[xr.DataArray, str]], *,
               xlabel: str | None = None, ylabel: str | None = None, logx: bool = False, logy: bool = False,
               hline: float | None = None, xlim: tuple[float, float] | None = None) -> Path:
        """One figure of 1-D DataArrays against their only coordinate; axis labels from the units in attrs."""
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        for da, label in curves:
            dim = da.dims[0]
            x = da[dim] if dim in da.coords else range(da.sizes[dim])
            few = da.sizes[dim] < 30  # show the samples themselves when there are few (e.g. Wannier frames)
            line, = ax.plot(x, da.values, label=label, lw=1.6, marker="o" if few else None, ms=4)
            if "stderr" in da.coords:  # a band of ± one standard error
                se = np.asarray(da["stderr"].values, dtype=float)
                ax.fill_between(np.asarray(x), da.values - se, da.values + se, color=line.get_color(), alpha=0.25,
                                lw=0)
            if xlabel is None:
                units = da[dim].attrs.get("units", "") if dim in da.coords else ""
                xlabel = f"{dim} ({units})" if units else dim
            if ylabel is None:
                name = da.attrs.get("long_name", da.name or "")
                units = da.attrs.get("units", "")
                ylabel = f"{name} ({units})" if units else str(name)
        if hline is not None:
            ax.axhline(hline, color="0.5", lw=0.8, ls="--")
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        if xlim:
            ax.set_xlim(*xlim)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=11)
        if len(curves) > 1:
            ax.legend(fontsize=9)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = self.directory / file
        fig.savefig(path)
        plt.close(fig)
        self.figures.append(Figure(file, title, caption))
        return path

    # ------------------------------------------------------------ output
    @staticmethod
    def _fmt(value: float, stderr: float | None) -> str:
        if not math.isfinite(value):
            return str(value)
        if stderr is None or not math.isfinite(stderr) or stderr <= 0:
            return f"{value:.4g}"
        digits = max(0, 1 - int(math.floor(math.log10(stderr))))
        return f"{value:.{digits}f} ± {stderr:.{digits}f}"

    def write(self) -> tuple[Path, Path]:
        md = [f"# {self.title}", ""]
        md += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        md += ["## Numbers", "", "| quantity | value | units | from | computed with |", "|---|---|---|---|---|"]
        md += [f"| {n.name} | {self._fmt(n.value, n.stderr)} | {n.units} | {n.source} | {n.computed_with} |"
               for n in self.numbers]
        if any(n.recipe for n in self.numbers):
            md += ["", "`python reproduce.py` (next to this report) recomputes every number from the store."]
        if self.checks:
            md += ["", "## Physics checks", "", "| check | model | value | target | verdict |", "|---|---|---|---|---|"]
            md += [f"| {c.name} | {c.label} | {c.value:.4g} | {c.target} | {c.verdict} |" for c in self.checks]
        if self.verdict:
            md += ["", "## Verdict", "", self.verdict]
        md += ["", "## Stage timings", "", "| stage | seconds | status |", "|---|---|---|"]
        md += [f"| {s} | {t:.1f} | {st} |" for s, t, st in self.timings]
        md += ["", "## Figures", ""]
        for f in self.figures:
            md += [f"### {f.title}", "", f"![{f.title}]({f.file})", "", f"*{f.caption}*", ""]
        if self.provenance_page:
            md += ["## Provenance", "", f"[The clickable provenance graph]({self.provenance_page})", ""]
        md_path = self.directory / "report.md"
        md_path.write_text("\n".join(md))

        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(n.name)}</td><td>{esc(self._fmt(n.value, n.stderr))}</td><td>{esc(n.units)}</td>"
            f"<td>{esc(n.source)}</td><td>{esc(n.computed_with)}</td></tr>" for n in self.numbers
        )
        check_rows = "".join(
            f'<tr class="{c.verdict}"><td>{esc(c.name)}</td><td>{esc(c.label)}</td><td>{c.value:.4g}</td>'
            f"<td>{esc(c.target)}</td><td>{c.verdict}</td></tr>" for c in self.checks)
        checks = ('<h2>Physics checks</h2><table id="checks"><tr><th>check</th><th>model</th><th>value</th>'
                  f"<th>target</th><th>verdict</th></tr>{check_rows}</table>" if self.checks else "")
        verdict = f'<h2>Verdict</h2><p id="verdict">{esc(self.verdict)}</p>' if self.verdict else ""
        timing_rows = "".join(f"<tr><td>{esc(s)}</td><td>{t:.1f}</td><td>{esc(st)}</td></tr>" for s, t, st in self.timings)
        figs = "".join(
            f'<figure><h3>{esc(f.title)}</h3><img src="{esc(f.file)}" alt="{esc(f.title)}">'
            f"<figcaption>{esc(f.caption)}</figcaption></figure>" for f in self.figures
        )
        prov = (f'<h2>Provenance</h2><p><a id="provenance-link" href="{esc(self.provenance_page)}">'
                "The clickable provenance graph</a> of the whole chain.</p>" if self.provenance_page else "")
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(self.title)}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
tr.miss td{{background:#fde8e8}}tr.pass td{{background:#e8f6e8}}figure{{margin:2em 0}}img{{max-width:100%}}figcaption{{color:#444;font-size:90%}}</style></head><body>
<h1>{esc(self.title)}</h1><ul>{notes}</ul>
<h2>Numbers</h2><table id="numbers"><tr><th>quantity</th><th>value</th><th>units</th><th>from</th>
<th>computed with</th></tr>{rows}</table>
{checks}{verdict}
<h2>Stage timings</h2><table id="timings"><tr><th>stage</th><th>seconds</th><th>status</th></tr>{timing_rows}</table>
{prov}<h2>Figures</h2>{figs}</body></html>"""
        html_path = self.directory / "report.html"
        html_path.write_text(page)
        self._write_numbers()
        return html_path, md_path

    def _write_numbers(self) -> None:
        rows = [{"key": n.key, "name": n.name, "value": n.value, "stderr": n.stderr, "units": n.units,
                 "source": n.source, "params": n.params, "recipe": n.recipe} for n in self.numbers]
        (self.directory / "numbers.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False, default=str))
        if self.checks:
            checks = [{"name": c.name, "model": c.label, "key": c.key, "value": c.value, "target": c.target,
                       "verdict": c.verdict} for c in self.checks]
            (self.directory / "checks.json").write_text(json.dumps(checks, indent=1, ensure_ascii=False))
        recipes = [n for n in self.numbers if n.recipe]
        if recipes:
            (self.directory / "reproduce.py").write_text(reproduce_script(recipes, self.prelude, self.store_root,
                                                                          self.versions))


def reproduce_script(numbers: list[Number], prelude: str, store_root: str | None, versions: dict) -> str:
    """A standalone script that recomputes ``numbers`` by their recipes and compares with the reported values."""
    funcs, table = [], []
    for i, n in enumerate(numbers):
        body = textwrap.indent(n.recipe.rstrip() + "\nreturn value, locals().get('stderr')", "    ")
        funcs.append(f"def number_{i}():\n    # {n.name}; computed with: {n.computed_with}\n{body}\n")
        table.append(f"    ({n.name!r}, {n.units!r}, {n.value!r}, {n.stderr!r}, number_{i}),")
    return _REPRODUCE.format(store=store_root, versions=json.dumps(versions, indent=1), prelude=prelude,
                             funcs="\n\n".join(funcs), table="\n".join(table))


_REPRODUCE = '''#!/usr/bin/env python
"""Recompute every number of the report next to this file from the store, and compare.

Usage: python reproduce.py [--store PATH] [--rtol 1e-6]. Exit status 1 when a number differs.
Each function below is the recipe the report ran, with every parameter written out; the
store runs are read at the versions the report read (VERSIONS).
"""
import argparse
import math
import sys

STORE_PATH = {store!r}
VERSIONS = {versions}

{prelude}

{funcs}

NUMBERS = [
{table}
]


def _close(a, b, rtol):
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b)) + 1e-12


def main():
    global STORE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=STORE_PATH)
    ap.add_argument("--rtol", type=float, default=1e-6)
    args = ap.parse_args()
    STORE = open_store(args.store)
    bad = 0
    for name, units, value, stderr, fn in NUMBERS:
        got, got_err = fn()
        got = float(got)
        got_err = None if got_err is None or stderr is None else float(got_err)
        ok = _close(got, value, args.rtol) and _close(got_err, stderr, args.rtol)
        bad += not ok
        print(f"{{'ok  ' if ok else 'DIFF'}} {{name}}: report {{value!r}} {{units}}, recomputed {{got!r}}"
              + ("" if stderr is None else f" (± {{stderr!r}} vs ± {{got_err!r}})"))
    print(f"{{len(NUMBERS) - bad}} of {{len(NUMBERS)}} numbers reproduced")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
'''
