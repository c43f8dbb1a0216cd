"""API keys and per-key rate limits: who may call which route, and how often.

A key looks like ``cp_<prefix>_<secret>``. The registry stores the prefix (to find the row)
and an argon2 hash of the whole key (argon2-cffi), never the key itself: it is shown once,
when created. Each key carries scopes:

    read   embed, search, rerank, generate, list and describe
    write  ingest, create and delete collections, re-index
    train  jobs, model deployment, registry aliases
    admin  API keys and backups; an admin key may also call every other route

A verified key is trusted for ``auth_cache_ttl_s`` without checking its hash again. Revoking
through this replica drops it at once; every ``auth_revocation_check_s`` (2 s) each replica also
asks the registry how many keys were ever revoked, and forgets its cache when that number moved,
so a key revoked through another replica is refused everywhere within seconds.

Rate limits use the ``limits`` library's moving window, counted in Redis when ``redis_url`` is
set (shared by every gateway replica), else in this replica's memory. An unreachable Redis lets
requests through (logged): the limiter protects the platform, it must not take it down.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import limits
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from counterpoint.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from counterpoint.infra.db.registry import ApiKeyRecord, Registry
from counterpoint.settings import Settings

Scope = Literal["read", "write", "train", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "train", "admin")
SCOPE_ALIASES: dict[str, Scope] = {"search": "read", "ingest": "write", "jobs": "train"}
KEY_PREFIX = "cp_"
BOOTSTRAP = "settings.admin_key"

log = logging.getLogger(__name__)

# Keys are 256-bit random secrets, not passwords: no dictionary to slow down, so a light argon2id
# (~5 ms instead of the password default's ~200 ms) is as safe and keeps a first request cheap.
# Hashes record their parameters, so keys hashed with other settings still verify.
_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


def normalize_scopes(scopes: Iterable[str]) -> list[Scope]:
    """Validate scope names (``search`` is accepted for ``read``); at least one is needed."""
    result: list[Scope] = []
    for raw in scopes:
        name = SCOPE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in SCOPES:
            raise InvalidInput(f"unknown scope {raw!r}: use {', '.join(SCOPES)}")
        if name not in result:
            result.append(name)  # type: ignore[arg-type]
    if not result:
        raise InvalidInput(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return result


def generate_key() -> tuple[str, str]:
    """A new key and its look-up prefix."""
    prefix = secrets.token_hex(6)
    return f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


def key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    return prefix if sep and prefix and secret else None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a stored key (its id and name) or the bootstrap admin key."""

    key_id: str
    name: str
    scopes: tuple[str, ...]

    def allows(self, scope: Scope) -> bool:
        return "admin" in self.scopes or scope in self.scopes


