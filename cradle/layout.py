"""Where an embedded deployment keeps its data and keys, and the settings each process gets."""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cradle.preflight import Misconfigured
from cradle.services import PERSONAL_DATA
from shared.identity import generate_keypair
from shared.pii import KEY_BYTES, MIN_HMAC_KEY_BYTES, decode_key, new_key
from shared.pii_keys import new_key_id, require_keys_sync
from shared.settings import env_or_file, with_password


def free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """A port free now (with `count`, the first of that many consecutive ones). For a program this
    process cannot hand a socket to (nats-server); for one it starts itself, `listening_socket`.

    Chosen at random below the kernel's ephemeral range: a port the kernel hands out for `bind(0)`
    is from the range every outgoing connection's local port comes from, and on a busy machine one
    of those took it between the choice and the child's bind ("address already in use")."""
    low = _ephemeral_low()
    for _ in range(200):
        first = random.randrange(EPHEMERAL_FLOOR, low - count)
        if all(_bindable(host, port) for port in range(first, first + count)):
            return first
    raise OSError(f"no {count} consecutive free ports on {host} below {low}")


EPHEMERAL_FLOOR = 10_000  # below it, the well-known and registered services' usual ports


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default; elsewhere a guess as good as any
    return low if low > EPHEMERAL_FLOOR + 1_000 else 65_536


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def listening_socket(port: int = 0) -> socket.socket:
    """A loopback socket bound and listening (`port` 0: any free one), inheritable, to be handed to
    the child that serves on it (cradle/serve.py, `<PREFIX>_METRICS_FD`)."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


def data_dir() -> Path:
    path = Path(os.environ.get("CRADLE_DATA_DIR", "var")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(name: str, base: Path) -> str:
    """`<NAME>_DATABASE_URL` when set (with `<NAME>_DATABASE_PASSWORD` put into it; either may be a
    file, `_FILE`, as the services read them), else a SQLite file under the data directory."""
    url = env_or_file(f"{name.upper()}_DATABASE_URL")
    if not url:
        return f"sqlite+aiosqlite:///{base / (name + '.db')}"
    return with_password(url, env_or_file(f"{name.upper()}_DATABASE_PASSWORD"))


def _write_private(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


@dataclass
class PiiKeys:
    """A service's personal-data keys: AES-256 keys by id (one active) and the lookup-hash key."""

    keys: dict[str, str]
    active_key_id: str
    hmac_key: str

    def env(self, service: str) -> dict[str, str]:
        prefix = service.upper()
        return {
            f"{prefix}_PII_KEYS": json.dumps(self.keys),
            f"{prefix}_PII_ACTIVE_KEY_ID": self.active_key_id,
            f"{prefix}_PII_HMAC_KEY": self.hmac_key,
        }

    def settings(self) -> dict[str, object]:
        return {"pii_keys": self.keys, "pii_active_key_id": self.active_key_id, "pii_hmac_key": self.hmac_key}


@dataclass
class Keys:
    internal_signing_key: str
    internal_verify_key: str
    jwt_keys: dict[str, str] = field(default_factory=dict)
    jwt_active_kid: str = ""
    pii: dict[str, PiiKeys] = field(default_factory=dict)  # by service
    audit_hmac_key: str = ""  # keys the audit chain's hashes (base64)
    audit_signing_key: str = ""  # Ed25519 private PEM: signs the audit checkpoints

    @property
    def pii_keys(self) -> dict[str, str]:  # the workforce's, as before
        return self.pii["workforce"].keys if "workforce" in self.pii else {}


def key_file(service: str) -> str:
    """The file under <data>/keys/ that keeps a process's personal-data keys."""
    file = PERSONAL_DATA[service].pii_key_file
    assert file is not None
    return file


