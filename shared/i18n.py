"""The callers' language: `Accept-Language` negotiated to English or Simplified Chinese, and the
texts a reply carries (problem titles and details, field messages, risk reasons, indicator names)
translated from gettext catalogues.

The catalogues are `shared/locale/<locale>/LC_MESSAGES/cradle.po`, extracted with `make messages`
(pybabel, babel.cfg) and compiled in-process with Babel when first used, so a fresh install needs no
build step. The English text in the code is the message id; a text with values is written as a
template with its values (`tr`, names in braces) and translated when rendered, in the
language of the request being answered (a context variable set by `Localization`, or by the
gateway's front door, which knows the caller)."""

from __future__ import annotations

import functools
import gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.core import parse_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from pydantic_core import PydanticKnownError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENGLISH = "en"
CHINESE = "zh-CN"
SUPPORTED = (ENGLISH, CHINESE)
DOMAIN = "cradle"
LOCALE_DIR = Path(__file__).parent / "locale"
# The catalogue directory of each language tag (gettext's naming).
_CATALOGUES = {CHINESE: "zh_CN"}
# Chinese written in Traditional characters: the Simplified catalogue is not an answer to these.
_TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})

_locale: ContextVar[str] = ContextVar("cradle_locale", default=ENGLISH)


def N_(message: str) -> str:
    """Marks a text for extraction where it is defined; it is translated where it is rendered."""
    return message


class Text(str):
    """English text that remembers its template and values, so the reply can be rendered in the
    caller's language; everywhere else (logs, `str(exc)`) it is the English text."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, /, **params: Any) -> Text:
        text = super().__new__(cls, template.format(**params) if params else template)
        text.template = template
        text.params = params
        return text


def tr(template: str, /, **params: Any) -> Text:
    """A text for a reply, a template and its values: the English now, the caller's language when
    the reply is rendered."""
    return Text(template, **params)


@functools.cache
def translations(tag: str) -> gettext.NullTranslations:
    catalogue = _CATALOGUES.get(tag)
    if catalogue is None:
        return gettext.NullTranslations()
    with (LOCALE_DIR / catalogue / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as source:
        messages = read_po(source, locale=catalogue, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, messages, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def current_locale() -> str:
    return _locale.get()


@contextmanager
def use_locale(tag: str) -> Iterator[None]:
    token = _locale.set(tag)
    try:
        yield
    finally:
        _locale.reset(token)


def set_locale(tag: str) -> None:
    """For ASGI code that answers within the same context (the gateway's front door)."""
    _locale.set(tag)


def translate(message: str, /, **params: Any) -> str:
    """`message` (an English message id) in the current language, its `{names}` filled in."""
    translated = translations(_locale.get()).gettext(message) if _locale.get() != ENGLISH else message
    if not params:
        return translated
    values = {name: localize(value) if isinstance(value, str) else value for name, value in params.items()}
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):  # a translation that names a value the code does not give
        return message.format(**values)


def localize(text: str | None) -> str | None:
    """A text for the reply in the current language: a `Text` by its template, a plain string if the
    catalogue holds it as it is, otherwise unchanged."""
    if text is None or _locale.get() == ENGLISH:
        return None if text is None else str(text)
    if isinstance(text, Text):
        return translate(text.template, **text.params)
    return translations(_locale.get()).gettext(text)


def _match(tag: str) -> str | None:
    try:
        language, territory, script, _ = parse_locale(tag.strip().replace("_", "-"), sep="-")
    except ValueError:
        return None
    if language == "en":
        return ENGLISH
    if language == "zh":
        if (script or "").lower() == "hant" or (script is None and territory in _TRADITIONAL_REGIONS):
            return None
        return CHINESE
    return None


def negotiate(header: str | None, *, default: str = ENGLISH) -> str:
    """The language to answer in (RFC 9110 §12.5.4): the caller's ranges by quality (ties in the
    order given), `zh`, `zh-CN`, `zh-Hans`… as Simplified Chinese, `en-*` as English, `*` as the
    caller's default; `q=0` excludes. No header: the default; nothing acceptable: English."""
    if not header or not header.strip():
        return default
    ranges: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
        if tag:
            ranges.append((quality, position, tag))
    excluded = {_match(tag) for quality, _, tag in ranges if quality == 0.0 and tag != "*"}
    for quality, _, tag in sorted(ranges, key=lambda r: (-r[0], r[1])):
        if quality == 0.0:
            break
        if tag == "*":
            choices = [default, *SUPPORTED]
        else:
            found = _match(tag)
            choices = [found] if found else []
        for choice in choices:
            if choice not in excluded:
                return choice
    return ENGLISH


def language_headers(tag: str) -> list[tuple[bytes, bytes]]:
    return [(b"content-language", tag.encode()), (b"vary", b"Accept-Language")]


