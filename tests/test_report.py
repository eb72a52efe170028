"""report.md / report.html rendering and the all-or-nothing report folder."""
import base64

import pandas as pd
import pytest

from matplotlib.figure import Figure

from snn_energy import plots
from snn_energy.report import Section, check_destination, render_markdown, staged_folder, write_report


def _sections():
    table = pd.DataFrame({"stage": ["encoder", "decoder"], "energy (uJ)": [1.25, 3.5]})
    return [Section("Headline", ["Saving `42.0 %` <b>not bold</b>"], table=table, figures=[("bars", "Bars & more")]),
            Section("Notes", bullets=["one", "two"])]


def test_markdown_and_self_contained_html(tmp_path):
    figure = Figure(figsize=(3, 2))
    figure.gca().bar([0, 1], [1, 2])
    png, _ = plots.save_figure(figure, tmp_path / "figures", "bars")
    md_path, html_path = write_report(tmp_path, "Title", _sections())
    markdown = md_path.read_text()
    assert markdown.startswith("# Title\n") and "## Headline" in markdown and "- two" in markdown
    assert "| encoder " in markdown and "1.25" in markdown and "(figures/bars.png)" in markdown
    page = html_path.read_text()
    embedded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f"data:image/png;base64,{embedded}" in page  # the figure itself, not a link
    assert "<code>42.0 %</code>" in page and "&lt;b&gt;not bold&lt;/b&gt;" in page and "Bars &amp; more" in page
    assert "<td>encoder</td>" in page


def test_staged_folder_appears_whole(tmp_path):
    out = tmp_path / "report"
    with staged_folder(out) as folder:
        (folder / "summary.json").write_text("[]")
        assert not out.exists()
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_failure_leaves_nothing_and_keeps_previous_report(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(RuntimeError):
        with staged_folder(out) as folder:
            (folder / "layers.csv").write_text("half")
            raise RuntimeError("figure failed")
    assert list(tmp_path.iterdir()) == []
    with staged_folder(out) as folder:
        (folder / "summary.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_folder(out) as folder:
            (folder / "summary.json").write_text("new")
            raise RuntimeError("boom")
    assert (out / "summary.json").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report"]
    with staged_folder(out) as folder:  # a previous report is replaced whole
        (folder / "summary.json").write_text("new")
        (folder / "report.md").write_text("# new")
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["report"]


def test_destination_checks(tmp_path):
    afile = tmp_path / "a.txt"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="--out .*a.txt: is a file"):
        check_destination(afile)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="holds no previous report"):
        check_destination(busy)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_destination(empty) == empty
    assert check_destination(tmp_path / "new") == tmp_path / "new"


def test_markdown_without_figures():
    text = render_markdown("T", [Section("Only text", ["a paragraph"])])
    assert text == "# T\n\n## Only text\n\na paragraph\n"
