"""Exceptions named after Xoscar's (xoscar.errors), each carrying the runtime's status and the remote text.

Every error is an XoscarError with .status (the xo_status_t value), .status_name ("XO_ENOACTOR") and .text (the
message, e.g. the remote method's own xo_ctx_error text). Statuses with no Xoscar counterpart get a class of their
own, still an XoscarError."""


class XoscarError(Exception):
    def __init__(self, status: int, status_name: str, text: str):
        super().__init__(f"{text} [{status_name}]")
        self.status = status
        self.status_name = status_name
        self.text = text


class ActorNotExist(XoscarError):
    pass


class ActorRecovering(XoscarError):
    """The actor's pool was restarted and its host is re-creating it (restart: actors): retry soon. Not an
    ActorNotExist: that one is gone for good."""


class ActorAlreadyExist(XoscarError):
    pass


class ServerClosed(XoscarError):
    """The peer pool or the connection is gone (the pool died, was stopped, or cannot be reached)."""


class NoIdleSlot(XoscarError):
    pass


class NoFreeSlot(XoscarError):
    pass


class AuthenticationFailed(ServerClosed):
    """The peer refused this process's cluster secret (the connection is closed before any message)."""


class NoSuchClass(XoscarError):
    pass


class ActorHookError(XoscarError):
    """The actor's init or after_create (Xoscar's __post_create__) failed."""


class NoSuchMethod(XoscarError, AttributeError):
    pass


class BadArguments(XoscarError, TypeError):
    pass


class MethodError(XoscarError):
    """The remote method returned an error (its text is .text)."""


class CallTimeout(XoscarError, TimeoutError):
    pass


class CallCancelled(XoscarError):
    pass


class BadBatch(XoscarError):
    pass


class InvalidArgument(XoscarError, ValueError):
    pass


_BY_NAME = {
    "XO_ENOACTOR": ActorNotExist,
    "XO_ERECOVERING": ActorRecovering,
    "XO_EEXIST": ActorAlreadyExist,
    "XO_ECLOSED": ServerClosed,
    "XO_EPOOLDIED": ServerClosed,
    "XO_EUNREACHABLE": ServerClosed,
    "XO_EREFUSED": ServerClosed,
    "XO_EAUTH": AuthenticationFailed,
    "XO_ENOIDLESLOT": NoIdleSlot,
    "XO_ENOSLOT": NoFreeSlot,
    "XO_ENOCLASS": NoSuchClass,
    "XO_EHOOK": ActorHookError,
    "XO_ENOMETHOD": NoSuchMethod,
    "XO_EBADARGS": BadArguments,
    "XO_EMETHOD": MethodError,
    "XO_ETIMEDOUT": CallTimeout,
    "XO_ECANCELED": CallCancelled,
    "XO_EBATCH": BadBatch,
    "XO_EINVAL": InvalidArgument,
}


def _make(status: int, status_name: str, text: str) -> XoscarError:
    return _BY_NAME.get(status_name, XoscarError)(status, status_name, text)
