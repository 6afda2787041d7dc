"""The one table of Cradle's processes. `cradle up`, `migrate`, `seed-demo`, the bus credentials,
the personal-data keys and the tests all read it: a new service is one row here (its own stream and
the streams it reads are declared in shared/events/streams.py, the bus's layout).

Settings classes are imported (cheap); app factories, sealed-column lists and seeders are named as
`module:attribute` and imported only by the command that needs them."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import GatewaySettings
from services.delivery.config import DeliverySettings
from services.guidance.config import GuidanceSettings
from services.monitoring.config import MonitoringSettings
from services.registry.config import RegistrySettings
from services.workforce.config import WorkforceSettings
from shared.settings import CradleSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from shared.pii_keys import SealedColumn


def load(reference: str) -> Any:
    """`package.module:attribute` → the attribute."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Process:
    """One of Cradle's processes: the gateway or a service. Each has a database of its own, named
    after it (`<NAME>_DATABASE_URL`, else `<data>/<name>.db`)."""

    name: str
    package: str  # its code; its Alembic migrations live in `<package>/migrations/`
    settings: type[CradleSettings]  # what it reads from the environment
    app: str  # its app factory, for `uvicorn --factory`
    colour: str  # its name's colour in `cradle up`'s interleaved log
    # Personal data: the file under <data>/keys/ holding its keys, and the encrypted columns
    # (`module:NAME` of a SealedColumn tuple) that key rotation re-encrypts.
    pii_key_file: str | None = None
    sealed_columns: str | None = None
    # `cradle seed-demo`: the step that writes its demo data (`cradle.seed.<name>:seed_step`), and
    # the `seed-demo` option that says how many of its main rows to write (0: skip it).
    seeder: str | None = None
    seed_quantity: str | None = None

    @property
    def env_prefix(self) -> str:
        return self.name.upper()

    @property
    def holds_personal_data(self) -> bool:
        return self.pii_key_file is not None

    def create_app(self, settings: CradleSettings | None = None) -> FastAPI:
        return load(self.app)(settings)

    def sealed(self) -> tuple[SealedColumn, ...]:
        if self.sealed_columns is None:
            raise ValueError(f"{self.name} holds no personal data")
        return load(self.sealed_columns)  # type: ignore[no-any-return]


GATEWAY = Process(
    name="gateway",
    package="gateway",
    settings=GatewaySettings,
    app="gateway.app:create_app",
    colour="bold blue",
    pii_key_file="gateway_pii_keys.json",  # parents' phone numbers
    sealed_columns="gateway.parents:SEALED_COLUMNS",
)

# The services behind the gateway, in the order they start and are seeded (the registry first:
# the others' facility projections are built from its events).
SERVICES: dict[str, Process] = {
    process.name: process
    for process in (
        Process(
            name="registry",
            package="services.registry",
            settings=RegistrySettings,
            app="services.registry.app:create_app",
            colour="cyan",
            seeder="cradle.seed.registry:seed_step",
            seed_quantity="facilities",
        ),
        Process(
            name="workforce",
            package="services.workforce",
            settings=WorkforceSettings,
            app="services.workforce.app:create_app",
            colour="magenta",
            pii_key_file="pii_keys.json",
            sealed_columns="services.workforce.app:SEALED_COLUMNS",
            seeder="cradle.seed.workforce:seed_step",
            seed_quantity="practitioners",
        ),
        Process(
            name="monitoring",
            package="services.monitoring",
            settings=MonitoringSettings,
            app="services.monitoring.app:create_app",
            colour="yellow",
            pii_key_file="monitoring_pii_keys.json",  # complainants' names and phones
            sealed_columns="services.monitoring.app:SEALED_COLUMNS",
            seeder="cradle.seed.monitoring:seed_step",
            seed_quantity="cameras",
        ),
        Process(
            name="guidance",
            package="services.guidance",
            settings=GuidanceSettings,
            app="services.guidance.app:create_app",
            colour="green",
            pii_key_file="guidance_pii_keys.json",
            sealed_columns="services.guidance.app:SEALED_COLUMNS",
            seeder="cradle.seed.guidance:seed_step",
            seed_quantity="families",
        ),
        Process(
            name="delivery",
            package="services.delivery",
            settings=DeliverySettings,
            app="services.delivery.app:create_app",
            colour="bright_white",
        ),
    )
}

# Every process with a database: the gateway's is migrated first (`cradle migrate`, `cradle up`).
PROCESSES: dict[str, Process] = {GATEWAY.name: GATEWAY, **SERVICES}

# The processes that hold personal data, each with its own keys.
PERSONAL_DATA: dict[str, Process] = {name: p for name, p in PROCESSES.items() if p.holds_personal_data}
