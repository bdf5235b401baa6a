"""Service configuration from ``SVYAZ_*`` environment variables (pydantic-settings).

Every setting is documented in the README's configuration table. In production mode
(``SVYAZ_ENV=production``) missing secrets stop start-up with an error naming them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from svyaz.channels.tracking import TrackingKinds
from svyaz.domain.validation import TimeWindow
from svyaz.identity.policy import Policy

DEV_PEPPER = "svyaz-local-development-pepper"  # noqa: S105 - only accepted outside production
DEV_JOURNAL_SECRET = "svyaz-local-development-journal-secret"  # noqa: S105 - idem


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class ConfigError(RuntimeError):
    """The service cannot start with this configuration."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SVYAZ_", extra="ignore")

    env: Literal["development", "production"] = "development"
    store: Literal["memory", "firestore"] = "memory"
    # The memory store's data directory (svyaz serve --data-dir): the graph, the export ledger
    # and the accepted events not yet applied survive a restart. Unset: all of it lives in memory.
    data_dir: str | None = None
    gcp_project: str = "svyaz-local"
    firestore_database: str = "(default)"
    events_topic: str = "svyaz-events"
    profile_updates_topic: str = "svyaz-profile-updates"
    # Touchpoint rows for the warehouse (a BigQuery subscription writes them to a table); empty:
    # not published (local runs, no warehouse). infra/ sets it for the deployed process_event.
    touchpoints_topic: str = ""
    policy_file: str | None = None
    # The policy file's contents instead of a path (how Terraform deploys it: infra var policy_toml).
    policy: str = ""

    # Secrets: comma-separated key lists; each sender gets its own key so one can be revoked.
    write_keys: CommaList = Field(default_factory=list)
    api_keys: CommaList = Field(default_factory=list)
    crm_keys: CommaList = Field(default_factory=list)
    pepper: SecretStr = SecretStr("")
    whatsapp_app_secret: SecretStr = SecretStr("")
    whatsapp_verify_token: SecretStr = SecretStr("")
    whatsapp_session_pattern: str = r"(?:номер\s+заявки|session|заявк[аи])\D{0,20}(\d{6,20})"
    telegram_secret_token: SecretStr = SecretStr("")
    telegram_bot_username: str = "svyaz_bot"
    calltracking_token: SecretStr = SecretStr("")
    # The preset of /webhooks/calltracking (a URL /webhooks/calltracking/<vendor> picks another).
    calltracking_vendor: Literal["generic", "calltouch", "uis"] = "generic"
    # Vendor field name -> canonical field, over the preset's names (JSON in the variable):
    # SVYAZ_CALLTRACKING_FIELD_MAP='{"caller": "caller_phone", "visit": "session_id"}'
    calltracking_field_map: dict[str, str] = Field(default_factory=dict)
    # The call-tracking account's time zone: call times sent without an offset are in it.
    calltracking_timezone: str = "Europe/Moscow"
    # Static tracking numbers -> the ad source each stands for (used when a call names none):
    # SVYAZ_CALLTRACKING_NUMBER_SOURCES='{"74951112233": {"source": "yandex", "medium": "cpc"}}'
    calltracking_number_sources: dict[str, dict[str, str]] = Field(default_factory=dict)
    # Mango Office VPBX API: the account's unique code and its signing key (Mango's "ключ").
    mango_api_key: SecretStr = SecretStr("")
    mango_api_salt: SecretStr = SecretStr("")
    # amoCRM: the secret in the webhook URL (amoCRM signs nothing), the account URL (webhooks of
    # another account are refused) and a long-lived API token.
    amocrm_webhook_secret: SecretStr = SecretStr("")
    amocrm_base_url: str = ""
    amocrm_token: SecretStr = SecretStr("")
    # Bitrix24: the outgoing webhook's application token (it authenticates each event), an inbound
    # webhook URL (https://<portal>/rest/<user>/<code>/) with the crm scope to read deals (its host
    # is the portal events must come from), and, deprecated, the secret of old handler URLs.
    bitrix24_webhook_secret: SecretStr = SecretStr("")
    bitrix24_application_token: SecretStr = SecretStr("")
    bitrix24_rest_url: SecretStr = SecretStr("")
    crm_api_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    qr_signing_key: SecretStr = SecretStr("")
    qr_allowed_hosts: CommaList = Field(default_factory=list)
    cookie_name: str = "svyaz_id"
    # The QR landing publishes the scan before answering, waiting at most this long for the
    # broker (docs/bridges.md, "What the landing costs"); 0: in the background after the answer.
    qr_publish_deadline_seconds: float = Field(default=2.0, ge=0, le=10)
    cookie_domain: str | None = None

    # The customer journal (/journal/ on the profiles function; docs/journal.md).
    # key: people sign in with a journal password (or an API key); iap: Identity-Aware Proxy in
    # front, each request's signed IAP JWT is verified (audience below); iap_header: the IAP
    # identity header is trusted without verification: only behind an ingress that IAP alone reaches.
    journal_auth: Literal["key", "iap", "iap_header"] = "key"
    journal_keys: CommaList = Field(default_factory=list)
    journal_secret: SecretStr = SecretStr("")  # signs the session cookies and CSRF tokens
    journal_session_minutes: int = Field(default=480, ge=1, le=60 * 24 * 30)
    journal_iap_audience: str | None = None  # /projects/<number>/global/backendServices/<id>
    journal_timezone: str = "Europe/Moscow"
    journal_language: Literal["ru", "en"] = "ru"
    journal_currency: str = "RUB"  # for orders that name none

    max_body_bytes: int = Field(default=512 * 1024, ge=1024)
    max_batch_events: int = Field(default=500, ge=1)
    # One call of the Segment / RudderStack tracking API (a request or a call of a batch), as
    # their APIs cap it.
    max_call_bytes: int = Field(default=32 * 1024, ge=1024)
    # Segment id field -> identifier kind, over the defaults (JSON in the variable):
    # SVYAZ_TRACKING_ID_KINDS='{"anonymousId": "client_id", "userId": "user_id", "previousId": "client_id"}'
    tracking_id_kinds: dict[str, str] = Field(default_factory=dict)
    idempotency_ttl_days: int = Field(default=7, ge=1)
    # Events `svyaz serve` holds accepted but not yet applied; past it /collect answers 503.
    local_queue_limit: int = Field(default=10_000, ge=1)
    # How long one process_event invocation works on a split before queueing the rest (its
    # timeout and the subscription's ack deadline are 60 s).
    split_budget_seconds: float = Field(default=40.0, gt=0)
    # Event times accepted (older or further ahead: refused as a sender bug).
    event_time_earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    event_time_future_hours: int = Field(default=24, ge=0, le=24 * 366)
    s3_endpoint_url: str | None = None

    # Offline conversions for the ad systems (`svyaz export conversions`, export_conversions).
    metrica_counter_id: str = ""
    metrica_oauth_token: SecretStr = SecretStr("")
    metrica_goal: str = "offline_order"  # the JavaScript-event goal's identifier in Metrica
    metrica_api_url: str = "https://api-metrika.yandex.net"
    google_ads_conversion_name: str = "Offline order"
    export_lookback_days: int = Field(default=7, ge=1, le=60)  # the scheduled run's window

    @field_validator("write_keys", "api_keys", "crm_keys", "journal_keys", "qr_allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @field_validator("calltracking_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name: Asia/Yekaterinburg)") from None
        return value

    @field_validator("calltracking_number_sources")
    @classmethod
    def _number_sources(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        allowed = {"source", "medium", "campaign", "content", "term"}
        for number, source in value.items():
            if unknown := set(source) - allowed:
                raise ValueError(f"{number}: unknown fields {sorted(unknown)}; use {sorted(allowed)}")
        return value

    @field_validator("tracking_id_kinds")
    @classmethod
    def _tracking_fields(cls, value: dict[str, str]) -> dict[str, str]:
        TrackingKinds.from_mapping(value)  # names the unknown field
        return value

    @model_validator(mode="after")
    def _production_pepper(self) -> Settings:
        pepper = self.pepper.get_secret_value()
        if self.env == "production" and pepper and len(pepper) < 32:
            raise ValueError("SVYAZ_PEPPER must be at least 32 characters in production")
        return self

    def require(self, *names: str) -> None:
        """Each function checks the secrets it uses at start-up: in production a missing one
        is a ConfigError naming its variable (functions mount only their own secrets)."""
        if self.env != "production":
            return
        missing = []
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                missing.append(f"SVYAZ_{name.upper()}")
        if missing:
            raise ConfigError(f"production mode needs {', '.join(missing)}")

    @field_validator("journal_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name, e.g. Europe/Moscow)") from None
        return value

    @model_validator(mode="after")
    def _data_dir_of_the_memory_store(self) -> Settings:
        if self.data_dir and self.store != "memory":
            raise ValueError("SVYAZ_DATA_DIR keeps the memory store's data; Firestore keeps its own")
        return self

    @model_validator(mode="after")
    def _journal_iap_audience(self) -> Settings:
        if self.journal_auth == "iap" and not self.journal_iap_audience:
            raise ValueError("SVYAZ_JOURNAL_AUTH=iap needs SVYAZ_JOURNAL_IAP_AUDIENCE")
        return self

    @property
    def journal_secret_bytes(self) -> bytes:
        if self.env == "production" and self.journal_auth == "key":
            self.require("journal_secret")
        secret = self.journal_secret.get_secret_value()
        if self.env == "production" and len(secret) < 32 and self.journal_auth == "key":
            raise ConfigError("SVYAZ_JOURNAL_SECRET must be at least 32 characters in production")
        return (secret or DEV_JOURNAL_SECRET).encode()

    @property
    def pepper_bytes(self) -> bytes:
        if self.env == "production":
            self.require("pepper")
        return (self.pepper.get_secret_value() or DEV_PEPPER).encode()

    @property
    def time_window(self) -> TimeWindow:
        earliest = self.event_time_earliest
        earliest = earliest.replace(tzinfo=UTC) if earliest.tzinfo is None else earliest
        return TimeWindow(earliest, timedelta(hours=self.event_time_future_hours))

    @cached_property
    def tracking_kinds(self) -> TrackingKinds:
        return TrackingKinds.from_mapping(self.tracking_id_kinds)

    @cached_property
    def identity_policy(self) -> Policy:
        if self.policy and self.policy_file:
            raise ConfigError("set SVYAZ_POLICY (the TOML) or SVYAZ_POLICY_FILE (its path), not both")
        if self.policy:
            return Policy.from_toml(self.policy)
        return Policy.load(self.policy_file)
