"""``snn_energy.profile`` streams a data set: the tables do not depend on how the images are batched, the
per-layer statistics over images equal those of the per-image rows, and the state kept does not grow with the
number of images."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from scipy import stats
from spikingjelly.activation_based import functional, layer, neuron
from torch.utils.data import DataLoader, TensorDataset

import snn_energy
from snn_energy import Profiler, lemaire, tables
from snn_energy.aggregate import Aggregate
from snn_energy.api import _run_batch
from snn_energy.energy import energy_constants

T = 3
TABLES = ("layers", "timesteps", "summary", "images", "sensitivity")


def _network(spiking: bool) -> nn.Module:
    torch.manual_seed(0)
    act = (lambda: neuron.LIFNode(tau=2.0, v_threshold=0.4)) if spiking else nn.ReLU
    net = nn.Sequential(layer.Conv2d(3, 6, 3, padding=1), act(), layer.Conv2d(6, 4, 3, padding=1), act(),
                        layer.Conv2d(4, 3, 1))
    functional.set_step_mode(net, "m")
    return net.eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    brightness = torch.linspace(0.2, 1.0, 7).view(7, 1, 1, 1)  # images of different activity: nonzero std
    return torch.rand(7, 3, 8, 8) * brightness


def _profile(inputs, **options):
    twin = _network(spiking=False)
    return snn_energy.profile(_network(spiking=True), inputs, timesteps=T, single_pass_ann=twin, **options)


def _assert_same_table(a: pd.DataFrame, b: pd.DataFrame, name: str):
    assert a.columns.tolist() == b.columns.tolist() and a.shape == b.shape, name
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if a[column].dtype.kind in "fiub" and a[column].dtype.kind != "b":
            x, y = x.astype(float), y.astype(float)
            scale = np.nanmax(np.abs(x)) if np.isfinite(x).any() else 0.0
            np.testing.assert_allclose(y, x, rtol=1e-9, atol=1e-9 * scale, err_msg=f"{name}.{column}")
        else:
            assert [str(v) for v in x] == [str(v) for v in y], f"{name}.{column}"


def test_one_batch_single_images_and_a_data_loader_give_the_same_tables(images):
    together = _profile(images)
    apart = _profile([images[i:i + 1] for i in range(len(images))])
    loader = _profile(DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=3))
    assert together.settings["images"] == apart.settings["images"] == loader.settings["images"] == 7
    for result in (apart, loader):
        for name in TABLES:
            _assert_same_table(getattr(together, name), getattr(result, name), name)
        _assert_same_table(together.ann_layers["T1"], result.ann_layers["T1"], "ann_layers")
    layers = together.layers
    assert layers["energy_std_pJ"].gt(0).any() and layers["firing_rate_ci95_low"].notna().any()


def test_layer_statistics_equal_those_of_the_per_image_rows(images):
    """The moments merged batch by batch give the mean, std and Student-t CI over the images' own totals."""
    result = _profile([images[:2], images[2:3], images[3:]], record_images=None)
    per_image = result.records.groupby(["layer", "role", "image"], sort=False)[["energy_pJ", "spikes", "neurons"]].sum()
    layers = result.layers.set_index(["layer", "role"])
    for (name, role), rows in per_image.groupby(level=["layer", "role"], sort=False):
        energy = rows["energy_pJ"].to_numpy()
        row = layers.loc[(name, role)]
        assert row["energy_pJ"] == pytest.approx(energy.mean(), rel=1e-12)
        assert row["energy_std_pJ"] == pytest.approx(energy.std(ddof=1), rel=1e-9)
        half = stats.t.ppf(0.975, len(energy) - 1) * energy.std(ddof=1) / np.sqrt(len(energy))
        assert row["energy_ci95_high_pJ"] == pytest.approx(energy.mean() + half, rel=1e-9)
        if role == "neuron":
            rates = (rows["spikes"] / rows["neurons"]).to_numpy()
            assert row["firing_rate_std"] == pytest.approx(rates.std(ddof=1), rel=1e-9)
    assert len(result.images) == 7 and result.records["image"].nunique() == 7


def test_the_state_kept_does_not_grow_with_the_images(images):
    """Fed one image at a time, the aggregate's tables keep a constant number of rows, the raw rows stop at
    ``record_images`` and the profiler forgets what it handed over; only the per-image rows grow, by one each."""
    net = _network(spiking=True)
    options = tables.EnergyOptions(constants=energy_constants("fp32"))
    geometry = dict.fromkeys(("snn", "same_T", "T1"), lemaire.layer_geometry(net))
    aggregate = Aggregate(options, geometry, {"same_T": "derived", "T1": "derived"}, record_images=2)
    sizes = []
    with Profiler(net) as profiler, torch.no_grad():
        for index in range(12):
            _run_batch(profiler, images[index % 7:index % 7 + 1], T)
            aggregate.add(*profiler.drain(), {})
            assert profiler.records().empty and profiler.neuron_extremes().empty
            sizes.append((aggregate.state_rows(), len(aggregate.records()), len(aggregate.extremes())))
    assert sizes[0][0] > 0 and len(set(sizes[1:])) == 1
    assert aggregate.records()["image"].tolist() == sorted(aggregate.records()["image"]) and set(
        aggregate.records()["image"]) == {0, 1}
    assert len(aggregate.images()) == 12
    result = _profile([images[i:i + 1] for i in range(7)], record_images=2)
    assert set(result.records["image"]) == {0, 1} and set(result.ann_records["T1"]["image"]) == {0, 1}
    assert result.settings["record_images"] == 2
