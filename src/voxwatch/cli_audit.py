"""The audit command: who enrolled, searched, watched, verified or forgot what, and when."""

from __future__ import annotations

import click

from .cli_context import Context, guard
from .service import utc_iso


@click.command()
@click.option("--actor", default=None, help="Only entries by this user or token.")
@click.option("--action", default=None, help="Only this action (enroll, forget, search, watch, verify, ...).")
@click.option("--speaker", "target", default=None, help="Only entries naming this voice (or other target).")
@click.option("--since", default=None, help="Only entries at or after this ISO date or time (UTC).")
@click.option("--last", "limit", type=click.IntRange(min=1), default=None, help="Only the newest N entries.")
@click.pass_obj
@guard
def audit(obj: Context, actor: str | None, action: str | None, target: str | None, since: str | None, limit: int | None) -> None:
    """Read the audit log, oldest first. Reading it is itself logged.

    \b
    Examples:
      voxwatch audit --speaker "Jane Doe"
      voxwatch audit --action search --since 2026-11-01 --json
    """
    engine = obj.engine()
    entries = engine.store.audit_log(actor, action, target, utc_iso(since, "--since", timespec="seconds"), limit)
    for e in entries:
        obj.emit(e, "\t".join((e["at"], e["actor"], e["action"], e["target"], e["detail"])))
    if not entries and not obj.as_json:
        click.echo("no audit entries match", err=True)
    filters = {"actor": actor, "action": action, "speaker": target, "since": since, "last": limit}
    engine.store.audit(engine.actor, "audit-read", target or "*", " ".join(f"{k}={v}" for k, v in filters.items() if v))
