"""shared/pii.py: ID validation, encryption with rotation, keyed hashes, masking."""

from __future__ import annotations

import base64
import os
from datetime import date

import pytest

from shared.pii import (
    Encrypted,
    KeyedHasher,
    NationalIdError,
    PiiCipher,
    decode_key,
    mask,
    national_id_check_char,
    new_key,
    validate_national_id,
)

# The specimen number printed in GB 11643-1999 itself.
SPECIMEN = "11010519491231002X"


def with_check(first17: str) -> str:
    return first17 + national_id_check_char(first17)


def test_the_standards_specimen_is_valid_and_its_check_character_is_x() -> None:
    assert national_id_check_char(SPECIMEN[:17]) == "X"
    assert validate_national_id(SPECIMEN) == SPECIMEN


def test_a_shanghai_number_with_a_digit_check_character_is_valid() -> None:
    number = with_check("31010419900307123")
    assert validate_national_id(number) == number


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("11010519491231002", "18 characters, not 17"),
        ("11010519491231002XX", "18 characters, not 19"),
        ("", "18 characters, not 0"),
        ("11010519491231002x", "upper-case X, not x"),
        ("1101051949123100A2", "17 digits followed by a digit or X"),
        ("１１０１０５１９４９１２３１００２X", "17 digits"),  # full-width digits
        (with_check("99010519900101123"), "region code"),
        (with_check("31010419900230123"), "not a real birth date"),
        (with_check("31010419901301123"), "not a real birth date"),
        (with_check("31010418890101123"), "not a possible birth date"),
        (with_check("31010430000101123"), "not a possible birth date"),
        ("110105194912310021", "check character"),
    ],
)
def test_bad_numbers_are_refused_with_a_reason_that_does_not_repeat_them(value: str, reason: str) -> None:
    with pytest.raises(NationalIdError) as raised:
        validate_national_id(value)
    assert reason in str(raised.value)
    if value:
        assert value not in str(raised.value)


def test_a_birth_date_after_today_is_refused() -> None:
    number = with_check("31010420260101123")
    assert validate_national_id(number, today=date(2026, 1, 1)) == number
    with pytest.raises(NationalIdError):
        validate_national_id(number, today=date(2025, 12, 31))


def test_masking_keeps_three_and_four() -> None:
    assert mask(SPECIMEN) == "110***********002X"
    assert mask("13812345678") == "138****5678"
    assert mask("1234567") == "*******"
    assert mask("") == ""


def cipher(**keys: bytes) -> PiiCipher:
    return PiiCipher(keys, next(iter(keys)))


def test_encryption_round_trips_and_never_repeats_a_ciphertext() -> None:
    c = cipher(k1=os.urandom(32))
    one, two = c.encrypt(SPECIMEN, context="id"), c.encrypt(SPECIMEN, context="id")
    assert one.key_id == "k1"
    assert one.ciphertext != two.ciphertext
    assert SPECIMEN not in one.ciphertext
    assert c.decrypt(one, context="id") == SPECIMEN == c.decrypt(two, context="id")


def test_a_rotated_key_still_decrypts_old_values_and_new_ones_use_the_active_key() -> None:
    old_key, new = os.urandom(32), os.urandom(32)
    before = PiiCipher({"2025": old_key}, "2025").encrypt("13812345678", context="phone")
    after = PiiCipher({"2025": old_key, "2026": new}, "2026")
    assert after.decrypt(before, context="phone") == "13812345678"
    assert after.needs_rotation(before)
    fresh = after.encrypt("13812345678", context="phone")
    assert fresh.key_id == "2026" and not after.needs_rotation(fresh)
    with pytest.raises(LookupError):
        PiiCipher({"2026": new}, "2026").decrypt(before, context="phone")


def test_a_ciphertext_moved_to_another_context_or_tampered_with_does_not_decrypt() -> None:
    c = cipher(k=os.urandom(32))
    sealed = c.encrypt(SPECIMEN, context="practitioner.id_number")
    with pytest.raises(ValueError):
        c.decrypt(sealed, context="practitioner.phone")
    raw = bytearray(base64.b64decode(sealed.ciphertext))
    raw[-1] ^= 1
    with pytest.raises(ValueError):
        c.decrypt(Encrypted("k", base64.b64encode(bytes(raw)).decode()), context="practitioner.id_number")


def test_keys_must_be_the_right_size_and_the_active_one_must_exist() -> None:
    with pytest.raises(ValueError):
        PiiCipher({"k": os.urandom(16)}, "k")
    with pytest.raises(ValueError):
        PiiCipher({"k": os.urandom(32)}, "other")
    with pytest.raises(ValueError):
        KeyedHasher(b"short")
    assert len(decode_key(new_key())) == 32
    with pytest.raises(ValueError):
        decode_key(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError):
        decode_key("not base64 at all!")


def test_keyed_hashes_are_stable_per_key_and_differ_between_keys() -> None:
    a, b = KeyedHasher(os.urandom(32)), KeyedHasher(os.urandom(32))
    assert a.digest(SPECIMEN) == a.digest(SPECIMEN)
    assert a.digest(SPECIMEN) != b.digest(SPECIMEN)
    assert a.digest(SPECIMEN) != a.digest("110105194912310029")
    assert len(a.digest(SPECIMEN)) == 64 and SPECIMEN not in a.digest(SPECIMEN)
