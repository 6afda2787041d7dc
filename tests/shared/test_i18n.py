"""The callers' language without a stack: negotiation, and a catalogue that leaves no problem type,
no extracted text and no pydantic message the API uses without its Chinese."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from http import HTTPStatus
from pathlib import Path
from typing import get_args

import pytest
from babel.messages.pofile import read_po
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import PydanticKnownError
from pydantic_core.core_schema import ErrorType

from shared import i18n
from shared.errors import CradleError, field_errors
from shared.i18n import CHINESE, ENGLISH, localize, negotiate, tr, translate, use_locale
from shared.i18n_extract import problem_texts, refuses_requests
from shared.text import line

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "services", "shared")
CJK = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        (None, ENGLISH, ENGLISH),
        (None, CHINESE, CHINESE),
        ("", CHINESE, CHINESE),
        ("zh-CN", ENGLISH, CHINESE),
        ("zh", ENGLISH, CHINESE),
        ("zh-Hans", ENGLISH, CHINESE),
        ("zh-hans-CN", ENGLISH, CHINESE),
        ("en", CHINESE, ENGLISH),
        ("en-GB", CHINESE, ENGLISH),
        ("en-US,zh;q=0.9", ENGLISH, ENGLISH),
        ("en;q=0.1, zh-CN;q=0.8", ENGLISH, CHINESE),
        ("zh;q=0.5, en;q=0.9", CHINESE, ENGLISH),
        ("fr, zh-TW;q=0.9, zh;q=0.5", ENGLISH, CHINESE),  # Traditional is not Simplified: the next one
        ("zh-TW", CHINESE, ENGLISH),  # nothing acceptable: English
        ("fr", CHINESE, ENGLISH),
        ("*", CHINESE, CHINESE),
        ("*", ENGLISH, ENGLISH),
        ("en;q=0, *", ENGLISH, CHINESE),
        ("zh;q=0, *", CHINESE, ENGLISH),
        ("zh;q=x, en", CHINESE, ENGLISH),  # an unreadable quality counts as 0
        (";;,", CHINESE, ENGLISH),
    ],
)
def test_negotiation(header: str | None, default: str, expected: str) -> None:
    assert negotiate(header, default=default) == expected


def test_a_template_is_english_in_code_and_translated_in_a_reply() -> None:
    text = tr("No facility {facility_id} that you may see.", facility_id="f-1")
    assert text == "No facility f-1 that you may see." and localize(text) == text
    with use_locale(CHINESE):
        assert localize(text) == "没有您可查看的托育机构 f-1。"
        assert localize("Not found") == "未找到"
        assert localize("a text no catalogue knows") == "a text no catalogue knows"
        assert translate("critical alert(s) open or acknowledged") == "未关闭或已确认的严重告警"


def test_pydantic_messages_keep_the_field_and_translate_the_sentence() -> None:
    class Capacity(BaseModel):
        infant: int = Field(ge=0)
        name: str = Field(max_length=3)

    with pytest.raises(ValidationError) as caught:
        Capacity.model_validate({"infant": -1, "name": "托育机构名称"})
    errors = field_errors(caught.value.errors())
    assert [e.field for e in errors] == ["infant", "name"]
    assert [localize(e.message) for e in errors] == [
        "Input should be greater than or equal to 0",
        "String should have at most 3 characters",
    ]
    with use_locale(CHINESE):
        assert [localize(e.message) for e in errors] == ["输入应大于或等于 0", "字符串最多 3 个字符"]


def test_a_validators_own_message_is_translated_inside_pydantics() -> None:
    class Named(BaseModel):
        name: line(20)

    with pytest.raises(ValidationError) as caught:
        Named.model_validate({"name": "托育\x07机构"})
    [error] = field_errors(caught.value.errors())
    assert error.field == "name"
    english = "Value error, must be one line of text without a control character (U+0007)"
    assert localize(error.message) == english
    with use_locale(CHINESE):
        assert localize(error.message) == "取值错误，须为单行文本，且不含控制字符（U+0007）"


def _import_everything() -> None:
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if ".migrations" not in info.name:
                importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def _sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _chinese(text: str) -> str:
    return i18n.translations(CHINESE).gettext(text)


def test_every_problem_type_has_its_chinese_title() -> None:
    """Every error class anywhere in the code, and every title a problem is built with."""
    _import_everything()
    titles = {cls.title: cls for cls in _subclasses(CradleError) | {CradleError}}
    for path in _sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "problem_response":
                for keyword in node.keywords:
                    if keyword.arg == "title" and isinstance(keyword.value, ast.Constant):
                        titles.setdefault(keyword.value.value, path)
    assert len(titles) > 40
    missing = {title: where for title, where in titles.items() if not CJK.search(_chinese(title))}
    assert not missing, f"problem titles without Chinese (make messages, then translate): {missing}"


def test_every_text_in_the_code_is_in_the_catalogue_and_translated() -> None:
    """What `make messages` would extract today is all there, each with its Chinese."""
    texts: dict[str, str] = {}
    marked = re.compile(r"\b(?:tr|N_)\(\s*\"((?:[^\"\\]|\\.)*)\"")
    for path in _sources():
        source = path.read_text()
        relative = str(path.relative_to(ROOT))
        for lineno, text in problem_texts(source, value_errors=refuses_requests(relative)):
            texts.setdefault(text, f"{path.relative_to(ROOT)}:{lineno}")
        for match in marked.finditer(source):
            texts.setdefault(ast.literal_eval(f'"{match.group(1)}"'), str(path.relative_to(ROOT)))
    with (ROOT / "shared/locale/zh_CN/LC_MESSAGES/cradle.po").open("rb") as po:
        catalogue = {m.id: m.string for m in read_po(po) if m.id}
    untranslated = {t: where for t, where in texts.items() if not catalogue.get(t)}
    assert not untranslated, f"texts without Chinese (make messages, then translate): {untranslated}"


def test_a_translation_names_only_the_values_its_text_gives() -> None:
    with (ROOT / "shared/locale/zh_CN/LC_MESSAGES/cradle.po").open("rb") as po:
        for message in read_po(po):
            if message.id and message.string:
                given = set(PLACEHOLDER.findall(message.id))
                assert set(PLACEHOLDER.findall(message.string)) <= given, message.id


def test_the_pydantic_messages_are_pydantics_own_templates() -> None:
    """A pydantic upgrade that rewords a message shows here, not as English in a Chinese reply."""
    context = (
        {
            name: 1
            for name in (
                "min_length max_length actual_length gt ge lt le multiple_of max_digits decimal_places"
            ).split()
        }
        | {
            name: "x"
            for name in "pattern expected error field_type class_name expected_plural discriminator".split()
        }
        | {"expected_tags": "x", "tag": "x", "expected_schemes": "x", "class": "x", "attribute": "x"}
    )
    templates = set()
    for error_type in get_args(ErrorType):
        try:
            templates.add(PydanticKnownError(error_type, context).message_template)
        except (KeyError, TypeError, ValueError):
            continue
    assert set(i18n.PYDANTIC_MESSAGES) <= templates, set(i18n.PYDANTIC_MESSAGES) - templates


def test_every_http_reason_phrase_of_an_error_is_translated() -> None:
    phrases = {status.phrase for status in HTTPStatus if status >= 400}
    assert phrases <= set(i18n.HTTP_PHRASES)
    assert all(CJK.search(_chinese(phrase)) for phrase in phrases)
