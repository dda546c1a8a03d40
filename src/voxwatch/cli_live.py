"""The live commands: watch streams, serve the API and dashboard (and its tokens), and the demo."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import click

from .audio import RATE_HZ, PcmFormat
from .auth import MAX_EXPIRES_DAYS, Role, create_token
from .cli_context import Context, fail_on, guard, language_code, language_filter, operating_point
from .errors import UsageError
from .retention import Retention
from .sinks import ConsoleSink, JsonLinesSink, LanguageFilter
from .sources import open_source
from .transcripts import TranscriptOptions


def retain_days_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "--retain-days",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Purge alerts, their audio and detections older than this many days (hourly; audit-logged)"
        " [default: keep them; settings key retain_days].",
    )(fn)


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option("--speaker", "speakers", multiple=True, help="Only watch for this voice (repeatable) [default: all enrolled].")
@click.option(
    "--pace",
    type=click.Choice(["realtime", "fast"]),
    default="realtime",
    show_default=True,
    help="Play files in real time or as fast as possible.",
)
@click.option("--rate", type=int, default=RATE_HZ, show_default=True, help="Sample rate of raw PCM on stdin ('-').")
@click.option(
    "--format",
    "encoding",
    type=click.Choice(["s16le", "s32le", "f32le", "u8"]),
    default="s16le",
    show_default=True,
    help="Sample format of raw PCM on stdin.",
)
@click.option("--channels", type=int, default=1, show_default=True, help="Channel count of raw PCM on stdin.")
@operating_point
@click.option(
    "--alerts-file", type=click.Path(dir_okay=False), default=None, help="Also append every alert to this JSON-lines file."
)
@click.option(
    "--reconnect", type=int, default=0, show_default=True, help="Reconnect attempts (with backoff) when a network stream drops."
)
@click.option("--detections", is_flag=True, help="Also print every detected turn when it ends.")
@retain_days_option
@click.option(
    "--transcripts/--no-transcripts",
    default=True,
    show_default=True,
    help="Follow each alert with what was said in its turn, and in which language, once the turn ends.",
)
@language_filter("alerts whose turn was")
@click.pass_obj
@guard
def watch(
    obj: Context,
    sources: tuple[str, ...],
    speakers: tuple[str, ...],
    pace: str,
    rate: int,
    encoding: str,
    channels: int,
    threshold: float | None,
    fa_rate: float | None,
    alerts_file: str | None,
    reconnect: int,
    detections: bool,
    retain_days: float | None,
    transcripts: bool,
    language: str | None,
) -> None:
    """Watch live sources and alert the moment an enrolled voice speaks; when the turn ends, print what was said and
    in which language under the alert. Runs until the sources end or Ctrl-C. With --language, an alert is shown (and
    written to --alerts-file) once its turn is known to be in that language, with its transcript; the database, the
    API and webhooks keep every alert.

    SOURCES are files, network streams (http, icecast, hls, rtsp, rtp, udp), '-' for raw PCM on stdin, or a sound
    card as alsa:NAME / pulse:NAME.

    \b
    Examples:
      voxwatch watch channel1.mp3 channel2.flac --pace realtime
      voxwatch watch http://radio.example/live.mp3 --speaker "Jane Doe" --reconnect 10 --alerts-file alerts.jsonl
      arecord -f S16_LE -r 8000 | voxwatch watch - --rate 8000
      voxwatch watch channel1.mp3 --language ar
    """
    language = language_code(language)
    if language and not transcripts:
        raise UsageError("--language needs the transcripts (the speech recognition model tells the language)")
    pcm = PcmFormat(encoding, rate, channels)
    engine = obj.engine(threshold, fa_rate, retain_days)
    if transcripts:
        _ = engine.transcriber  # a missing model stops here, before any stream is opened
    srcs = [open_source(s, realtime=pace == "realtime", pcm=pcm, reconnects=reconnect) for s in sources]
    sinks: list = [ConsoleSink(obj.as_json, detections=detections)]  # type: ignore[type-arg]
    if alerts_file:
        sinks.append(JsonLinesSink(alerts_file))
    shown = LanguageFilter(sinks, language) if language else None
    days = engine.settings.retain_days
    with Retention(engine.store, days) if days is not None else nullcontext():  # purges at once, then hourly
        summary = engine.watch(
            srcs, [shown] if shown else sinks, list(speakers) or None, TranscriptOptions() if transcripts else None
        )
    if shown:
        shown.flush()
    if not obj.as_json:
        click.echo(f"{len(summary.alerts)} alert(s), {len(summary.detections)} detected turn(s)")
    fail_on([s.error or s.source for s in summary.streams if s.state == "failed"])


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Use real recordings: a folder with one sub-folder of audio per speaker.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="demo-out",
    show_default=True,
    help="Where the demo writes its audio, database and alerts.",
)
@click.option(
    "--pace",
    type=click.Choice(["realtime", "fast"]),
    default="fast",
    show_default=True,
    help="Play the demo stream in real time or as fast as possible.",
)
@click.option("--seconds", type=float, default=120.0, show_default=True, help="Length of the demo stream.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.pass_obj
@guard
def demo(obj: Context, data: str | None, out: str, pace: str, seconds: float, seed: int) -> None:
    """Make audio, enroll some voices, watch a stream where they speak among others, and score the alerts.

    \b
    Examples:
      voxwatch demo                                  # synthetic voices through a simulated broadcast channel
      voxwatch demo --data ../shared/data/resemblyzer/audio_data/librispeech_test-other
    """
    from .demo import run_demo

    run_demo(
        Path(out),
        data=Path(data) if data else None,
        realtime=pace == "realtime",
        seconds=seconds,
        seed=seed,
        as_json=obj.as_json,
        model=obj.settings().model,
    )


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the API to the network.",
)
@click.option("--port", default=8686, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--allow-dir",
    "allow_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory whose files may be named in requests (file streams, search paths); repeatable [default: none].",
)
@click.option(
    "--max-upload-mb", default=100.0, show_default=True, type=float, help="Largest enrollment upload (all files of one request)."
)
@click.option(
    "--allow-private-urls",
    is_flag=True,
    help="Let webhooks and network streams reach loopback, link-local and private addresses [default: refused].",
)
@retain_days_option
@click.option(
    "--transcripts/--no-transcripts", default=True, show_default=True, help="Transcribe each alerted turn once it ends."
)
@click.option(
    "--metrics-public",
    is_flag=True,
    help="Serve Prometheus metrics at /metrics without a token (for scrapers) [default: a viewer token is needed].",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="auto|ray://HOST:PORT",
    default=None,
    help="Coordinate a Ray cluster: streams run on watch workers, one per node (auto: this machine's cluster, started"
    " if none runs); each worker keeps its streams' alert audio and transcribes their alerted turns. Needs pip"
    " install 'voxwatch[cluster]'.",
)
@operating_point
@click.pass_obj
@guard
def serve(
    obj: Context,
    host: str,
    port: int,
    allow_dirs: tuple[Path, ...],
    max_upload_mb: float,
    allow_private_urls: bool,
    retain_days: float | None,
    transcripts: bool,
    metrics_public: bool,
    ray_address: str | None,
    threshold: float | None,
    fa_rate: float | None,
) -> None:
    """Run the HTTP API, the live dashboard (http://HOST:PORT/) and webhook delivery in one process; streams it was
    watching when it last stopped resume (recordings from where they were).

    Every API call needs a bearer token: create one first with 'voxwatch token create NAME --role ROLE'.
    OpenAPI: /openapi.json, interactive docs: /docs. Health (no token): /healthz; Prometheus metrics: /metrics.

    \b
    Example:
      voxwatch token create alice --role admin
      voxwatch serve --allow-dir recordings/ --port 8686 --retain-days 30
      voxwatch --log-format json serve --metrics-public     # JSON log lines; /metrics open to scrapers
      voxwatch serve --allow-dir recordings/ --ray auto             # on a Ray head node
    """
    from .api import serve as run_service
    from .service import Service, ServiceOptions

    options = ServiceOptions(
        allow_dirs=allow_dirs,
        max_upload_mb=max_upload_mb,
        allow_private_urls=allow_private_urls,
        transcripts=TranscriptOptions() if transcripts else None,
        metrics_public=metrics_public,
        ray=ray_address,
    )
    if ray_address is not None:  # joined before the server starts, so that its signal handlers are the ones in force
        from .cluster import connect

        connect(ray_address)
    service = Service(obj.engine(threshold, fa_rate, retain_days), options)
    run_service(service, host, port)


@click.group()
def token() -> None:
    """API tokens for 'voxwatch serve' (stored hashed; shown once, when created).

    \b
    Example:
      voxwatch token create desk-1 --role operator --expires-days 90
      voxwatch token list
    """


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "admin"]),
    required=True,
    help="viewer: read alerts, streams, voices and search results; operator: also add and stop streams, acknowledge"
    " alerts and run searches; admin: also enroll and forget voices, manage webhooks, read tokens and the audit log.",
)
@click.option(
    "--expires-days",
    type=click.IntRange(1, MAX_EXPIRES_DAYS),
    default=None,
    help="Valid for this many days [default: no expiry].",
)
@click.pass_obj
@guard
def token_create(obj: Context, name: str, role: str, expires_days: int | None) -> None:
    """Create an API token with a role and print it; this is the only time it is shown.

    \b
    Example:
      voxwatch token create desk-2 --role viewer --expires-days 30
      curl -H "Authorization: Bearer vxw_..." http://127.0.0.1:8686/api/alerts
    """
    engine = obj.engine()
    secret = create_token(engine.store, name, engine.actor, Role(role), expires_days)
    obj.emit({"name": name, "token": secret}, secret)
    if not obj.as_json:
        click.echo(f"token {name!r} created; copy it now, it cannot be shown again", err=True)


@token.command("list")
@click.pass_obj
@guard
def token_list(obj: Context) -> None:
    """List API tokens: names, roles and expiry (never the tokens).

    \b
    Example:
      voxwatch token list --json
    """
    found = obj.engine().store.tokens()
    for t in found:
        expiry = f"expires {t['expires_at']}" if t["expires_at"] else "no expiry"
        obj.emit(t, f"{t['name']}\t{t['role']}\tcreated {t['created_at']} by {t['created_by']}\t{expiry}")
    if not found and not obj.as_json:
        click.echo("no tokens; create one with 'voxwatch token create NAME --role ROLE'")
