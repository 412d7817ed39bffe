"""``agi.electronic``: the lone-pair model trained on DFT Wannier centres, then run on every frame of a store run.

Outline: materialise the labelled frames of the WannierSet inputs (:func:`training_data`, a calcfunction: the
positions of each set's store run at the version the set was written, the centres from the set itself) →
``agi.electronic_train`` (the model and its held-out metrics) → ``agi.electronic_predict`` on the store run
``run`` (the moments of every frame written into the run's ``electronic/`` group) → outputs ``model``,
``metrics``, ``predictions``. Every output is linked through the two jobs to the WannierSets, so
``agi provenance RUN`` walks run → predictions → model → Wannier sets → pw.x / wannier90.x.

>>> builder = ElectronicWorkChain.get_builder_from_protocol(None, "demo-allegro-750K", store=store,
...                                                         protocol="demo")     # the run's own Wannier sets
>>> aiida.engine.run(builder)

Protocols: ``agi_data/protocols/electronic.yaml`` (``fast``, ``demo``, ``production``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain, calcfunction

from ..calculations.electronic import (
    ElectronicPredictCalculation,
    ElectronicTrainCalculation,
    ensure_electronic_code,
)
from ..data import WannierSet
from ..exit_codes import define_exit_codes
from ..protocols import ProtocolMixin
from . import builder, common


def _pairs(sets: list[WannierSet]) -> list:
    """``(traj, wannier)`` per store run of ``sets``: positions at the version each set was written, its centres."""
    import numpy as np
    import xarray as xr

    from agi_data.store import open_store

    by_run: dict[tuple[str, str], list[WannierSet]] = {}
    for node in sets:
        attrs = node.base.attributes
        by_run.setdefault((attrs.get("store_path"), attrs.get("run_id")), []).append(node)
    pairs = []
    for (store_path, run_id), nodes in sorted(by_run.items()):
        newest = max(nodes, key=lambda n: n.ctime)  # positions never change; the newest version holds every set
        traj = open_store(store_path).trajectory(run_id, version=newest.base.attributes.get("store_version"))
        frames = np.concatenate([n.frames for n in nodes])
        centres = np.concatenate([n.centres for n in nodes])
        order = np.argsort(frames, kind="stable")
        wan = xr.Dataset({"centres": (("frame", "wannier", "xyz"), centres[order])},
                         coords={"frame": frames[order]})
        pairs.append((traj, wan))
    return pairs


@calcfunction
def training_data(**wannier_sets: WannierSet) -> orm.SinglefileData:
    """The labelled frames of the WannierSets as one ``.npz`` (:func:`~agi_data.electronic.training_data.write_training_data`)."""
    from agi_data.electronic.training_data import write_training_data

    with tempfile.TemporaryDirectory(prefix="agi-electronic-") as tmp:
        path = write_training_data(_pairs([wannier_sets[k] for k in sorted(wannier_sets)]),
                                   Path(tmp) / "training_data.npz")
        return orm.SinglefileData(file=path, filename="training_data.npz")


def wannier_sets_of_run(store, run_id: str) -> dict[str, WannierSet]:
    """The WannierSet nodes (of this profile) that wrote the Wannier centres of a store run."""
    from aiida.common.exceptions import NotExistent

    out = {}
    for k, batch in enumerate(store.wannier(run_id).attrs.get("provenance_batches", [])):
        try:
            out[f"batch_{k}"] = orm.load_node(batch["node_uuid"]).outputs.result
        except NotExistent:  # written from another profile (a copied run): not this graph's
            continue
    return out


class ElectronicWorkChain(ProtocolMixin, WorkChain):
    """WannierSets → the lone-pair model (``agi.electronic_train``) → its moments on every frame of a store run."""

    _protocol_name = "electronic"

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input_namespace("wannier_sets", valid_type=WannierSet, dynamic=True,
                             help="the DFT Wannier centres to learn from (agi.wannier's wannier_sets outputs)")
        spec.input("run", valid_type=orm.Dict,
                   help="the store run to predict on: {store_path, run_id, version}")
        spec.input("parameters", valid_type=orm.Dict, help="the resolved protocol (agi_data/protocols/electronic.yaml)")
        spec.input("train_code", valid_type=orm.AbstractCode, help="the agi.electronic_train code")
        spec.input("predict_code", valid_type=orm.AbstractCode, help="the agi.electronic_predict code")
        spec.output("training_data", valid_type=orm.SinglefileData, help="the materialised labelled frames")
        spec.output("model", valid_type=orm.SinglefileData, help="the trained model (ElectronicModel.save)")
        spec.output("metrics", valid_type=orm.Dict, help="held-out errors and frame counts of the model")
        spec.output("predictions", valid_type=orm.Dict, help="what the prediction job wrote into the run")
        spec.outline(cls.materialise, cls.train, cls.inspect_train, cls.predict, cls.inspect_predict,
                     cls.finalize)
        define_exit_codes(spec, "ERROR_INVALID_INPUTS", "ERROR_ELECTRONIC_JOB_FAILED")

    @classmethod
    def get_builder_from_protocol(cls, code=None, run: str | None = None, *, store=None, wannier_sets=None,
                                  protocol: str | None = None, overrides: dict | None = None,
                                  options: dict | None = None):
        """A builder with the inputs of ``agi_data/protocols/electronic.yaml``.

        :param code: ``{"train": code, "predict": code}`` (codes or labels); default: this Python's
            ``agi-electronic-train`` / ``agi-electronic-predict`` on localhost, registered on first use.
        :param run: the store run whose frames get predictions (positions read at its current version).
        :param store: the store holding ``run`` (a :class:`~agi_data.store.Store` or a path).
        :param wannier_sets: the WannierSets to learn from (a mapping or a list); default: those that
            wrote ``run``'s own Wannier centres.
        :raises BuilderInputError: no run, no store, no Wannier sets, or a bad protocol value — before
            anything is stored or run.
        """
        params = builder.resolve_parameters("electronic", protocol, overrides, options)
        if not run:
            raise builder.BuilderInputError("run: name the store run to predict on")
        root = builder.store_root(store)
        source, _ = builder.run_source(root, run, [0])  # the run's checks and its pinned version (every frame is predicted)
        if wannier_sets is None:
            from agi_data.store import open_store

            wannier_sets = wannier_sets_of_run(open_store(root), run)
        if not isinstance(wannier_sets, dict):
            wannier_sets = {f"set_{k}": node for k, node in enumerate(wannier_sets)}
        if not wannier_sets or not all(isinstance(n, WannierSet) for n in wannier_sets.values()):
            raise builder.BuilderInputError(
                f"wannier_sets: give WannierSet nodes (agi.wannier's outputs); got {len(wannier_sets)} "
                f"({sorted({type(n).__name__ for n in wannier_sets.values()})}) — run agi.wannier on {run!r} first")
        codes = code or {}
        new = cls.get_builder()
        new.wannier_sets = wannier_sets
        new.run = source
        new.parameters = orm.Dict(params)
        for kind in ("train", "predict"):
            plugin = f"agi.electronic_{kind}"
            given = codes.get(kind)
            setattr(new, f"{kind}_code", ensure_electronic_code(plugin) if given is None
                    else builder.resolve_code(given, plugin, f"code[{kind!r}]"))
        new.metadata.label = f"agi.electronic ({params['protocol']}) {run}"
        return new

    def _options(self) -> dict:
        return common.calcjob_options(self.inputs.parameters.get_dict(), serial=True)

    def materialise(self):
        try:
            self.ctx.data = training_data(**self.inputs.wannier_sets)
        except Exception as err:  # noqa: BLE001 - a set whose store or run is gone
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message=f"the Wannier sets' frames: {err}")
        return None

    def train(self):
        inputs = {"code": self.inputs.train_code, "training_data": self.ctx.data,
                  "parameters": orm.Dict(self.inputs.parameters["training"]),
                  "wannier_sets": dict(self.inputs.wannier_sets),
                  "metadata": {"label": "electronic-train", "options": self._options()}}
        return ToContext(train=self.submit(ElectronicTrainCalculation, **inputs))

    def _failed(self, calc, what: str) -> ExitCode:
        code = self.exit_codes.ERROR_ELECTRONIC_JOB_FAILED.format(
            what=what, message=f"[{calc.exit_status}] {calc.exit_message or calc.process_state}")
        return ExitCode(code.status, f"{code.message} (pk {calc.pk})")

    def inspect_train(self):
        calc = self.ctx.train
        if not calc.is_finished_ok:
            return self._failed(calc, "agi.electronic_train")
        m = calc.outputs.metrics.get_dict()
        self.report(f"lone-pair model: held-out rotor RMSE {m.get('rotor_rmse', float('nan')):.3f}, dipole RMSE "
                    f"{m.get('dipole_rel', float('nan')):.1%} of its spread, on {m.get('n_validation_frames')} "
                    f"frames ({m.get('n_train_frames')} trained)")
        return None

    def predict(self):
        p = self.inputs.parameters.get_dict()
        params = {**p["predict"], "species": p["training"]["species"], "cutoff": p["training"]["cutoff"]}
        inputs = {"code": self.inputs.predict_code, "model": self.ctx.train.outputs.model, "run": self.inputs.run,
                  "parameters": orm.Dict(params),
                  "metadata": {"label": "electronic-predict", "options": self._options()}}
        return ToContext(predict=self.submit(ElectronicPredictCalculation, **inputs))

    def inspect_predict(self):
        calc = self.ctx.predict
        if not calc.is_finished_ok:
            return self._failed(calc, "agi.electronic_predict")
        return None

    def finalize(self):
        train, predict = self.ctx.train, self.ctx.predict
        self.out("training_data", self.ctx.data)
        self.out("model", train.outputs.model)
        self.out("metrics", train.outputs.metrics)
        self.out("predictions", predict.outputs.predictions)
        common.add_to_results_group(self, "electronic", self.inputs.run["run_id"],
                                    [self.ctx.data, train.outputs.model, train.outputs.metrics,
                                     predict.outputs.predictions])
