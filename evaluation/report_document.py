"""The report page as data and its two renderings: built once as blocks, rendered to HTML and to Markdown.

Sections build a list of blocks (`Heading`, `Para`, `Table`, `Figure`, `Gallery`, ...) from inline pieces
(`text(...)`, `Code`, `Strong`, `Link`); `render_html` and `render_md` turn the same list into both pages,
so the two never disagree. The HTML works offline from disk: CSS inline, figures as base64 data URIs,
videos as relative files. Numbers in cells are formatted here too, one precision per interval.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlsuite import __version__ as rlsuite_version

# ----------------------------------------------------------------------------------------------------
# Number formatting (public so tests and other tools print numbers exactly as reports do).


def _decimals(magnitude: float) -> int:
    """Decimals that suit a magnitude: 3 below 1, 2 below 100, 1 below 10,000, then 0."""
    return 3 if magnitude < 1 else 2 if magnitude < 100 else 1 if magnitude < 10_000 else 0


def format_number(x: float, decimals: int | None = None) -> str:
    """A score with `decimals` places, by default as many as its magnitude warrants (see `_decimals`)."""
    if not math.isfinite(x):
        return str(x)
    d = _decimals(abs(x)) if decimals is None else decimals
    text = f"{x:,.0f}" if d == 0 else f"{x:.{d}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text  # no "-0.00"


def format_interval(point: float, low: float, high: float, decimals: int | None = None) -> str:
    """`point [low, high]` with one number of decimals for all three (by default from the largest)."""
    d = _decimals(max(abs(point), abs(low), abs(high))) if decimals is None else decimals
    return f"{format_number(point, d)} [{format_number(low, d)}, {format_number(high, d)}]"


# ----------------------------------------------------------------------------------------------------
# The document model: inline pieces and blocks, rendered to HTML and Markdown.


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str  # always a relative path inside the report folder


Inline = str | Code | Strong | Link
Text = tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Para:
    text: Text
    note: bool = False  # smaller, muted: footnotes and explanations


@dataclass(frozen=True)
class Bullets:
    items: tuple[Text, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Text, ...], ...]
    best: frozenset[int] = frozenset()  # row indices to highlight
    numeric: frozenset[int] = frozenset()  # right-aligned number columns
    wrap: frozenset[int] = frozenset()  # columns of long text that may wrap (others stay on one line)


@dataclass(frozen=True)
class Figure:
    file: str  # relative path, e.g. figures/scores_CartPole-v1.png
    png: bytes
    alt: str


@dataclass(frozen=True)
class Video:
    file: str | None  # relative path under videos/, None when there is nothing to show
    title: str
    caption: Text


@dataclass(frozen=True)
class Gallery:
    videos: tuple[Video, ...]


Block = Heading | Para | Bullets | Table | Figure | Gallery


def text(*parts: Inline) -> Text:
    return tuple(parts)


def slug(text: str) -> str:
    """A file-name-safe form of an env id or agent name (rlsuite/Highway-v0 -> rlsuite_Highway-v0)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ----------------------------------------------------------------------------------------------------
# Rendering.

_CSS = """
:root { --fg: #1c2330; --muted: #5d6778; --line: #e2e6ed; --head: #f2f4f8; --best: #fff5cf;
        --accent: #1f5fbf; --code: #f3f4f7; }
* { box-sizing: border-box; }
html { background: #eef1f5; }
body { margin: 0; color: var(--fg);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 40px 56px 72px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 30px; line-height: 1.2; margin: 0 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 22px; margin: 48px 0 14px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 30px 0 10px; }
p { margin: 8px 0; max-width: 80ch; }
p.meta { color: var(--muted); margin: 0 0 4px; }
p.note { color: var(--muted); font-size: 13.5px; }
ul { margin: 8px 0; padding-left: 22px; } li { margin: 3px 0; }
a { color: var(--accent); }
nav.toc { background: var(--head); border: 1px solid var(--line); border-radius: 8px; padding: 10px 18px;
          margin: 22px 0 8px; font-size: 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
.table-wrap { overflow-x: auto; margin: 10px 0 6px; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
         white-space: nowrap; }
td.wrap { white-space: normal; min-width: 22ch; }
th { background: var(--head); font-weight: 600; border-bottom: 2px solid #cdd4de; white-space: normal;
     vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
tr.best td { background: var(--best); }
tr.best td:first-child { box-shadow: inset 3px 0 0 #e0a800; }
code { font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
       background: var(--code); padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
figure { margin: 16px 0 26px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 22px; margin: 10px 0; }
.gallery figure { margin: 0; }
video { display: block; width: 100%; max-height: 420px; background: #111; border-radius: 6px; }
.missing { display: flex; align-items: center; justify-content: center; height: 120px; border-radius: 6px;
           border: 1px dashed #c4cad4; color: var(--muted); font-size: 13px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
@media print { html { background: #fff; } main { box-shadow: none; padding: 0; } }
"""


