"""Settings of the web UI (`ui:`): who may log in, when pages need a login, what it may write.

The UI is served on `server.host:server.uiPort` (loopback by default). Passwords are never in
the config: `ui.auth.users[].passwordHash` holds an scrypt hash
(`scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, made by `python -m
mimir_limit_optimizer.web.ui.passwords`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic.alias_generators import to_camel

from mimir_limit_optimizer.config.types import Duration, OpaqueSection


class _Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True
    )


class UiUser(_Section):
    username: str = Field(min_length=1, max_length=64)
    # scrypt$n$r$p$salt$hash (base64); a plain password here is rejected at load time.
    password_hash: SecretStr

    @field_validator("password_hash")
    @classmethod
    def _is_hash(cls, value: SecretStr) -> SecretStr:
        parts = value.get_secret_value().split("$")
        if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
            raise ValueError(
                "not an scrypt hash (scrypt$n$r$p$salt$hash): make one with "
                "`python -m mimir_limit_optimizer.web.ui.passwords` and paste its output; "
                "never put a plain password in the config"
            )
        return value


class UiAuth(_Section):
    # A shared login token (anyone holding it logs in as user "token").
    token: SecretStr | None = None
    token_file: str | None = None
    users: list[UiUser] = Field(default_factory=list)
    # Seconds a session lives without activity; then the user logs in again.
    session_ttl: Duration = Field(8 * 3600.0, gt=0)
    # When read-only pages need a login: "auto" = only when server.host is not loopback.
    require_login: Literal["auto", "always", "never"] = "auto"
    # Mark the session cookie Secure. "auto": when the request came over HTTPS (directly or,
    # behind a proxy, X-Forwarded-Proto: https).
    secure_cookie: Literal["auto", "always", "never"] = "auto"


class UiSettings(_Section):
    enabled: bool = True
    auth: UiAuth = Field(default_factory=UiAuth)
    # Saving the configuration from the UI rewrites the config file (atomically; the service
    # hot-reloads it). Off: the page offers the edited YAML as a download instead.
    config_writable: bool = False
    # Read-only PromQL box of the Metrics page: per-query timeout and caps on what it returns.
    query_timeout: Duration = Field(10.0, gt=0, le=120)
    query_max_series: int = Field(50, ge=1, le=1000)
    query_max_points: int = Field(2000, ge=10, le=20000)
    # Seed keys: accepted, not used (server.uiPort is the port; Service and Ingress are the
    # Helm chart's business).
    port: int | None = None
    service: OpaqueSection | None = None
    ingress: OpaqueSection | None = None
