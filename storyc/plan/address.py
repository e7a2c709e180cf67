"""Where the provider is, and what of it a render key names.

Stage: plan (the provider client and every planner read it; it imports nothing heavy).
In: a `--base-url` flag, the `base_url` setting, the environment. Out: the base URL a
client talks to (`resolve_base_url`), and the provider a render key names
(`key_provider`). No I/O beyond reading the environment.

A render made by another provider (the loopback provider of a rehearsal, a staging
server) is not the video inference.sh would make. Its key therefore names that
provider's origin, so a project rehearsed offline and then pointed at the real provider
renders for real instead of taking the rehearsal's clips as current. The default
provider is named by no field at all, so keys of real renders are the keys they always
were.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from storyc.plan.pricing import FREE_BACKENDS

DEFAULT_BASE_URL = "https://api.inference.sh"
BASE_URL_ENV = "INFERENCE_BASE_URL"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def resolve_base_url(
    flag: str | None = None, setting: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Base URL precedence: command-line flag, then INFERENCE_BASE_URL, then `base_url` setting."""
    env_value = (env if env is not None else os.environ).get(BASE_URL_ENV)
    return (flag or env_value or setting or DEFAULT_BASE_URL).rstrip("/")


def _without_credentials(text: str) -> str:
    """`text` without what may be a credential: anything before an `@` in the part
    that names the host (user and password), the query and the fragment."""
    text = text.strip().split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    where, slash, path = rest.partition("/")
    return f"{scheme}{sep}{where.rpartition('@')[2]}{slash}{path}"


def origin(base_url: str) -> str:
    """The provider a base URL names, spelled one way: scheme and host in lower case (a
    fully qualified name's root dot dropped), the port only where it is not the scheme's
    own, the path without a trailing slash (a gateway under a path is a provider of its
    own). Never a credential: no user or password, no query, no fragment. A URL that does
    not parse is kept as written, less those."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError:
        return _without_credentials(base_url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return _without_credentials(base_url)
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    elif host.endswith(".") and host != ".":  # `api.inference.sh.` is `api.inference.sh`
        host = host[:-1]
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


_DEFAULT_ORIGIN = origin(DEFAULT_BASE_URL)


def key_provider(
    backend: str,
    flag: str | None = None,
    setting: object = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The provider a render key of `backend` names: None for a backend that talks to no
    provider and for the default provider, else the origin of the one the build talks to
    (with `resolve_base_url`'s precedence)."""
    if backend in FREE_BACKENDS:
        return None
    found = origin(resolve_base_url(flag, setting if isinstance(setting, str) else None, env))
    return None if found == _DEFAULT_ORIGIN else found


def is_local(provider: str | None) -> bool:
    """Whether a key's provider (`key_provider`) is on this machine (the loopback provider
    of a rehearsal): what it made, and the URLs it gave, are of no use to anyone else."""
    if provider is None:
        return False
    try:
        host = (urlsplit(provider).hostname or "").rstrip(".")
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