class KeyStore:
    """Creates, lists, revokes and verifies keys stored (hashed) in the registry."""

    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.settings = settings
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._revoked_seen: int | None = None  # the registry's revoked-key count at the last check
        self._next_revocation_check = 0.0

    def _forget_if_revoked_elsewhere(self) -> None:
        """Drop every cached verification when a key was revoked since the last look (any replica)."""
        now = time.monotonic()
        if now < self._next_revocation_check:
            return
        self._next_revocation_check = now + self.settings.auth_revocation_check_s
        revoked = self.registry.revoked_api_key_count()
        if revoked != self._revoked_seen:
            self._verified.clear()
            self._revoked_seen = revoked

    def create(self, name: str, scopes: Sequence[str]) -> tuple[ApiKeyRecord, str]:
        """Store a new key; returns its record and the key itself (shown to the user once)."""
        if not name.strip():
            raise InvalidInput("a key needs a name (who or what uses it)")
        key, prefix = generate_key()
        record = self.registry.create_api_key(
            name.strip(), prefix=prefix, key_hash=_hasher.hash(key), scopes=normalize_scopes(scopes)
        )
        return record, key

    def list(self, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
        return self.registry.list_api_keys(include_revoked=include_revoked)

    def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke by id or prefix; cached verifications of it are dropped at once."""
        for record in self.registry.list_api_keys():
            if key_id in (record.id, record.prefix):
                revoked = self.registry.revoke_api_key(record.id)
                self._verified = {d: v for d, v in self._verified.items() if v[1].key_id != record.id}
                return revoked
        raise NotFound(f"no API key with id or prefix {key_id!r}")

    def verify(self, key: str) -> Principal:
        """The principal behind ``key``, or `Unauthorized`."""
        admin = self.settings.admin_key
        if admin is not None and hmac.compare_digest(key.encode(), admin.get_secret_value().encode()):
            return Principal(BOOTSTRAP, BOOTSTRAP, ("admin",))
        digest = hashlib.sha256(key.encode()).hexdigest()
        self._forget_if_revoked_elsewhere()
        cached = self._verified.get(digest)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        prefix = key_prefix(key)
        if prefix is None:
            raise Unauthorized("malformed API key: expected 'cp_<prefix>_<secret>'")
        try:
            record = self.registry.get_api_key_by_prefix(prefix)
            _hasher.verify(record.key_hash, key)
        except (NotFound, VerificationError, InvalidHashError):
            raise Unauthorized("invalid API key") from None
        if not record.active:
            raise Unauthorized(f"API key {record.prefix} ({record.name}) was revoked")
        principal = Principal(record.id, record.name, tuple(record.scopes))
        self._verified[digest] = (time.monotonic() + self.settings.auth_cache_ttl_s, principal)
        return principal


class RateLimiter:
    """Per-caller request limits (``settings.rate_limit``), answered with 429 and Retry-After."""

    def __init__(self, spec: str | None, storage_url: str | None = None) -> None:
        try:
            self.items = limits.parse_many(spec) if spec else []
        except ValueError as exc:
            raise ValueError(
                f"rate_limit {spec!r} is not in `limits` notation ('50/second'): {exc}"
            ) from None
        storage = storage_from_string(storage_url) if storage_url else MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        self._store_down_logged = 0.0

    def hit(self, caller: str) -> None:
        try:
            self._hit(caller)
        except RateLimited:
            raise
        except Exception as exc:  # the shared store is unreachable: serve, and say so now and then
            if time.monotonic() - self._store_down_logged > 30:
                self._store_down_logged = time.monotonic()
                log.warning("rate limits not enforced: their store is unreachable (%s)", exc)

    def _hit(self, caller: str) -> None:
        """Count the request in each window; the first full one refuses it. ``hit`` checks and counts in
        one step in the store (Redis: one script), so replicas counting at the same moment cannot both
        take the last slot, as a test-then-hit pair could (measured: 21 served of a 20/s limit)."""
        for item in self.items:
            if not self._limiter.hit(item, caller):
                reset, _ = self._limiter.get_window_stats(item, caller)
                wait = max(1, math.ceil(reset - time.time()))
                raise RateLimited(
                    f"rate limit of {item} exceeded (setting rate_limit); retry in {wait} s", wait
                )


class Guard:
    """Authenticates a request, checks its scope and counts it against the caller's rate limit."""

    def __init__(self, settings: Settings, keys: KeyStore | None) -> None:
        self.enabled = settings.auth_enabled
        self.keys = keys
        redis = settings.redis_url.get_secret_value() if settings.redis_url is not None else None
        self.limiter = RateLimiter(settings.rate_limit, redis)

    async def check(self, request: Request, scope: Scope) -> Principal | None:
        if not self.enabled:
            self.limiter.hit(f"addr:{request.client.host if request.client else 'unknown'}")
            return None
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthorized("this route needs an API key: send 'Authorization: Bearer <key>'")
        if self.keys is None:
            raise Unauthorized("no key store is configured on this gateway")
        principal = await asyncio.to_thread(self.keys.verify, key.strip())
        self.limiter.hit(f"key:{principal.key_id}")
        if not principal.allows(scope):
            raise Forbidden(
                f"API key '{principal.name}' has scopes {list(principal.scopes)}; this route needs '{scope}'"
            )
        request.state.principal = principal
        return principal


@dataclass(frozen=True, slots=True)
class ScopeRequirement:
    """The dependency behind `requires`: authenticates the request and checks it carries ``scope``.

    Error handlers that answer before dependencies run (a body FastAPI could not parse) find it on
    the route with `route_scope` and check the key first."""

    scope: Scope

    async def __call__(self, request: Request) -> Principal | None:
        guard: Guard = request.app.state.guard
        return await guard.check(request, self.scope)


def requires(scope: Scope) -> Any:
    """A route dependency: ``dependencies=[requires("write")]``."""
    return Depends(ScopeRequirement(scope))


READ, WRITE, TRAIN, ADMIN = (requires(scope) for scope in SCOPES)


def route_scope(route: object) -> Scope | None:
    """The scope a route's `requires` dependency asks for, or None for an open route."""
    for dep in getattr(getattr(route, "dependant", None), "dependencies", ()):
        if isinstance(dep.call, ScopeRequirement):
            return dep.call.scope
    return None
