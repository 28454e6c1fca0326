import re
from pathlib import Path

import pytest
import yaml

from saldo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def readme_settings_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section, flags=re.M))


def test_every_setting_is_documented_in_the_readme():
    documented = readme_settings_table()
    missing = [name for name in Settings.env_names() if name not in documented]
    assert missing == [], f"add these to the README settings table: {missing}"


def test_readme_documents_no_setting_that_does_not_exist():
    extra = set(readme_settings_table()) - set(Settings.env_names())
    assert extra == set()


def test_defaults_match_the_public_contract(tmp_path):
    settings = Settings.from_env({}, dotenv=None)
    assert settings.database_url is None and settings.redis_url is None
    assert settings.data_dir == "./var"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert (settings.host, settings.port) == ("127.0.0.1", "8000")
    assert settings.mail_from == "Saldo <no-reply@localhost>"
    assert settings.mercadopago_api_url == "https://api.mercadopago.com"
    assert settings.simulated_payments


def test_dotenv_fills_gaps_but_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=9001\nMAIL_FROM=Cobranzas <c@example.com>\n")
    settings = Settings.from_env({"PORT": "9002"}, dotenv=env_file)
    assert settings.port == "9002"
    assert settings.mail_from == "Cobranzas <c@example.com>"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"DATABASE_URL": "sqlite:///saldo.db"}, "PostgreSQL"),
        ({"PUBLIC_URL": "ftp://x"}, "PUBLIC_URL"),
        ({"REDIS_URL": "memcached://x"}, "REDIS_URL"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env, dotenv=None)


def test_secret_key_is_generated_once_and_kept(tmp_path):
    settings = Settings.from_env({"SALDO_DATA_DIR": str(tmp_path)}, dotenv=None)
    first = settings.resolved_secret_key()
    assert len(first) >= 40
    assert settings.resolved_secret_key() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_https_public_url_means_secure_cookies():
    assert Settings.from_env(
        {"PUBLIC_URL": "https://cobranzas.example"}, dotenv=None
    ).secure_cookies
    assert not Settings.from_env({}, dotenv=None).secure_cookies


def test_docker_compose_names_the_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "mailpit"} <= set(services)
    assert services["migrate"]["command"] == ["saldo", "migrate"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for name in ("migrate", "web", "worker"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://")


def test_lock_files_pin_every_package_with_hashes_and_no_hosts():
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text()
        assert "://" not in text, f"{name} names a host"
        pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==\S+ \\$", text, flags=re.M)
        assert pins, name
        assert text.count("--hash=sha256:") >= len(pins)
