"""Where the team store is: the `remote` setting, its environment override, and its URL.

Stage: remote. In: the project's `remote` setting (already checked by the resolver, see
`storyc.resolve.values.as_remote`), the environment and command-line flags. Out: a
`RemoteConfig` (bucket, prefix, optional endpoint, region and profile) or None when no
remote is configured. Pure: reads only the mapping of environment variables it is given.

A remote is an URL: `s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&profile=NAME]`.
The endpoint names a non-AWS service (Cloudflare R2, MinIO, Google Cloud Storage's S3
interface); without one the standard `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` and the
profile's configuration apply. Credentials never appear here: they come from the
standard AWS environment variables and profiles, read by the client library.
`STORYC_REMOTE` overrides the project setting (for CI); `STORYC_REMOTE=off` turns the
remote off for one run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

ENV = "STORYC_REMOTE"
OFF_WORDS = ("", "off", "none", "false", "0")
QUERY_KEYS = ("endpoint", "region", "profile")
# Words that must never be in the story or the lock: credentials come from the environment.
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "signature")


class RemoteConfigError(ValueError):
    """A remote URL that cannot be used; the message says what is wrong (never a secret)."""


@dataclass(frozen=True)
class RemoteConfig:
    bucket: str
    prefix: str  # "" or "some/prefix/" (always ending in "/")
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None

    @property
    def url(self) -> str:
        """The remote as shown to users: `s3://bucket/prefix` (no query, nothing secret)."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def describe(self) -> str:
        return self.url + (f" at {self.endpoint}" if self.endpoint else "")


def parse_remote(text: str) -> RemoteConfig:
    """A `RemoteConfig` from its URL; `RemoteConfigError` says what is wrong."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port, like a bad endpoint would later
    except ValueError as exc:
        raise RemoteConfigError(f"not a URL ({exc})") from None
    if parts.scheme != "s3":
        raise RemoteConfigError("a remote is an s3:// URL, e.g. s3://my-team-bucket/storyc")
    if parts.username is not None or parts.password is not None:
        raise RemoteConfigError(
            "credentials never go in the remote URL: use the AWS environment variables or a profile"
        )
    bucket = parts.hostname or ""
    if not _bucket_ok(parts.netloc):
        raise RemoteConfigError(
            f"bad bucket name {parts.netloc!r}: 3 to 63 lower-case letters, digits, '.' and '-'"
        )
    prefix = parts.path.strip("/")
    if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
        raise RemoteConfigError(f"bad prefix {parts.path!r}: no empty, '.' or '..' parts")
    query: dict[str, str] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if any(w in k.lower() for w in SECRET_WORDS):
            raise RemoteConfigError(
                f"`{k}` looks like a credential: credentials never go in the remote URL; "
                "use the AWS environment variables or a profile"
            )
        if k not in QUERY_KEYS:
            raise RemoteConfigError(
                f"unknown remote option `{k}` (options: endpoint, region, profile)"
            )
        query[k] = v
    endpoint = query.get("endpoint") or None
    if endpoint is not None:
        ep = urlsplit(endpoint)
        loopback = ep.hostname in ("127.0.0.1", "localhost", "::1")
        if ep.username is not None or ep.password is not None:
            raise RemoteConfigError("credentials never go in the endpoint URL")
        if not ep.hostname or not (ep.scheme == "https" or (ep.scheme == "http" and loopback)):
            raise RemoteConfigError(
                f"endpoint {endpoint!r} must be an https:// URL (plain http only on 127.0.0.1)"
            )
        endpoint = endpoint.rstrip("/")
    return RemoteConfig(
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=endpoint,
        region=query.get("region") or None,
        profile=query.get("profile") or None,
    )


def _bucket_ok(name: str) -> bool:
    if not 3 <= len(name) <= 63 or name[0] in ".-" or name[-1] in ".-":
        return False
    return all(c.islower() or c.isdigit() or c in ".-" for c in name) and ".." not in name


def choose(
    setting: str | None,
    env: Mapping[str, str],
    *,
    flag: str | None = None,
    disabled: bool = False,
) -> RemoteConfig | None:
    """The remote for this run: `--no-remote` > `--remote URL` > $STORYC_REMOTE > setting.

    Raises `RemoteConfigError` for a bad URL from the flag or the environment (the
    setting was checked by the resolver with a located diagnostic)."""
    if disabled:
        return None
    for text in (flag, env.get(ENV), setting):
        if text is None:
            continue
        if text.strip().lower() in OFF_WORDS:
            return None
        return parse_remote(text)
    return None
