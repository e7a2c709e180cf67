"""Provider errors: what went wrong talking to inference.sh, phrased as what to do next.

Stage: execute (the edge that talks to the provider). In: HTTP answers and transport
failures seen by `storyc.provider.client`. Out: exceptions from the hierarchy below.
No I/O. Every foreign exception (httpx, OS) is translated by `translate_transport`,
in this module only, and never chained: httpx exceptions carry the request, whose
headers hold the API key, so the original is dropped rather than attached.

    ProviderError                    base; .http_status, .retryable, .detail
    ├── MissingKey                   INFERENCE_API_KEY is not set
    │   └── BadKey                   it is set but cannot be a key (whitespace, non-ASCII)
    ├── AuthError                    401/403: check INFERENCE_API_KEY
    ├── InvalidRequest               400/422: the provider's own words, + scene and field;
    │                                never retried; .stale_uris when it names an upload
    ├── BalanceError                 402: balance or plan limit; stop submitting
    │   └── TaskRejected             task status 13: never ran (balance/plan); .task
    ├── NotFound                     404: unknown task, file or app
    ├── Conflict                     409: e.g. cancelling a finished task
    ├── RateLimited                  429 still answered after the retries; .retry_after
    ├── ServiceUnavailable           503 / other 5xx still answered after the retries
    ├── TransportError               network failure on a read, after the retries
    ├── SubmitError                  POST /apps/run did not return a task
    │   ├── SubmitNotReceived        certainly not received (connect refused/timeout,
    │   │                            an error before any byte left, a stop requested
    │   │                            before sending, or 429/503 answered): safe to submit again
    │   └── SubmitOutcomeUnknown     may have been received (read timeout, dropped
    │                                connection, 5xx): submitting again could pay twice
    ├── TaskFailed                   task status 11; .task, .detail is the task's error
    ├── TaskCancelled                task status 12; .task
    ├── DeadlineExceeded             the task was still running at the per-task deadline
    ├── UploadError                  a local file could not be uploaded
    └── DownloadError                an output could not be downloaded completely

`SubmitError.safe_to_retry` says the same as the two subclasses, for callers that
prefer a flag. The client never retries a submit itself except when it is certain the
provider did not accept it; the executor decides everything else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit


class ProviderError(Exception):
    """Base of every provider failure. `str()` is a complete sentence for the user."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        detail: str | None = None,
        scene: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.detail = detail
        self.scene = scene
        self.task_id = task_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class MissingKey(ProviderError):
    pass


class BadKey(MissingKey):
    """The key has a form no provider issues (a trailing newline, a space, a non-ASCII
    character): found before anything is sent, and the message never quotes it."""


class AuthError(ProviderError):
    pass


class InvalidRequest(ProviderError):
    def __init__(
        self, message: str, *, field: str | None = None, stale_uris: tuple[str, ...] = (), **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.field = field
        self.stale_uris = stale_uris


class BalanceError(ProviderError):
    pass


class NotFound(ProviderError):
    pass


class Conflict(ProviderError):
    pass


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServiceUnavailable(ProviderError):
    retryable = True


class TransportError(ProviderError):
    retryable = True


class SubmitError(ProviderError):
    safe_to_retry = False


class SubmitNotReceived(SubmitError):
    safe_to_retry = True
    retryable = True


class SubmitOutcomeUnknown(SubmitError):
    safe_to_retry = False


class _TaskEnded(ProviderError):
    def __init__(self, message: str, *, task: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.task = task


class TaskFailed(_TaskEnded):
    pass


class TaskCancelled(_TaskEnded):
    pass


class TaskRejected(BalanceError):
    def __init__(self, message: str, *, task: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.task = task


class DeadlineExceeded(ProviderError):
    pass


class UploadError(ProviderError):
    pass


class DownloadError(ProviderError):
    pass


def safe_url(url: str) -> str:
    """The URL without query string or user info: signed URLs carry tokens there."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def problem_detail(body: Any, text: str = "") -> tuple[str | None, str | None]:
    """(code, human detail) from a problem+json body, or from plain text."""
    if isinstance(body, dict):
        type_ = body.get("type")
        code = str(type_).rstrip("/").rsplit("/", 1)[-1] if type_ else None
        detail = body.get("detail") or body.get("title") or body.get("message")
        return code, str(detail) if detail else None
    text = text.strip()
    return None, text[:300] if text else None


def from_http(
    status: int,
    body: Any,
    text: str,
    *,
    what: str,
    scene: str | None = None,
    retry_after: float | None = None,
    field: str | None = None,
    stale_uris: tuple[str, ...] = (),
) -> ProviderError:
    """The error for an HTTP answer that retries did not (or must not) fix."""
    code, detail = problem_detail(body, text)
    said = f": {detail}" if detail else ""
    where = f" (scene {scene!r}{', field ' + repr(field) if field else ''})" if scene else ""
    kw: dict[str, Any] = {"http_status": status, "detail": detail, "scene": scene}
    if status in (400, 422):
        return InvalidRequest(
            f"the provider refused {what}{where}{said}", field=field, stale_uris=stale_uris, **kw
        )
    if status in (401, 403):
        return AuthError(
            f"the provider did not accept the API key (HTTP {status}) for {what}; "
            "check INFERENCE_API_KEY",
            **kw,
        )
    if status == 402:
        return BalanceError(
            f"the provider refused {what} for balance or plan reasons "
            f"({code or 'payment_required'}){said}; top up or change plan, "
            "then build again",
            **kw,
        )
    if status == 404:
        return NotFound(f"{what}: not found on the provider{said}", **kw)
    if status == 409:
        return Conflict(f"{what}: {detail or 'conflict'}", **kw)
    if status == 429:
        return RateLimited(
            f"the provider is still rate-limiting {what}{said}; try again later",
            retry_after=retry_after,
            **kw,
        )
    if status >= 500:
        return ServiceUnavailable(
            f"the provider failed {what} (HTTP {status}){said}; try again later", **kw
        )
    return ProviderError(f"unexpected HTTP {status} for {what}{said}", **kw)


def translate_transport(exc: BaseException, *, what: str, url: str) -> ProviderError:
    """The one place a foreign transport exception becomes ours (without the request)."""
    kind = type(exc).__name__
    return TransportError(
        f"could not reach the provider for {what} at {safe_url(url)} "
        f"({kind}); check the network or INFERENCE_BASE_URL"
    )


def key_problem(key: str, name: str = "INFERENCE_API_KEY") -> str | None:
    """What is wrong with the form of an API key, or None. Checked before a build
    starts: httpx would refuse such a key only while sending (or, for a space, the
    provider would refuse it), and the message never quotes the key."""
    if not key:
        return f"{name} is empty"
    if key != key.strip():
        where = "ends" if key[-1:].isspace() else "starts"
        return f"{name} {where} with whitespace (a newline pasted with it?)"
    for ch in key:
        if not ("!" <= ch <= "~"):  # printable ASCII without space: what a header carries
            what = "a space" if ch == " " else f"the character U+{ord(ch):04X}"
            return f"{name} contains {what}, which no API key has"
    return None


def redact(text: str, secret: str | None) -> str:
    """Defence in depth: remove a secret from text that came from elsewhere."""
    if secret and secret in text:
        return text.replace(secret, "***")
    return text