def load_pii_keys(service: str, keys_dir: Path) -> PiiKeys:
    """From `<SERVICE>_PII_*` when set (production: a secret store); otherwise made once and kept:
    losing the HMAC key would lose every lookup by ID or phone number."""
    prefix = service.upper()
    given = env_or_file(f"{prefix}_PII_KEYS")
    if given:
        try:
            listed = json.loads(given)
        except json.JSONDecodeError:
            raise Misconfigured(
                f'{prefix}_PII_KEYS: not JSON; give {{"<key id>": "<base64 of 32 bytes>", …}}'
            ) from None
        return checked_pii_keys(
            PiiKeys(
                listed,
                env_or_file(f"{prefix}_PII_ACTIVE_KEY_ID") or "",
                env_or_file(f"{prefix}_PII_HMAC_KEY") or "",
            ),
            source=f"{prefix}_PII_KEYS",
        )
    pii_file = keys_dir / key_file(service)
    if not pii_file.exists():
        # Never a new key over rows sealed under a lost one: refuse, naming the key to restore.
        refuse_lost_keys(service, keys_dir.parent, configured=())
        kid = new_key_id()
        _write_private(pii_file, json.dumps({"active": kid, "keys": {kid: new_key()}, "hmac": new_key()}))
    try:
        stored = json.loads(pii_file.read_text())
        keys = PiiKeys(stored["keys"], stored["active"], stored["hmac"])
    except (ValueError, KeyError, TypeError):
        raise Misconfigured(
            f"{pii_file}: not a key file (JSON with active, keys and hmac); restore it from your key "
            "backup (deploy/README.md, 'Personal-data keys')"
        ) from None
    return checked_pii_keys(keys, source=str(pii_file))


def checked_pii_keys(keys: PiiKeys, *, source: str) -> PiiKeys:
    """The keys, or one line naming where they came from and what is wrong with them (the services
    would refuse them too, but only once started, one by one)."""
    try:
        if not isinstance(keys.keys, dict) or not keys.keys:
            raise ValueError("holds no key")
        for key_id, key in keys.keys.items():
            try:
                decode_key(str(key), min_bytes=KEY_BYTES)
            except ValueError as exc:
                raise ValueError(f"key {key_id!r} {exc}") from None
        if keys.active_key_id not in keys.keys:
            raise ValueError(f"the active key id {keys.active_key_id!r} is not one of its keys")
        try:
            decode_key(str(keys.hmac_key), min_bytes=MIN_HMAC_KEY_BYTES, exact=False)
        except ValueError as exc:
            raise ValueError(f"the lookup-hash (HMAC) key {exc}") from None
    except ValueError as exc:
        raise Misconfigured(f"{source}: {exc}") from None
    return keys


def refuse_lost_keys(service: str, base: Path, *, configured: Iterable[str]) -> None:
    """LostKeys (one line, exit) when the service's database holds rows sealed under a key id
    not in `configured` — before `cradle up` starts anything."""
    require_keys_sync(
        database_url(service, base),
        service=service,
        columns=PERSONAL_DATA[service].sealed(),
        configured=configured,
    )


def save_pii_keys(service: str, keys_dir: Path, keys: PiiKeys) -> None:
    """Rewrite a service's key file (rotation, retirement); owner-only, replaced atomically."""
    target = keys_dir / key_file(service)
    staging = target.with_suffix(".tmp")
    _write_private(
        staging, json.dumps({"active": keys.active_key_id, "keys": keys.keys, "hmac": keys.hmac_key})
    )
    os.replace(staging, target)


# The gateway's audit keys under <data>/keys/: the chain's HMAC key, the checkpoints' Ed25519 pair.
AUDIT_HMAC_FILE, AUDIT_SIGNING_FILE, AUDIT_VERIFY_FILE = (
    "audit_hmac.key",
    "audit_ed25519.pem",
    "audit_ed25519.pub.pem",
)


def load_audit_keys(keys_dir: Path) -> tuple[str, str]:
    """(HMAC key, signing key) from `GATEWAY_AUDIT_HMAC_KEY` / `GATEWAY_AUDIT_SIGNING_KEY` when set;
    otherwise made once and kept: with the HMAC key lost, no record written with it verifies."""
    hmac_key, signing_key = (
        env_or_file("GATEWAY_AUDIT_HMAC_KEY"),
        env_or_file("GATEWAY_AUDIT_SIGNING_KEY"),
    )
    if hmac_key and signing_key:
        return hmac_key, signing_key
    if not (keys_dir / AUDIT_HMAC_FILE).exists():
        _write_private(keys_dir / AUDIT_HMAC_FILE, new_key())
    if not (keys_dir / AUDIT_SIGNING_FILE).exists():
        private_pem, public_pem = generate_keypair()
        _write_private(keys_dir / AUDIT_SIGNING_FILE, private_pem)
        _write_private(keys_dir / AUDIT_VERIFY_FILE, public_pem)
    return (keys_dir / AUDIT_HMAC_FILE).read_text().strip(), (keys_dir / AUDIT_SIGNING_FILE).read_text()


