"""The one base class for errors whose message is written for the person running the bot.

Everything raised as a `UserFacingError` carries a message that says what went wrong and what to
do; the CLI prints it as one line and the chat adapters show it to the user. Anything else is a
bug and keeps its traceback in the log. It lives at the bottom of the layers (configs) so that
data/, services/ and simple_agents/ can all raise it.
"""

from __future__ import annotations


class UserFacingError(Exception):
    """An error whose `str()` is meant for the user: what went wrong, and what to do about it."""
