"""The live feed: fans events out from any thread to every connected Server-Sent Events client.

Each published event has an id (``<run>-<n>``: this process's run and a counter), and the last ``backlog`` events
are kept, so a client that reconnects with ``Last-Event-ID`` gets the events it missed, in order. When that is not
possible (the id is from another run, unknown, or too old), the client gets a ``resync`` event first: it should
reload what it shows."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections import deque
from typing import Any

Subscription = tuple[asyncio.AbstractEventLoop, "asyncio.Queue[str | None]"]


def event_text(kind: str, data: Any, event_id: str | None = None) -> str:
    """One Server-Sent Event: its id (when it has one), its kind and its data as compact JSON."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class Feed:
    """Each subscriber (an SSE client on its asyncio loop) gets every event published after it subscribed, as text;
    ``None`` tells it the feed has closed (or that it fell ``backlog`` events behind and should reconnect)."""

    def __init__(self, backlog: int = 1000):
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._backlog = backlog
        self._run = secrets.token_hex(4)
        self._count = 0
        self._history: deque[tuple[int, str]] = deque(maxlen=backlog)

    def subscribe(self, last_event_id: str | None = None) -> tuple[Subscription, list[str]]:
        """Called on the subscriber's event loop: the subscription (read its queue, then :meth:`unsubscribe`) and the
        events to send first: those after ``last_event_id``, or a ``resync`` event when they cannot be replayed."""
        entry: Subscription = (asyncio.get_running_loop(), asyncio.Queue(self._backlog))
        with self._lock:
            self._subscribers.add(entry)
            return entry, self._missed(last_event_id)

    def _missed(self, last_event_id: str | None) -> list[str]:
        if not last_event_id:
            return []
        run, _, number = last_event_id.strip().partition("-")
        seen = int(number) if run == self._run and number.isdigit() else -1
        oldest = self._history[0][0] if self._history else self._count + 1
        if not oldest - 1 <= seen <= self._count:
            return [event_text("resync", {"last_event_id": last_event_id, "reason": "missed events cannot be replayed"})]
        return [text for n, text in self._history if n > seen]

    def unsubscribe(self, entry: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(entry)

    def publish(self, kind: str, data: Any) -> None:
        with self._lock:
            self._count += 1
            text = event_text(kind, data, f"{self._run}-{self._count}")
            self._history.append((self._count, text))
            self._send(text)

    def close(self) -> None:
        with self._lock:
            self._send(None)

    def _send(self, text: str | None) -> None:
        """Under the lock, so every subscriber gets events in id order."""
        for loop, queue in self._subscribers:
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
