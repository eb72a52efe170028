"""``snn_energy.profile`` on ESDNet: tables, ANN references, encoding policy, break-even, sweep, statistics, files."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import esdnet
import snn_energy

T = 4  # ESDNet's timesteps
REQUIRED = ["layer", "macs", "sops", "firing_rate", "energy_pJ"]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    snn = esdnet.build_model("small").eval()
    ann = esdnet.build_model("small", arch="ann").eval()
    single = esdnet.build_model("small", arch="ann", single_pass=True).eval()
    ann.load_state_dict(snn.state_dict())
    single.load_state_dict(snn.state_dict())
    return snn, ann, single


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.rand(3, 3, 16, 16)


@pytest.fixture(scope="module")
def result(models, images):
    snn, ann, single = models
    return snn_energy.profile(snn, [images[:2], images[2:]], ann_twin=ann, single_pass_ann=single)


def test_tables_carry_the_required_columns(result):
    for table in (result.layers, result.timesteps, result.summary):
        assert set(REQUIRED) <= set(table.columns)
    assert "timestep" in result.timesteps.columns and "module_type" in result.layers.columns
    assert "input_kind" in result.layers.columns
    assert result.summary["accounting"].tolist() == ["paper", "strict", "lemaire"]
    assert result.summary["layer"].tolist() == ["total"] * 3
    assert result.selected_summary()["accounting"] == "strict"  # the default accounting behind energy_pJ
    assert len(result.images) == 3 and result.settings["images"] == 3


def test_esdnet_input_kinds_and_timesteps(result):
    layers = result.layers.set_index("layer")
    assert layers.loc["patch_embed.proj", "input_kind"] == "real"
    assert layers.loc["patch_embed.proj", "is_encoding"]
    assert layers.loc["encoder_level1.0.residual.1", "input_kind"] == "binary"  # fed by LIF spikes
    assert layers.loc["encoder_level1.0.shortcut.0", "input_kind"] == "real"  # the block's real-valued input
    assert layers.loc["encoder_level1.0.residual.1", "timesteps"] == T
    steps = result.timesteps
    assert set(steps.loc[steps["layer"] == "output.0", "timestep"]) == {-1}  # after the mean over T
    assert set(steps.loc[steps["layer"] == "patch_embed.proj", "timestep"]) == set(range(T))
    assert result.summary["encoding_input_repeated"].all()


def test_ann_twin_has_the_snn_dense_macs(result, models, images):
    snn, _, _ = models
    derived = snn_energy.profile(snn, images)
    measured = result.summary.set_index("accounting")
    assumed = derived.summary.set_index("accounting")
    assert measured.loc["paper", "ann_same_T_source"] == "twin"
    assert sorted(result.ann_records) == ["T1", "same_T"] and derived.ann_records == {}
    # the twin's own rows: its dense synaptic MACs per image are what the summary charges it under `paper`
    twin_rows = result.ann_records["T1"]
    twin_macs = twin_rows.loc[twin_rows["role"] == "synaptic", "macs"].sum() / 3
    assert measured.loc["paper", "energy_ann_T1_pJ"] == pytest.approx(4.6 * twin_macs)
    assert assumed.loc["paper", "ann_same_T_source"].startswith("derived")
    # same modules, same T: the twin's dense MACs are the SNN's
    assert measured.loc["paper", "energy_ann_same_T_pJ"] == pytest.approx(assumed.loc["paper", "energy_ann_same_T_pJ"])
    # the single-pass ANN runs every time-split layer once
    single_rows = result.records[result.records["timestep"] <= 0]
    snn_T1_macs = single_rows.loc[single_rows["role"] == "synaptic", "macs"].sum() / 3
    assert measured.loc["paper", "energy_ann_T1_pJ"] == pytest.approx(4.6 * snn_T1_macs, rel=0.01)
    for accounting, row in measured.iterrows():
        assert row["saving_vs_ann_T1"] == pytest.approx(1 - row["energy_pJ"] / row["energy_ann_T1_pJ"])
        assert row["saving_vs_ann_same_T"] == pytest.approx(1 - row["energy_pJ"] / row["energy_ann_same_T_pJ"])


def test_encoding_layer_policy(models, images):
    snn, _, _ = models
    every = snn_energy.profile(snn, images, encoding_policy="per_timestep").summary.set_index("accounting")
    once = snn_energy.profile(snn, images, encoding_policy="once").summary.set_index("accounting")
    # patch_embed.proj: 3x3 conv 3 -> 16 channels on 16x16, charged at T timesteps or at one
    macs_per_timestep = 3 * 3 * 3 * 16 * 16 * 16
    for accounting in ("paper", "strict"):
        assert every.loc[accounting, "energy_pJ"] - once.loc[accounting, "energy_pJ"] == pytest.approx(
            (T - 1) * 4.6 * macs_per_timestep)
    assert once.loc["paper", "encoding_policy"] == "once"


def test_break_even_rates(result):
    layers = result.layers.set_index("layer")
    spike_fed = layers.loc["encoder_level1.0.residual.1"]
    # E_MAC x (MACs of one pass) = E_AC x rate x (MACs of T passes)
    assert spike_fed["break_even_rate"] == pytest.approx(4.6 / (0.9 * T))
    assert spike_fed["break_even_rate_same_T"] == pytest.approx(4.6 / 0.9)
    assert spike_fed["above_break_even"] == (spike_fed["firing_rate"] > 4.6 / (0.9 * T))
    assert np.isnan(layers.loc["encoder_level1.0.residual.0", "break_even_rate"])  # a neuron layer


def test_sensitivity_sweep_meets_the_summary(result):
    summary = result.summary.set_index("accounting")
    sweep = result.sensitivity
    fp32 = sweep[sweep["preset"] == "fp32"].set_index(["accounting", "reference"])
    for accounting in ("paper", "strict"):
        for reference in ("same_T", "T1"):
            assert fp32.loc[(accounting, reference), "saving"] == pytest.approx(
                summary.loc[accounting, f"saving_vs_ann_{reference}"])
    ratio = summary.loc["paper", "break_even_ac_mac_ratio_T1"]
    if np.isfinite(ratio):  # at the break-even ratio the saving is zero
        at_ratio = snn_energy.energy.sensitivity_sweep(
            pd.DataFrame([{
                "accounting": "paper", "reference": "T1",
                "snn_mac_ops": summary.loc["paper", "mac_ops"], "snn_ac_ops": summary.loc["paper", "ac_ops"],
                "ann_mac_ops": summary.loc["paper", "energy_ann_T1_pJ"] / 4.6, "ann_ac_ops": 0.0,
            }]), [ratio], snn_energy.energy_constants())
        assert at_ratio["saving"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_data_set_statistics(result):
    energies = result.images["energy_pJ"].to_numpy()
    summary = result.summary.set_index("accounting").loc["strict"]
    assert summary["energy_pJ"] == pytest.approx(energies.mean())
    assert summary["energy_std_pJ"] == pytest.approx(energies.std(ddof=1))
    half = stats.t.ppf(0.975, 2) * energies.std(ddof=1) / np.sqrt(3)
    assert summary["energy_ci95_high_pJ"] == pytest.approx(energies.mean() + half)
    rates = result.images["firing_rate"]
    assert summary["firing_rate"] == pytest.approx(rates.mean())
    per_image = result.records.groupby("image")["energy_strict_pJ"].sum().to_numpy()
    assert np.allclose(per_image, energies)
    layers = result.layers
    assert layers["energy_pJ"].sum() == pytest.approx(summary["energy_pJ"])
    assert layers["energy_share"].sum() == pytest.approx(1.0)


def test_other_constants(models, images):
    snn, _, _ = models
    int8 = snn_energy.profile(snn, images[:1], constants="int8").summary.set_index("accounting")
    custom = snn_energy.profile(snn, images[:1], e_mac_pJ=0.23, e_ac_pJ=0.03).summary.set_index("accounting")
    assert int8.loc["strict", "e_mac_pJ"] == 0.23 and int8.loc["strict", "constants"] == "int8"
    assert custom.loc["strict", "energy_pJ"] == pytest.approx(int8.loc["strict", "energy_pJ"])
    assert custom.loc["strict", "constants"] == "custom"


def test_result_writes_its_tables(result, tmp_path):
    written = result.save(tmp_path / "profile")
    names = {path.name for path in written}
    for table in ("summary", "layers", "timesteps", "images", "sensitivity"):
        assert {f"{table}.csv", f"{table}.json", f"{table}.md", f"{table}.html"} <= names
    assert {"records.csv", "neuron_extremes.csv", "settings.json"} <= names
    assert not [p for p in (tmp_path / "profile").iterdir() if p.name.startswith(".")]  # no temporary left
    layers = pd.read_csv(tmp_path / "profile" / "layers.csv")
    assert layers.columns.tolist() == result.layers.columns.tolist()
    assert layers["macs"].tolist() == pytest.approx(result.layers["macs"].tolist())
    assert json.loads((tmp_path / "profile" / "settings.json").read_text())["accounting"] == "strict"
    assert (tmp_path / "profile" / "summary.md").read_text().startswith("| layer")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="it is a file"):
        result.save(tmp_path / "file")
    with pytest.raises(ValueError, match="unknown \\['pdf'\\]"):
        result.save(tmp_path / "other", formats=["pdf"])
