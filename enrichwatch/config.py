"""Settings: built once at start-up from ENRICHWATCH_* variables and an optional TOML file,
then passed down explicitly. Nothing below the CLI reads the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from enrichwatch.errors import SettingsError
from enrichwatch.models import VendorName

ENV_PREFIX = "ENRICHWATCH_"


class VendorSettings(BaseModel):
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
    download_hosts: list[str] = Field(
        default_factory=lambda: ["crustdata-batch-api-data.s3.amazonaws.com"],
        description="Hosts result files may be downloaded from.",
    )


class InfluencersClubSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://api-dashboard.influencers.club")


class RepromptSettings(VendorSettings):
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.repromptai.com")
    org: str = "default"


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    db: Path = Path("enrichwatch.db")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: AnyHttpUrl | None = Field(
        default=None, description="Base URL vendors reach us at; default http://HOST:PORT."
    )
    api_token: SecretStr | None = None
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

    crustdata: CrustdataSettings = Field(default_factory=CrustdataSettings)
    influencers_club: InfluencersClubSettings = Field(default_factory=InfluencersClubSettings)
    reprompt: RepromptSettings = Field(default_factory=RepromptSettings)
    brightlocal: BrightLocalSettings = Field(default_factory=BrightLocalSettings)
    ecore: ECoreSettings = Field(default_factory=ECoreSettings)

    @field_validator("host")
    @classmethod
    def _host_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

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
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def base_url(self) -> str:
        """The public base URL with no trailing slash."""
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://{self.host}:{self.port}"

    def vendor(self, name: VendorName) -> VendorSettings:
        settings: VendorSettings = getattr(self, name.value)
        return settings

    def secrets(self) -> list[str]:
        """Every configured secret value, so logging can scrub them wherever they appear."""
        values = [self.api_token] + [
            secret
            for vendor in VendorName
            for secret in (
                self.vendor(vendor).api_key,
                getattr(self.vendor(vendor), "webhook_secret", None),
            )
        ]
        return [value.get_secret_value() for value in values if value is not None]


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the one Settings object; a bad value raises SettingsError naming the setting."""
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist")

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=config_file)

    try:
        return _FileSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except ValueError as exc:  # a malformed TOML file or an unparsable nested JSON variable
        raise SettingsError(f"could not read settings: {exc}") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        path = [str(part) for part in error["loc"]]
        env_name = ENV_PREFIX + "__".join(part.upper() for part in path)
        value = "" if "api_key" in path or "secret" in path[-1] else f" (got {error['input']!r})"
        lines.append(f"invalid setting {env_name} / {'.'.join(path)}: {error['msg']}{value}")
    return "\n".join(lines)
