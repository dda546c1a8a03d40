"""The one exception tree of voxwatch: each class carries its CLI exit code and its HTTP status."""


class VoxwatchError(Exception):
    """Base class of every error voxwatch raises on purpose."""

    exit_code = 1
    http_status = 400


class AudioError(VoxwatchError):
    """Audio could not be read or decoded, or has no usable content."""

    exit_code = 3
    http_status = 422


class ModelError(VoxwatchError):
    """A model could not be found or loaded."""

    exit_code = 4
    http_status = 503


class EnrollmentError(VoxwatchError):
    """A recording is unfit for enrollment (too little speech, several speakers, ...)."""

    exit_code = 5
    http_status = 422


class UnknownSpeakerError(VoxwatchError):
    """A speaker name that is not enrolled."""

    exit_code = 6
    http_status = 404


class StoreError(VoxwatchError):
    """The database could not be opened or written."""

    exit_code = 7
    http_status = 503


class UsageError(VoxwatchError):
    """Invalid options or arguments."""

    exit_code = 2
    http_status = 400


class Forbidden(VoxwatchError):
    """A path outside every allowed directory, a stream scheme or an internal address that is not allowed, or a
    request beyond the role of its token."""

    http_status = 403


class Conflict(VoxwatchError):
    """The request clashes with what is running (e.g. a source that is already watched)."""

    http_status = 409


class NotFound(VoxwatchError):
    """No such alert, stream, search job or webhook."""

    http_status = 404


class ServiceDown(VoxwatchError):
    """A part of the service has stopped."""

    http_status = 503
