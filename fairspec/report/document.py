"""A report as a list of blocks (headings, text, tables, images), written as Markdown or as one
self-contained HTML page (images inlined), so both files always say the same thing."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Image:
    path: Path  # a PNG beside the report
    alt: str


@dataclass
class Html:
    """A block written as given: ``html`` (already escaped, self-contained) in the page,
    ``markdown`` in report.md."""

    html: str
    markdown: str


@dataclass
class Document:
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                out += ["#" * block.level + " " + block.text, ""]
            elif isinstance(block, Text):
                out += [block.text, ""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [block.caption, ""]
                out += ["| " + " | ".join(block.header) + " |", "|" + "---|" * len(block.header)]
                out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
                out.append("")
            elif isinstance(block, Image):
                out += [f"![{block.alt}]({block.path.name})", ""]
            elif isinstance(block, Html):
                out += [block.markdown, ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            if isinstance(block, Heading):
                body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
            elif isinstance(block, Text):
                body.append(f"<p>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row)
                               + "</tr>" for row in block.rows)
                body.append(f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(block, Image):
                data = base64.b64encode(block.path.read_bytes()).decode("ascii")
                body.append(f"<figure><img alt='{html.escape(block.alt)}' "
                            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(block.alt)}"
                            "</figcaption></figure>")
            elif isinstance(block, Html):
                body.append(block.html)
        return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 62em; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f3f3f3; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3em; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
"""
