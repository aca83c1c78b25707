"""Settings: built once at start-up from ENRICHWATCH_* variables and an optional TOML file,
then passed down explicitly. Nothing below the CLI reads the environment."""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from enrichwatch.errors import SettingsError
from enrichwatch.models import VendorName


def _words(value: object) -> object:
    """A list given in one variable: `a, b` as people write it, or JSON (`["a", "b"]`)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is neither a JSON list nor comma-separated: {exc}") from None
    return [word.strip() for word in value.split(",") if word.strip()]


WordList = Annotated[list[str], NoDecode, BeforeValidator(_words)]
"""A list of strings, from a TOML list or a variable's `a, b` (or JSON list)."""

ENV_PREFIX = "ENRICHWATCH_"
MIN_API_TOKEN_LENGTH = 16


class Section(BaseModel):
    """A nested settings section. A misspelt key is an error rather than silently ignored
    (`webhook_secrt` would otherwise leave signature checks off); an infinite or NaN number
    is refused, as no setting means anything by it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _not_blank(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not value.get_secret_value().strip():
        raise ValueError("must not be blank (leave it unset instead)")
    return value


class VendorSettings(Section):
    """Where a vendor's API lives and how to authenticate; the documented paths are appended
    to `base_url` unchanged, so the same code talks to the vendor or to the simulator."""

    base_url: AnyHttpUrl
    api_key: SecretStr | None = None
    min_poll_interval: float | None = Field(
        default=None,
        gt=0,
        description="Seconds: the fastest any one job is polled; unset means the vendor's "
        "recommended interval.",
    )
    max_poll_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds: the longest any open job goes unchecked, callbacks or not.",
    )

    _key_not_blank = field_validator("api_key")(_not_blank)

    @model_validator(mode="after")
    def _poll_bounds_ordered(self) -> Self:
        if self.min_poll_interval is not None and self.min_poll_interval > self.max_poll_interval:
            raise ValueError("min_poll_interval must not exceed max_poll_interval")
        return self

    def url(self, path: str) -> str:
        """The vendor's documented `path` appended to the configured base URL."""
        return str(self.base_url).rstrip("/") + path


class CrustdataSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.crustdata.com")
    max_poll_interval: float = Field(
        default=7200.0,
        gt=0,
        description="Seconds: the longest any open job goes unchecked, callbacks or not; "
        "callbacks end most jobs, so the safety net can be slower than for polled vendors.",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Key for x-crustdata-signature; when set, unsigned or mis-signed callbacks "
        "are rejected with 401.",
    )
    download_hosts: WordList = Field(
        default_factory=lambda: ["crustdata-batch-api-data.s3.amazonaws.com"],
        description="Hosts result files may be downloaded from.",
    )

    _secret_not_blank = field_validator("webhook_secret")(_not_blank)


class InfluencersClubSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://api-dashboard.influencers.club")


class RepromptSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.repromptai.com")
    org: str = Field(
        default="default", description="The organisation in Reprompt's paths (/v1/<org>/…)."
    )

    @field_validator("org")
    @classmethod
    def _one_path_segment(cls, value: str) -> str:
        if not value or any(c.isspace() or c in "/?#%" for c in value):
            raise ValueError("must be one path segment: not empty, no spaces, / ? # or %")
        return value


class BrightLocalSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://tools.brightlocal.com/seo-tools/api")
    max_poll_interval: float = Field(
        default=7200.0,
        gt=0,
        description="Seconds: the longest any open job goes unchecked, callbacks or not; "
        "callbacks end most jobs, so the safety net can be slower than for polled vendors.",
    )


class ECoreSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://app.ecoreservice.com/backend")
    auth_scheme: Literal["Bearer", "Token"] = "Bearer"


NotifyChannel = Literal["slack", "email", "webhook", "console"]


