"""Figures from DataFrames: what each one draws, and that the saved PNGs are real pictures (size, not blank)."""
import xml.etree.ElementTree as ElementTree

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from PIL import Image

from snn_energy import plots

LAYERS = pd.DataFrame({
    "layer": ["enc.lif1", "enc.lif2", "down.lif", "dec.lif1", "dec.lif2"],
    "stage": ["encoder", "encoder", "down", "decoder", "decoder"],
    "firing_rate": [0.12, 0.03, 0.2, 0.08, 0.0],
    "firing_rate_std": [0.01, 0.005, 0.02, 0.01, 0.0],
})


def _timesteps():
    rows = [{"layer": layer, "timestep": t, "firing_rate": rate * (1 + 0.1 * t)}
            for layer, rate in zip(LAYERS["layer"], LAYERS["firing_rate"]) for t in range(4)]
    rows.append({"layer": "refine.conv", "timestep": -1, "firing_rate": 1.0})  # untimed rows are left out
    return pd.DataFrame(rows)


def _stage_energy():
    """Two accountings with MAC, AC and spike parts (uJ), and Lemaire's three parts (mJ)."""
    rows = []
    for accounting in ("paper", "strict"):
        for stage, mac, ac in (("encoding", 5e6, 0.0), ("encoder", 1e6, 3e6), ("decoder", 2e6, 1e6)):
            for network, parts in (("SNN", {"MAC": mac, "AC": ac, "spikes": 1e5}),
                                   ("ANN", {"MAC": 4 * mac + 1e6, "AC": 0.0, "spikes": 0.0})):
                rows += [{"accounting": accounting, "stage": stage, "network": network, "part": part,
                          "energy_pJ": energy} for part, energy in parts.items()]
    for stage, memory in (("encoding", 2e9), ("encoder", 5e9), ("decoder", 9e9)):
        for network, scale in (("SNN", 1.0), ("ANN", 0.5)):
            rows += [{"accounting": "lemaire", "stage": stage, "network": network, "part": part,
                      "energy_pJ": scale * energy}
                     for part, energy in (("compute", 1e8), ("addressing", 1e7), ("memory", memory))]
    return pd.DataFrame(rows)


def _overlaps(first, second) -> bool:
    return first.x0 < second.x1 and second.x0 < first.x1 and first.y0 < second.y1 and second.y0 < first.y1


def assert_real_png(path, min_width=300, min_height=200, max_side=6000):
    """The PNG opens, has a plausible size, and is not blank: varied pixels and many colours."""
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        width, height = picture.size
        pixels = np.asarray(picture.convert("RGB"), dtype=np.float64)
    assert min_width <= width <= max_side and min_height <= height <= max_side, (width, height)
    assert pixels.std() > 10.0, f"{path} looks blank (pixel std {pixels.std():.2f})"
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"{path} has only {len(colours)} colours"
    assert (pixels < 200).mean() > 0.01  # some ink, not a white page with a few specks
    return width, height


def assert_real_svg(path):
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert sum(1 for _ in root.iter()) > 50


def test_blank_figure_fails_the_check(tmp_path):
    figure = Figure(figsize=(5, 4))
    png, _ = plots.save_figure(figure, tmp_path, "blank")
    with pytest.raises(AssertionError, match="blank"):
        assert_real_png(png, min_width=10, min_height=10)


def test_firing_rate_bars_in_network_order_with_spread(tmp_path):
    figure = plots.plot_firing_rates(LAYERS)
    axis = figure.axes[0]
    heights = [patch.get_height() for patch in axis.patches]
    assert heights == pytest.approx(LAYERS["firing_rate"].tolist())
    assert [label.get_text() for label in axis.get_xticklabels()] == LAYERS["layer"].tolist()
    bars = next(c for c in axis.containers if isinstance(c, BarContainer))
    whiskers = bars.errorbar.lines[2][0].get_segments()
    assert [seg[1, 1] - seg[0, 1] for seg in whiskers] == pytest.approx((2 * LAYERS["firing_rate_std"]).tolist())
    png, svg = plots.save_figure(figure, tmp_path, "firing_rates")
    width, height = assert_real_png(png)
    assert width > height  # one bar per layer along x
    assert_real_svg(svg)


def test_heatmap_layers_by_timesteps(tmp_path):
    figure = plots.plot_firing_rate_heatmap(_timesteps())
    mesh = figure.axes[0].collections[0]
    grid = np.asarray(mesh.get_array()).reshape(len(LAYERS), 4)
    expected = np.outer(LAYERS["firing_rate"], [1.0, 1.1, 1.2, 1.3])
    assert grid == pytest.approx(expected)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == LAYERS["layer"].tolist()
    png, svg = plots.save_figure(figure, tmp_path, "heatmap")
    assert_real_png(png)
    assert_real_svg(svg)


