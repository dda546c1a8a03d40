"""The live feed: fans events out from any thread to every connected Server-Sent Events client."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

Subscription = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[str | None]"]


def event_text(kind: str, data: Any) -> str:
    """One Server-Sent Event: its kind and its data as compact JSON."""
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Feed:
    """Each subscriber (an SSE client on its asyncio loop) gets every event published after it subscribed, as text;
    ``None`` tells it the feed has closed (or that it fell ``backlog`` events behind and should reconnect)."""

    def __init__(self, backlog: int = 1000):
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._backlog = backlog

    def subscribe(self) -> Subscription:
        """Called on the subscriber's event loop; read the returned queue, then :meth:`unsubscribe`."""
        entry: Subscription = (asyncio.get_running_loop(), asyncio.Queue(self._backlog))
        with self._lock:
            self._subscribers.add(entry)
        return entry

    def unsubscribe(self, entry: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(entry)

    def publish(self, kind: str, data: Any) -> None:
        self._send(event_text(kind, data))

    def close(self) -> None:
        self._send(None)

    def _send(self, text: str | None) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(self._offer, queue, text)
            except RuntimeError:  # that client's loop has closed
                pass

    @staticmethod
    def _offer(queue: asyncio.Queue[str | None], text: str | None) -> None:
        try:
            queue.put_nowait(text)
        except asyncio.QueueFull:  # a client this far behind reconnects and reloads
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(None)