class NotifySettings(Section):
    """Where notifications go (DESIGN.md: notifications). A job's own targets, given when it
    is submitted or tracked, replace these for that job."""

    slack_webhook_url: SecretStr | None = Field(
        default=None,
        description="Slack incoming-webhook URL (it embeds a token, so it is kept secret).",
    )
    email_to: WordList = Field(
        default_factory=list, description="Recipients; needs the [smtp] settings."
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="Outbound Standard Webhooks endpoint for other systems."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="whsec_… key the outbound webhooks are signed with; to rotate it, give the "
        "new and the old key separated by a space until every receiver has the new one.",
    )
    console: bool | None = Field(
        default=None,
        description="Log every notification; unset means on only when no other channel is set.",
    )
    late_webhooks: bool = Field(
        default=False, description="Also notify, once per job, when a vendor's callback is late."
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="Sends tried before a notification is dead-lettered."
    )
    retry_base: float = Field(
        default=10.0, gt=0, description="Seconds: the first retry delay, doubled each attempt."
    )
    retry_cap: float = Field(
        default=3600.0, gt=0, description="Seconds: the longest delay between two attempts."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one send may take.")
    attach_limit_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=0,
        description="Results up to this size are attached to emails as CSV; larger, a link.",
    )

    @field_validator("email_to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not is_email_address(address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        """Standard Webhooks keys are 24 to 64 random bytes: a shorter one could be guessed,
        and every receiver would then take forged events for ours."""
        if value is not None:
            for key in decode_webhook_secrets(value.get_secret_value()):
                if len(key) < MIN_WEBHOOK_KEY_BYTES:
                    raise ValueError(
                        f"each whsec_ key must hold at least {MIN_WEBHOOK_KEY_BYTES} random "
                        f"bytes (this one holds {len(key)}); make one with: python -c "
                        "\"import base64, os; print('whsec_' + base64.b64encode(os.urandom(32))"
                        '.decode())"'
                    )
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError("webhook_url needs webhook_secret (a whsec_ key) to sign with")
        return self

    def global_channels(self, smtp: SmtpSettings) -> frozenset[NotifyChannel]:
        """The channels every job notifies unless it names its own."""
        channels: set[NotifyChannel] = set()
        if self.slack_webhook_url is not None:
            channels.add("slack")
        if self.email_to and smtp.host:
            channels.add("email")
        if self.webhook_url is not None:
            channels.add("webhook")
        if self.console or (self.console is None and not channels):
            channels.add("console")
        return frozenset(channels)


class SmtpSettings(Section):
    """The mail server notifications are sent through."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", allow_inf_nan=False)

    host: str | None = None
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Default 25, 587 with starttls, 465 with tls."
    )
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["none", "starttls", "tls"] = "starttls"
    from_: str = Field(
        default="enrichwatch@localhost", alias="from", description="The From address."
    )
    ca_file: Path | None = Field(
        default=None, description="PEM bundle to trust for the server's certificate."
    )

    @field_validator("from_")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if not is_email_address(value):
            raise ValueError(f"{value!r} is not an email address")
        return value

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"none": 25, "starttls": 587, "tls": 465}[self.security]


_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


def is_email_address(value: str) -> bool:
    """A plain addr-spec (no display name); the mail server has the final word."""
    return bool(_EMAIL.fullmatch(value))


MIN_WEBHOOK_KEY_BYTES = 24


def decode_webhook_secrets(secrets: str) -> list[bytes]:
    """The keys of one `whsec_` secret, or of several separated by spaces: while a key is
    rotated, each webhook carries a signature per key (Standard Webhooks' list), so receivers
    verifying with the old key or the new one both accept it."""
    keys = [decode_webhook_secret(secret) for secret in secrets.split()]
    if not keys:
        raise ValueError("webhook secret must not be empty")
    return keys


