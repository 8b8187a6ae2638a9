"""A tiny document model, rendered to Markdown (``report.md``) and to a self-contained HTML
page (``report.html``: the CSS inline, every image a ``data:`` URI).

Sections append blocks to a :class:`Document`; nothing is rendered until the whole report
is written, so the two files always hold the same content.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


class Document:
    """Blocks: ("h", level, text), ("p", text), ("ul", [items]), ("table", headers, rows),
    ("img", file name, alt). Text may use `code`, **bold** and *italic*; everything else is
    literal."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", headers, rows))

    def img(self, name: str, alt: str) -> None:
        """An image by its file name in the report's folder."""
        self.blocks.append(("img", name, alt))


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def to_markdown(doc: Document) -> str:
    out: list[str] = []
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |",
                     "|" + "|".join("---" for _ in headers) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
    return "\n\n".join(out) + "\n"


def inline_html(text: str) -> str:
    """`code`, **bold** and *italic* to HTML; a ``*`` inside a code span is literal."""
    parts = re.split(r"(`[^`]+`)", html.escape(str(text), quote=True))
    codes = [f"<code>{p[1:-1]}</code>" for p in parts[1::2]]
    # placeholders (no * or word boundary issue) keep code spans out of the emphasis rules
    text = "".join(p if i % 2 == 0 else f"\x00{i // 2}\x00" for i, p in enumerate(parts))
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?![*\w])", r"<em>\1</em>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; font-size: 90%; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
""".strip()


def to_html(doc: Document, title: str, out_dir: Path) -> str:
    """The page; each image is read from ``out_dir`` and inlined."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>\n{CSS}\n</style>", "</head>",
             "<body>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{inline_html(block[1])}</p>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block[1])
                         + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{inline_html(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in row)
                           + "</tr>" for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((Path(out_dir) / block[1]).read_bytes()).decode("ascii")
            parts.append(f'<p><img alt="{html.escape(block[2], quote=True)}" '
                         f'src="data:image/png;base64,{data}"></p>')
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
