#!/usr/bin/env python
"""Recompute every number of the report next to this file from the store, and compare.

Usage: python reproduce.py [--store PATH] [--rtol 1e-6]. Exit status 1 when a number differs.
Each function below is the recipe the report ran, with every parameter written out; the
store runs are read at the versions the report read (VERSIONS).
"""
import argparse
import math
import sys

STORE_PATH = '/work/study-run/store/data'
VERSIONS = {
 "study-allegro-750K-f9b3bc": "SHAZ5WYRYJEY1GH5EEP0",
 "study-classical-750K-52753a": "QMBFSJKKQSAGHJ0D6X9G"
}

import numpy as np

from agi_data import analysis as A
from agi_data import open_store
from agi_data.md import thermo

_cache = {}


def T(run_id):
    """The trajectory of a store run at the version the report read."""
    if ("T", run_id) not in _cache:
        _cache["T", run_id] = STORE.trajectory(run_id, version=VERSIONS.get(run_id))
    return _cache["T", run_id]


def W(run_id):
    """The Wannier centres of a store run at the version the report read."""
    if ("W", run_id) not in _cache:
        _cache["W", run_id] = STORE.wannier(run_id, version=VERSIONS.get("wannier:" + run_id))
    return _cache["W", run_id]


def E(run_id):
    """The lone-pair moments a model predicted on every frame of a store run, at the version the report read."""
    if ("E", run_id) not in _cache:
        _cache["E", run_id] = STORE.electronic(run_id, version=VERSIONS.get("electronic:" + run_id))
    return _cache["E", run_id]


def kinetic_temperature(ds, species):
    """Mean kinetic temperature (K) of one species' stored velocities: m<|v|^2>/(3 k_B), 3 dof per atom."""
    idx = np.flatnonzero(ds["symbol"].values == species)
    v = ds["velocities"].isel(atom=idx).values
    return thermo.kinetic_temperature(v, thermo.masses_u([species] * len(idx)), remove_com=False)


def number_0():
    # held-out force RMSE, Allegro; computed with: metrics=test_metrics of TrainWorkChain<1382>
    from agi_data.aiida.setup import load_agi_profile
    load_agi_profile()
    from aiida.orm import load_node
    m = load_node('cfb4cd22-0fd7-4c93-9021-b459c554816f').outputs.test_metrics
    value = 1 * m['force_rmse_eV_per_A']
    return value, locals().get('stderr')


def number_1():
    # held-out force RMS (the error of F = 0); computed with: metrics=test_metrics of TrainWorkChain<1382>
    from agi_data.aiida.setup import load_agi_profile
    load_agi_profile()
    from aiida.orm import load_node
    m = load_node('cfb4cd22-0fd7-4c93-9021-b459c554816f').outputs.test_metrics
    value = 1 * m['force_rms_reference_eV_per_A']
    return value, locals().get('stderr')


def number_2():
    # held-out energy RMSE, Allegro; computed with: metrics=test_metrics of TrainWorkChain<1382>
    from agi_data.aiida.setup import load_agi_profile
    load_agi_profile()
    from aiida.orm import load_node
    m = load_node('cfb4cd22-0fd7-4c93-9021-b459c554816f').outputs.test_metrics
    value = 1000 * m['energy_rmse_eV_per_atom']
    return value, locals().get('stderr')


def number_3():
    # kinetic temperature of Ag⁺, Allegro; computed with: species=Ag; frames=all stored; dof_per_atom=3
    value = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    return value, locals().get('stderr')


def number_4():
    # NVE energy drift, Allegro; computed with: fit=least squares of (U+K)/N against t; span_ps=20.0
    value = T('study-allegro-750K-f9b3bc').attrs['energy_drift_eV_per_atom_per_ps']
    return value, locals().get('stderr')


def number_5():
    # kinetic temperature of Ag⁺, classical; computed with: species=Ag; frames=all stored; dof_per_atom=3
    value = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    return value, locals().get('stderr')


def number_6():
    # NVE energy drift, classical; computed with: fit=least squares of (U+K)/N against t; span_ps=20.0
    value = T('study-classical-750K-52753a').attrs['energy_drift_eV_per_atom_per_ps']
    return value, locals().get('stderr')


def number_7():
    # D(Ag), Allegro; computed with: max_lag_ps=10.0; fit_range_ps=automatic (diffusive regime); fit=GLS; origins=all; algorithm=FFT
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value, stderr = float(d['D']), float(d['D_stderr'])
    return value, locals().get('stderr')


