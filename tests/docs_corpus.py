"""The Acme Deploy fixture corpus (tests/fixtures/corpus) and its generated PDF.

Other tests use it to ask questions against a small, realistic team-docs set:
`build_corpus(tmp_path)` copies the clean documents and writes the PDF next to them;
`QUESTIONS` pairs questions with the file that answers them (see the corpus README).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
DOCS = CORPUS / "docs"  # clean documents: md, rst, html, txt (+ the PDF written by build_corpus)
BROKEN = CORPUS / "broken"  # empty, binary, latin-1 text, corrupt PDF
LARGE = CORPUS / "large" / "changelog.md"  # ~100 KB markdown
PDF_NAME = "release-notes.pdf"
QUESTIONS: list[dict[str, str]] = json.loads((CORPUS / "questions.json").read_text(encoding="utf-8"))

_PDF_PAGES = [
    [
        "Acme Deploy 4.2 Release Notes",
        "",
        "Highlights",
        "The canary strategy is now generally available. Run acme-deploy push",
        "with --strategy canary to send five percent of the traffic to the new",
        "release first; the agent promotes it after ten healthy minutes.",
        "The new acme-deploy logs command streams agent logs of a target.",
        "",
        "Fixes",
        "Error E1042 no longer appears after a crashed deploy: stale locks",
        "older than one hour are released automatically.",
    ],
    [
        "Removed and deprecated",
        "Support for Ubuntu 20.04 was dropped in Acme Deploy 4.2 because the",
        "distribution reached the end of its standard support. Upgrade build",
        "agents to Ubuntu 22.04 or newer before installing this release.",
        "",
        "Upgrade notes",
        "Version 4.2 needs control plane API version 7 or newer. Hosted",
        "accounts were upgraded on 3 March; self-hosted control planes must",
        "be upgraded before the agents.",
    ],
]


def write_release_notes_pdf(path: Path, *, title: str | None = "Acme Deploy 4.2 Release Notes") -> Path:
    """Write a two-page text PDF with reportlab (metadata title optional)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    if title:
        pdf.setTitle(title)
    for page in _PDF_PAGES:
        text = pdf.beginText(72, A4[1] - 72)
        text.setFont("Helvetica", 11)
        for line in page:
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return path


def build_corpus(dest: Path) -> Path:
    """Copy the clean documents into `dest` and add the generated PDF; returns `dest`."""
    shutil.copytree(DOCS, dest, dirs_exist_ok=True)
    write_release_notes_pdf(dest / PDF_NAME)
    return dest
