"""Per-kind identifier policy: which kinds link profiles, how many values a profile may hold,
which kind wins a conflict, which kinds are device-bound and move instead of merging.

Defaults ship here; a user overrides them in one TOML file (``[kinds.<name>]`` tables).
The file is validated at start-up: a bad key or value is a ``PolicyError`` naming it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class PolicyError(ValueError):
    """The identifier policy configuration is invalid."""


class KindPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    links: bool = True
    limit: int = Field(default=100, ge=1, le=100_000)
    priority: int = Field(default=6, ge=1, le=1000)
    moves: bool = False
    blocklist: tuple[str, ...] = ()
    # Which normalizer to apply; defaults to the kind's own name when it has one, else "text".
    normalizer: str | None = None

    @field_validator("blocklist")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocklist pattern {pattern!r} is not a valid regex: {exc}") from exc
        return patterns


BROWSER_KINDS = ("client_id", "ym_client_id", "ga_client_id", "ct_client_id", "user_pseudo_id")
MESSENGER_KINDS = ("telegram_id", "whatsapp_id", "social_id")
DEVICE_KINDS = ("device_id", "push_token", "web_push_token", "advertising_id", "mac")

DEFAULT_KINDS: dict[str, KindPolicy] = {
    "user_id": KindPolicy(limit=1, priority=1),
    "email": KindPolicy(limit=5, priority=2, blocklist=(r"test@test\.com", r"(no-?reply|example)@.*")),
    "phone": KindPolicy(limit=5, priority=3, blocklist=(r"\+70000000000",)),
    "loyalty_card": KindPolicy(limit=5, priority=4),
    **{kind: KindPolicy(limit=5, priority=5) for kind in MESSENGER_KINDS},
    **{kind: KindPolicy(limit=100, priority=6) for kind in BROWSER_KINDS},
    "session_id": KindPolicy(limit=1000, priority=7),
    **{kind: KindPolicy(limit=20, priority=8, moves=True) for kind in DEVICE_KINDS},
    "ip": KindPolicy(links=False, limit=100_000, priority=1000),
}


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_region: str = Field(default="RU", pattern=r"^[A-Z]{2}$")
    # An order is credited to the last non-direct touch at most this many days before it.
    attribution_lookback_days: int = Field(default=90, ge=1, le=3650)
    kinds: dict[str, KindPolicy] = Field(default_factory=dict)


class Policy:
    """The effective policy: defaults overlaid with the user's file."""

    def __init__(
        self, kinds: Mapping[str, KindPolicy], default_region: str = "RU", attribution_lookback_days: int = 90
    ) -> None:
        for name in kinds:
            if not KIND_NAME.match(name):
                raise PolicyError(f"kinds.{name}: kind names are lower-case letters, digits and _")
        self.kinds: dict[str, KindPolicy] = dict(kinds)
        self.default_region = default_region
        self.attribution_lookback_days = attribution_lookback_days
        self._blocklists = {
            name: [re.compile(p, re.IGNORECASE) for p in kind.blocklist] for name, kind in self.kinds.items()
        }

    @classmethod
    def default(cls) -> Policy:
        return cls(DEFAULT_KINDS)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "policy") -> Policy:
        try:
            parsed = PolicyFile.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PolicyError(f"{source}: {where}: {first['msg']}") from exc
        kinds = dict(DEFAULT_KINDS)
        raw_kinds = data.get("kinds", {}) or {}
        for name, override in parsed.kinds.items():
            # A partial table overrides only the fields it names.
            base = kinds.get(name, KindPolicy())
            kinds[name] = base.model_copy(update={k: getattr(override, k) for k in raw_kinds[name]})
        try:
            return cls(kinds, parsed.default_region, parsed.attribution_lookback_days)
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from exc

    @classmethod
    def from_toml(cls, text: str, source: str = "SVYAZ_POLICY") -> Policy:
        """A policy from TOML text (the deployed functions get it in an environment variable)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source} is not valid TOML: {exc}") from exc
        return cls.from_mapping(data, source=source)

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        if path is None:
            return cls.default()
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
        return cls.from_mapping(data, source=str(path))

    def kind(self, name: str) -> KindPolicy:
        try:
            return self.kinds[name]
        except KeyError:
            raise UnknownKind(name) from None

    def blocked_by_config(self, kind: str, value: str) -> bool:
        return any(p.fullmatch(value) for p in self._blocklists.get(kind, ()))

    def order_key(self, kind: str, value: str) -> tuple[int, str, str]:
        """Strongest first; ties by kind name, then value (design rule 3)."""
        return (self.kinds[kind].priority, kind, value)


class UnknownKind(PolicyError):
    def __init__(self, kind: str) -> None:
        super().__init__(
            f"unknown identifier kind {kind!r}: declare it under [kinds.{kind}] in the policy file"
        )
        self.kind_name = kind
