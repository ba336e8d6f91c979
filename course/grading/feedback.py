"""The feedback a student reads: ``feedback.md`` and ``feedback.html``, the same content.

Both are rendered from one list of blocks (:func:`feedback_blocks`): the score, a table of the
exercises, each exercise's message, and what went wrong while running the notebook. The HTML
page is self-contained (styles inline; no script, font, image or link to anything else), so it
opens from a zip file, an LMS upload or an e-mail.
"""

from __future__ import annotations

import html
from typing import List, Tuple

from course.grading.results import SubmissionResult

Block = Tuple[str, object]  # ("h1" | "h2" | "strong" | "p", text), ("table", (header, rows)), ("pre", text), ("ul", items)

FOOTER = "Run each exercise's check cell in your notebook to get the same messages while you work."

_STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 52rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 1rem 0; } th, td { border: 1px solid #ccc; padding: .3rem .7rem; text-align: left; }
th { background: #f3f3f3; } td.passed { color: #116611; font-weight: 600; } td.failed { color: #a31515; font-weight: 600; }
pre { background: #f6f8fa; border: 1px solid #ddd; padding: .8rem; white-space: pre-wrap; overflow-wrap: anywhere; }
.score { font-size: 1.2rem; font-weight: 700; }
@media (prefers-color-scheme: dark) { body { background: #161616; color: #e6e6e6; } th { background: #262626; }
  pre { background: #1f1f1f; border-color: #333; } td.passed { color: #6fd66f; } td.failed { color: #ff7b7b; } }
"""


def problems(result: SubmissionResult) -> List[str]:
    """What went wrong while running the submission, one line each."""
    lines = [f"{e.where}: {e.kind}: {e.message}" for e in result.errors]
    lines += [t.message for t in result.timeouts]
    return lines + list(result.notes)


def feedback_blocks(result: SubmissionResult) -> List[Block]:
    """The content of the feedback, as blocks both renderers share."""
    rows = [[f"{e.id} {e.title}", f"{e.points} / {e.max_points}", "passed" if e.passed else "not passed"]
            for e in result.exercises]
    blocks: List[Block] = [
        ("h1", f"Feedback: {result.name}"),
        ("strong", f"Score: {result.total} / {result.max_points}"),
        ("table", (["Exercise", "Points", "Result"], rows)),
    ]
    for e in result.exercises:
        blocks += [("h2", f"Exercise {e.id}: {e.title}"), ("pre", e.message)]
    lines = problems(result)
    if lines:
        blocks += [("h2", "While running your notebook"), ("ul", lines)]
    blocks.append(("p", FOOTER))
    return blocks


def md_escape(text) -> str:
    """``text`` on one line, safe in a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def feedback_markdown(result: SubmissionResult) -> str:
    """The text of ``feedback.md``: what a student reads (score table, one section per exercise)."""
    fence = "~~~~"
    lines: List[str] = []
    for kind, content in feedback_blocks(result):
        if kind == "h1":
            lines += [f"# {md_escape(content)}", ""]
        elif kind == "h2":
            lines += ["", f"## {md_escape(content)}", ""]
        elif kind == "strong":
            lines += [f"**{content}**", ""]
        elif kind == "table":
            header, rows = content
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
        elif kind == "pre":
            lines += [fence + "text", str(content).replace(fence, "~~~"), fence]
        elif kind == "ul":
            lines += [f"* {md_escape(item)}" for item in content]
        elif kind == "p":
            lines += ["", str(content)]
    return "\n".join(lines) + "\n"


def feedback_html(result: SubmissionResult) -> str:
    """The text of ``feedback.html``: the content of ``feedback.md`` as a self-contained page."""
    esc = html.escape
    body: List[str] = []
    for kind, content in feedback_blocks(result):
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{esc(str(content))}</{kind}>")
        elif kind == "strong":
            body.append(f'<p class="score">{esc(str(content))}</p>')
        elif kind == "table":
            header, rows = content
            cells = "".join(f"<th>{esc(h)}</th>" for h in header)
            lines = [f"<table>\n<thead><tr>{cells}</tr></thead>\n<tbody>"]
            for row in rows:
                status = "passed" if row[-1] == "passed" else "failed"
                lines.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row[:-1])
                             + f'<td class="{status}">{esc(row[-1])}</td></tr>')
            body.append("\n".join(lines) + "\n</tbody>\n</table>")
        elif kind == "pre":
            body.append(f"<pre>{esc(str(content))}</pre>")
        elif kind == "ul":
            body.append("<ul>\n" + "\n".join(f"<li>{esc(str(item))}</li>" for item in content) + "\n</ul>")
        elif kind == "p":
            body.append(f"<p>{esc(str(content))}</p>")
    title = esc(f"Feedback: {result.name}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )
