"""The `sources` bench's site counts what a crawler cost it, and its report replaces only its section."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bench import report_sources
from bench.doc_site import DocSite, html_pages


def _manual(root: Path) -> Path:
    (root / "_static").mkdir(parents=True)
    (root / "guide").mkdir()
    (root / "index.html").write_text("<html><body><a href='guide/a.html'>a</a></body></html>")
    (root / "guide" / "a.html").write_text("<html><body>" + "x" * 5000 + "</body></html>")
    (root / "_static" / "skip.html").write_text("<html></html>")
    return root


def test_html_pages_leave_out_sphinx_asset_folders(tmp_path: Path) -> None:
    assert html_pages(_manual(tmp_path / "m")) == ["guide/a.html", "index.html"]


async def test_site_counts_bodies_and_304s_but_not_its_control_requests(tmp_path: Path) -> None:
    folder = _manual(tmp_path / "m")
    page_size = (folder / "guide" / "a.html").stat().st_size
    async with DocSite({"m": folder}) as site, aiohttp.ClientSession() as client:
        async with client.get(site.folder_url("m") + "guide/a.html") as first:
            assert first.status == 200
            etag = first.headers["ETag"]
            await first.read()
        async with client.get(
            site.folder_url("m") + "guide/a.html", headers={"If-None-Match": etag}
        ) as again:
            assert again.status == 304
        async with client.get(site.folder_url("m") + "missing.html") as missing:
            assert missing.status == 404
        async with client.get(site.control_url + "counts") as counts:
            seen = await counts.json()
        assert seen == {
            "requests": 3,
            "conditional": 1,
            "bodies": 1,
            "body_bytes": page_size,
            "statuses": {"200": 1, "304": 1, "404": 1},
        }
        async with client.post(site.control_url + "reset") as reset:
            assert (await reset.json())["requests"] == 3
        assert site.counts.requests == 0


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        f"# Benchmarks\n\n## Before\n\nkept\n\n{report_sources.HEADING}\n\nold numbers\n\n"
        "## How the query sets are built\n\nkept too\n"
    )
    report_sources.write_section(doc)
    text = doc.read_text()
    assert "old numbers" not in text
    assert text.count(report_sources.HEADING) == 1
    assert "kept\n" in text and "kept too" in text
    assert text.index(report_sources.HEADING) < text.index("## How the query sets are built")