def load_or_create_keys(base: Path) -> Keys:
    """Keys from the environment when given (production: from a secret store); otherwise made once
    and kept under `<data>/keys/` with owner-only permissions."""
    keys_dir = base / "keys"
    signing = os.environ.get("CRADLE_INTERNAL_SIGNING_KEY")
    verify = os.environ.get("CRADLE_INTERNAL_VERIFY_KEY")
    if not (signing and verify):
        private_file, public_file = keys_dir / "internal_ed25519.pem", keys_dir / "internal_ed25519.pub.pem"
        if not private_file.exists():
            private_pem, public_pem = generate_keypair()
            _write_private(private_file, private_pem)
            _write_private(public_file, public_pem)
        signing, verify = private_file.read_text(), public_file.read_text()
    keys = Keys(signing, verify)
    if os.environ.get("GATEWAY_JWT_KEYS") and os.environ.get("GATEWAY_JWT_ACTIVE_KID"):
        keys.jwt_keys = json.loads(os.environ["GATEWAY_JWT_KEYS"])
        keys.jwt_active_kid = os.environ["GATEWAY_JWT_ACTIVE_KID"]
    else:
        jwt_file = keys_dir / "jwt_keys.json"
        if not jwt_file.exists():
            kid = "k" + datetime.now(UTC).strftime("%Y%m%d") + secrets.token_hex(2)
            _write_private(jwt_file, json.dumps({"active": kid, "keys": {kid: secrets.token_urlsafe(48)}}))
        stored = json.loads(jwt_file.read_text())
        keys.jwt_keys, keys.jwt_active_kid = stored["keys"], stored["active"]
    keys.pii = {service: load_pii_keys(service, keys_dir) for service in PERSONAL_DATA}
    for service, pii in keys.pii.items():  # e.g. a key file restored from a backup older than a rotation
        refuse_lost_keys(service, base, configured=pii.keys)
    keys.audit_hmac_key, keys.audit_signing_key = load_audit_keys(keys_dir)
    return keys


def service_env(
    name: str, *, base: Path, keys: Keys, nats_url: str, nats_creds: Path | None = None
) -> dict[str, str]:
    env = {
        f"{name.upper()}_DATABASE_URL": database_url(name, base),
        "CRADLE_INTERNAL_VERIFY_KEY": keys.internal_verify_key,
        "NATS_URL": nats_url,
    }
    if nats_creds is not None:  # the embedded server: this service's own credential
        env["NATS_CREDS"] = str(nats_creds)
    env.setdefault("CRADLE_LOG_FORMAT", os.environ.get("CRADLE_LOG_FORMAT", "console"))
    if name in keys.pii:
        env |= keys.pii[name].env(name)
    return env


def gateway_env(
    *, base: Path, keys: Keys, upstreams: dict[str, str], nats_url: str | None = None
) -> dict[str, str]:
    env = {
        "GATEWAY_DATABASE_URL": database_url("gateway", base),
        "CRADLE_INTERNAL_SIGNING_KEY": keys.internal_signing_key,
        "GATEWAY_JWT_KEYS": json.dumps(keys.jwt_keys),
        "GATEWAY_JWT_ACTIVE_KID": keys.jwt_active_kid,
        **keys.pii["gateway"].env("gateway"),
        "CRADLE_LOG_FORMAT": os.environ.get("CRADLE_LOG_FORMAT", "console"),
        "GATEWAY_AUDIT_HMAC_KEY": keys.audit_hmac_key,
        "GATEWAY_AUDIT_SIGNING_KEY": keys.audit_signing_key,
    }
    if nats_url:  # the audit checkpoints' stream
        env["NATS_URL"] = nats_url
    for name, url in upstreams.items():
        env[f"GATEWAY_{name.upper()}_URL"] = url
    return env
