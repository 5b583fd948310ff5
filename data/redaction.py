"""URLs with their credentials removed, for messages and logs.

WEAVIATE_URL and DATABASE_URL may carry `user:password@`: every message that names the server
(an error shown to a user, a log line) goes through `redact_url`, so a pasted error never leaks it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "***"


def redact_url(url: str) -> str:
    """`url` with any `user:password@` replaced by `***@`; everything else kept as written.

    Also for URLs without a scheme (`user:pw@host:8080`), and for a password with an unescaped
    `/`, `?` or `#`, which ends the URL's authority early (`user:pa/ss@host`): everything up to
    the last `@` goes then, unless what follows `host:` is a port number (`host:8080/a@b`).
    """
    has_scheme = "://" in url
    scheme, _, rest = url.partition("://") if has_scheme else ("", "", url)
    parts = urlsplit(f"//{rest}")
    if "@" in parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        rest = urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}")).removeprefix("//")
    elif _userinfo_cut_short(rest):
        rest = f"{REDACTED}@{rest.rpartition('@')[2]}"
    return f"{scheme}://{rest}" if has_scheme else rest


def _userinfo_cut_short(rest: str) -> bool:
    """`user:pa/ss@host`: a `user:` whose "port" is no number, ahead of an `@` further on."""
    before_at = rest.rpartition("@")[0]
    authority = re.split(r"[/?#]", before_at, maxsplit=1)[0]
    user, colon, after = authority.partition(":")
    return bool(before_at and user and colon) and not after.isdigit()