def decode_webhook_secret(secret: str) -> bytes:
    """The key of a Standard Webhooks `whsec_` secret (base64, padding optional)."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret must be base64, optionally prefixed whsec_") from None
    if not key:
        raise ValueError("webhook secret must not be empty")
    return key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        allow_inf_nan=False,
        validate_default=True,
    )

    file_values: ClassVar[dict[str, Any]] = {}
    """What the TOML file gave, parsed once by `load_settings`."""

    db: Path = Path("enrichwatch.db")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: AnyHttpUrl | None = Field(
        default=None, description="Base URL vendors reach us at; default http://HOST:PORT."
    )

    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /api/ and the dashboard; at least 16 characters. Unset, "
        "`serve` generates one and prints it once.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: float = Field(default=10.0, ge=0)
    work_interval: float = Field(
        default=5.0, gt=0, description="Seconds between the reconciler's looks for due work."
    )
    detection_target: float = Field(
        default=30.0,
        gt=0,
        description="Seconds: how late after a job finishes we may notice it, at the least.",
    )
    detection_target_fraction: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Share of a job's age by which noticing it may be late, when that is "
        "more than detection_target.",
    )
    max_job_age: float = Field(
        default=7 * 86400.0,
        gt=0,
        description="Seconds: a job still open this long after its run began is expired, and "
        "its vendor asked about it no more.",
    )

    crustdata: CrustdataSettings = Field(default_factory=CrustdataSettings)
    influencers_club: InfluencersClubSettings = Field(default_factory=InfluencersClubSettings)
    reprompt: RepromptSettings = Field(default_factory=RepromptSettings)
    brightlocal: BrightLocalSettings = Field(default_factory=BrightLocalSettings)
    ecore: ECoreSettings = Field(default_factory=ECoreSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)

    @field_validator("api_token")
    @classmethod
    def _token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        # An empty token would let "Authorization: Bearer " in; a short one is guessable.
        if token is not None and len(token.get_secret_value().strip()) < MIN_API_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_API_TOKEN_LENGTH} characters (or unset)")
        return token

    @field_validator("host")
    @classmethod
    def _host_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _email_needs_smtp(self) -> Self:
        if self.notify.email_to and not self.smtp.host:
            raise ValueError("notify.email_to needs smtp.host (ENRICHWATCH_SMTP__HOST)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the TOML file, as a deployment overrides a checked-in config.
        return (init_settings, env_settings, InitSettingsSource(settings_cls, cls.file_values))

    @field_validator("public_url")
    @classmethod
    def _a_base_url(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        """Paths are appended to it: a query or fragment would swallow them, and a user and
        password would be handed to every vendor and printed in every link."""
        if url is not None and (url.query or url.fragment or url.username or url.password):
            raise ValueError(
                "must be a base URL (scheme, host, port, path) without a query, fragment "
                "or user:password"
            )
        return url

    @property
    def base_url(self) -> str:
        """The public base URL with no trailing slash."""
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return listen_url(self.host, self.port)

    def vendor(self, name: VendorName) -> VendorSettings:
        settings: VendorSettings = getattr(self, name.value)
        return settings

    def secrets(self) -> list[str]:
        """Every configured secret value, so logging can scrub them wherever they appear."""
        values = [
            self.api_token,
            self.notify.slack_webhook_url,
            self.notify.webhook_secret,
            self.smtp.password,
        ] + [
            secret
            for vendor in VendorName
            for secret in (
                self.vendor(vendor).api_key,
                getattr(self.vendor(vendor), "webhook_secret", None),
            )
        ]
        return [value.get_secret_value() for value in values if value is not None]


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the one Settings object; a bad value raises SettingsError naming the setting, and
    the TOML file when the value came from there."""
    from_file = {} if config_file is None else _read_config_file(config_file)

    class _FileSettings(Settings):
        file_values: ClassVar[dict[str, Any]] = from_file

    misspelt = _misspelt_variables(os.environ)
    if misspelt:
        raise SettingsError("\n".join(misspelt))
    try:
        return _FileSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        env_values = EnvSettingsSource(_FileSettings)()
        given = {**env_values, **overrides}
        raise SettingsError(_describe(exc, given, from_file, config_file)) from None
    except ValueError as exc:  # an unparsable nested JSON variable
        raise SettingsError(
            f"could not read settings: {exc} (a whole section given in one variable must be "
            """a JSON object, e.g. ENRICHWATCH_SMTP='{"host": "mail.example.com"}')"""
        ) from None


def _read_config_file(config_file: Path) -> dict[str, Any]:
    if not config_file.is_file():
        what = "is not a regular file" if config_file.exists() else "does not exist"
        raise SettingsError(f"config file {config_file} {what}")
    try:
        with config_file.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise SettingsError(f"config file {config_file} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"config file {config_file} is not valid TOML: not UTF-8 text (byte {exc.start})"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"could not read config file {config_file}: {exc.strerror or exc}"
        ) from None


_OTHER_VARIABLES = frozenset({"CONFIG"})
"""Read by the CLI itself, not by Settings."""


def _misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """`ENRICHWATCH_*` variables (or their sections) that name no setting but come close to
    one: a typo that would be ignored, leaving the setting at its default. A variable close
    to none is left alone, since platforms add their own (Kubernetes gives every pod
    `ENRICHWATCH_SERVICE_HOST` and the like for a Service named enrichwatch)."""
    known = {name.upper() for name in Settings.model_fields} | _OTHER_VARIABLES
    found = []
    for variable in environ:
        name = variable.upper()
        if not name.startswith(ENV_PREFIX):
            continue
        top = name.removeprefix(ENV_PREFIX).split("__")[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, known, n=1, cutoff=0.8)
        if close:
            found.append(
                f"unknown setting {variable}: did you mean {ENV_PREFIX}{close[0]}? (it would be "
                "ignored)"
            )
    return found


Loc = tuple[str | int, ...]

_SECRET_NAME = re.compile(r"secret|passw|token|key|credential", re.IGNORECASE)
"""Names that mark a setting as holding a secret, whatever its type (and however misspelt a
key it is said of)."""


