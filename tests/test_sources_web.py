"""Website sources against a real aiohttp site on 127.0.0.1: robots.txt, sitemaps, ETags and
Last-Modified, redirects, a 404, a crawler trap, a slow page, a PDF. The site counts every request
it answers, so the incremental claims (304s, no requests at all) are measured, not assumed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from docs_corpus import write_release_notes_pdf
from sources_support import Page, Site, html, serve_site

from data.weaviate_server import free_port
from services.sources.contract import Change, Failed, Fetched, Gone, KnownDocument, SourceDocument, Unchanged
from services.sources.naming import GitSpec, LocalSpec, SourceNameError, WebSpec, parse_source, redact_text
from services.sources.web_client import WebLimits
from services.sources.web_source import WebSource

FAST = WebLimits(
    delay_seconds=0, timeout_seconds=0.5, max_page_bytes=200_000, max_url_variants=5, concurrency_per_host=4
)

INSTALL = """<html><head><title>Install the widget</title></head><body>
<header><a href="/docs/">Widget docs</a> Site header menu</header>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience.
Accept all cookies or manage your cookie preferences.</div>
<nav><a href="/docs/guide">Navigation to the guide</a></nav>
<main><h1 id="install">Installing the widget</h1>
<p>The widget installs with pip on every platform that runs Python 3.11 or newer. It needs no
compiler and no network access after the download finishes.</p>
<h2 id="linux">Linux</h2><p>On Linux run the installer from a terminal. Make sure the package
index is reachable from the machine before you start the installation.</p>
<h2 id="windows">Windows</h2><p>On Windows use PowerShell and run the same command; antivirus
software may slow down the first start of the widget considerably.</p></main>
<footer>Copyright 2024 Example Corp. All rights reserved. Imprint.</footer></body></html>"""


CANONICAL_INSTALL = '<link rel="canonical" href="install">'


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async with serve_site() as site:
        yield site


def calendar(request: web.Request) -> Page:
    """An endless calendar: every month links to the next one."""
    month = int(request.query.get("month", "1"))
    return Page(html(f"Month {month}", "Events of the month.", [f"/docs/calendar?month={month + 1}"]))


def docs_site(site: Site, tmp_path: Path) -> None:
    pdf = write_release_notes_pdf(tmp_path / "manual.pdf").read_bytes()
    index_links = [
        "install", "guide?utm_source=nav", "old-install", "missing", "calendar?month=1", "slow",
        "manual.pdf", "private/secret", "diagram", "big", "loop-a", "print-install", "away",
        "logo.png", "/outside/page", "/files/handbook.pdf", "http://elsewhere.invalid/", "repeat/",
    ]  # fmt: skip
    site.pages.update(
        {
            "/robots.txt": Page(b"User-agent: *\nDisallow: /docs/private/\n", "text/plain"),
            "/docs/": Page(html("Widget docs", "Start here.", index_links)),
            "/docs/install": Page(INSTALL.encode()),
            "/docs/guide": Page(
                html("Guide", "The guide explains the widget.", ["install"]),
                etag=False,
                last_modified="Wed, 01 May 2024 10:00:00 GMT",
            ),
            "/docs/old-install": Page(b"", redirect="/docs/install"),
            "/docs/slow": Page(html("Slow", "Slow page."), delay=2.0),
            "/docs/manual.pdf": Page(pdf, "application/pdf"),
            "/files/handbook.pdf": Page(pdf, "application/pdf"),
            "/docs/private/secret": Page(html("Secret", "Never fetched.")),
            "/docs/diagram": Page(b"\x89PNG\r\n", "image/png"),
            "/docs/big": Page(b"<html><body>" + b"x" * 300_000 + b"</body></html>", chunked=True),
            "/docs/loop-a": Page(b"", redirect="/docs/loop-b"),
            "/docs/loop-b": Page(b"", redirect="/docs/loop-a"),
            "/docs/print-install": Page(
                html("Print", "Print view.", head='<link rel="canonical" href="install">')
            ),
            "/docs/away": Page(b"", redirect="http://elsewhere.invalid/x"),
            "/outside/page": Page(html("Outside", "Not in scope.")),
        }
    )
    site.dynamic["/docs/calendar"] = calendar
    site.dynamic["/docs/repeat/"] = lambda request: Page(html("Repeat", "Again.", ["again/"]))


async def run(
    source: WebSource, known: Mapping[str, KnownDocument]
) -> tuple[list[Change], dict[str, KnownDocument], bool]:
    """One scan applied as the pipeline would: parse what was fetched, keep memos, drop the gone."""
    scan = source.scan(known, {})
    changes = [change async for change in scan]
    after = dict(known)
    for change in changes:
        if isinstance(change, Fetched):
            assert isinstance(await asyncio.to_thread(change.parse), SourceDocument), change.document_id
            after[change.document_id] = KnownDocument(change.document_id, change.content_hash, change.memo)
        elif isinstance(change, Unchanged):
            after[change.document_id] = KnownDocument(
                change.document_id, after[change.document_id].content_hash, change.memo
            )
        elif isinstance(change, Gone):
            del after[change.document_id]
    return changes, after, scan.complete


def ids(site: Site, changes: list[Change], kind: type) -> set[str]:
    return {str(c.document_id).removeprefix(site.url) for c in changes if isinstance(c, kind)}


def failures(site: Site, changes: list[Change]) -> dict[str, Failed]:
    return {c.target.removeprefix(site.url): c for c in changes if isinstance(c, Failed)}


def web_source(url: str, limits: WebLimits = FAST) -> WebSource:
    spec = parse_source(url)
    assert isinstance(spec, WebSpec)
    return WebSource(spec, limits)


async def test_a_crawl_indexes_the_site_and_reports_every_bad_page(site: Site, tmp_path: Path) -> None:
    docs_site(site, tmp_path)
    changes, _, complete = await run(web_source(site.url + "/docs/"), {})

    assert ids(site, changes, Fetched) >= {
        "/docs/", "/docs/install", "/docs/guide", "/docs/manual.pdf", "/files/handbook.pdf",
    }  # fmt: skip
    failed = failures(site, changes)
    assert failed["/docs/missing"].reason == "not found (404)" and not failed["/docs/missing"].temporary
    assert "timed out" in failed["/docs/slow"].reason and failed["/docs/slow"].temporary
    assert "image/png" in failed["/docs/diagram"].reason
    assert "too large" in failed["/docs/big"].reason
    assert "redirect loop" in failed["/docs/loop-a"].reason
    assert "another site" in failed["/docs/away"].reason
    assert "query-string variants" in failed["/docs/calendar?month=6"].reason
    assert "repeats 'again'" in failed["/docs/repeat/again/again/again/"].reason
    assert not complete  # the slow page timed out: nothing may be deleted by omission
    # Never requested: disallowed by robots.txt, outside the prefix, an image, another host.
    for path in ("/docs/private/secret", "/outside/page", "/docs/logo.png"):
        assert site.hits[path] == 0, path
    assert site.hits["/robots.txt"] == 1
    assert site.hits["/docs/install"] == 1  # linked, redirected to and canonical of another: one page
    assert sum(1 for c in changes if isinstance(c, Fetched) and c.document_id.endswith("/docs/install")) == 1
    assert "/docs/guide?utm_source=nav" not in site.hits  # normalised to /docs/guide
    assert max(site.hits.values()) == 1, site.hits
    assert "/docs/print-install" not in ids(site, changes, Fetched)  # an alias of /docs/install

    install = next(c for c in changes if isinstance(c, Fetched) and c.document_id.endswith("/docs/install"))
    parsed = install.parse()
    assert isinstance(parsed, SourceDocument)
    text = " ".join(section.text for section in parsed.document.sections)
    assert "installs with pip" in text and "antivirus" in text
    for chrome in ("cookie", "Copyright", "Navigation to the guide", "Site header menu"):
        assert chrome not in text
    assert [s.heading_path for s in parsed.document.sections] == [
        ["Installing the widget"],
        ["Installing the widget", "Linux"],
        ["Installing the widget", "Windows"],
    ]
    assert parsed.citation("Installing the widget > Linux") == f"{site.url}/docs/install#linux"
    assert parsed.citation("Elsewhere") == f"{site.url}/docs/install"
    pdf = next(c for c in changes if isinstance(c, Fetched) and c.document_id.endswith("manual.pdf")).parse()
    assert isinstance(pdf, SourceDocument) and "Upgrade notes" in pdf.document.sections[-1].text


async def test_an_unchanged_site_costs_conditional_requests_only(site: Site, tmp_path: Path) -> None:
    docs_site(site, tmp_path)
    del site.pages["/docs/slow"]
    source = web_source(site.url + "/docs/")
    _, known, _ = await run(source, {})
    site.bodies.clear()

    changes, known, _ = await run(source, known)
    assert ids(site, changes, Fetched) == set()
    # Every document answered 304 (ETag, or Last-Modified for the guide). Read again: robots.txt,
    # the alias /docs/print-install (only its canonical page is remembered) and the bad pages.
    assert set(site.bodies) == {"/robots.txt", "/docs/print-install", "/docs/big", "/docs/diagram"}
    assert ids(site, changes, Unchanged) >= {"/docs/", "/docs/install", "/docs/guide", "/docs/manual.pdf"}

    # One page changes, one disappears: exactly those two are re-read or removed.
    site.pages["/docs/install"] = Page(INSTALL.replace("PowerShell", "cmd.exe").encode())
    del site.pages["/docs/guide"]
    changes, known, _ = await run(source, known)
    assert ids(site, changes, Fetched) == {"/docs/install"}
    assert ids(site, changes, Gone) == {"/docs/guide"}
    assert f"{site.url}/docs/guide" not in known


async def test_temporary_failures_keep_the_pages(site: Site, tmp_path: Path) -> None:
    docs_site(site, tmp_path)
    del site.pages["/docs/slow"]
    source = web_source(site.url + "/docs/")
    _, known, _ = await run(source, {})

    site.pages["/docs/guide"] = Page(b"", status=503)
    site.pages["/docs/install"].delay = 2.0
    site.pages["/docs/manual.pdf"].retry_after = ["3600"]
    changes, after, complete = await run(source, known)
    failed = failures(site, changes)
    assert failed["/docs/guide"].temporary and "503" in failed["/docs/guide"].reason
    assert failed["/docs/install"].temporary and "timed out" in failed["/docs/install"].reason
    assert failed["/docs/manual.pdf"].temporary and "retry after 3600 s" in failed["/docs/manual.pdf"].reason
    assert failed["/docs/guide"].document_id == f"{site.url}/docs/guide"
    assert not [c for c in changes if isinstance(c, Gone)] and not complete
    assert after == known


async def test_an_unreachable_host_is_one_temporary_failure() -> None:
    changes, _, complete = await run(web_source(f"http://127.0.0.1:{free_port()}/docs/"), {})
    assert len(changes) == 1 and isinstance(changes[0], Failed)
    assert changes[0].temporary and "cannot connect" in changes[0].reason
    assert not complete


async def test_a_sitemap_of_200_pages_is_rechecked_without_requests(site: Site) -> None:
    def sitemap() -> bytes:
        rows = "".join(
            f"<url><loc>{site.url}/p/{n}</loc><lastmod>{lastmods[n]}</lastmod></url>" for n in lastmods
        )
        return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{rows}</urlset>'.encode()

    lastmods = {n: "2024-05-01" for n in range(200)}
    site.pages["/robots.txt"] = Page(f"Sitemap: {site.url}/sitemap.xml\n".encode(), "text/plain")
    index = f"<sitemapindex><sitemap><loc>{site.url}/sitemap-pages.xml</loc></sitemap></sitemapindex>"
    site.pages["/sitemap.xml"] = Page(index.encode(), "application/xml")
    for n in range(200):
        site.pages[f"/p/{n}"] = Page(html(f"Page {n}", f"Content of page number {n}."))
    site.pages["/sitemap-pages.xml"] = Page(sitemap(), "application/xml")
    source = web_source(site.url + "/robots.txt")  # robots.txt's Sitemap: line -> index -> pages

    changes, known, complete = await run(source, {})
    assert len(ids(site, changes, Fetched)) == 200 and complete
    site.hits.clear()
    changes, known, complete = await run(source, known)
    assert len(ids(site, changes, Unchanged)) == 200 and not ids(site, changes, Fetched)
    assert set(site.hits) == {"/robots.txt", "/sitemap.xml", "/sitemap-pages.xml"}  # no page requested

    for n in (0, 1, 2):
        del lastmods[n]  # dropped from the sitemap
    lastmods[3] = lastmods[4] = "2024-06-01"
    site.pages["/p/3"] = Page(html("Page 3", "New content of page three."))  # page 4: same content
    site.pages["/sitemap-pages.xml"] = Page(sitemap(), "application/xml")
    site.hits.clear()
    changes, known, complete = await run(source, known)
    assert ids(site, changes, Gone) == {"/p/0", "/p/1", "/p/2"}
    assert ids(site, changes, Fetched) == {"/p/3"}
    assert {p for p in site.hits if p.startswith("/p/")} == {"/p/3", "/p/4"}
    assert site.bodies["/p/4"] == 1  # the first run only: the lastmod change cost a 304


async def test_a_crawl_of_200_unchanged_pages_reads_no_body(site: Site) -> None:
    site.pages["/robots.txt"] = Page(b"", "text/plain", status=404)
    site.pages["/site/"] = Page(html("Home", "Sections.", [f"s{s}/" for s in range(20)]))
    for s in range(20):
        site.pages[f"/site/s{s}/"] = Page(html(f"Section {s}", "Pages.", [f"p{p}" for p in range(9)]))
        for p in range(9):
            site.pages[f"/site/s{s}/p{p}"] = Page(html(f"Page {s}.{p}", f"Text {s} {p}.", ["../", "/site/"]))
    source = web_source(site.url + "/site/")
    changes, known, complete = await run(source, {})
    assert len(ids(site, changes, Fetched)) == 201 and complete
    site.bodies.clear()
    site.hits.clear()
    changes, known, complete = await run(source, known)
    assert len(ids(site, changes, Unchanged)) == 201 and not ids(site, changes, Fetched) and complete
    assert site.bodies == Counter() and len(site.hits) == 202  # robots.txt + 201 answers of 304

    site.pages["/site/s3/"] = Page(html("Section 3", "Pages.", ["p0"]))  # p1..p8 no longer linked
    changes, known, complete = await run(source, known)
    assert ids(site, changes, Gone) == {f"/site/s3/p{p}" for p in range(1, 9)}


async def test_requests_to_a_host_are_few_at_a_time_and_spaced(site: Site) -> None:
    site.pages["/robots.txt"] = Page(b"User-agent: *\nAllow: /\n", "text/plain")
    site.pages["/d/"] = Page(html("Home", "Pages.", [f"p{n}" for n in range(8)]))
    for n in range(8):
        site.pages[f"/d/p{n}"] = Page(html(f"P{n}", "Text."), delay=0.3)
    limits = WebLimits(delay_seconds=0.1, concurrency_per_host=2, timeout_seconds=5)
    await run(web_source(site.url + "/d/", limits), {})
    assert site.max_in_flight == 2  # two at a time, never more
    gaps = [b - a for a, b in zip(site.starts, site.starts[1:], strict=False)]
    assert len(gaps) == 9 and min(gaps) >= 0.08  # 0.1 s apart (less the event loop's jitter)


async def test_retry_after_is_honoured_within_a_run(site: Site) -> None:
    site.pages["/robots.txt"] = Page(b"", "text/plain", status=404)
    site.pages["/r/"] = Page(html("Busy", "Rate limited once."), retry_after=["1"])
    started = time.monotonic()
    changes, _, complete = await run(web_source(site.url + "/r/"), {})
    assert ids(site, changes, Fetched) == {"/r/"} and complete
    assert time.monotonic() - started >= 0.95
    assert site.hits["/r/"] == 2


async def test_a_robots_txt_that_fails_stops_the_scan_without_deleting(site: Site) -> None:
    site.pages["/robots.txt"] = Page(b"", status=500)
    known = {f"{site.url}/docs/a": KnownDocument(f"{site.url}/docs/a", "h")}
    changes, after, complete = await run(web_source(site.url + "/docs/"), known)
    assert len(changes) == 1 and isinstance(changes[0], Failed) and changes[0].temporary
    assert after == known and not complete


def test_source_names() -> None:
    assert parse_source("https://Docs.Example.com/guide/") == WebSpec(
        "https://docs.example.com/guide/", "crawl"
    )
    assert parse_source("https://example.com/docs").mode == "crawl"  # type: ignore[union-attr]
    assert parse_source("https://example.com/sitemap_index.xml").mode == "sitemap"  # type: ignore[union-attr]
    assert parse_source("https://example.com/robots.txt").mode == "robots"  # type: ignore[union-attr]
    assert parse_source("./handbook") == LocalSpec(Path("handbook"))
    spec = parse_source("git+https://tok:en@github.com/org/repo.git@v2#subdirectory=/docs/&token_env=GH")
    assert isinstance(spec, GitSpec)
    assert (spec.url, spec.ref, spec.subdirectory, spec.token_env) == (
        "https://github.com/org/repo.git", "v2", "docs", "GH",
    )  # fmt: skip
    assert spec.name == "git+https://github.com/org/repo.git@v2#subdirectory=docs"
    assert "en" not in repr(spec).split("token_env")[0].split("url=")[1].split(",")[0]
    ssh = parse_source("git+ssh://git@gitlab.com/org/repo.git")
    assert isinstance(ssh, GitSpec) and ssh.url == "ssh://git@gitlab.com/org/repo.git" and ssh.ref is None
    for bad in ("", "ftp://x/y", "git+svn://x/y", "git+https://h/r.git#subdir=docs", "https://u:p@h/"):
        with pytest.raises(SourceNameError):
            parse_source(bad)
    assert redact_text("fatal: https://user:tok123@h/r.git failed, tok123", ["tok123"]) == (
        "fatal: https://***@h/r.git failed, ***"
    )
