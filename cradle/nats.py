"""`cradle nats`: the bus's identities, the server configuration that trusts them, and the one step
that creates the streams.

`init` makes, once, under one directory (owner-only, 0600 files; never regenerated when present):
an operator with a signing key, the system account, the CRADLE account with two signing keys (one
for services, one the gateway holds to issue device credentials), a `.creds` file per process
(admin for provisioning, one per service, `claims` for the gateway's account updates) and
`device_issuer.json` for the gateway. `server-config` renders a nats-server config with a `full`
resolver preloaded with the two accounts; `provision` creates or updates the streams; `rotate`
gives one process a new key and `revoke` shuts old keys out on every node."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import nats
import typer
from rich.console import Console

from cradle.nats_tls import TlsFiles, make_ca, make_server_cert
from shared.events.permissions import service_permissions
from shared.events.streams import DEFAULT_NAMESPACE, SERVICES, Namespace, ensure_streams
from shared.events.tls import client_tls_from_env
from shared.nats_auth import (
    AccountClaims,
    NKey,
    Permissions,
    claims_lookup_subject,
    creds,
    creds_jwt,
    decode_jwt,
    operator_jwt,
    user_jwt,
    write_private,
)

app = typer.Typer(help="The event bus's credentials, server configuration and streams.", no_args_is_help=True)
console = Console()

ACCOUNT_NAME = "CRADLE"
SYSTEM_ACCOUNT_NAME = "SYS"
ADMIN = "admin"  # provisioning: may do anything in the CRADLE account, used by one step only
CLAIMS = "claims"  # the gateway's system-account user: pushes the CRADLE account's JWT, nothing else
ROUTE_USER = "cradle-route"


def claims_permissions(account: str) -> Permissions:
    return Permissions(
        publish=("$SYS.REQ.CLAIMS.UPDATE", claims_lookup_subject(account)),
        subscribe=("_INBOX.>",),  # the system account holds no one else's traffic
    )


@dataclass(frozen=True)
class BusTrust:
    """One deployment's identities on disk (see the module's docstring)."""

    directory: Path
    namespace: str
    operator: str
    system_account: str
    account: str

    def jwt(self, name: str) -> str:
        return (self.directory / f"{name}.jwt").read_text().strip()

    def creds_path(self, name: str) -> Path:
        return self.directory / "creds" / f"{name}.creds"

    @property
    def route_password(self) -> str:
        return (self.directory / "route_password").read_text().strip()

    @property
    def device_issuer(self) -> Path:
        return self.directory / "device_issuer.json"


def _seed(directory: Path, name: str) -> NKey:
    return NKey((directory / f"{name}.nk").read_text().strip())


def init_trust(directory: Path, *, namespace: str = DEFAULT_NAMESPACE) -> BusTrust:
    """The deployment's identities: made the first time, read every time after. A second run with
    another namespace is refused: the service credentials name their subjects."""
    manifest = directory / "trust.json"
    if manifest.exists():
        stored = json.loads(manifest.read_text())
        if stored["namespace"] != namespace:
            raise ValueError(
                f"{directory} holds credentials for namespace {stored['namespace']!r}, not {namespace!r}"
            )
        return BusTrust(directory=directory, **stored)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = {
        "operator": NKey.new("operator"),
        "operator_signing": NKey.new("operator"),
        "sys": NKey.new("account"),
        "cradle": NKey.new("account"),
        "services_signing": NKey.new("account"),
        "devices_signing": NKey.new("account"),
    }
    for name, key in keys.items():
        write_private(directory / f"{name}.nk", key.seed + "\n")
    operator, account, sys_account = keys["operator"], keys["cradle"].public_key, keys["sys"].public_key
    write_private(
        directory / "operator.jwt",
        operator_jwt(
            operator,
            name="cradle",
            system_account=sys_account,
            signing_keys=[keys["operator_signing"].public_key],
        ),
    )
    write_private(
        directory / "sys.jwt",
        AccountClaims(account=sys_account, name=SYSTEM_ACCOUNT_NAME, jetstream=False).sign(operator),
    )
    signing = [keys["services_signing"].public_key, keys["devices_signing"].public_key]
    write_private(
        directory / "cradle.jwt",
        AccountClaims(account=account, name=ACCOUNT_NAME, signing_keys=signing).sign(operator),
    )
    ns = Namespace(namespace)
    users: dict[str, tuple[str, NKey, Permissions | None]] = {
        ADMIN: (account, keys["services_signing"], None),
        CLAIMS: (sys_account, keys["sys"], claims_permissions(account)),
    }
    for service in SERVICES:  # every process on the bus, as the bus layout declares them
        users[service] = (account, keys["services_signing"], service_permissions(ns, service))
    for name, (user_account, signer, permissions) in users.items():
        user = NKey.new("user")
        token = user_jwt(
            user.public_key, name=name, account=user_account, signer=signer, permissions=permissions
        )
        write_private(directory / "creds" / f"{name}.creds", creds(token, user.seed))
    write_private(directory / "route_password", secrets.token_hex(24) + "\n")
    write_private(
        directory / "device_issuer.json",
        json.dumps(
            {
                "namespace": namespace,
                "operator": operator.public_key,
                "account": account,
                "operator_signing_seed": keys["operator_signing"].seed,
                "devices_signing_seed": keys["devices_signing"].seed,
            },
            indent=2,
        ),
    )
    stored = {
        "namespace": namespace,
        "operator": operator.public_key,
        "system_account": sys_account,
        "account": account,
    }
    write_private(manifest, json.dumps(stored, indent=2))
    return BusTrust(directory=directory, **stored)


@dataclass(frozen=True)
class Cluster:
    """A JetStream cluster whose routes authenticate with the deployment's route password."""

    name: str
    routes: list[str]  # host:port of every node (a node ignores the route to itself)
    listen: str = "0.0.0.0:6222"


