"""Profile an ESDNet and its single-pass ANN twin on an ImageSet: the toolkit's tables plus per-stage and per-image
views, the spike maps of one image, and (when weights make them meaningful) the derained outputs.

The SNN is profiled with its single-pass ANN twin (same topology, T=1) counted on the same images, so the
summary's savings (``saving_vs_ann_T1``) rest on the twin's own counts, and the twin's tables
(``result.ann_layers``, ``result.ann_images``) break its energy down per layer and per image.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pandas as pd
import torch

import snn_energy
from esdnet.model import ESDNet
from snn_energy import lemaire, tables
from snn_energy.cli.esdnet_stages import STAGE_ORDER, stage_of
from snn_energy.cli.image_inputs import ImageSet
from esdnet.progress import progress_bar
from snn_energy.energy import ACCOUNTINGS, LEMAIRE, energy_constants

ANN_REFERENCE = "T1"  # the headline ANN: the single-pass twin
PART_LABELS = {"mac": "MAC", "ac": "AC", "spike": "spikes", "compute": "compute", "addressing": "addressing",
               "memory": "memory"}


@dataclass
class ESDNetProfile:
    """Everything a report shows; energies in pJ per image (means over the images)."""

    result: snn_energy.ProfileResult  # the SNN, its savings against the single-pass twin in ``summary``
    ann_layers: pd.DataFrame  # per ANN layer: ``<accounting>_mac_ops`` / ``_ac_ops``, ``energy_<accounting>_pJ``
    ann_images: pd.DataFrame  # per image: the same for the ANN twin
    stages: pd.DataFrame  # per U-Net stage, see ``stage_table``
    spike_maps: dict[str, torch.Tensor]  # of the first image: layer -> [T, C, H, W] spikes
    snn_outputs: list[torch.Tensor]  # derained images [3, H, W] in [0, 1]
    ann_outputs: list[torch.Tensor]

    @property
    def e_mac_pJ(self) -> float:
        return float(self.result.summary["e_mac_pJ"].iloc[0])

    @property
    def e_ac_pJ(self) -> float:
        return float(self.result.summary["e_ac_pJ"].iloc[0])

    def total(self, accounting: str) -> pd.Series:
        """Return the summary row of ``accounting`` (``paper``, ``strict`` or ``lemaire``)."""
        return self.result.summary.set_index("accounting").loc[accounting]


@contextlib.contextmanager
def _kept_outputs(model: torch.nn.Module, enabled: bool):
    """Yield a list that collects each forward's output images (clamped to [0, 1], on the CPU) while enabled."""
    outputs: list[torch.Tensor] = []

    def hook(module, args, output):
        outputs.extend(output.detach().clamp(0.0, 1.0).cpu().unbind(0))

    handle = model.register_forward_hook(hook) if enabled else None
    try:
        yield outputs
    finally:
        if handle is not None:
            handle.remove()


