"""The report's steps on structure: the RDFs with their first peaks and the I–I close contacts, the Ag⁺
hops and the cage correlation."""

from __future__ import annotations

from ... import analysis as A
from ...analysis.structure import _half_width as half_width
from .context import (
    CAGE_NEIGHBOURS,
    HOP_MIN_DWELL_PS,
    I_I_CONTACT_A,
    RDF_DR_A,
    Context,
    _fmt_params,
    _lag_max,
)


def structure(ctx: Context) -> None:
    """g(r) of Ag–I and I–I, the first I–I peak and the I–I close contacts; figure rdf.png."""
    curves = []
    for r in ctx.runs:
        r_max = round(0.98 * half_width(r.ds["cell"].values), 6)  # just inside the minimum-image limit
        for a, b in (("Ag", "I"), ("I", "I")):
            g = A.rdf(r.ds, a, b, r_max=r_max, dr=RDF_DR_A).compute()
            curves.append((g, f"{a}–{b}, {r.label}"))
        g_ii = f"g = A.rdf(T({r.run_id!r}), 'I', 'I', r_max={r_max!r}, dr={RDF_DR_A!r}).compute()\n"
        params = _fmt_params(r_max_A=r_max, dr_A=RDF_DR_A)
        ctx.number(f"Ag_I_first_peak_{r.label}", f"first Ag–I peak, {r.label}",
                   g_ii.replace("'I', 'I'", "'Ag', 'I'") + "value = float(g.idxmax('r'))\n", "Å", r.source,
                   params=params)
        ctx.number(f"I_I_first_peak_{r.label}", f"first I–I peak, {r.label}", g_ii + "value = float(g.idxmax('r'))\n",
                   "Å", r.source, params=params)
        # the bcc iodide lattice has no neighbour closer than ~3.9 Å: iodides this close mean a model outside
        # what it was trained on
        ctx.number(f"I_I_close_contacts_{r.label}", f"I–I neighbours within {I_I_CONTACT_A} Å, {r.label}",
                   g_ii + f"value = float(g['coordination_number'].sel(r={I_I_CONTACT_A!r}, method='nearest'))\n",
                   "per I", r.source, params={**params, "within_A": I_I_CONTACT_A})
    ctx.report.curves("rdf.png", "Radial distribution functions",
                      f"g(r), minimum image in each frame's cell. Data: {ctx.cite}.", curves, ylabel="g(r)", hline=1.0)


def hops_and_cages(ctx: Context) -> None:
    """Ag⁺ hops (count and rate, with the dwell time they assume) and the cage correlation; figure cage.png."""
    curves = []
    for r in ctx.runs:
        table = f"table = A.hops(T({r.run_id!r}), 'Ag', min_dwell_ps={HOP_MIN_DWELL_PS!r})\n"
        params = _fmt_params(min_dwell_ps=HOP_MIN_DWELL_PS, host="I", sites="tetrahedral")
        ctx.number(f"hop_rate_{r.label}", f"Ag⁺ hop rate per ion, {r.label}",
                   table + "value = float(np.asarray(A.hop_rate(table)).mean())\n", "1/ps", r.source, params=params)
        ctx.number(f"hops_{r.label}", f"Ag⁺ hops counted, {r.label}", table + "value = len(table)\n", "—", r.source,
                   params=params)
        L = _lag_max(r.ds)
        cr = A.cage_correlation(r.ds, "Ag", n_neighbors=CAGE_NEIGHBOURS, max_lag_ps=L).compute()
        curves.append((cr, r.label))
    ctx.report.curves("cage.png", "Ag⁺ cage correlation",
                      f"Intermittent C_R(t), {CAGE_NEIGHBOURS} nearest neighbours. Data: {ctx.cite}.", curves,
                      ylabel="C_R(t)")