def number_8():
    # D(I), Allegro; computed with: max_lag_ps=10.0; fit_range_ps=(5.0, 10.0); fit=GLS; origins=all; algorithm=FFT
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'I', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d, fit_range=(5.0, 10.0))
    value, stderr = float(d['D']), float(d['D_stderr'])
    return value, locals().get('stderr')


def number_9():
    # D(Ag), classical; computed with: max_lag_ps=10.0; fit_range_ps=automatic (diffusive regime); fit=GLS; origins=all; algorithm=FFT
    m_d = A.msd(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value, stderr = float(d['D']), float(d['D_stderr'])
    return value, locals().get('stderr')


def number_10():
    # D(I), classical; computed with: max_lag_ps=10.0; fit_range_ps=(5.0, 10.0); fit=least squares (MSD plateau); origins=all; algorithm=FFT
    m_d = A.msd(T('study-classical-750K-52753a'), 'I', max_lag_ps=10.0).compute()
    w_d = m_d.sel(lag=slice(5.0, 10.0))
    d = {'D': float(np.polyfit(w_d['lag'].values, w_d.values, 1)[0]) / 6, 'D_stderr': float('nan')}
    value, stderr = float(d['D']), float(d['D_stderr'])
    return value, locals().get('stderr')


def number_11():
    # D(I)/D(Ag), Allegro; computed with: from=the two D above
    m_d_i = A.msd(T('study-allegro-750K-f9b3bc'), 'I', max_lag_ps=10.0).compute()
    d_i = A.diffusion_coefficient(m_d_i, fit_range=(5.0, 10.0))
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value = float(d_i['D']) / float(d['D'])
    return value, locals().get('stderr')


def number_12():
    # D(I)/D(Ag), classical; computed with: from=the two D above
    m_d_i = A.msd(T('study-classical-750K-52753a'), 'I', max_lag_ps=10.0).compute()
    w_d_i = m_d_i.sel(lag=slice(5.0, 10.0))
    d_i = {'D': float(np.polyfit(w_d_i['lag'].values, w_d_i.values, 1)[0]) / 6, 'D_stderr': float('nan')}
    m_d = A.msd(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value = float(d_i['D']) / float(d['D'])
    return value, locals().get('stderr')


def number_13():
    # D(Ag) Green–Kubo, Allegro; computed with: max_lag_ps=1.0; integral=trapezoid up to max_lag
    c = A.vacf(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=1.0).compute()
    gk = A.green_kubo(c)
    value = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)
    return value, locals().get('stderr')


def number_14():
    # D(Ag) Green–Kubo, classical; computed with: max_lag_ps=1.0; integral=trapezoid up to max_lag
    c = A.vacf(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=1.0).compute()
    gk = A.green_kubo(c)
    value = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)
    return value, locals().get('stderr')


def number_15():
    # first Ag–I peak, Allegro; computed with: r_max_A=7.475685; dr_A=0.05
    g = A.rdf(T('study-allegro-750K-f9b3bc'), 'Ag', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g.idxmax('r'))
    return value, locals().get('stderr')


def number_16():
    # first I–I peak, Allegro; computed with: r_max_A=7.475685; dr_A=0.05
    g = A.rdf(T('study-allegro-750K-f9b3bc'), 'I', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g.idxmax('r'))
    return value, locals().get('stderr')


def number_17():
    # I–I neighbours within 3.6 Å, Allegro; computed with: r_max_A=7.475685; dr_A=0.05; within_A=3.6
    g = A.rdf(T('study-allegro-750K-f9b3bc'), 'I', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g['coordination_number'].sel(r=3.6, method='nearest'))
    return value, locals().get('stderr')


def number_18():
    # first Ag–I peak, classical; computed with: r_max_A=7.475685; dr_A=0.05
    g = A.rdf(T('study-classical-750K-52753a'), 'Ag', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g.idxmax('r'))
    return value, locals().get('stderr')


def number_19():
    # first I–I peak, classical; computed with: r_max_A=7.475685; dr_A=0.05
    g = A.rdf(T('study-classical-750K-52753a'), 'I', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g.idxmax('r'))
    return value, locals().get('stderr')


def number_20():
    # I–I neighbours within 3.6 Å, classical; computed with: r_max_A=7.475685; dr_A=0.05; within_A=3.6
    g = A.rdf(T('study-classical-750K-52753a'), 'I', 'I', r_max=7.475685, dr=0.05).compute()
    value = float(g['coordination_number'].sel(r=3.6, method='nearest'))
    return value, locals().get('stderr')