@dataclass(frozen=True)
class ServerTls:
    """A node's certificate and key and the CA that signed every node's (paths as the node sees them):
    clients must speak TLS, and routes verify each other's certificate both ways."""

    cert_file: str
    key_file: str
    ca_file: str

    def block(self, *, verify: bool) -> str:
        files = f"cert_file: {json.dumps(self.cert_file)}, key_file: {json.dumps(self.key_file)}"
        ca = f"ca_file: {json.dumps(self.ca_file)}"
        return f"tls {{ {files}, {ca}, verify: {str(verify).lower()}, timeout: 5 }}"


# Where the compose file mounts the files `cradle nats tls` writes (docker-compose.yml, secrets).
COMPOSE_TLS = ServerTls(
    cert_file="/run/secrets/nats-tls-cert",
    key_file="/run/secrets/nats-tls-key",
    ca_file="/run/secrets/nats-ca",
)


def server_config(
    trust: BusTrust,
    *,
    store_dir: str,
    server_name: str,
    host: str = "127.0.0.1",
    port: int = 4222,
    cluster: Cluster | None = None,
    http_port: int | None = None,
    tls: ServerTls | None = None,
) -> str:
    """A nats-server configuration: operator mode (no anonymous connection is accepted), a `full`
    resolver that keeps account JWTs under the store and takes updates at run time, preloaded with
    the system and the CRADLE accounts. `server_name` may be `$VAR` (read from the environment).
    With `tls`, clients connect over TLS only (they authenticate with their credentials, not a
    certificate) and routes present and verify certificates both ways."""

    def q(value: str) -> str:
        return value if value.startswith("$") else json.dumps(value)

    lines = [
        f"server_name: {q(server_name)}",
        f"host: {q(host)}",
        f"port: {port}",
        f"jetstream {{ store_dir: {q(store_dir)} }}",
        f"operator: {q(trust.jwt('operator'))}",
        f"system_account: {q(trust.system_account)}",
        "resolver {",
        "  type: full",
        f"  dir: {q(store_dir.rstrip('/') + '/jwt')}",
        "  allow_delete: false",
        '  interval: "2m"',
        '  timeout: "3s"',
        "}",
        "resolver_preload {",
        f"  {trust.system_account}: {q(trust.jwt('sys'))}",
        f"  {trust.account}: {q(trust.jwt('cradle'))}",
        "}",
    ]
    if http_port is not None:
        lines.append(f"http_port: {http_port}")
    if tls is not None:
        lines.append(tls.block(verify=False))
    if cluster is not None:
        password = trust.route_password
        routes = ", ".join(
            json.dumps(f"nats-route://{ROUTE_USER}:{password}@{route}") for route in cluster.routes
        )
        lines += [
            "cluster {",
            f"  name: {q(cluster.name)}",
            f"  listen: {q(cluster.listen)}",
            f"  authorization {{ user: {q(ROUTE_USER)}, password: {q(password)} }}",
            f"  routes: [{routes}]",
            *([f"  {tls.block(verify=True)}"] if tls is not None else []),
            "}",
        ]
    return "\n".join(lines) + "\n"


