"""The one exception tree of voxwatch. The CLI maps each class to an exit code, the service to an HTTP status."""


class VoxwatchError(Exception):
    """Base class of every error voxwatch raises on purpose."""

    exit_code = 1


class AudioError(VoxwatchError):
    """Audio could not be read or decoded, or has no usable content."""

    exit_code = 3


class ModelError(VoxwatchError):
    """A model could not be found or loaded."""

    exit_code = 4


class EnrollmentError(VoxwatchError):
    """A recording is unfit for enrollment (too little speech, several speakers, ...)."""

    exit_code = 5


class UnknownSpeakerError(VoxwatchError):
    """A speaker name that is not enrolled."""

    exit_code = 6


class StoreError(VoxwatchError):
    """The database could not be opened or written."""

    exit_code = 7


class UsageError(VoxwatchError):
    """Invalid options or arguments."""

    exit_code = 2
