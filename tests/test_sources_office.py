"""Office documents become sections with heading paths: Word headings, slide titles and sheet names
(markitdown) and OpenDocument outline levels. Files are written here with python-docx,
python-pptx and openpyxl, and an .odt is zipped from its XML; damaged files give reasons."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import docx
import openpyxl
import pptx
import pytest

from services.indexing.loader import DOCUMENT_SUFFIXES, LoadFailure, ParsedDocument, parse_bytes
from services.indexing.office import convert_office
from services.indexing.parsers import ParseError


def word_document() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Operations handbook"
    document.add_heading("Operations handbook", level=1)
    document.add_paragraph("How the team runs the widget service.")
    document.add_heading("On call", level=2)
    document.add_paragraph("The on-call engineer answers pages within fifteen minutes.")
    document.add_heading("Escalation", level=3)
    document.add_paragraph("Escalate to the team lead after thirty minutes without progress.")
    document.add_heading("Releases", level=2)
    document.add_paragraph("Releases ship on Tuesdays after the change review.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def slides() -> bytes:
    deck = pptx.Presentation()
    for title, body in (("Quarterly plan", "Ship the widget to three regions"), ("Risks", "Supply delays")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def workbook() -> bytes:
    book = openpyxl.Workbook()
    prices = book.active
    prices.title = "Prices"
    prices.append(["Item", "Price"])
    prices.append(["Widget", 30])
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Ada", "Maintainer"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def open_document() -> bytes:
    ns = (
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
    )
    content = f"""<?xml version="1.0" encoding="UTF-8"?>
<office:document-content {ns} office:version="1.2"><office:body><office:text>
<text:h text:outline-level="1">Travel policy</text:h>
<text:p>Book<text:s/>trains for trips under <text:span>four hours</text:span>.</text:p>
<text:h text:outline-level="2">Expenses</text:h>
<text:list><text:list-item><text:p>Keep every receipt.</text:p></text:list-item></text:list>
<text:p>Submit claims within a month.</text:p>
</office:text></office:body></office:document-content>"""
    meta = (
        '<?xml version="1.0"?><office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:'
        'office:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Travel</dc:title>'
        "</office:meta></office:document-meta>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        archive.writestr("content.xml", content)
        archive.writestr("meta.xml", meta)
    return out.getvalue()


def test_word_headings_become_heading_paths() -> None:
    title, sections = convert_office(".docx", word_document())
    assert title == "Operations handbook"
    assert [(s.heading_path, s.text) for s in sections] == [
        (["Operations handbook"], "How the team runs the widget service."),
        (["Operations handbook", "On call"], "The on-call engineer answers pages within fifteen minutes."),
        (
            ["Operations handbook", "On call", "Escalation"],
            "Escalate to the team lead after thirty minutes without progress.",
        ),
        (["Operations handbook", "Releases"], "Releases ship on Tuesdays after the change review."),
    ]


def test_slide_titles_and_sheet_names_are_headings() -> None:
    _, deck = convert_office(".pptx", slides())
    assert [(s.heading_path, s.text) for s in deck] == [
        (["Quarterly plan"], "Ship the widget to three regions"),
        (["Risks"], "Supply delays"),
    ]
    _, sheets = convert_office(".xlsx", workbook())
    assert [s.heading_path for s in sheets] == [["Prices"], ["Staff"]]
    assert "Widget | 30" in sheets[0].text and "Ada | Maintainer" in sheets[1].text


def test_open_document_text_keeps_its_outline() -> None:
    title, sections = convert_office(".odt", open_document())
    assert title == "Travel"
    assert [(s.heading_path, s.text) for s in sections] == [
        (["Travel policy"], "Book trains for trips under four hours."),
        (["Travel policy", "Expenses"], "- Keep every receipt.\n\nSubmit claims within a month."),
    ]


@pytest.mark.parametrize("suffix", [".docx", ".pptx", ".xlsx", ".odt"])
def test_damaged_office_files_raise_a_reason(suffix: str) -> None:
    with pytest.raises(ParseError, match=f"malformed \\{suffix} file"):
        convert_office(suffix, b"plain text, not a zip archive")
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("nothing.txt", "no document inside")
    with pytest.raises(ParseError, match="malformed"):
        convert_office(suffix, broken.getvalue())


def test_sources_parse_office_bytes_like_any_document() -> None:
    assert {".docx", ".pptx", ".xlsx", ".odt", ".md", ".pdf"} <= DOCUMENT_SUFFIXES
    when = datetime(2024, 5, 1, tzinfo=UTC)
    parsed = parse_bytes(
        document_id="repo#path=handbook.docx", source="handbook.docx", name="handbook.docx",
        kind=".docx", data=word_document(), modified_time=when,
    )  # fmt: skip
    assert isinstance(parsed, ParsedDocument)
    assert parsed.title == "Operations handbook" and parsed.modified_time == when
    assert len(parsed.sections) == 4
    failure = parse_bytes(
        document_id="x",
        source="deck.pptx",
        name="deck.pptx",
        kind=".pptx",
        data=b"PK broken",
        modified_time=when,
    )
    assert (
        isinstance(failure, LoadFailure)
        and failure.path == "deck.pptx"
        and "malformed .pptx" in failure.reason
    )
