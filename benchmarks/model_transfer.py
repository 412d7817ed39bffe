"""Does an Allegro model trained on 32-ion cells hold on 108-ion frames of its own MD run?

The study's model (``agi demo --protocol study``, stage ``train``) is trained
on 32-ion reference cells (the model is local, r_max 5.5 Å, and pw.x on a
108-ion frame costs ~6 minutes on 2 cores against ~15 s for 32 ions) and then
runs MD of 108 ions. Its held-out RMSE is on 32-ion frames of the same kind
as its training set; this script measures it where it is used: pw.x (the
reference protocol's settings: PBE, Γ, 30 Ry) on 108-ion frames of the
Allegro NVE production run, then the model's forces on the same positions.

Run the DFT first (it is an ordinary ``agi.reference`` WorkChain, so the
frames and their labels carry their provenance)::

    agi submit reference --run RUN_ID --frames 3000,7000 --protocol demo \\
        --option resources.num_mpiprocs_per_machine=2 --set max_concurrent=1

then, with the ReferenceDataset pk it printed and the ``agi.train`` WorkChain
that made the model::

    python benchmarks/model_transfer.py --dataset PK --train PK

Prints, per frame and over all: the force RMSE (eV/Å) over all components,
its ratio to the RMSE of F = 0 (the DFT forces' own RMS), per species, and
the energy error per atom after removing the mean offset (the reference's
absolute energies differ from the model's by a constant only if the
model's per-type shifts match; the per-frame spread is what transfers).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def evaluate(dataset, model_file: str) -> dict:
    """Model against DFT on every structure of ``dataset`` (a ReferenceDataset); forces eV/Å, energies eV/atom."""
    from agi_data.md.ase_engine import load_nequip_calculator

    calc, _, r_max = load_nequip_calculator(model_file)
    rows, f_dft, f_model, species = [], [], [], []
    for atoms, label in zip(dataset.to_atoms(), dataset.labels or [None] * len(dataset)):
        e_ref, f_ref = atoms.get_potential_energy(), atoms.get_forces()
        a = atoms.copy()
        a.calc = calc
        e_mod, f_mod = a.get_potential_energy(), a.get_forces()
        n = len(a)
        rows.append({"label": label, "n_atoms": n,
                     "force_rmse_eV_per_A": float(np.sqrt(np.mean((f_mod - f_ref) ** 2))),
                     "force_rms_dft_eV_per_A": float(np.sqrt(np.mean(f_ref ** 2))),
                     "energy_diff_eV_per_atom": float((e_mod - e_ref) / n)})
        f_dft.append(f_ref)
        f_model.append(f_mod)
        species.append(np.asarray(a.get_chemical_symbols()))
    fd, fm, sp = np.concatenate(f_dft), np.concatenate(f_model), np.concatenate(species)
    rmse = float(np.sqrt(np.mean((fm - fd) ** 2)))
    zero = float(np.sqrt(np.mean(fd ** 2)))
    de = np.array([r["energy_diff_eV_per_atom"] for r in rows])
    return {"frames": rows, "r_max_A": r_max,
            "force_rmse_eV_per_A": rmse, "force_rmse_over_zero_baseline": rmse / zero,
            "force_rmse_by_species_eV_per_A": {s: float(np.sqrt(np.mean((fm[sp == s] - fd[sp == s]) ** 2)))
                                               for s in np.unique(sp)},
            "energy_spread_eV_per_atom": float(np.std(de, ddof=1)) if de.size > 1 else None,
            "energy_offset_eV_per_atom": float(np.mean(de))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=int, required=True, help="pk of a ReferenceDataset (agi.reference's output)")
    p.add_argument("--train", type=int, required=True, help="pk of the agi.train WorkChain whose `model` to test")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()

    from aiida import orm

    from agi_data.aiida.setup import load_agi_profile

    load_agi_profile()
    dataset = orm.load_node(args.dataset)
    model = orm.load_node(args.train).outputs.model
    with model.as_path() as path:  # the repository's file, as a path the model loader can open
        res = evaluate(dataset, str(path))
    res.update({"dataset_pk": args.dataset, "dataset_uuid": dataset.uuid, "train_pk": args.train,
                "model_uuid": model.uuid})
    for r in res["frames"]:
        print(f"{r['label']}: {r['n_atoms']} atoms, force RMSE {r['force_rmse_eV_per_A']:.3f} eV/Å "
              f"(DFT force RMS {r['force_rms_dft_eV_per_A']:.3f}), E_model - E_DFT {r['energy_diff_eV_per_atom']:+.4f} eV/atom")
    by = ", ".join(f"{s} {v:.3f}" for s, v in res["force_rmse_by_species_eV_per_A"].items())
    print(f"all frames: force RMSE {res['force_rmse_eV_per_A']:.3f} eV/Å ({by}), "
          f"{res['force_rmse_over_zero_baseline']:.2f} of the zero-force baseline; "
          f"model {args.train} (AiiDA node {res['model_uuid'][:8]}), DFT dataset {args.dataset} "
          f"(AiiDA node {res['dataset_uuid'][:8]})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