async def quiet(_error: Exception) -> None:
    """The command line's error callback: nats-py logs each failed attempt with its traceback
    unless given one, and connect raises the error that matters anyway. (Its attempts are bounded
    by max_reconnect_attempts=1, each server twice: nats-py reads 0 as "no limit" and would retry a
    server that does not answer for ever, inside connect.)"""


async def provision(url: str, *, namespace: str, replicas: int, credentials: Path | None) -> None:
    """Create or update every stream of the namespace (the admin credential's one job)."""
    nc = await nats.connect(
        url.split(","),
        name="cradle-provision",
        connect_timeout=5,
        allow_reconnect=False,
        max_reconnect_attempts=1,  # a bounded try: see quiet
        error_cb=quiet,
        user_credentials=str(credentials) if credentials else None,
        tls=client_tls_from_env(),
    )
    try:
        await ensure_streams(nc.jetstream(timeout=10), Namespace(namespace), replicas=replicas)
    finally:
        await nc.close()


def rotate_user(trust: BusTrust, name: str) -> tuple[str, str]:
    """A new key and JWT, same permissions, for one service's credential (or admin's); the file is
    replaced. Returns (old user, new user): the old one works until it is revoked (`cradle nats revoke`)."""
    if name not in (ADMIN, *SERVICES):
        raise ValueError(f"unknown credential {name!r}: one of {', '.join((ADMIN, *SERVICES))}")
    path = trust.creds_path(name)
    old = decode_jwt(creds_jwt(path.read_text()))["sub"]
    permissions = None if name == ADMIN else service_permissions(Namespace(trust.namespace), name)
    user = NKey.new("user")
    token = user_jwt(
        user.public_key,
        name=name,
        account=trust.account,
        signer=_seed(trust.directory, "services_signing"),
        permissions=permissions,
    )
    write_private(path, creds(token, user.seed))
    return old, user.public_key


def default_dir() -> Path:
    from cradle.layout import data_dir

    return data_dir() / "keys" / "nats"


@app.command("init")
def init_command(
    directory: Path = typer.Option(None, "--dir", help="Where to keep them (default: <data>/keys/nats)."),
    namespace: str = typer.Option(DEFAULT_NAMESPACE, envvar="CRADLE_EVENT_NAMESPACE"),
    cluster: str = typer.Option(
        "", help="Also write nats-server.conf for this cluster: comma-separated host:port routes."
    ),
    store_dir: str = typer.Option("/data", help="The nodes' JetStream store (with --cluster)."),
    tls: bool = typer.Option(
        True, help="With --cluster: TLS for clients and routes, from the files `cradle nats tls` makes."
    ),
) -> None:
    """Make the operator, accounts, keys and every process's .creds (once; kept if present)."""
    trust = init_trust(directory or default_dir(), namespace=namespace)
    if cluster:
        config = server_config(
            trust,
            store_dir=store_dir,
            server_name="$NATS_SERVER_NAME",
            host="0.0.0.0",
            cluster=Cluster(name="cradle", routes=[r.strip() for r in cluster.split(",") if r.strip()]),
            http_port=8222,
            tls=COMPOSE_TLS if tls else None,
        )
        write_private(trust.directory / "nats-server.conf", config)
    console.print(f"bus credentials in [bold]{trust.directory}[/] (account {trust.account})")
    for name in (ADMIN, CLAIMS, *SERVICES):
        console.print(f"  {name:<11} {trust.creds_path(name)}")


