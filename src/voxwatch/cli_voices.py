"""The voice commands: enroll, list and forget voices, verify a claimed voice, identify an unknown one."""

from __future__ import annotations

import dataclasses

import click

from .cli_context import STDIN, Context, guard, stdin_audio, worker_count
from .cli_progress import Progress


@click.command()
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--note", default="", help="Provenance: source, consent or legal basis, who recorded it and when.")
@worker_count
@click.pass_obj
@guard
def enroll(obj: Context, name: str, files: tuple[str, ...], note: str, workers: int | None) -> None:
    """Enroll a voice from one or more recordings of that person alone ('-': one recording on stdin).

    \b
    Example:
      voxwatch enroll "Jane Doe" jane1.wav jane2.mp3 --note "press conference 2026-03-02, public broadcast"
      ffmpeg -i interview.mkv -f wav - | voxwatch enroll "Jane Doe" - --note "interview 2026-03-04"   # '-': stdin
    """
    engine = obj.engine(workers=workers)
    labels = ["stdin" if f == STDIN else f for f in files]
    with stdin_audio(files) as paths, Progress("analysing", obj.as_json) as progress:
        enrolled = engine.enroll(name, list(paths), note, labels, progress)
    for info in enrolled:
        obj.emit(
            info.to_json(),
            f"enrolled {name!r} from {info.file}: {info.speech_s:.1f} s net speech, SNR {info.snr_db:.0f} dB, consistency {info.consistency:.2f}",
        )


@click.command()
@click.pass_obj
@guard
def speakers(obj: Context) -> None:
    """List enrolled voices.

    \b
    Example:
      voxwatch speakers --json
    """
    found = obj.engine().store.speakers()
    for s in found:
        obj.emit(
            s.to_json(),
            f"{s.name}\t{s.enrollments} recording(s)\t{s.speech_s:.1f} s speech\tenrolled {s.created_at}\t{'; '.join(s.notes)}",
        )
    if not found and not obj.as_json:
        click.echo("no voices enrolled")


@click.command()
@click.argument("name")
@click.pass_obj
@guard
def forget(obj: Context, name: str) -> None:
    """Delete every trace of a voice: voiceprints, enrollments, detections, alerts.

    \b
    Example:
      voxwatch forget "Jane Doe"
    """
    counts = obj.engine().forget(name)
    obj.emit({"forgotten": name, **counts}, f"forgot {name!r}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@click.command()
@click.argument("file", type=click.Path())
@click.option("--speaker", required=True, help="Enrolled voice to compare with.")
@click.pass_obj
@guard
def verify(obj: Context, file: str, speaker: str) -> None:
    """Is FILE ('-': stdin) this enrolled voice? Prints the score, the log-likelihood ratio and the decision.

    \b
    Example:
      voxwatch verify questioned.wav --speaker "Jane Doe"
    """
    with stdin_audio([file]) as (path,):
        v = dataclasses.replace(obj.engine().verify(path, speaker), file=file)
    verdict = "SAME speaker" if v.accepted else "DIFFERENT speaker"
    obj.emit(
        v.to_json(), f"{v.file} vs {v.speaker}: score {v.score:.3f}, LLR {v.llr:+.2f} → {verdict} ({v.speech_s:.1f} s speech)"
    )


@click.command()
@click.argument("file", type=click.Path())
@click.option("--top", default=5, show_default=True, help="How many candidates to show.")
@click.pass_obj
@guard
def identify(obj: Context, file: str, top: int) -> None:
    """Which enrolled voice is speaking in FILE ('-': stdin)? Ranked, or "none of the above".

    \b
    Example:
      voxwatch identify caller.wav --top 3
    """
    with stdin_audio([file]) as (path,):
        candidates = obj.engine().identify(path, top)
    for rank, c in enumerate(candidates, 1):
        obj.emit({"rank": rank, **c.to_json()}, f"{rank}. {c.speaker}  LLR {c.llr:+.2f}  score {c.score:.3f}")
    if not candidates:
        obj.emit({"rank": None, "speaker": None}, "none of the above: no enrolled voice fits")
