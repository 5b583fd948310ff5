"""Discovery, parsing and failure reasons of the document loader, on the Acme Deploy corpus."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from docs_corpus import BROKEN, DOCS, LARGE, PDF_NAME, build_corpus, write_release_notes_pdf

from services.indexing.loader import (
    LoadFailure,
    ParsedDocument,
    discover,
    discover_files,
    hash_file,
    parse_document,
    resolve_path,
)


def _parsed(path: Path) -> ParsedDocument:
    result = parse_document(path)
    assert isinstance(result, ParsedDocument), result
    return result


def _failure(path: Path) -> LoadFailure:
    result = parse_document(path)
    assert isinstance(result, LoadFailure), result
    return result


def _section(doc: ParsedDocument, *path: str) -> str:
    matches = [s.text for s in doc.sections if s.heading_path == list(path)]
    assert matches, f"no section {path!r}; have {[s.heading_path for s in doc.sections]}"
    return matches[0]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "docs")


# --- discovery --------------------------------------------------------------------------------


def test_discover_walks_trees_skips_hidden_and_reports_bad_paths(tmp_path: Path, corpus: Path) -> None:
    for hidden in (".git", "node_modules", "sub/.cache"):
        (corpus / hidden).mkdir(parents=True, exist_ok=True)
        (corpus / hidden / "ignored.md").write_text("# Ignored\n\ntext\n")
    (corpus / "sub" / "nested.markdown").write_text("# Nested\n\nbody\n")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    (corpus / ".hidden.md").write_text("# Hidden\n\ntext\n")
    (tmp_path / "notes.key").write_bytes(b"PK")

    found = discover_files([corpus, corpus / "faq.txt", tmp_path / "missing", tmp_path / "notes.key"])

    names = [p.relative_to(corpus).as_posix() for p in found.files]
    assert names == sorted(
        [
            "cli-reference.md",
            "configuration.rst",
            "faq.txt",
            "install.md",
            PDF_NAME,
            "sub/nested.markdown",
            "troubleshooting.html",
        ]
    )  # faq.txt named twice, listed once
    assert all(p.is_absolute() for p in found.files)
    assert found.unsupported == 2  # image.png, .hidden.md
    reasons = {Path(f.path).name: f.reason for f in found.failures}
    assert reasons["missing"] == "path does not exist"
    assert reasons["notes.key"].startswith("unsupported file type '.key'")
    assert ".docx" in reasons["notes.key"]  # the reason lists what is supported, Office files too


LOOP = "symbolic link loop (the link leads back to itself), so it cannot be read"


def test_broken_and_looping_links_are_reported_with_the_reason(tmp_path: Path, corpus: Path) -> None:
    (corpus / "loop.md").symlink_to(corpus / "loop.md")
    (corpus / "folder-loop").symlink_to("folder-loop")  # a link meant for a folder, looping
    (corpus / "old-guide.md").symlink_to("../archive/guide.md")
    (corpus / "faq-link.txt").symlink_to(corpus / "faq.txt")  # a working link: followed, listed once
    named = tmp_path / "named-loop.md"
    named.symlink_to(named)

    found = discover_files([corpus, named])

    reasons = {Path(f.path).name: f.reason for f in found.failures}
    assert reasons == {
        "loop.md": LOOP,
        "folder-loop": LOOP,
        "old-guide.md": "broken symbolic link: its target ../archive/guide.md does not exist",
        "named-loop.md": LOOP,
    }
    assert len(found.files) == 6 and (corpus / "faq.txt") in found.files
    assert resolve_path(named) == named  # unresolvable: as written, without raising
    assert parse_document(named) == LoadFailure(str(named), LOOP)


async def test_discover_runs_in_a_thread(corpus: Path) -> None:
    found = await discover([corpus])
    assert len(found.files) == 6 and not found.failures


# --- formats ------------------------------------------------------------------------------------


def test_markdown_title_from_front_matter_headings_and_code(corpus: Path) -> None:
    doc = _parsed(corpus / "install.md")
    assert doc.title == "Installing Acme Deploy"
    assert doc.sections[0].heading_path == []  # intro before the first heading
    assert "ships releases" in doc.sections[0].text
    debian = _section(doc, "Linux", "Debian and Ubuntu")
    assert "```sh\n" in debian and "sudo apt update && sudo apt install acme-deploy" in debian
    assert "brew install acme/tap/acme-deploy" in _section(doc, "macOS")
    assert "- At least 2 GB of RAM" in _section(doc, "Requirements")
    assert "title:" not in " ".join(s.text for s in doc.sections)  # front matter is not text


def test_markdown_h1_title_and_heading_levels(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(
        "Guide\n=====\n\nIntro with **bold**, a [link](http://x)\nand `code`.\n\n"
        "### Deep\n\ndeep text\n\n## Middle\n\nmiddle text\n\n"
        "| Key | Value |\n|---|---|\n| region | eu-west-1 |\n\n<!-- a comment -->\n\n# Second top\n\nlast\n",
        encoding="utf-8",
    )
    doc = _parsed(path)
    assert doc.title == "Guide"
    assert [s.heading_path for s in doc.sections] == [
        ["Guide"],
        ["Guide", "Deep"],
        ["Guide", "Middle"],
        ["Second top"],
    ]
    assert doc.sections[0].text == "Intro with bold, a link and `code`."
    assert "region | eu-west-1" in doc.sections[2].text and "comment" not in doc.sections[2].text


def test_rst_sections_definitions_and_literal_blocks(corpus: Path) -> None:
    doc = _parsed(corpus / "configuration.rst")
    assert doc.title == "Configuring Acme Deploy"
    assert [s.heading_path for s in doc.sections][:2] == [
        ["Configuring Acme Deploy"],
        ["Configuring Acme Deploy", "Configuration file"],
    ]
    env = _section(doc, "Configuring Acme Deploy", "Environment variables")
    assert "ACME_REGION: The region where releases are stored" in env
    assert 'region = "eu-west-1"' in _section(doc, "Configuring Acme Deploy", "Configuration file")


def test_rst_never_reads_other_files_and_survives_errors(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    path = tmp_path / "bad.rst"
    path.write_text(
        f"Title\n=====\n\n.. include:: {secret}\n\n.. no-such-directive::\n\n"
        "Unclosed *emphasis and `backquote\n\nSub\n--\n\ntext under a short underline\n",
        encoding="utf-8",
    )
    doc = _parsed(path)
    assert doc.title == "Title"
    everything = " ".join(s.text for s in doc.sections)
    assert "TOP-SECRET-CONTENT" not in everything
    assert "text under a short underline" in everything


def test_rst_sphinx_markup_keeps_its_text(tmp_path: Path) -> None:
    path = tmp_path / "api.rst"
    path.write_text(
        "API\n===\n\nCall :func:`acme.deploy.push` or :meth:`~acme.Client.rollback`; "
        "see :ref:`the guide <guide>` and :rfc:`7231`.\n\n"
        ".. versionadded:: 4.2\n\n   Canary deploys.\n\n"
        ".. function:: push(target, *, strategy='rolling')\n\n   Deploy the current build.\n\n"
        ".. code-block:: sh\n   :linenos:\n\n   acme-deploy push --target staging\n\n"
        ".. toctree::\n\n   install.rst\n\n"
        ".. acme-unknown:: some argument\n\n   Body of an unknown directive.\n",
        encoding="utf-8",
    )
    text = _section(_parsed(path), "API")
    assert "Call acme.deploy.push or rollback; see the guide and RFC 7231." in text
    assert "4.2\n\nCanary deploys." in text
    assert "push(target, *, strategy='rolling')\n\nDeploy the current build." in text
    assert "```\nacme-deploy push --target staging\n```" in text
    assert "install.rst" not in text  # toctree entries are navigation, not prose
    assert "some argument\n\nBody of an unknown directive." in text


def test_html_headings_and_dropped_chrome(corpus: Path) -> None:
    doc = _parsed(corpus / "troubleshooting.html")
    assert doc.title == "Troubleshooting Acme Deploy"  # <title>
    assert ["Troubleshooting", "Authentication problems", "Permission denied (publickey)"] in [
        s.heading_path for s in doc.sections
    ]
    e1042 = _section(doc, "Troubleshooting", "Error E1042: deploy lock held")
    assert "another deploy to the same target is still running" in e1042
    hang = _section(doc, "Troubleshooting", 'Deploy hangs at "Waiting for health check"')
    assert "\n- Check that /healthz returns HTTP 200" in hang
    everything = " ".join(s.text for s in doc.sections)
    for chrome in ("navigation-menu-text", "tracking-script-text", "footer-boilerplate-text", "font-family"):
        assert chrome not in everything


def test_html_without_title_uses_h1_and_tolerates_broken_markup(tmp_path: Path) -> None:
    path = tmp_path / "page.htm"
    path.write_text(
        "<h1>Runbook</h1><p>Step one <b>unclosed<p>Step two</div><h2>Later</h2><ul><li>a<li>b</ul>"
        "<pre>a\n  b</pre>",
        encoding="utf-8",
    )
    doc = _parsed(path)
    assert doc.title == "Runbook"
    assert _section(doc, "Runbook") == "Step one unclosed\n\nStep two"
    assert _section(doc, "Runbook", "Later") == "- a\n- b\n\n```\na\n  b\n```"


def test_plain_text_is_one_section_titled_by_file_name(corpus: Path) -> None:
    doc = _parsed(corpus / "faq.txt")
    assert doc.title == "faq"
    assert len(doc.sections) == 1 and doc.sections[0].heading_path == []
    assert "Apache License 2.0" in doc.sections[0].text


def test_pdf_pages_and_title(corpus: Path, tmp_path: Path) -> None:
    doc = _parsed(corpus / PDF_NAME)
    assert doc.title == "Acme Deploy 4.2 Release Notes"
    assert [s.heading_path for s in doc.sections] == [["Page 1"], ["Page 2"]]
    assert "Support for Ubuntu 20.04 was dropped" in doc.sections[1].text
    untitled = write_release_notes_pdf(tmp_path / "untitled.pdf", title=None)
    assert _parsed(untitled).title == "Acme Deploy 4.2 Release Notes"  # first line of page 1


def test_identity_hash_and_time(corpus: Path) -> None:
    path = corpus / "install.md"
    os.utime(path, (1_700_000_000, 1_700_000_000))
    doc = _parsed(path)
    assert doc.document_id == str(path.resolve()) == doc.source
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest() == hash_file(path)
    assert doc.modified_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)


def test_large_markdown_file(tmp_path: Path) -> None:
    assert LARGE.stat().st_size >= 100_000
    doc = _parsed(LARGE)
    assert doc.title == "Acme Deploy changelog"
    assert len(doc.sections) > 150
    assert doc.sections[1].heading_path == ["Acme Deploy changelog", "1.0.0"]


# --- bad input ------------------------------------------------------------------------------------


def test_broken_inputs_fail_with_reasons() -> None:
    assert _failure(BROKEN / "empty.md").reason == "empty file"
    assert "binary data" in _failure(BROKEN / "binary-data.txt").reason
    assert _failure(BROKEN / "corrupt.pdf").reason.startswith("malformed PDF")


def test_more_bad_input(tmp_path: Path) -> None:
    (tmp_path / "blank.md").write_text("  \n\n\t\n")
    (tmp_path / "fake.pdf").write_text("this is not a pdf")
    (tmp_path / "headings.md").write_text("# Only\n\n## Headings\n")
    (tmp_path / "truncated.pdf").write_bytes(write_release_notes_pdf(tmp_path / "ok.pdf").read_bytes()[:400])
    (tmp_path / "folder.md").mkdir()
    assert _failure(tmp_path / "blank.md").reason == "empty file"
    assert "not a PDF" in _failure(tmp_path / "fake.pdf").reason
    assert _failure(tmp_path / "headings.md").reason.startswith("no text found")
    assert _failure(tmp_path / "truncated.pdf").reason.startswith("malformed PDF")
    assert _failure(tmp_path / "folder.md").reason == "is a directory, not a file"
    assert _failure(tmp_path / "gone.md").reason == "file disappeared before it could be read"


def test_latin1_text_is_decoded_with_a_note() -> None:
    doc = _parsed(BROKEN / "legacy-notes.txt")
    text = doc.sections[0].text
    assert "Café et croissants après chaque mise en production" in text
    assert "François Lefèvre" in text
    assert doc.notes == ["not UTF-8; decoded as cp1252 (detected)"]


def test_utf8_bom_is_not_a_note(tmp_path: Path) -> None:
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeff# Überblick\n\nÄrger vermeiden.\n".encode())
    doc = _parsed(path)
    assert doc.title == "Überblick" and doc.notes == []


def _parse_as_nobody(path: Path) -> str:
    """Root reads every file, so check a real permission error in a forked child that dropped
    to an unprivileged user (the code is already imported; nothing else needs root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            result = parse_document(path)
            message = result.reason if isinstance(result, LoadFailure) else "parsed"
            try:
                hash_file(path)
            except PermissionError:
                message += "|hash: PermissionError"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    secret = tmp_path / "locked.md"
    secret.write_text("# Locked\n\ntext\n")
    secret.chmod(0)
    tmp_path.chmod(0o755)
    if os.geteuid() == 0:
        output = _parse_as_nobody(secret)
    else:
        output = _failure(secret).reason
        with pytest.raises(PermissionError):
            hash_file(secret)
        output += "|hash: PermissionError"
    assert output == "cannot read file: permission denied|hash: PermissionError"


async def test_bad_files_do_not_stop_the_others(corpus: Path) -> None:
    for name in ("empty.md", "binary-data.txt", "corrupt.pdf", "legacy-notes.txt"):
        shutil.copy(BROKEN / name, corpus / name)
    found = await discover([corpus])
    results = [parse_document(path) for path in found.files]
    failures = {Path(r.path).name for r in results if isinstance(r, LoadFailure)}
    parsed = {Path(r.source).name for r in results if isinstance(r, ParsedDocument)}
    assert failures == {"empty.md", "binary-data.txt", "corrupt.pdf"}
    assert parsed == {p.name for p in DOCS.iterdir()} | {PDF_NAME, "legacy-notes.txt"}
    assert hash_file(corpus / "faq.txt") == _parsed(corpus / "faq.txt").content_hash
    assert "disappeared" in _failure(corpus / "nope.txt").reason