def _html_inline(part: Inline) -> str:
    if isinstance(part, str):
        return html.escape(part)
    if isinstance(part, Code):
        return f"<code>{html.escape(part.text)}</code>"
    if isinstance(part, Strong):
        return f"<strong>{html.escape(part.text)}</strong>"
    return f'<a href="{html.escape(part.href)}">{html.escape(part.text)}</a>'


def _html_text(text: Text) -> str:
    return "".join(_html_inline(part) for part in text)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f'<h{block.level} id="{block.anchor}">{html.escape(block.text)}</h{block.level}>'
    if isinstance(block, Para):
        note = ' class="note"' if block.note else ""
        return f"<p{note}>{_html_text(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_html_text(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        def cls(i: int) -> str:
            return ' class="num"' if i in block.numeric else ' class="wrap"' if i in block.wrap else ""

        head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(block.header))
        body = []
        for r, row in enumerate(block.rows):
            tr = '<tr class="best">' if r in block.best else "<tr>"
            body.append(tr + "".join(f"<td{cls(i)}>{_html_text(c)}</td>" for i, c in enumerate(row)) + "</tr>")
        return (
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
            f'<figcaption>{html.escape(block.alt)} (<a href="{html.escape(block.file)}">PNG</a>)</figcaption>'
            "</figure>"
        )
    items = []
    for video in block.videos:
        if video.file is None:
            media = f'<div class="missing">{html.escape(video.title)}: no video</div>'
        elif video.file.endswith(".gif"):
            media = f'<img src="{html.escape(video.file)}" alt="{html.escape(video.title)}">'
        else:
            media = (
                f'<video controls muted playsinline preload="metadata" src="{html.escape(video.file)}">'
                f'<a href="{html.escape(video.file)}">{html.escape(video.title)}</a></video>'
            )
        items.append(
            f"<figure>{media}<figcaption><strong>{html.escape(video.title)}</strong>. "
            f"{_html_text(video.caption)}</figcaption></figure>"
        )
    return f'<div class="gallery">{"".join(items)}</div>'


def render_html(title: str, meta: Sequence[Text], blocks: Sequence[Block]) -> str:
    toc = "".join(
        f'<li><a href="#{b.anchor}">{html.escape(b.text)}</a></li>'
        for b in blocks
        if isinstance(b, Heading) and b.level == 2
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="meta">{_html_text(line)}</p>' for line in meta),
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
        *(_html_block(block) for block in blocks),
        f"<footer>Written by rlsuite {html.escape(rlsuite_version)}.</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _md_inline(part: Inline, in_table: bool) -> str:
    if isinstance(part, str):
        text = part
    elif isinstance(part, Code):
        fence = "``" if "`" in part.text else "`"
        text = f"{fence}{part.text}{fence}"
    elif isinstance(part, Strong):
        text = f"**{part.text.strip()}**" + (" " if part.text.endswith(" ") else "")
    else:
        text = f"[{part.text}]({part.href})"
    return text.replace("|", "\\|").replace("\n", " ") if in_table else text


def _md_text(text: Text, in_table: bool = False) -> str:
    return "".join(_md_inline(part, in_table) for part in text)


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, Para):
        return f"*{_md_text(block.text)}*" if block.note else _md_text(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md_text(item)}" for item in block.items)
    if isinstance(block, Table):
        def row(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        rule = ["---:" if i in block.numeric else "---" for i in range(len(block.header))]
        lines = [row([h.replace("|", "\\|") for h in block.header]), row(rule)]
        lines += [row([_md_text(cell, in_table=True) for cell in cells]) for cells in block.rows]
        return "\n".join(lines)
    if isinstance(block, Figure):
        return f"![{block.alt}]({block.file})"
    lines = []
    for video in block.videos:
        head = f"[{video.title}]({video.file})" if video.file else f"{video.title} (no video)"
        lines.append(f"- {head}: {_md_text(video.caption)}")
    return "\n".join(lines)


def render_md(title: str, meta: Sequence[Text], blocks: Sequence[Block]) -> str:
    parts = [f"# {title}", "\n".join(f"{_md_text(line)}  " for line in meta).rstrip()]
    parts += [_md_block(block) for block in blocks]
    return "\n\n".join(parts) + "\n"
