"""The `pallets` report set's builder and measurement helpers (bench/): pure functions, no benchmark."""

from __future__ import annotations

from pathlib import Path

from bench.build_pallets import _page
from bench.dataset import normalize
from bench.pallets import _coverage, _rates
from bench.pallets_questions import OFF_TOPIC, QUESTIONS

PAGE = """<html><head><title>Cookies — Flask</title></head><body>
<div class="related">Navigation that is not indexed.</div>
<div class="body" role="main">
<section id="cookies"><h2>Cookies<a class="headerlink" href="#cookies">¶</a></h2>
<p>To access cookies you can use the cookies attribute of the request.</p>
<ul><li><p>Set cookies with the set_cookie method of the response object.</p></li></ul>
<div class="highlight"><pre>response.set_cookie("name", "value") and this code is not prose at all</pre></div>
<section id="signed"><h3>Signed</h3>
<p>Signed cookies are described in the sessions section below.</p></section>
</section></div></body></html>
"""


def test_page_keeps_the_body_and_takes_each_sections_own_prose(tmp_path: Path) -> None:
    path = tmp_path / "quickstart.html"
    path.write_text(PAGE, encoding="utf-8")
    html, sections = _page(path)
    assert "<title>Cookies — Flask</title>" in html
    assert "Navigation" not in html and "¶" not in html
    assert sections["cookies"] == [
        normalize("To access cookies you can use the cookies attribute of the request."),
        normalize("Set cookies with the set_cookie method of the response object."),
    ]  # not the code block, not the nested section's sentence
    assert sections["signed"] == [normalize("Signed cookies are described in the sessions section below.")]


def test_questions_are_distinct_and_name_sections() -> None:
    texts = [text for entry in QUESTIONS for text in (entry.question, entry.chat)]
    assert len({" ".join(t.lower().split()) for t in texts}) == len(texts)
    for entry in QUESTIONS:
        assert entry.sections and all(
            "#" in s and s.split("/", 1)[0] in {"flask", "werkzeug", "jinja", "click"} for s in entry.sections
        )
    messages = [m for group in OFF_TOPIC.values() for m in group]
    assert len(set(messages)) == len(messages) and not set(messages) & set(texts)


def _row(group: str, probability: float, answered: bool, answerable: bool = True) -> dict[str, object]:
    return {"group": group, "probability": probability, "answered": answered, "answerable": answerable}


def test_coverage_counts_answered_covered_and_abstained_off_topic() -> None:
    rows = [
        _row("covered (faq)", 0.9, True),
        _row("covered (faq)", 0.1, False),
        _row("covered (chat)", 0.8, True, answerable=False),
        _row("small talk", 0.05, False, answerable=False),
        _row("small talk", 0.7, True, answerable=False),
    ]
    coverage = _coverage(rows, threshold=0.3)
    assert coverage["covered, answerable"]["mean"] == 0.5
    assert coverage["covered, all"]["count"] == 3
    assert coverage["off-topic, all"]["mean"] == 0.5
    assert coverage["disagreements"] == 0
    assert _rates(rows, 0.5) == {"answered": 0.5, "abstained": 0.5}
    assert _rates(rows, 0.95) == {"answered": 0.0, "abstained": 1.0}
