"""Secrets as files: every setting may come from the file `<VAR>_FILE` names (compose and Kubernetes
mount secrets as files), a database role's password apart from its URL, and a clear refusal when a
file cannot be read or both forms are set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import SettingsError
from sqlalchemy.engine import make_url

from gateway.config import GatewaySettings
from services.registry.config import RegistrySettings
from services.workforce.config import WorkforceSettings
from shared.settings import env_or_file


def secret(directory: Path, name: str, content: str) -> str:
    path = directory / name
    path.write_text(content)
    path.chmod(0o600)
    return str(path)


def test_every_secret_of_a_service_can_be_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    pii_keys = {"k20261203-a1b2c3": keys["pii_key"]}
    monkeypatch.setenv("WORKFORCE_DATABASE_URL", "postgresql+asyncpg://workforce@postgres:5432/workforce")
    monkeypatch.setenv("WORKFORCE_DATABASE_PASSWORD_FILE", secret(tmp_path, "pw", "s3cr@t/:%?#\n"))
    # A PEM spans lines and a JSON object is a complex value: both read as the variable would be.
    monkeypatch.setenv("CRADLE_INTERNAL_VERIFY_KEY_FILE", secret(tmp_path, "verify.pem", keys["verify"]))
    monkeypatch.setenv("WORKFORCE_PII_KEYS_FILE", secret(tmp_path, "keys.json", json.dumps(pii_keys) + "\n"))
    monkeypatch.setenv("WORKFORCE_PII_ACTIVE_KEY_ID_FILE", secret(tmp_path, "active", "k20261203-a1b2c3\n"))
    monkeypatch.setenv("WORKFORCE_PII_HMAC_KEY_FILE", secret(tmp_path, "hmac", keys["pii_hmac_key"] + "\r\n"))

    settings = WorkforceSettings()  # type: ignore[call-arg]  # from the environment

    url = make_url(settings.database_url)
    assert (url.username, url.password, url.host, url.database) == (
        "workforce",
        "s3cr@t/:%?#",
        "postgres",
        "workforce",
    )
    assert settings.internal_verify_key.get_secret_value() == keys["verify"].rstrip("\n")
    assert settings.pii_active_key_id == "k20261203-a1b2c3"
    assert {k: v.get_secret_value() for k, v in settings.pii_keys.items()} == pii_keys
    cipher = settings.cipher()
    id_number = "310101199001011234"
    assert cipher.decrypt(cipher.encrypt(id_number, context="c"), context="c") == id_number


def test_the_gateway_reads_its_keys_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    files = {
        "GATEWAY_DATABASE_URL": "postgresql://gateway@postgres/gateway",
        "GATEWAY_DATABASE_PASSWORD": "pw",
        "CRADLE_INTERNAL_SIGNING_KEY": keys["signing"],
        "GATEWAY_JWT_KEYS": json.dumps(keys["jwt_keys"]),
        "GATEWAY_JWT_ACTIVE_KID": keys["jwt_active_kid"],
        "GATEWAY_PII_KEYS": json.dumps({"t1": keys["pii_key"]}),
        "GATEWAY_PII_ACTIVE_KEY_ID": "t1",
        "GATEWAY_PII_HMAC_KEY": keys["pii_hmac_key"],
        "GATEWAY_AUDIT_HMAC_KEY": keys["audit_hmac_key"],
        "GATEWAY_AUDIT_SIGNING_KEY": keys["audit_signing_key"],
        "REDIS_URL": "redis://redis:6379/0",
        "REDIS_PASSWORD": "redis secret",
    }
    for variable, content in files.items():
        monkeypatch.delenv(variable, raising=False)  # the machine's own REDIS_URL, say
        monkeypatch.setenv(f"{variable}_FILE", secret(tmp_path, variable.lower(), content + "\n"))

    settings = GatewaySettings()  # type: ignore[call-arg]

    assert settings.database_url == "postgresql://gateway:pw@postgres/gateway"
    assert settings.redis_url == "redis://:redis%20secret@redis:6379/0"
    assert settings.jwt_keys["test1"].get_secret_value() == keys["jwt_keys"]["test1"]
    assert settings.audit_signing_key.get_secret_value() == keys["audit_signing_key"].rstrip("\n")
    assert settings.redis_url is not None and make_url(settings.redis_url).password == "redis secret"


def test_a_variable_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    monkeypatch.setenv("REGISTRY_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    monkeypatch.setenv("CRADLE_INTERNAL_VERIFY_KEY", keys["verify"])
    monkeypatch.setenv("CRADLE_INTERNAL_VERIFY_KEY_FILE", secret(tmp_path, "verify.pem", keys["verify"]))
    with pytest.raises(SettingsError, match="CRADLE_INTERNAL_VERIFY_KEY and CRADLE_INTERNAL_VERIFY_KEY_FILE"):
        RegistrySettings()  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="both set"):
        env_or_file("CRADLE_INTERNAL_VERIFY_KEY")


def test_a_missing_secret_file_names_the_variable_and_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    monkeypatch.setenv("REGISTRY_DATABASE_URL", "sqlite+aiosqlite:///:memory:")
    monkeypatch.setenv("CRADLE_INTERNAL_VERIFY_KEY", keys["verify"])
    missing = tmp_path / "not-mounted"
    monkeypatch.setenv("REGISTRY_DATABASE_PASSWORD_FILE", str(missing))
    with pytest.raises(SettingsError, match=f"REGISTRY_DATABASE_PASSWORD_FILE={missing}: cannot read it"):
        RegistrySettings()  # type: ignore[call-arg]