def number_21():
    # Ag⁺ hop rate per ion, Allegro; computed with: min_dwell_ps=0.1; host=I; sites=tetrahedral
    table = A.hops(T('study-allegro-750K-f9b3bc'), 'Ag', min_dwell_ps=0.1)
    value = float(np.asarray(A.hop_rate(table)).mean())
    return value, locals().get('stderr')


def number_22():
    # Ag⁺ hops counted, Allegro; computed with: min_dwell_ps=0.1; host=I; sites=tetrahedral
    table = A.hops(T('study-allegro-750K-f9b3bc'), 'Ag', min_dwell_ps=0.1)
    value = len(table)
    return value, locals().get('stderr')


def number_23():
    # Ag⁺ hop rate per ion, classical; computed with: min_dwell_ps=0.1; host=I; sites=tetrahedral
    table = A.hops(T('study-classical-750K-52753a'), 'Ag', min_dwell_ps=0.1)
    value = float(np.asarray(A.hop_rate(table)).mean())
    return value, locals().get('stderr')


def number_24():
    # Ag⁺ hops counted, classical; computed with: min_dwell_ps=0.1; host=I; sites=tetrahedral
    table = A.hops(T('study-classical-750K-52753a'), 'Ag', min_dwell_ps=0.1)
    value = len(table)
    return value, locals().get('stderr')


def number_25():
    # Ag⁺ friction ∫K dt, Allegro; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; temperature_K=measured, 635.0; on_unstable=truncate
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    K = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate')
    value = float(np.asarray(A.friction_coefficient(K)).ravel()[-1])
    return value, locals().get('stderr')


def number_26():
    # Einstein ratio ∫K/(k_BT/(mD)), Allegro; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; temperature_K=measured, 635.0; on_unstable=truncate; D=D(Ag), Allegro above
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    K = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate')
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']
    return value, locals().get('stderr')


def number_27():
    # Ag⁺ friction ∫K dt, classical; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; temperature_K=measured, 620.8; on_unstable=truncate
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    K = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate')
    value = float(np.asarray(A.friction_coefficient(K)).ravel()[-1])
    return value, locals().get('stderr')


