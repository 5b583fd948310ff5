"""The private chatkit methods the project calls exist in the installed openai-chatkit, as used."""

from __future__ import annotations

from typing import Any

import pytest
from chatkit.server import ChatKitServer

from services.chat.chatkit_shim import PRIVATE_API, ChatKitPrivateApiChanged, require_private_api


def test_installed_chatkit_has_every_private_method_the_shim_calls() -> None:
    require_private_api(ChatKitServer)  # raises, naming the method, after an incompatible upgrade
    assert set(PRIVATE_API) == {"_process_streaming", "_process_non_streaming", "_process_streaming_impl"}


def test_a_renamed_method_fails_loudly_with_its_name() -> None:
    class Renamed:
        async def _process_streaming(self, request: Any, context: Any) -> None: ...

        async def _process_non_streaming(self, request: Any, context: Any) -> None: ...

    with pytest.raises(ChatKitPrivateApiChanged, match="_process_streaming_impl"):
        require_private_api(Renamed)  # type: ignore[arg-type]


def test_a_changed_signature_fails_loudly() -> None:
    class Reshaped:
        async def _process_streaming(self, request: Any, context: Any) -> None: ...

        async def _process_non_streaming(self, req: Any, ctx: Any, extra: Any) -> None: ...

        async def _process_streaming_impl(self, request: Any, context: Any) -> None: ...

    with pytest.raises(ChatKitPrivateApiChanged, match="_process_non_streaming takes"):
        require_private_api(Reshaped)  # type: ignore[arg-type]
