"""Where the weekly digest goes: a `post(text)` for the channel INSIGHTS_DIGEST_CHANNEL names.

Each poster opens its own client for the one message a week, so the digest needs neither the
Socket Mode connection nor the Discord gateway to be up: only the bot token (SLACK_BOT_TOKEN,
DISCORD_TOKEN), checked when `serve` starts rather than a week later.
"""

from __future__ import annotations

import discord
from slack_sdk.web.async_client import AsyncWebClient

from configs.config import ConfigError, Settings
from services.insights.digest import Post, parse_digest_channel


def digest_poster(settings: Settings) -> Post:
    """The poster for INSIGHTS_DIGEST_CHANNEL; `ConfigError` when it or its platform's token is wrong."""
    if settings.insights_digest_channel is None:
        raise ConfigError("INSIGHTS_DIGEST_CHANNEL is not set: there is nowhere to post the digest")
    try:
        platform, channel = parse_digest_channel(settings.insights_digest_channel)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if platform == "slack":
        if settings.slack_bot_token is None:
            raise ConfigError(
                f"INSIGHTS_DIGEST_CHANNEL={settings.insights_digest_channel} needs SLACK_BOT_TOKEN"
            )
        return _slack_poster(settings.slack_bot_token.get_secret_value(), settings.slack_api_url, channel)
    if settings.discord_token is None:
        raise ConfigError(f"INSIGHTS_DIGEST_CHANNEL={settings.insights_digest_channel} needs DISCORD_TOKEN")
    return _discord_poster(settings.discord_token.get_secret_value(), int(channel))


def _slack_poster(token: str, api_url: str, channel: str) -> Post:
    client = AsyncWebClient(token=token, base_url=api_url)  # a session per call: nothing to close

    async def post(text: str) -> None:
        await client.chat_postMessage(channel=channel, text=slack_escaped(text), unfurl_links=False)

    return post


def slack_escaped(text: str) -> str:
    """Questions quoted in the digest may hold `<!channel>` or `<@U123>`: shown, not pinging anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _discord_poster(token: str, channel_id: int) -> Post:
    async def post(text: str) -> None:
        client = discord.Client(intents=discord.Intents.none())
        try:
            await client.login(token)
            channel = client.get_partial_messageable(channel_id)
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        finally:
            await client.close()

    return post