def number_28():
    # Einstein ratio ∫K/(k_BT/(mD)), classical; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; temperature_K=measured, 620.8; on_unstable=truncate; D=D(Ag), classical above
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    K = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate')
    m_d = A.msd(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']
    return value, locals().get('stderr')


def number_29():
    # Ag⁺ friction ∫K dt with its jackknife error, Allegro; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; blocks=8; error=delete-one-block jackknife; temperature_K=measured
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    K = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    reps = np.asarray(K.attrs['block_replicates'], dtype=float)
    ok = np.isfinite(reps).all(axis=0) & np.isfinite(K.values)
    n_ok = int(np.argmin(ok)) if not ok.all() else ok.size  # the leading lags where every replicate is finite
    dt = float(K['lag'][1] - K['lag'][0])
    g = np.trapezoid(reps[:, :n_ok], dx=dt, axis=1)
    value = float(np.trapezoid(K.values[:n_ok], dx=dt))
    stderr = float(np.sqrt((len(g) - 1) / len(g) * ((g - g.mean()) ** 2).sum()))
    return value, locals().get('stderr')


def number_30():
    # Einstein ratio with its error, Allegro; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; blocks=8; error=delete-one-block jackknife; temperature_K=measured; D=D(Ag), Allegro; errors of ∫K and D in quadrature
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    K = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    reps = np.asarray(K.attrs['block_replicates'], dtype=float)
    ok = np.isfinite(reps).all(axis=0) & np.isfinite(K.values)
    n_ok = int(np.argmin(ok)) if not ok.all() else ok.size  # the leading lags where every replicate is finite
    dt = float(K['lag'][1] - K['lag'][0])
    g = np.trapezoid(reps[:, :n_ok], dx=dt, axis=1)
    value = float(np.trapezoid(K.values[:n_ok], dx=dt))
    stderr = float(np.sqrt((len(g) - 1) / len(g) * ((g - g.mean()) ** 2).sum()))
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    g_se, d_se = stderr / value, float(d['D_stderr']) / float(d['D'])
    value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']
    stderr = abs(value) * float(np.hypot(g_se, d_se))
    return value, locals().get('stderr')


def number_31():
    # Ag⁺ friction ∫K dt with its jackknife error, classical; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; blocks=8; error=delete-one-block jackknife; temperature_K=measured
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    K = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    reps = np.asarray(K.attrs['block_replicates'], dtype=float)
    ok = np.isfinite(reps).all(axis=0) & np.isfinite(K.values)
    n_ok = int(np.argmin(ok)) if not ok.all() else ok.size  # the leading lags where every replicate is finite
    dt = float(K['lag'][1] - K['lag'][0])
    g = np.trapezoid(reps[:, :n_ok], dx=dt, axis=1)
    value = float(np.trapezoid(K.values[:n_ok], dx=dt))
    stderr = float(np.sqrt((len(g) - 1) / len(g) * ((g - g.mean()) ** 2).sum()))
    return value, locals().get('stderr')


def number_32():
    # Einstein ratio with its error, classical; computed with: method=force (second-kind Volterra); max_lag_ps=0.5; blocks=8; error=delete-one-block jackknife; temperature_K=measured; D=D(Ag), classical; errors of ∫K and D in quadrature
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    K = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    reps = np.asarray(K.attrs['block_replicates'], dtype=float)
    ok = np.isfinite(reps).all(axis=0) & np.isfinite(K.values)
    n_ok = int(np.argmin(ok)) if not ok.all() else ok.size  # the leading lags where every replicate is finite
    dt = float(K['lag'][1] - K['lag'][0])
    g = np.trapezoid(reps[:, :n_ok], dx=dt, axis=1)
    value = float(np.trapezoid(K.values[:n_ok], dx=dt))
    stderr = float(np.sqrt((len(g) - 1) / len(g) * ((g - g.mean()) ** 2).sum()))
    m_d = A.msd(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    g_se, d_se = stderr / value, float(d['D_stderr']) / float(d['D'])
    value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']
    stderr = abs(value) * float(np.hypot(g_se, d_se))
    return value, locals().get('stderr')


def number_33():
    # ∫(K_Allegro − K_classical) dt; computed with: a=Allegro; b=classical; max_lag_ps=0.5; blocks=8; test=compare_kernels
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    Ka = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    Kb = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    cmp = A.compare_kernels(Ka, Kb)
    value, stderr = cmp.attrs['friction_difference'], cmp.attrs['friction_difference_stderr']
    return value, locals().get('stderr')


def number_34():
    # p of the friction difference (Student t); computed with: a=Allegro; b=classical; max_lag_ps=0.5; blocks=8; test=compare_kernels
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    Ka = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    Kb = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    cmp = A.compare_kernels(Ka, Kb)
    value = cmp.attrs['p_friction']
    return value, locals().get('stderr')


def number_35():
    # p of the global test over all lags (Hotelling T²); computed with: a=Allegro; b=classical; max_lag_ps=0.5; blocks=8; test=compare_kernels
    t_kin = kinetic_temperature(T('study-allegro-750K-f9b3bc'), 'Ag')
    Ka = A.memory_kernel(T('study-allegro-750K-f9b3bc'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    t_kin = kinetic_temperature(T('study-classical-750K-52753a'), 'Ag')
    Kb = A.memory_kernel(T('study-classical-750K-52753a'), 'Ag', method='force', max_lag_ps=0.5, temperature=t_kin, on_unstable='truncate', blocks=8)
    cmp = A.compare_kernels(Ka, Kb)
    value = cmp.attrs['p_global']
    return value, locals().get('stderr')


def number_36():
    # D(Ag) (Green–Kubo − MSD)/σ(MSD), Allegro; computed with: from=the two D(Ag) above
    m_d = A.msd(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    c = A.vacf(T('study-allegro-750K-f9b3bc'), 'Ag', max_lag_ps=1.0).compute()
    gk = A.green_kubo(c)
    gk = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)
    value = (gk - float(d['D'])) / float(d['D_stderr'])
    return value, locals().get('stderr')


def number_37():
    # D(Ag) (Green–Kubo − MSD)/σ(MSD), classical; computed with: from=the two D(Ag) above
    m_d = A.msd(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=10.0).compute()
    d = A.diffusion_coefficient(m_d)
    c = A.vacf(T('study-classical-750K-52753a'), 'Ag', max_lag_ps=1.0).compute()
    gk = A.green_kubo(c)
    gk = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)
    value = (gk - float(d['D'])) / float(d['D_stderr'])
    return value, locals().get('stderr')


NUMBERS = [
    ('held-out force RMSE, Allegro', 'eV/Å', 0.19474774249997, None, number_0),
    ('held-out force RMS (the error of F = 0)', 'eV/Å', 1.377020102784, None, number_1),
    ('held-out energy RMSE, Allegro', 'meV/atom', 10.028564420497, None, number_2),
    ('kinetic temperature of Ag⁺, Allegro', 'K', 634.9675348867387, None, number_3),
    ('NVE energy drift, Allegro', 'eV/atom/ps', 5.029788192113002e-09, None, number_4),
    ('kinetic temperature of Ag⁺, classical', 'K', 620.8489874433596, None, number_5),
    ('NVE energy drift, classical', 'eV/atom/ps', 4.4796726704921626e-07, None, number_6),
    ('D(Ag), Allegro', 'Å²/ps', 0.5173255348849556, 0.015593649944138087, number_7),
    ('D(I), Allegro', 'Å²/ps', 0.06407019799516311, 0.006193322655454428, number_8),
    ('D(Ag), classical', 'Å²/ps', 0.28330008625380315, 0.017936517549458134, number_9),
    ('D(I), classical', 'Å²/ps', 0.0010852906684291248, None, number_10),
    ('D(I)/D(Ag), Allegro', '—', 0.12384889914512191, None, number_11),
    ('D(I)/D(Ag), classical', '—', 0.0038308871796700885, None, number_12),
    ('D(Ag) Green–Kubo, Allegro', 'Å²/ps', 0.4725438843738336, None, number_13),
    ('D(Ag) Green–Kubo, classical', 'Å²/ps', 0.2910438709307095, None, number_14),
    ('first Ag–I peak, Allegro', 'Å', 2.825, None, number_15),
    ('first I–I peak, Allegro', 'Å', 4.225, None, number_16),
    ('I–I neighbours within 3.6 Å, Allegro', 'per I', 0.1596247782629148, None, number_17),
    ('first Ag–I peak, classical', 'Å', 2.6750000000000003, None, number_18),
    ('first I–I peak, classical', 'Å', 4.375, None, number_19),
    ('I–I neighbours within 3.6 Å, classical', 'per I', 0.006043840060438405, None, number_20),
    ('Ag⁺ hop rate per ion, Allegro', '1/ps', 2.1166666666666667, None, number_21),
    ('Ag⁺ hops counted, Allegro', '—', 2286.0, None, number_22),
    ('Ag⁺ hop rate per ion, classical', '1/ps', 1.1694444444444445, None, number_23),
    ('Ag⁺ hops counted, classical', '—', 1263.0, None, number_24),
    ('Ag⁺ friction ∫K dt, Allegro', '1/ps', 9.342126222126122, None, number_25),
    ('Einstein ratio ∫K/(k_BT/(mD)), Allegro', '—', 0.9874551332577494, None, number_26),
    ('Ag⁺ friction ∫K dt, classical', '1/ps', 12.050644938738191, None, number_27),
    ('Einstein ratio ∫K/(k_BT/(mD)), classical', '—', 0.7133953375396824, None, number_28),
    ('Ag⁺ friction ∫K dt with its jackknife error, Allegro', '1/ps', 9.34212622212612, 0.5552447079915538, number_29),
    ('Einstein ratio with its error, Allegro', '—', 0.9874551332577494, 0.06580520354643327, number_30),
    ('Ag⁺ friction ∫K dt with its jackknife error, classical', '1/ps', 12.050644938738191, 0.6342799644906678, number_31),
    ('Einstein ratio with its error, classical', '—', 0.7133953375396824, 0.05873675404606027, number_32),
    ('∫(K_Allegro − K_classical) dt', '1/ps', -2.70851871661207, 0.842975538854424, number_33),
    ('p of the friction difference (Student t)', '—', 0.01479542512253416, None, number_34),
    ('p of the global test over all lags (Hotelling T²)', '—', 0.02601146163838054, None, number_35),
    ('D(Ag) (Green–Kubo − MSD)/σ(MSD), Allegro', '—', -2.8717875976147687, None, number_36),
    ('D(Ag) (Green–Kubo − MSD)/σ(MSD), classical', '—', 0.4317328966201849, None, number_37),
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
        print(f"{'ok  ' if ok else 'DIFF'} {name}: report {value!r} {units}, recomputed {got!r}"
              + ("" if stderr is None else f" (± {stderr!r} vs ± {got_err!r})"))
    print(f"{len(NUMBERS) - bad} of {len(NUMBERS)} numbers reproduced")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
