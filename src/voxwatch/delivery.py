"""Webhook delivery that loses nothing: the store is the queue.

Every alert is committed to the ``alerts`` table before anyone sees it. For each webhook a worker thread gives
each alert a row in ``deliveries`` (``pending``, or ``filtered`` when the webhook's speaker filter leaves it out),
then POSTs the pending ones strictly in alert commit order. A 2xx answer marks the row ``delivered`` at once; any
other answer or a network error keeps the row at the head of the queue and retries it with exponential backoff
(``first_backoff_s`` doubling up to ``max_backoff_s``); nothing behind it is sent first. All state is in SQLite,
so a restart (even after SIGKILL) resumes where the last committed row left off.

Receivers deduplicate by the ``Idempotency-Key`` header (the alert id): the one case where an alert is sent
twice is a crash between the receiver's 2xx and the commit of ``delivered`` — a window of one SQLite write.

The body is the alert as JSON (``{"event": "alert", "alert": {...}}``). With a secret, the header
``X-Voxwatch-Signature: sha256=<hex>`` carries HMAC-SHA256(secret, body) over the exact bytes sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UsageError, VoxwatchError
from .records import _JsonRecord
from .store import Store

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Voxwatch-Signature"


@dataclass(frozen=True)
class DeliveryOptions:
    """Retry policy and HTTP timeout of webhook delivery."""

    first_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0
    idle_poll_s: float = 5.0  # how often an idle worker looks for alerts it was not woken for

    def __post_init__(self) -> None:
        if not 0 < self.first_backoff_s <= self.max_backoff_s:
            raise UsageError(f"need 0 < first_backoff_s ({self.first_backoff_s}) <= max_backoff_s ({self.max_backoff_s})")
        if self.timeout_s <= 0 or self.idle_poll_s <= 0:
            raise UsageError("timeout_s and idle_poll_s must be positive")

    def backoff_s(self, attempts: int) -> float:
        """Wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return min(self.max_backoff_s, self.first_backoff_s * 2 ** max(0, min(attempts - 1, 30)))


@dataclass(frozen=True)
class Webhook(_JsonRecord):
    """A registered receiver. ``speakers`` None means every voice; the secret is never shown back."""

    id: int
    url: str
    speakers: tuple[str, ...] | None
    signed: bool
    created_at: str


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC-SHA256 under ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"webhook URL {url!r} must be http:// or https:// with a host")
    return url


def body_of(payload: str, event: str = "alert") -> bytes:
    """The exact bytes POSTed for an alert's (or its transcript's) stored JSON payload (the same on every retry)."""
    return json.dumps({"event": event, event: json.loads(payload)}, separators=(",", ":"), sort_keys=True).encode("utf-8")


def idempotency_key(alert_id: str, event: str) -> str:
    """An alert's key is its id; its transcript's is the id and ``:transcript``."""
    return alert_id if event == "alert" else f"{alert_id}:{event}"


Vet = Callable[[str], None]  # raises VoxwatchError for a URL that must not be reached now


class _Worker:
    """Delivers one webhook's queue in order."""

    def __init__(self, store: Store, webhook_id: int, url: str, secret: str | None, options: DeliveryOptions, vet: Vet):
        self.store, self.webhook_id, self.url, self.secret, self.options = store, webhook_id, url, secret, options
        self.vet = vet
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"webhook:{webhook_id}", daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.options.timeout_s, follow_redirects=False) as client:
            while not self.stopped.is_set():
                try:
                    wait = self._step(client)
                except Exception:  # the store or the network misbehaved: log, back off, carry on
                    log.exception("webhook %d: delivery step failed", self.webhook_id)
                    wait = self.options.first_backoff_s
                if wait > 0:
                    self.wake.wait(wait)
                    self.wake.clear()

    def _step(self, client) -> float:  # type: ignore[no-untyped-def]
        """Send what is due; return how long to wait before looking again (0: look again at once)."""
        self.store.queue_deliveries(self.webhook_id)
        head = self.store.next_delivery(self.webhook_id)
        if head is None:
            return self.options.idle_poll_s
        alert_id, event, payload, attempts, next_attempt_at = head
        due_in = next_attempt_at - time.time()
        if due_in > 0:
            # A new alert must not jump the queue: only the stop event may cut a backoff short.
            self.stopped.wait(due_in)
            return 0
        body = body_of(payload, event)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(alert_id, event),
            "User-Agent": "voxwatch-webhook/1",
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        try:
            self.vet(self.url)  # again at each attempt: the host's name may resolve elsewhere by now
            response = client.post(self.url, content=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except VoxwatchError as exc:
            error = f"refused: {exc}"
        except Exception as exc:  # noqa: BLE001 -- httpx.HTTPError and anything the transport raises: recorded as a failed attempt
            error = f"{type(exc).__name__}: {exc}"
        if self.stopped.is_set() and error is not None:
            return 0
        if error is None:
            self.store.delivery_done(self.webhook_id, alert_id, event)
            return 0
        backoff = self.options.backoff_s(attempts + 1)
        log.warning("webhook %d: %s %s not delivered (%s); retrying in %.1f s", self.webhook_id, event, alert_id, error, backoff)
        self.store.delivery_failed(self.webhook_id, alert_id, error, time.time() + backoff, event)
        return 0


class Deliverer:
    """Runs one :class:`_Worker` per webhook; :meth:`wake` after committing alerts to send them without delay.
    ``vet`` checks a webhook's URL before each attempt (a refusal counts as a failed attempt)."""

    def __init__(self, store: Store, options: DeliveryOptions | None = None, vet: Vet = lambda url: None):
        self.store = store
        self.options = options or DeliveryOptions()
        self.vet = vet
        self._workers: dict[int, _Worker] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Resume every registered webhook's queue."""
        with self._lock:
            self._started = True
        for webhook_id, url, secret, _, _ in self.store.webhooks():
            self._spawn(webhook_id, url, secret)

    def _spawn(self, webhook_id: int, url: str, secret: str | None) -> None:
        with self._lock:
            if not self._started or webhook_id in self._workers:
                return
            worker = self._workers[webhook_id] = _Worker(self.store, webhook_id, url, secret, self.options, self.vet)
        worker.thread.start()

    def add(self, url: str, secret: str | None, speakers: list[str] | None, actor: str) -> Webhook:
        """Register a webhook for the alerts committed from now on, and start delivering to it."""
        check_url(url)
        if secret is not None and not 1 <= len(secret) <= 200:
            raise UsageError("webhook secret must be 1 to 200 characters")
        webhook_id = self.store.add_webhook(url, secret or None, speakers, actor)
        self._spawn(webhook_id, url, secret or None)
        return next(w for w in self.webhooks() if w.id == webhook_id)

    def remove(self, webhook_id: int, actor: str) -> None:
        self.store.remove_webhook(webhook_id, actor)
        with self._lock:
            worker = self._workers.pop(webhook_id, None)
        if worker is not None:
            worker.stopped.set()
            worker.wake.set()

    def webhooks(self) -> list[Webhook]:
        return [
            Webhook(i, url, None if sp is None else tuple(sp), bool(secret), t) for i, url, secret, sp, t in self.store.webhooks()
        ]

    def status(self, webhook_id: int) -> dict[str, object]:
        """Delivery counts by status (pending, delivered, filtered, skipped) and the pending head's last error."""
        return self.store.delivery_counts(webhook_id)

    def wake(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.wake.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
            self._started = False
        for worker in workers:
            worker.stopped.set()
            worker.wake.set()
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
