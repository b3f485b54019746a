"""Typed errors of the job service; the web edge turns them into HTTP and UI messages."""


class ReconError(Exception):
    """Base of every error that carries a sentence a user can act on."""

    status_code = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class FileValidationError(ReconError):
    """An uploaded file (or cameras.json key) breaks the input contract; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field)


class ModelUnavailableError(ReconError):
    """The requested model is unknown or cannot run on this deployment."""


class JobNotFoundError(ReconError):
    status_code = 404


class JobForbiddenError(ReconError):
    status_code = 403


class JobConflictError(ReconError):
    status_code = 409


class JobStateError(ReconError):
    """The job is in a state that does not allow the request (e.g. cancelling a completed job)."""


class JobCancelled(Exception):
    """Raised inside a running job when its cancellation was confirmed; unwinds the engine."""


class StorageError(ReconError):
    """The server could not store a job's files (e.g. its disk is full); nothing of the job was kept."""

    status_code = 507


class ReconstructionFailed(ReconError):
    """The engine could not produce a mesh from these inputs; the message says why."""


class ServiceBusyError(ReconError):
    """The service refuses new work for now; `retry_after` says when to try again (seconds)."""

    def __init__(self, message: str, retry_after: int, status_code: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status_code = status_code


def store_unavailable(what: str) -> ServiceBusyError:
    return ServiceBusyError(f"the {what} is unavailable for a moment; try again in a few seconds", 5, 503)
