"""The published API document, docs/openapi.json: the gateway's merge (gateway/openapi.py) of every
service's document, built without a network or a database, as the release ships it.

    python -m cradle.openapi            # rebuild docs/openapi.json (refused if it breaks clients)
    python -m cradle.openapi --check    # exit 1 if docs/openapi.json is not what the code builds
    python -m cradle.openapi --allow-breaking   # rebuild even so (a new API version: docs/API.md)

Breaking changes are found by gateway/openapi_changes.py against the committed document."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cradle.services import SERVICES
from gateway.openapi import gateway_document, merge
from gateway.openapi_changes import breaking_changes
from shared.identity import generate_keypair
from shared.pii import new_key

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def service_documents() -> dict[str, dict[str, Any]]:
    """Each service's own document, from its app as it is configured to run (no lifespan: nothing
    is connected; the keys are throwaway, a document holds none)."""
    verify_key = generate_keypair()[1]
    documents = {}
    for name, process in SERVICES.items():
        values: dict[str, Any] = {"database_url": "sqlite+aiosqlite://", "internal_verify_key": verify_key}
        if process.holds_personal_data:
            values |= {
                "pii_keys": {"build": new_key()},
                "pii_active_key_id": "build",
                "pii_hmac_key": new_key(),
            }
        documents[name] = process.create_app(process.settings(**values)).openapi()
    return documents


def build() -> dict[str, Any]:
    return merge(gateway_document(), service_documents())


def render(document: dict[str, Any]) -> str:
    """Stable text: the same document is the same bytes (sorted keys would scramble paths' order)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cradle.openapi", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed document is stale")
    parser.add_argument("--allow-breaking", action="store_true", help="write it even if it breaks clients")
    parser.add_argument("--output", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    built = build()
    text = render(built)
    committed = json.loads(args.output.read_text()) if args.output.exists() else None
    if args.check:
        if committed is None or args.output.read_text() != text:
            print(f"{args.output} is stale: run `python -m cradle.openapi`", file=sys.stderr)
            return 1
        return 0
    breaking = breaking_changes(committed, built) if committed is not None else []
    if breaking and not args.allow_breaking:
        print("These changes break existing clients (--allow-breaking writes them anyway):", file=sys.stderr)
        for change in breaking:
            print(f"  {change}", file=sys.stderr)
        return 1
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(built['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
