"""TLS for NATS clients. A production bus speaks TLS (`tls {}` in its server config, URLs `tls://…`);
its certificates are usually signed by the deployment's own CA, which every client is given as
`NATS_TLS_CA` (a PEM file). Without one, nats-py verifies the servers against the system's CAs."""

from __future__ import annotations

import os
import ssl
from pathlib import Path


def client_tls(ca_file: Path | None) -> ssl.SSLContext | None:
    """The context that verifies the NATS servers' certificates (and host names) against this CA,
    or None for nats-py's default. A CA file that cannot be read or parsed is one clear error."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"NATS_TLS_CA={ca_file}: not a readable PEM CA certificate ({reason})") from None


def client_tls_from_env() -> ssl.SSLContext | None:
    """For the command line (`cradle migrate`, `dlq`, `audit verify`, `nats revoke`): the CA from
    `NATS_TLS_CA`, as the services read it."""
    ca_file = os.environ.get("NATS_TLS_CA")
    return client_tls(Path(ca_file) if ca_file else None)
