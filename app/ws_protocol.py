"""uvicorn's sans-I/O websocket protocol, keeping less per open connection (issue 21, K2 at scale).

At 5,000 sockets per process every byte kept per connection counts 5,000 times. uvicorn's
``WebSocketsSansIOProtocol`` (its ``auto`` choice) keeps, for the life of the connection:

* the parsed handshake request and the prepared response (``self.request``/``self.response``: two
  ``websockets`` ``Request``/``Response`` objects with their ``Headers`` — a dict of lists and a list of
  pairs each, ~3–4 kB), used only until the handshake has been answered;
* an ``asyncio.Queue`` for the ASGI receive side (three deques of ~620 bytes each, the first block
  allocated even when empty) and an ``asyncio.Event`` for write flow control (one more deque).

:class:`LeanWebSocketProtocol` is the same protocol with the handshake objects dropped once the
``101 Switching Protocols`` is written, and with a list-based queue and event of the same behaviour for
the two uvicorn uses. Nothing else changes: the frames on the wire, the close handshake, flow control,
keep-alive pings and every ASGI message are uvicorn's. ``app/workers.py`` ``WEBSOCKET_OPTIONS`` selects it
for every Kabinet server (measurements: bench/README.md, "Subscriptions at scale", session 6).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class _Waiters:
    """Futures of coroutines waiting for something, allocated only when one waits (no deque)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] | None = None

    def _wake(self) -> None:
        """Wake every waiter (each re-checks what it waits for)."""
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def _wait(self) -> None:
        """Wait for the next :meth:`_wake` (a cancelled wait leaves no future behind)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)


class LeanQueue(_Waiters):
    """The part of :class:`asyncio.Queue` uvicorn's protocol uses (``put_nowait``, ``get``, ``empty``),
    unbounded, in a list and a future while a consumer waits (no deques allocated per connection)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[Any] = []

    def put_nowait(self, item: Any) -> None:
        """Append ``item`` and wake whoever waits in :meth:`get` (each re-checks, as with a Queue)."""
        self._items.append(item)
        self._wake()

    async def get(self) -> Any:
        """The oldest item, waiting for one if there is none. A cancelled wait takes nothing."""
        while not self._items:
            await self._wait()
        return self._items.pop(0)

    def empty(self) -> bool:
        """Whether no item is waiting."""
        return not self._items

    def qsize(self) -> int:
        """How many items are waiting."""
        return len(self._items)


class LeanEvent(_Waiters):
    """:class:`asyncio.Event` (``set``, ``clear``, ``is_set``, ``wait``) without a deque per instance."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        super().__init__()
        self._value = False

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._value

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if not self._value:
            self._value = True
            self._wake()

    def clear(self) -> None:
        """Reset the flag: :meth:`wait` blocks until the next :meth:`set`."""
        self._value = False

    async def wait(self) -> bool:
        """Return at once when the flag is set, else when it next is."""
        if not self._value:
            await self._wait()
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol keeping less per connection (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = LeanQueue()  # type: ignore[assignment]
        writable = LeanEvent()
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        """Called by uvicorn right after it has written the ``101`` response: the handshake's request and
        response are not used again (``send`` only reads ``self.response`` before the handshake ends)."""
        super().start_keepalive()
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]