def accept_language(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"accept-language":
            return value.decode("latin-1")
    return None


class Localization:
    """Answers each request in the language it asks for (`Content-Language`, `Vary`)."""

    def __init__(self, app: ASGIApp, *, default: str = ENGLISH) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tag = negotiate(accept_language(scope), default=self.default)
        added = language_headers(tag)

        async def send_in_language(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-language"]
                message["headers"] = [*headers, *added]
            await send(message)

        with use_locale(tag):
            await self.app(scope, receive, send_in_language)


# Pydantic's messages for the input errors this API's schemas produce, by their English template
# (pydantic_core's own, checked by the tests): a field message is translated from its error's
# template and context, so `capacity.infant` stays the field and only the sentence changes.
PYDANTIC_MESSAGES = (
    N_("Field required"),
    N_("Extra inputs are not permitted"),
    N_("Input should be a valid string"),
    N_("String should have at least {min_length} character{expected_plural}"),
    N_("String should have at most {max_length} character{expected_plural}"),
    N_("String should match pattern '{pattern}'"),
    N_("Input should be a valid integer"),
    N_("Input should be a valid integer, unable to parse string as an integer"),
    N_("Input should be a valid integer, got a number with a fractional part"),
    N_("Input should be a valid number"),
    N_("Input should be a valid number, unable to parse string as a number"),
    N_("Input should be a finite number"),
    N_("Input should be greater than {gt}"),
    N_("Input should be greater than or equal to {ge}"),
    N_("Input should be less than {lt}"),
    N_("Input should be less than or equal to {le}"),
    N_("Input should be a valid boolean"),
    N_("Input should be a valid boolean, unable to interpret input"),
    N_("Input should be {expected}"),
    N_("Input should be a valid list"),
    N_(
        "{field_type} should have at least {min_length} item{expected_plural} after validation, not {actual_length}"  # noqa: E501
    ),
    N_(
        "{field_type} should have at most {max_length} item{expected_plural} after validation, not {actual_length}"  # noqa: E501
    ),
    N_("Input should be a valid dictionary"),
    N_("Input should be a valid dictionary or instance of {class_name}"),
    N_("Input should be a valid dictionary or object to extract fields from"),
    N_("Input should be a valid date"),
    N_("Input should be a valid date in the format YYYY-MM-DD, {error}"),
    N_("Input should be a valid date or datetime, {error}"),
    N_("Input should be a valid datetime"),
    N_("Input should be a valid datetime, {error}"),
    N_("Input should be a valid datetime or date, {error}"),
    N_("Input should have timezone info"),
    N_("Input should not have timezone info"),
    N_("Input should be a valid UUID, {error}"),
    N_("Value error, {error}"),
    N_("Invalid JSON: {error}"),
    N_("Input should be a valid URL, {error}"),
    N_("Input should be a valid time"),
    N_("Input should be in a valid time format, {error}"),
    N_("Input should be a valid decimal"),
    N_("Date should be in the future"),
    N_("Date should be in the past"),
    N_("Input should be a valid set"),
    N_("Input should be a valid tuple"),
    N_("Input should be a valid string, unable to parse raw data as a unicode string"),
    N_("Unable to parse input string as an integer, exceeded maximum size"),
)


# The reason phrases a bare HTTP error is titled with (an unknown path or method inside a service).
HTTP_PHRASES = (
    N_("Bad Request"),
    N_("Unauthorized"),
    N_("Payment Required"),
    N_("Forbidden"),
    N_("Not Found"),
    N_("Method Not Allowed"),
    N_("Not Acceptable"),
    N_("Proxy Authentication Required"),
    N_("Request Timeout"),
    N_("Conflict"),
    N_("Gone"),
    N_("Length Required"),
    N_("Precondition Failed"),
    N_("Request Entity Too Large"),
    N_("Request-URI Too Long"),
    N_("Unsupported Media Type"),
    N_("Requested Range Not Satisfiable"),
    N_("Expectation Failed"),
    N_("I'm a Teapot"),
    N_("Misdirected Request"),
    N_("Unprocessable Entity"),
    N_("Locked"),
    N_("Failed Dependency"),
    N_("Too Early"),
    N_("Upgrade Required"),
    N_("Precondition Required"),
    N_("Too Many Requests"),
    N_("Request Header Fields Too Large"),
    N_("Unavailable For Legal Reasons"),
    N_("Internal Server Error"),
    N_("Not Implemented"),
    N_("Bad Gateway"),
    N_("Service Unavailable"),
    N_("Gateway Timeout"),
    N_("HTTP Version Not Supported"),
    N_("Variant Also Negotiates"),
    N_("Insufficient Storage"),
    N_("Loop Detected"),
    N_("Not Extended"),
    N_("Network Authentication Required"),
    N_("Error"),
)


def pydantic_message(error: dict[str, Any]) -> str:
    """A pydantic error's message, as a `Text` of its template when the catalogue may know it."""
    message = str(error.get("msg", "invalid"))
    context = dict(error.get("ctx") or {})
    try:
        template = PydanticKnownError(error["type"], context or None).message_template
    except (KeyError, TypeError, ValueError):
        return message
    context.setdefault("expected_plural", "" if _singular(context) else "s")
    context = {name: _context_value(value) for name, value in context.items()}
    try:
        if template.format(**context) != message:
            return message
    except (KeyError, IndexError, ValueError):
        return message
    return Text(template, **context)


def _context_value(value: Any) -> Any:
    """A validator's own message stays a `Text` (translated in turn); other values as pydantic shows them."""
    if isinstance(value, Exception) and value.args and isinstance(value.args[0], Text):
        return value.args[0]
    return value if isinstance(value, str | int | float) else str(value)


def _singular(context: dict[str, Any]) -> bool:
    for name in ("min_length", "max_length"):
        if name in context:
            return context[name] == 1
    return False