def test_stage_energy_stacks_the_parts_of_every_accounting(tmp_path):
    frame = _stage_energy()
    figure = plots.plot_stage_energy(frame)
    axes = [ax for ax in figure.axes if ax.patches]
    assert len(axes) == 3  # one panel per accounting
    assert "uJ" in axes[0].get_ylabel() and "mJ" in axes[2].get_ylabel()  # each panel in its own unit
    for ax, accounting, factor in ((axes[0], "paper", 1e-6), (axes[2], "lemaire", 1e-9)):
        part = frame[frame["accounting"] == accounting]
        tops = sorted(round((p.get_y() + p.get_height()) / factor, 3) for p in ax.patches if p.get_height() > 0)
        cumulative = part.assign(top=part.groupby(["stage", "network"], sort=False)["energy_pJ"].cumsum())
        expected = sorted(round(v, 3) for v in cumulative.loc[cumulative["energy_pJ"] > 0, "top"])
        assert tops == expected  # each part stacked on the ones before it
        tallest = cumulative["top"].max() * factor
        assert ax.get_ylim()[1] >= 1.1 * tallest  # room above the tallest bar
    figure.canvas.draw()
    for ax in axes:  # the legend stands beside the bars, over none of them
        legend = ax.get_legend().get_window_extent()
        assert not any(_overlaps(legend, p.get_window_extent()) for p in ax.patches if p.get_height() > 0)
    assert "spikes part" not in [t.get_text() for t in axes[2].get_legend().get_texts()]
    png, svg = plots.save_figure(figure, tmp_path, "stage_energy")
    assert_real_png(png)
    assert_real_svg(svg)


def test_firing_rate_legend_covers_no_bar():
    """The tallest bars sit at the right end, under where a corner legend would go."""
    layers = LAYERS.assign(firing_rate=[0.02, 0.03, 0.05, 0.3, 0.31])
    figure = plots.plot_firing_rates(layers)
    figure.canvas.draw()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert not any(_overlaps(legend, patch.get_window_extent()) for patch in ax.patches)
    assert ax.get_ylim()[1] >= 1.05 * 0.31  # room above the tallest bar (its whisker is 0)


def test_spike_maps_beside_input(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    maps = {"enc.lif1": rng.random((4, 8, 32, 32)) < 0.2, "dec.lif1": rng.random((4, 16, 32, 32)) < 0.05}
    figure = plots.plot_spike_maps(image, maps)
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 2 * (1 + 4)  # input + 4 timesteps per layer
    first_step = shown[1].images[0].get_array()
    assert np.asarray(first_step) == pytest.approx(maps["enc.lif1"][0].mean(0))
    png, svg = plots.save_figure(figure, tmp_path, "spike_maps")
    assert_real_png(png)
    assert_real_svg(svg)


def test_energy_against_rain_density(tmp_path):
    frame = pd.DataFrame({"rain_density": [0.3, 0.05, 0.6] * 2, "energy_pJ": [2e9, 1e9, 3e9, 5e9, 5e9, 5e9],
                          "series": ["SNN"] * 3 + ["ANN"] * 3})
    figure = plots.plot_energy_vs_rain_density(frame, "measured")
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["SNN", "ANN"]
    assert lines[0].get_xdata().tolist() == pytest.approx([0.05, 0.3, 0.6])  # sorted, a fraction as in the tables
    assert "fraction of pixels" in figure.axes[0].get_xlabel()
    assert lines[0].get_ydata().tolist() == pytest.approx([1, 2, 3])  # mJ
    assert "measured" in figure.axes[0].get_xlabel()
    png, svg = plots.save_figure(figure, tmp_path, "rain")
    assert_real_png(png)
    assert_real_svg(svg)


def test_quality_against_energy(tmp_path):
    frame = pd.DataFrame({"label": ["SNN paper", "SNN strict", "ANN"], "energy_pJ": [1e8, 9e8, 1e9],
                          "psnr_db": [30.0, 30.0, 31.5]})
    figure = plots.plot_quality_vs_energy(frame)
    points = np.array([c.get_offsets()[0] for c in figure.axes[0].collections])
    assert points == pytest.approx(np.array([[0.1, 30.0], [0.9, 30.0], [1.0, 31.5]]))  # mJ, dB
    png, _ = plots.save_figure(figure, tmp_path, "quality")
    assert_real_png(png)


def test_energy_unit():
    assert plots.energy_unit(5.0) == (1.0, "pJ")
    assert plots.energy_unit(5e3) == (1e-3, "nJ")
    assert plots.energy_unit(5e8) == (1e-6, "uJ")  # 500 uJ
    assert plots.energy_unit(5e9) == (1e-9, "mJ")
    assert plots.energy_unit(2e12) == (1e-12, "J")


def test_same_figure_same_svg_bytes(tmp_path):
    first = plots.save_figure(plots.plot_firing_rates(LAYERS), tmp_path / "a", "f")[1].read_bytes()
    second = plots.save_figure(plots.plot_firing_rates(LAYERS), tmp_path / "b", "f")[1].read_bytes()
    assert first == second