@app.command("provision")
def provision_command(
    url: str = typer.Option("nats://127.0.0.1:4222", envvar="NATS_URL"),
    namespace: str = typer.Option(DEFAULT_NAMESPACE, envvar="CRADLE_EVENT_NAMESPACE"),
    replicas: int = typer.Option(1, envvar="CRADLE_NATS_REPLICAS", min=1, max=5),
    credentials: Path = typer.Option(None, "--creds", envvar="NATS_ADMIN_CREDS", help="The admin .creds."),
) -> None:
    """Create or update the namespace's streams with the admin credential."""
    asyncio.run(provision(url, namespace=namespace, replicas=replicas, credentials=credentials))
    console.print(f"[green]provisioned[/] the {namespace} streams on {url}")


@app.command("rotate")
def rotate_command(
    name: str = typer.Argument(..., help="admin or a service: registry, workforce, … gateway"),
    directory: Path = typer.Option(None, "--dir", help="The `init` directory (default: <data>/keys/nats)."),
) -> None:
    """Replace one process's .creds with a new key (same permissions); the old key keeps working
    until `cradle nats revoke` names it, so deploy the new file first."""
    trust = _existing(directory or default_dir())
    old, new = rotate_user(trust, name)
    console.print(f"{trust.creds_path(name)}: new user {new}")
    console.print(f"once every {name} runs with it: cradle nats revoke {old}")


@app.command("revoke")
def revoke_command(
    users: list[str] = typer.Argument(..., help="NATS user public keys (U…)"),
    url: str = typer.Option("nats://127.0.0.1:4222", envvar="NATS_URL"),
    directory: Path = typer.Option(None, "--dir", help="The `init` directory (default: <data>/keys/nats)."),
) -> None:
    """Revoke users of the CRADLE account on every node now (their connections close); for devices,
    use the gateway's DELETE …/device-credentials/{id}, which also records it."""
    from gateway.device_credentials import DeviceIssuer

    trust = _existing(directory or default_dir())
    for user in users:
        if not user.startswith("U"):
            raise typer.BadParameter(f"{user} is not a NATS user public key")
    issuer = DeviceIssuer.from_file(trust.device_issuer)
    ca_file = os.environ.get("NATS_TLS_CA")
    tls_ca = Path(ca_file) if ca_file else None
    claims = trust.creds_path(CLAIMS)
    asyncio.run(issuer.revoke(nats_url=url, claims_creds=claims, users=users, tls_ca=tls_ca))
    console.print(f"[green]revoked[/] {len(users)} user(s) on {url}")


@app.command("tls")
def tls_command(
    hosts: str = typer.Option(
        ..., help="Every name and address clients and nodes use: nats-1,nats-2,nats-3,bus.example.gov.cn"
    ),
    directory: Path = typer.Option(None, "--dir", help="The `init` directory (default: <data>/keys/nats)."),
    days: int = typer.Option(825, min=1, max=3650, help="How long the node certificate is valid."),
) -> None:
    """Make the bus's CA (once) and a node certificate signed by it under <dir>/tls/; run it again to
    renew the certificate or add a name (the CA stays, so clients need nothing new)."""
    files = TlsFiles((directory or default_dir()) / "tls")
    make_ca(files)
    make_server_cert(files, [h.strip() for h in hosts.split(",") if h.strip()], days=days)
    console.print(f"CA {files.ca} (every client's NATS_TLS_CA)")
    console.print(f"node certificate {files.cert}, its key {files.key}")
    console.print(f"keep {files.ca_key} offline: it signs node certificates, nothing running needs it")


def _existing(directory: Path) -> BusTrust:
    manifest = directory / "trust.json"
    if not manifest.exists():
        raise typer.BadParameter(f"no `cradle nats init` output in {directory}")
    return BusTrust(directory=directory, **json.loads(manifest.read_text()))


def gateway_bus_env(trust: BusTrust) -> dict[str, str]:
    """What the gateway needs on the bus: its own credential (audit checkpoints) and, to issue and
    revoke device credentials, the issuer's keys and the system-account `claims` credential."""
    return {
        "NATS_CREDS": str(trust.creds_path("gateway")),
        "GATEWAY_DEVICE_ISSUER_FILE": str(trust.device_issuer),
        "GATEWAY_NATS_CLAIMS_CREDS": str(trust.creds_path(CLAIMS)),
    }


def admin_creds_from_env() -> Path | None:
    value = os.environ.get("NATS_ADMIN_CREDS")
    return Path(value) if value else None
