"""Spaces: how a place's policy is resolved from the sources file and the chat, and that a search
in a space is filtered in Weaviate itself (another space's text is never found, not even by the
"not covered" judgement)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_chat_store import dsn, postgres_dsn, server_dsn  # noqa: F401  (fixtures)

from configs.config import Settings
from data.database import Database
from data.embeddings import Embedder
from data.vector_store import WeaviateVectorStore
from services.indexer import Indexer
from services.insights.config import InsightsConfig
from services.insights.report_format import render_report
from services.insights.service import InsightsService
from services.rag import Retriever
from services.sources.sources_file import SourcesFile, SourcesFileError
from services.spaces.directory import SpaceError, Spaces
from services.spaces.policy import Place, resolve
from services.spaces.questions import looks_like_question

COMPANY = """
[sources.payments-docs]
location = "payments"
[sources.handbook]
location = "handbook"
[sources.public-site]
location = "public"

[spaces.payments]
sources = ["payments-docs", "handbook"]
experts = ["U0EXPERT", "S0PAYTEAM"]
allowed_groups = ["S0PAYTEAM"]
rate_limit_per_minute = 5

[spaces.public]
sources = ["public-site"]
rate_limit_per_minute = 3

[spaces.default]
sources = ["handbook"]

[places]
"slack:C0PAY" = { spaces = ["payments"], mode = "auto" }
"slack-team:T1" = { spaces = ["default"], mode = "thread-only" }
"discord-guild:42" = { spaces = ["public"] }
"discord:77" = { spaces = ["public", "payments"], rate_limit_per_minute = 10 }
"dm" = { spaces = ["default", "public"] }
"""


def company(tmp_path: Path) -> Path:
    for folder, text in {
        "payments": "# Refunds\n\nRefunds above 500 euros need the approval of the payments lead.\n",
        "handbook": "# Holidays\n\nEvery employee has 30 days of paid holiday a year.\n",
        "public": "# Widget\n\nThe public widget API answers on port 8443 with JSON.\n",
    }.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}.md").write_text(text)
    path = tmp_path / "sources.toml"
    path.write_text(COMPANY)
    return path


def test_a_channel_mapping_wins_over_its_workspace_and_says_so(tmp_path: Path) -> None:
    file = SourcesFile.read(company(tmp_path))
    pay = resolve(file, Place("slack", "T1", "C0PAY"), None)
    assert pay.spaces == ("payments",) and pay.sources == ("payments-docs", "handbook")
    assert pay.mode == "auto" and pay.origins["mode"] == "sources file, places.slack:C0PAY"
    assert pay.experts == ("U0EXPERT", "S0PAYTEAM") and pay.rate_limit_per_minute == 5
    assert not pay.may_ask("U9") and pay.may_ask("U9", groups=["S0PAYTEAM"])

    other = resolve(file, Place("slack", "T1", "C0RANDOM"), None)
    assert other.spaces == ("default",) and other.sources == ("handbook",)  # [spaces.default]
    assert other.mode == "thread-only" and other.origins["spaces"] == "sources file, places.slack-team:T1"
    assert other.may_ask("anyone")

    elsewhere = resolve(file, Place("slack", "T2", "C1"), None)
    assert elsewhere.spaces == ("default",) and elsewhere.mode == "mention"
    assert elsewhere.origins["spaces"].startswith("default")


def test_spaces_combine_strictly_and_dms_use_their_own_entry(tmp_path: Path) -> None:
    file = SourcesFile.read(company(tmp_path))
    both = resolve(file, Place("discord", "42", "77"), None)
    assert both.sources == ("public-site", "payments-docs", "handbook")
    assert both.rate_limit_per_minute == 10  # the place's own setting wins over the spaces'
    assert not both.may_ask("u1", roles=["r1"])  # payments allows only its group: nobody else here
    guild = resolve(file, Place("discord", "42", "78"), None)
    assert guild.spaces == ("public",) and guild.rate_limit_per_minute == 3
    dm = resolve(file, Place("slack", "T1", "D1", is_dm=True), None)
    assert dm.spaces == ("default", "public") and dm.sources == ("handbook", "public-site")


def test_without_a_sources_file_everything_is_the_default_space() -> None:
    policy = resolve(None, Place("slack", "T1", "C1"), None)
    assert policy.spaces == ("default",) and policy.sources is None and policy.may_ask(None)
    assert policy.describe()[0].startswith("Spaces: default (default: no mapping for this place)")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            'sources = ["payments-docs", "handbook"]',
            'sources = ["nope"]',
        ),
        ('"slack:C0PAY" = { spaces = ["payments"]', '"slack:C0PAY" = { spaces = ["nowhere"]'),
        ('"dm" =', '"telegram:1" ='),
    ],
)
def test_a_sources_file_naming_what_does_not_exist_is_refused(
    tmp_path: Path, change: str, words: str
) -> None:
    path = company(tmp_path)
    path.write_text(COMPANY.replace(change, words))
    with pytest.raises(SourcesFileError) as caught:
        SourcesFile.read(path)
    assert str(path) in str(caught.value)


async def test_chat_settings_are_shared_through_the_database_and_rate_limits_count(
    make_plain_settings: Callable[..., Settings],
    embedder: Embedder,
    tmp_path: Path,
    dsn: str,  # noqa: F811  (SQLite and PostgreSQL)
) -> None:
    settings = make_plain_settings(sources_file=company(tmp_path), data_dir=tmp_path / "data")
    database = Database(dsn)
    await database.create()
    try:
        one, two = Spaces(settings, database.spaces), Spaces(settings, database.spaces)  # two replicas
        place = Place("slack", "T1", "C0RANDOM")
        assert (await one.policy(place)).spaces == ("default",)
        changed = await one.use(place, ["public"], by="U0ADMIN")
        assert changed.spaces == ("public",) and changed.origins["spaces"].startswith(
            "set in the chat by U0ADMIN"
        )
        seen = await two.policy(place)
        assert seen.spaces == ("public",) and seen.sources == ("public-site",)
        await two.set_mode(place, "auto", by="U0ADMIN")
        assert (await one.policy(place)).mode == "auto"
        with pytest.raises(SpaceError, match="No space called nowhere"):
            await one.use(place, ["nowhere"], by="U0ADMIN")
        assert (await one.reset(place)).spaces == ("default",)

        public = await one.policy(Place("discord", "42", "78"))
        answers = [await one.allow_question(public, "u1") for _ in range(4)]
        assert answers[:3] == [None, None, None] and "3 questions in the last minute" in str(answers[3])
        assert await two.allow_question(public, "u2") is None  # per user

        await one.ask_human(
            public, "discord:42:78:t1", "Is there a SLA?", "The documents don't cover it.", "u1"
        )
        assert await two.record_reply("discord:42:78:t1", "expert1", "Yes: 99.9% monthly.")
        [pair] = await database.spaces.human_answers()
        assert (pair.question, pair.reply, pair.expert, pair.space) == (
            "Is there a SLA?",
            "Yes: 99.9% monthly.",
            "expert1",
            "public",
        )
        assert not await one.record_reply("discord:42:78:t1", "expert1", "again")  # nothing open

        insights = InsightsService(database, embedder, InsightsConfig())
        text = await render_report(insights, since="1d")
        assert "[public] “Is there a SLA?” → expert1: “Yes: 99.9% monthly.”" in text
        rows = (await render_report(insights, since="1d", output="csv")).splitlines()
        assert "feedback,human_answer:1,reply,Yes: 99.9% monthly." in rows
    finally:
        await database.dispose()


async def test_a_space_never_finds_another_spaces_text(
    make_settings: Callable[..., Settings], embedder: Embedder, tmp_path: Path
) -> None:
    settings = make_settings(sources_file=company(tmp_path), data_dir=tmp_path / "data")
    store = WeaviateVectorStore(settings)
    await store.connect()
    try:
        assert (await Indexer(settings, store, embedder).index()).added == 3
        retriever = Retriever(settings, store, embedder)
        question = "Who approves refunds above 500 euros?"
        everywhere = await retriever.search(question)
        assert everywhere and "payments lead" in everywhere[0].text
        public = await retriever.search(question, sources=("public-site",))
        assert public == []  # "not covered" in the public space: the refund text is not even a candidate
        hits = await store.search(
            question, await embedder.embed_query(question), model_id=embedder.model_id, limit=10,
            alpha=0.5, fusion="ranked", sources=("public-site",),
        )  # fmt: skip
        assert hits and {hit.document_id.rsplit("/", 1)[-1] for hit in hits} == {"public.md"}
        assert await retriever.search(question, sources=("payments-docs",))
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("How do I rotate the API key", True),
        ("<@U0BOT> is the staging cluster down?", True),
        ("Anyone know where the runbook is", True),
        ("deploy done, thanks!", False),
        ("<@U0BOT>", False),
        ("**Can we** ship it?**", True),
    ],
)
def test_auto_mode_answers_questions_only(text: str, question: bool) -> None:
    assert looks_like_question(text) is question
