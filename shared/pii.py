"""Personal data: validating national ID numbers (GB 11643-1999), encrypting values with AES-GCM under
a key id (so keys can rotate), keyed hashes (HMAC-SHA256) for exact lookups, and masking for display.
Infrastructure only: which fields are personal and who may see them is each service's business."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.errors import ServiceUnavailable

KEY_BYTES = 32
NONCE_BYTES = 12
MIN_HMAC_KEY_BYTES = 32

# GB 11643-1999 check digit: weights 2^(17-i) mod 11, and the mod 11-2 result mapped to a character.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
# Province-level codes (GB/T 2260), plus 83 (Taiwan residents' permits), 81/82 (Hong Kong, Macao
# residents' permits) and 91 (foreigners' permanent residence ID cards since 2023).
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82 83 91".split()
)
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")


class NationalIdError(ValueError):
    """Why a string is not a national ID number; the message never repeats the number."""


def national_id_check_char(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def validate_national_id(value: str, *, today: date | None = None) -> str:
    """The number in canonical form (18 characters, upper-case X), or NationalIdError saying why.
    A lower-case x is refused rather than silently fixed: the card never shows one."""
    if len(value) != 18:
        raise NationalIdError(f"must be 18 characters, not {len(value)}")
    if value[17] == "x":
        raise NationalIdError("the check character must be an upper-case X, not x")
    if not _SHAPE.fullmatch(value):
        raise NationalIdError("must be 17 digits followed by a digit or X")
    if value[:2] not in _PROVINCES:
        raise NationalIdError(f"region code {value[:2]}…: no such province-level division")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise NationalIdError("characters 7–14 are not a real birth date") from None
    if born.year < 1900 or born > (today or date.today()):
        raise NationalIdError("characters 7–14 are not a possible birth date")
    if national_id_check_char(value[:17]) != value[17]:
        raise NationalIdError("the check character (GB 11643 mod 11-2) does not match")
    return value


def mask(value: str, *, head: int = 3, tail: int = 4) -> str:
    """Keep the first `head` and last `tail` characters; too short a value is masked whole."""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]


def decode_key(encoded: str, *, min_bytes: int = KEY_BYTES, exact: bool = True) -> bytes:
    """A key given as base64 (standard or URL-safe), checked for length."""
    try:
        raw = base64.b64decode(encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if exact and len(raw) != min_bytes:
        raise ValueError(f"must decode to {min_bytes} bytes, not {len(raw)}")
    if len(raw) < min_bytes:
        raise ValueError(f"must decode to at least {min_bytes} bytes, not {len(raw)}")
    return raw


def new_key() -> str:
    """A fresh 32-byte key, base64: what `cradle up` generates."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


@dataclass(frozen=True)
class Encrypted:
    key_id: str
    ciphertext: str  # base64 of nonce ‖ AES-GCM ciphertext ‖ tag


class PiiCipher:
    """AES-256-GCM. New values use the active key; any key still configured decrypts. The
    `context` (e.g. "practitioner.id_number") is authenticated, so a ciphertext copied into
    another column does not decrypt."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError("the active key id must name one of the keys")
        for key_id, key in keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active_key_id

    def encrypt(self, plaintext: str, *, context: str) -> Encrypted:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.active_key_id].encrypt(nonce, plaintext.encode(), context.encode())
        return Encrypted(self.active_key_id, base64.b64encode(nonce + sealed).decode())

    def decrypt(self, value: Encrypted, *, context: str) -> str:
        aead = self._keys.get(value.key_id)
        if aead is None:
            raise LookupError(f"no key {value.key_id!r} is configured to decrypt this value")
        raw = base64.b64decode(value.ciphertext)
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag as exc:
            raise ValueError("the value does not decrypt under its key and context") from exc

    def needs_rotation(self, value: Encrypted) -> bool:
        return value.key_id != self.active_key_id


class KeyedHasher:
    """HMAC-SHA256, hex: equal inputs give equal digests, and without the key a digest reveals
    nothing (a plain hash of an 18-digit ID is brute-forced in hours)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_HMAC_KEY_BYTES:
            raise ValueError(f"the HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes")
        self._key = key

    def digest(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PiiVault:
    """A service's personal-data keys: seals and opens its fields, hashes ID numbers for lookup.
    Each service's own holder (`Workforce`, `Guidance`) extends it with its settings."""

    cipher: PiiCipher
    hasher: KeyedHasher

    def hash_id(self, id_number: str) -> str:
        return self.hasher.digest(id_number)

    def seal(self, value: str, *, context: str) -> Encrypted:
        return self.cipher.encrypt(value, context=context)

    def open(self, key_id: str, ciphertext: str, *, context: str) -> str:
        try:
            return self.cipher.decrypt(Encrypted(key_id, ciphertext), context=context)
        except LookupError as exc:
            # A key retired too early: a deployment fault, not the caller's, and not a 500.
            raise ServiceUnavailable(
                "Personal data is encrypted under a key this service no longer holds.", retry_after=300
            ) from exc