def batches(images: Iterable[torch.Tensor], batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    """Yield ``images`` (each ``[3, H, W]``, read as they come) stacked into batches of up to ``batch_size``
    consecutive images of equal size, on ``device``."""
    pending: list[torch.Tensor] = []
    for image in images:
        if pending and (len(pending) == batch_size or image.shape != pending[0].shape):
            yield torch.stack(pending).to(device)
            pending = []
        pending.append(image)
    if pending:
        yield torch.stack(pending).to(device)


def _parts(accounting: str) -> tuple[str, ...]:
    return tuple(f"lemaire_{part}" for part in lemaire.PARTS) if accounting == LEMAIRE else (
        f"{accounting}_mac", f"{accounting}_ac", f"{accounting}_spike")


def _part_energies(frame: pd.DataFrame, accounting: str, e_mac_pJ: float, e_ac_pJ: float) -> dict[str, pd.Series]:
    """Return the parts of ``energy_<accounting>_pJ`` of each row: MAC, AC and spike/neuron parts, or Lemaire's."""
    if accounting == LEMAIRE:
        return {part: frame[f"{part}_pJ"] for part in _parts(accounting)}
    mac, ac, spike = _parts(accounting)
    mac_pJ, ac_pJ = e_mac_pJ * frame[f"{mac}_ops"], e_ac_pJ * frame[f"{ac}_ops"]
    return {mac: mac_pJ, ac: ac_pJ, spike: frame[f"energy_{accounting}_pJ"] - mac_pJ - ac_pJ}


def stage_table(layers: pd.DataFrame, ann_layers: pd.DataFrame, e_mac_pJ: float, e_ac_pJ: float) -> pd.DataFrame:
    """Return one row per U-Net stage (network order): firing rate, dense MACs, accumulates and energies (pJ).

    Columns: ``stage``; ``firing_rate`` (spikes / (neurons x timesteps) over the stage's neuron layers);
    ``macs`` (dense MACs of the SNN over its T timesteps) and ``sops`` (exact accumulates of binary inputs);
    per network (``snn``, ``ann``) and accounting the charged ``<net>_<acc>_mac_ops`` / ``<net>_<acc>_ac_ops``,
    ``energy_<net>_<acc>_pJ`` and its parts ``<net>_<part>_pJ``: ``<acc>_mac``, ``<acc>_ac`` and
    ``<acc>_spike`` (spikes and neuron updates) for ``paper`` and ``strict``, ``lemaire_compute``,
    ``lemaire_addressing`` and ``lemaire_memory`` for ``lemaire``.
    """
    snn = layers.assign(stage=layers["layer"].map(stage_of), neuron_steps=layers["neurons"] * layers["timesteps"])
    snn["neuron_steps"] = snn["neuron_steps"].where(snn["role"] == "neuron", 0.0)
    ann = ann_layers.assign(stage=ann_layers["layer"].map(stage_of))
    for frame in (snn, ann):
        for accounting in ACCOUNTINGS:
            for part, energy in _part_energies(frame, accounting, e_mac_pJ, e_ac_pJ).items():
                frame[f"{part}_pJ"] = energy
    shared = [f"{a}_{k}_ops" for a in ACCOUNTINGS for k in ("mac", "ac")] + [f"energy_{a}_pJ" for a in ACCOUNTINGS]
    shared += [f"{part}_pJ" for a in ACCOUNTINGS for part in _parts(a)]
    snn_sums = snn.groupby("stage")[["macs", "sops", "spikes", "neuron_steps"] + shared].sum()
    ann_sums = ann.groupby("stage")[shared].sum()
    order = [s for s in STAGE_ORDER if s in snn_sums.index or s in ann_sums.index]
    snn_sums, ann_sums = snn_sums.reindex(order, fill_value=0.0), ann_sums.reindex(order, fill_value=0.0)
    table = pd.DataFrame({"stage": order})
    neuron_steps = snn_sums["neuron_steps"].where(snn_sums["neuron_steps"] > 0)
    table["firing_rate"] = (snn_sums["spikes"] / neuron_steps).to_numpy()
    table["macs"], table["sops"] = snn_sums["macs"].to_numpy(), snn_sums["sops"].to_numpy()
    for accounting in ACCOUNTINGS:
        for network, sums in (("snn", snn_sums), ("ann", ann_sums)):
            for kind in ("mac", "ac"):
                table[f"{network}_{accounting}_{kind}_ops"] = sums[f"{accounting}_{kind}_ops"].to_numpy()
            for part in _parts(accounting):
                table[f"{network}_{part}_pJ"] = sums[f"{part}_pJ"].to_numpy()
            table[f"energy_{network}_{accounting}_pJ"] = sums[f"energy_{accounting}_pJ"].to_numpy()
    return table


def stage_energy_long(stages: pd.DataFrame) -> pd.DataFrame:
    """Return the stage energies as one row per (accounting, stage, network, part) with ``energy_pJ``; parts are
    "MAC", "AC" and "spikes" (paper, strict) or Lemaire's "compute", "addressing" and "memory"."""
    rows = []
    for accounting in ACCOUNTINGS:
        for network in ("snn", "ann"):
            for part in _parts(accounting):
                rows.append(pd.DataFrame({
                    "accounting": accounting, "stage": stages["stage"], "network": network.upper(),
                    "part": PART_LABELS[part.rsplit("_", 1)[1]], "energy_pJ": stages[f"{network}_{part}_pJ"],
                }))
    return pd.concat(rows, ignore_index=True)


def profile_esdnet(snn: ESDNet, ann: ESDNet, images: ImageSet, *, constants: str = "fp32",
                   encoding_policy: str = "per_timestep", spike_layers=(), keep_outputs: bool = False,
                   target_saving: float = tables.DEFAULT_TARGET_SAVING, batch_size: int = 1) -> ESDNetProfile:
    """Profile ``snn`` with its single-pass twin ``ann`` on ``images``, streamed in batches of up to ``batch_size``
    images of equal size, with a progress bar on a terminal; see ESDNetProfile.

    ``spike_layers``: layer names whose spike maps are captured, on the first image only. ``keep_outputs``: also keep both networks' derained images (for quality scores).
    """
    device = next(snn.parameters()).device
    with (_kept_outputs(snn, keep_outputs) as snn_outputs, _kept_outputs(ann, keep_outputs) as ann_outputs,
          progress_bar(total=len(images.images), desc="profile", unit="image") as bar):
        result = snn_energy.profile(snn, batches(images.images, batch_size, device), single_pass_ann=ann,
                                    constants=constants, encoding_policy=encoding_policy,
                                    spike_maps=tuple(spike_layers), spike_map_images=1, target_saving=target_saving,
                                    progress=bar.update)
    spike_maps = {layer: maps[0] for layer, maps in result.spike_maps.items()}
    energy = energy_constants(constants)
    ann_layers, ann_images = result.ann_layers[ANN_REFERENCE], result.ann_images[ANN_REFERENCE]
    stages = stage_table(result.layers, ann_layers, energy.e_mac_pJ, energy.e_ac_pJ)
    return ESDNetProfile(result=result, ann_layers=ann_layers, ann_images=ann_images, stages=stages,
                         spike_maps=spike_maps, snn_outputs=snn_outputs, ann_outputs=ann_outputs)
