"""A report: figures (PNG), a table of numbers with units and uncertainties, stage timings.

Written as ``report.html`` and ``report.md`` side by side in one directory;
the HTML links the provenance page when there is one. Every figure's caption
names the store run and the AiiDA node its data came from.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import xarray as xr


@dataclass
class Number:
    name: str
    value: float
    stderr: float | None
    units: str
    source: str


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
    timings: list[tuple[str, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance_page: str | None = None

    def __post_init__(self):
        self.directory = Path(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ content
    def number(self, name: str, value: float, units: str, source: str, stderr: float | None = None) -> None:
        self.numbers.append(Number(name, float(value), None if stderr is None else float(stderr), units, source))

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
            ax.plot(x, da.values, label=label, lw=1.6, marker="o" if few else None, ms=4)
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
        md += ["## Numbers", "", "| quantity | value | units | from |", "|---|---|---|---|"]
        md += [f"| {n.name} | {self._fmt(n.value, n.stderr)} | {n.units} | {n.source} |" for n in self.numbers]
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
            f"<td>{esc(n.source)}</td></tr>" for n in self.numbers
        )
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
figure{{margin:2em 0}}img{{max-width:100%}}figcaption{{color:#444;font-size:90%}}</style></head><body>
<h1>{esc(self.title)}</h1><ul>{notes}</ul>
<h2>Numbers</h2><table id="numbers"><tr><th>quantity</th><th>value</th><th>units</th><th>from</th></tr>{rows}</table>
<h2>Stage timings</h2><table id="timings"><tr><th>stage</th><th>seconds</th><th>status</th></tr>{timing_rows}</table>
{prov}<h2>Figures</h2>{figs}</body></html>"""
        html_path = self.directory / "report.html"
        html_path.write_text(page)
        return html_path, md_path
