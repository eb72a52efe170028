"""Reports: ``report.md`` and a self-contained ``report.html`` from sections of text, tables and figures,
and a report folder written whole or not at all.

A report is a title and a list of ``Section``s. The Markdown links the figures (``figures/NAME.png``); the HTML
embeds them as base64 PNG, so the one file can be mailed or opened anywhere. ``staged_folder`` builds a folder
beside its destination and renames it into place only when everything was written.
"""
from __future__ import annotations

import base64
import contextlib
import html
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

REPORT_MARKER = "summary.json"  # a folder holding this file is a report that may be replaced
FIGURES_DIR = "figures"
_HTML_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } code { background: #f4f4f4; padding: 0 0.2em; }
"""


@dataclass
class Section:
    """A heading, paragraphs of Markdown-light text (``code`` spans only), an optional table and figures.

    ``figures`` are figure names saved under ``figures/`` as ``NAME.png`` (and ``NAME.svg``), each with a caption.
    """

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    figures: list[tuple[str, str]] = field(default_factory=list)  # (name, caption)
    bullets: list[str] = field(default_factory=list)


def _table_markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".4g")


def render_markdown(title: str, sections: list[Section]) -> str:
    """Return the report as Markdown text; figures are linked relative to the report's folder."""
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.heading}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
        if section.bullets:
            lines += [f"- {bullet}" for bullet in section.bullets] + [""]
        if section.table is not None:
            lines += [_table_markdown(section.table), ""]
        for name, caption in section.figures:
            lines += [f"![{caption}]({FIGURES_DIR}/{name}.png)", "",
                      f"*{caption}* ([SVG]({FIGURES_DIR}/{name}.svg))", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape text for HTML and turn ``code`` spans into <code> elements."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def render_html(title: str, sections: list[Section], figures_dir: str | os.PathLike) -> str:
    """Return the report as one self-contained HTML page, the PNG figures of ``figures_dir`` embedded as base64."""
    figures_dir = Path(figures_dir)
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        body += [f"<p>{_inline(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            body.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in section.bullets) + "</ul>")
        if section.table is not None:
            body.append(section.table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0))
        for name, caption in section.figures:
            data = base64.b64encode((figures_dir / f"{name}.png").read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_inline(caption)}</figcaption></figure>")
    head = (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n")
    return head + "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"


def write_report(directory: str | os.PathLike, title: str, sections: list[Section]) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``directory`` (figures already in ``directory/figures``).

    Returns the two paths.
    """
    directory = Path(directory)
    markdown, page = directory / "report.md", directory / "report.html"
    markdown.write_text(render_markdown(title, sections), encoding="utf-8")
    page.write_text(render_html(title, sections, directory / FIGURES_DIR), encoding="utf-8")
    return [markdown, page]


def check_destination(out: str | os.PathLike, option: str = "--out") -> Path:
    """Return ``out`` as a Path if a report may be written there; raise otherwise.

    Allowed: a path that does not exist, an empty folder, or a folder holding a previous report (``summary.json``),
    which is replaced. Raises NotADirectoryError when ``out`` is a file and FileExistsError for a folder
    holding other things, naming ``option``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{option} {out}: is a file, not a folder for the report")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_MARKER).is_file():
        raise FileExistsError(f"{option} {out}: folder is not empty and holds no previous report ({REPORT_MARKER}); "
                              "choose a new or empty folder")
    return out


@contextlib.contextmanager
def staged_folder(out: str | os.PathLike, option: str = "--out"):
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out``, on error it is deleted.

    ``out`` is checked with ``check_destination`` before and again just before the swap. A previous report in
    ``out`` is moved aside, then deleted once the new folder is in place (restored if the rename fails).
    """
    out = check_destination(out, option)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield staging
        staging.chmod(0o755)
        check_destination(out, option)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, retired / out.name)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(retired / out.name, out)
                raise
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