def _describe(
    exc: ValidationError,
    given: Mapping[str, Any],
    file_values: Mapping[str, Any],
    config_file: Path | None,
) -> str:
    """One line per error, naming the setting as the user gave it: the variable, or the key
    in the TOML file when neither the environment nor an override (`given`, which win) gives
    it. A value is quoted only when it can hold no secret."""
    lines = []
    for error in exc.errors():
        loc: Loc = error["loc"]
        if not loc:  # a rule across settings
            lines.append(f"invalid settings: {_message(error['msg'])}")
            continue
        in_file = _written(file_values, loc) if _written(given, loc) is None else None
        if in_file is not None:
            name = f"{_toml_key(in_file)} in {config_file}"
        else:
            name = ENV_PREFIX + "__".join(str(part).upper() for part in loc)
        if error["type"] == "extra_forbidden":
            lines.append(f"unknown setting {name}: {_suggestion(loc, in_file is not None)}")
            continue
        if in_file is None:
            name += " / " + ".".join(str(part) for part in loc)
        got = "" if _is_secret(loc) or not _plain(error["input"]) else f" (got {error['input']!r})"
        lines.append(f"invalid setting {name}: {_message(error['msg'])}{got}")
    return "\n".join(lines)


def _message(msg: str) -> str:
    """pydantic's message without the "Value error, " it puts before our own words."""
    return msg.removeprefix("Value error, ")


def _written(values: Mapping[str, Any], loc: Loc) -> Loc | None:
    """The path to `loc` in `values` as written there (table keys may differ in case from a
    setting's name), or None when `values` does not give it."""
    found: list[str | int] = []
    value: Any = values
    for part in loc:
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                return None
            value = value[part]
            found.append(part)
            continue
        if not isinstance(value, Mapping):
            return None
        keys = [part] if part in value else [k for k in value if k.lower() == part.lower()]
        if not keys:
            return None
        value = value[keys[0]]
        found.append(keys[0])
    return tuple(found)


def _toml_key(loc: Loc) -> str:
    """A dotted key as TOML would write it."""
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            bare = re.fullmatch(r"[A-Za-z0-9_-]+", part)
            key += ("." if key else "") + (part if bare else json.dumps(part))
    return key


def _suggestion(loc: Loc, in_file: bool) -> str:
    """The known key nearest an unknown one, as the user would write it."""
    section = _fields_along(loc[:-1])
    if len(section) < len(loc) - 1:  # inside a table that is itself unknown
        return "no such setting"
    model = _model_of(section[-1]) if section else Settings
    if model is None:
        return "no such setting"
    known = {
        (field.alias or name).lower(): field.alias or name
        for name, field in model.model_fields.items()
    }
    close = difflib.get_close_matches(str(loc[-1]).lower(), known, n=1, cutoff=0.6)
    if not close:
        return "no such setting"
    path = (*(str(part) for part in loc[:-1]), known[close[0]])
    if in_file:
        return f"did you mean {_toml_key(path)}?"
    return f"did you mean {ENV_PREFIX}{'__'.join(part.upper() for part in path)}?"


def _fields_along(loc: Loc) -> list[FieldInfo]:
    """The settings fields `loc` passes through, as far as it names known ones."""
    fields: list[FieldInfo] = []
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None or not isinstance(part, str):
            break
        field = next(
            (
                field
                for name, field in model.model_fields.items()
                if part.lower() in (name.lower(), (field.alias or name).lower())
            ),
            None,
        )
        if field is None:
            break
        fields.append(field)
        model = _model_of(field)
    return fields


def _model_of(field: FieldInfo) -> type[BaseModel] | None:
    """The section model a field holds, if it holds one."""
    for kind in (field.annotation, *get_args(field.annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _holds_secret(kind: Any) -> bool:
    return kind is SecretStr or any(_holds_secret(arg) for arg in get_args(kind))


def _is_secret(loc: Loc) -> bool:
    """Whether the value at `loc` is, or may be, a secret: a SecretStr setting, one inside it,
    or one whose name says so."""
    return any(_holds_secret(field.annotation) for field in _fields_along(loc)) or any(
        isinstance(part, str) and _SECRET_NAME.search(part) for part in loc
    )


_CREDENTIALS_IN_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")


def _plain(value: object) -> bool:
    """A value fit to quote: a scalar or a list of them. A table (a whole section, which may
    hold secrets) is not, nor a URL with a user and password in it."""
    if isinstance(value, str):
        return not _CREDENTIALS_IN_URL.match(value)
    if isinstance(value, int | float | bool) or value is None:
        return True
    return isinstance(value, Sequence) and all(_plain(item) for item in value)


def listen_url(host: str, port: int) -> str:
    """The URL of a service listening at `host` and `port` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
