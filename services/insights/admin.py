"""`/admin`: the insights as server-rendered pages (Jinja2), behind a token or basic auth.

Off unless ADMIN_TOKEN or ADMIN_PASSWORD is set: then every /admin page answers 404 saying how to
turn it on. With a token, a browser signs in once through a form; the cookie it gets holds an
HMAC of the token, not the token, and stops working when the token changes. Scripts send
`Authorization: Bearer <token>`. Pages only read; the one form that writes is the sign-in.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.insights.charts import every_day, stacked_bars
from services.insights.config import InsightsConfig
from services.insights.records import Filters
from services.insights.service import InsightsService, InvalidPeriod

COOKIE = "docsbot_admin"
PERIODS = ("24h", "7d", "30d", "90d", "365d")
_FAILED_SIGN_IN_DELAY = 0.5  # seconds: slows guessing without a lockout to manage
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}
OFF_MESSAGE = "The admin page is off. Set ADMIN_TOKEN (or ADMIN_USERNAME and ADMIN_PASSWORD) to turn it on."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_templates = Environment(
    loader=PackageLoader("services.insights", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def session_value(token: str) -> str:
    """What the sign-in cookie holds: derived from the token, useless once the token changes."""
    return hmac.new(token.encode(), b"docsbot-admin-session", hashlib.sha256).hexdigest()


def is_authorized(request: web.Request, config: InsightsConfig) -> bool:
    """A bearer token, a signed-in cookie, or basic-auth credentials that match the settings."""
    header = request.headers.get("Authorization", "")
    if config.admin_token is not None:
        token = config.admin_token.get_secret_value()
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), session_value(token).encode()):
            return True
    if config.admin_password is not None and header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        expected = config.admin_password.get_secret_value()
        same_user = hmac.compare_digest(user.encode(), config.admin_username.encode())
        return hmac.compare_digest(password.encode(), expected.encode()) and same_user
    return False


def render(name: str, status: int = 200, **context: Any) -> web.Response:
    html = _templates.get_template(name).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", headers=_HEADERS)


def add_admin_routes(app: web.Application, insights: InsightsService) -> None:
    """Mount /admin on `app` (before it starts); answers 404 everywhere when auth is not configured."""
    config = insights.config
    if not config.admin_enabled:

        async def off(_: web.Request) -> web.Response:
            return web.Response(text=OFF_MESSAGE, status=404, headers=_HEADERS)

        app.router.add_route("*", "/admin", off)
        app.router.add_route("*", "/admin/{tail:.*}", off)
        return
    pages = _Pages(insights)
    guard = _guard(config)
    app.router.add_get("/admin", guard(pages.overview))
    app.router.add_get("/admin/gaps", guard(pages.gaps))
    app.router.add_get("/admin/gaps/{key}", guard(pages.gap))
    app.router.add_get("/admin/conversations/{thread_id}", guard(pages.conversation))
    app.router.add_get("/admin/feedback", guard(pages.feedback))
    app.router.add_get("/admin/sources", guard(pages.sources))
    app.router.add_get("/admin/login", pages.login_form)
    app.router.add_post("/admin/login", pages.login)
    app.router.add_post("/admin/logout", pages.logout)


def _guard(config: InsightsConfig) -> Callable[[Handler], Handler]:
    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if is_authorized(request, config):
                return await handler(request)
            return _refusal(request, config)

        return guarded

    return wrap


def _refusal(request: web.Request, config: InsightsConfig, error: str = "") -> web.Response:
    """401: the sign-in form when a token is set (a browser prompt for basic auth as well)."""
    response = render(
        "login.html",
        status=401,
        token_login=config.admin_token is not None,
        error=error,
        next_url=request.path_qs if request.method == "GET" else "/admin",
    )
    if config.admin_password is not None:
        response.headers["WWW-Authenticate"] = 'Basic realm="docs bot admin", charset="UTF-8"'
    return response


def _first_and_last_day(filters: Filters) -> tuple[date, date]:
    return filters.since.date(), (filters.until - timedelta(microseconds=1)).date()


def _local(url: str) -> str:
    """Where to go after signing in: an admin page of this site, never another site."""
    return url if url.startswith("/admin") and not url.startswith("//") else "/admin"


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={**_HEADERS, "Location": location})


class _Pages:
    """One handler per page; each reads the filters from the query string."""

    def __init__(self, insights: InsightsService) -> None:
        self.insights = insights
        self.config = insights.config

    def _filters(self, request: web.Request) -> tuple[Filters, dict[str, str]]:
        query = {name: request.query.get(name, "").strip() for name in ("since", "space", "channel")}
        query["since"] = query["since"] or "7d"
        try:
            filters = self.insights.filters(
                query["since"], space=query["space"] or None, channel=query["channel"] or None
            )
        except InvalidPeriod as exc:
            raise web.HTTPBadRequest(text=str(exc), headers=_HEADERS) from None
        return filters, query

    def _page(
        self, request: web.Request, name: str, section: str, status: int = 200, **context: Any
    ) -> web.Response:
        filters, query = self._filters(request)
        kept = {k: v for k, v in query.items() if v and not (k == "since" and v == "7d")}
        return render(
            name,
            status,
            section=section,
            filters=filters,
            query=query,
            qs=urlencode(kept),
            periods=PERIODS,
            show_user_ids=self.config.show_user_ids,
            **context,
        )

    async def overview(self, request: web.Request) -> web.Response:
        filters, _ = self._filters(request)
        report = await self.insights.report(filters)
        platforms = sorted(report.usage.by_platform)
        per_day: dict[str, list[int]] = {}
        for count in report.usage.by_day:
            day = per_day.setdefault(count.day.isoformat(), [0] * len(platforms))
            day[platforms.index(count.platform)] += count.questions
        chart = stacked_bars(every_day(*_first_and_last_day(filters), per_day, len(platforms)), platforms)
        return self._page(
            request, "overview.html", "overview", report=report, chart=chart, platforms=platforms
        )

    async def gaps(self, request: web.Request) -> web.Response:
        filters, _ = self._filters(request)
        clusters = await self.insights.coverage_gaps(filters)
        order = request.query.get("order", "count")
        if order == "newest":
            clusters.sort(key=lambda c: c.newest_at, reverse=True)
        return self._page(request, "gaps.html", "gaps", clusters=clusters, order=order)

    async def gap(self, request: web.Request) -> web.Response:
        filters, _ = self._filters(request)
        cluster = await self.insights.coverage_gap(filters, request.match_info["key"])
        if cluster is None:
            return self._page(request, "missing.html", "gaps", what="This coverage gap", status=404)
        return self._page(request, "gap.html", "gaps", cluster=cluster)

    async def conversation(self, request: web.Request) -> web.Response:
        conversation = await self.insights.conversation(request.match_info["thread_id"])
        if conversation is None:
            return self._page(request, "missing.html", "gaps", what="This conversation", status=404)
        turns = {turn.answer_id: turn for turn in conversation.turns if turn.answer_id}
        return self._page(request, "conversation.html", "gaps", conversation=conversation, turns=turns)

    async def feedback(self, request: web.Request) -> web.Response:
        filters, _ = self._filters(request)
        report = await self.insights.report(filters)
        votes = {d.key: [d.up, d.down] for d in report.feedback.by_day}
        chart = stacked_bars(every_day(*_first_and_last_day(filters), votes, 2), ["up", "down"])
        return self._page(request, "feedback.html", "feedback", feedback=report.feedback, chart=chart)

    async def sources(self, request: web.Request) -> web.Response:
        health = await self.insights.index_health()
        return self._page(request, "sources.html", "sources", index=health)

    async def login_form(self, request: web.Request) -> web.Response:
        """The sign-in form on its own (200), to bookmark; any other page shows it with a 401."""
        next_url = _local(request.query.get("next", "/admin"))
        return render(
            "login.html", token_login=self.config.admin_token is not None, error="", next_url=next_url
        )

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        next_url = _local(str(form.get("next", "/admin")))
        expected = self.config.admin_token
        if expected is None or not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
            await asyncio.sleep(_FAILED_SIGN_IN_DELAY)
            return _refusal(request, self.config, error="That token is not the admin token.")
        response = _see_other(next_url)
        response.set_cookie(
            COOKIE,
            session_value(expected.get_secret_value()),
            path="/admin",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            max_age=30 * 24 * 3600,
        )
        return response

    async def logout(self, request: web.Request) -> web.Response:
        response = _see_other("/admin")
        response.del_cookie(COOKIE, path="/admin")
        return response
