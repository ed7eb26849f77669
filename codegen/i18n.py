"""The reader's language: which one, and the translated sentences, from gettext catalogs.

The catalogs are the ``.po`` files under ``codegen/locale/<lang>/LC_MESSAGES/``, read with
Babel when a language other than English is first used; English is the msgids
themselves and loads nothing.  The language comes from ``--lang``, else from the
``CHAINRULE_LANG`` environment variable, else from the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG``), else English.

Maintainers: ``pybabel extract -F babel.cfg -k N_ -o /tmp/chainrule.pot .`` lists every marked
sentence, ``pybabel update -i /tmp/chainrule.pot -d codegen/locale -D chainrule`` merges
them into the catalogs; tests/codegen/test_i18n.py fails while any sentence lacks a translation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "chainrule"
ENV = "CHAINRULE_LANG"
LANGUAGES = ("en", "ja")
DEFAULT = "en"
# Japanese fonts a reader's machine has (macOS, Windows, Linux), after the Latin ones, so
# that Latin letters and math keep their faces and each Japanese glyph falls back here.
# No web fonts: documents stay readable offline.
JAPANESE_FONTS = (
    "'Hiragino Sans', 'Hiragino Kaku Gothic ProN', 'Yu Gothic', Meiryo, "
    "'Noto Sans CJK JP', 'Noto Sans JP', IPAexGothic, IPAGothic"
)

_active: str | None = None  # chosen on first use, for a library user (Jupyter) who never passes --lang


class LanguageError(ValueError):
    """A language chainrule has no catalog for; the message is one line."""


def catalog_path(lang: str) -> Path:
    """Where the ``.po`` file of ``lang`` lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def parse_language(text: str, source: str) -> str:
    """``ja``, ``ja_JP``, ``ja-JP.UTF-8`` -> ``ja``; anything else chainrule does not speak is refused."""
    code = text.strip().replace("-", "_").split(".")[0].split("@")[0].split("_")[0].lower()
    if code not in LANGUAGES:
        raise LanguageError(f"{source} {text!r} is not a language chainrule speaks ({', '.join(LANGUAGES)})")
    return code


def from_locale(environ: os._Environ[str] | dict[str, str]) -> str:
    """The language of the user's locale, English when it is unset, C/POSIX or one without a catalog."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            try:
                return parse_language(value, name)
            except LanguageError:
                return DEFAULT
    return DEFAULT


def resolve(option: str | None, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """The language to use: the ``--lang`` option, else CHAINRULE_LANG, else the locale."""
    environ = os.environ if environ is None else environ
    if option:
        return parse_language(option, "--lang")
    if environ.get(ENV, "").strip():
        return parse_language(environ[ENV], ENV)
    return from_locale(environ)


def activate(lang: str) -> None:
    """Make ``lang`` the language of every sentence translated from now on in this process."""
    global _active
    _active = parse_language(lang, "language")


def active() -> str:
    """The language sentences are translated into now: until activate() is called, the environment's."""
    global _active
    if _active is None:
        try:
            _active = resolve(None)
        except LanguageError:
            _active = DEFAULT  # a bad CHAINRULE_LANG is the command line's to report
    return _active


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Translate into ``lang`` inside the block, then restore the previous language."""
    before = active()
    activate(lang)
    try:
        yield
    finally:
        activate(before)


@cache
def catalog(lang: str) -> dict[str, str | tuple[str, ...]]:
    """msgid -> msgstr (a tuple for plural forms) of ``lang``'s catalog; untranslated and fuzzy entries left out."""
    if lang == DEFAULT:
        return {}
    from babel.messages.pofile import read_po

    with catalog_path(lang).open("rb") as f:
        po = read_po(f, locale=lang, domain=DOMAIN)
    table: dict[str, str | tuple[str, ...]] = {}
    for entry in po:
        if not entry.id or entry.fuzzy:
            continue
        if isinstance(entry.id, tuple):
            if all(entry.string):
                table[entry.id[0]] = tuple(entry.string)
        elif entry.string:
            table[entry.id] = entry.string
    return table


def gettext(msgid: str) -> str:
    """``msgid`` in the active language (itself when there is no translation)."""
    found = catalog(active()).get(msgid)
    return found if isinstance(found, str) else msgid


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form for ``n`` in the active language; Japanese has one form for every n."""
    found = catalog(active()).get(singular)
    if isinstance(found, tuple):
        return found[0] if len(found) == 1 or n == 1 else found[1]
    return singular if n == 1 else plural


def translate(text: str) -> str:
    """A marked sentence in the active language; an unmarked string (a user's own words) unchanged.

    A marked sentence is a symbolic.messages.Message; it is recognised by its msgid, so that
    this module, which the command line imports first, does not import symbolic/ and SymPy.
    """
    msgid = getattr(text, "msgid", None)
    if msgid is None:
        return text
    params = {k: translate(v) for k, v in text.params.items()}  # type: ignore[attr-defined]
    return gettext(msgid).format(**params) if params else gettext(msgid)


def message_of(exc: BaseException) -> str:
    """An error's message as raised: a marked sentence stays marked, to be translated where it is shown."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _(msgid: str, /, **params: object) -> str:
    """Translate ``msgid`` and fill its ``{name}`` fields: the marker for the shell's own sentences."""
    text = gettext(msgid)
    return text.format(**params) if params else text


def columns(text: str) -> int:
    """How many columns ``text`` takes in a terminal: a wide (CJK) character takes two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def book_sections(sections: str) -> str:
    """The book's sections as the reader's language cites them: "5.6.3, appendix A" is 5.6.3 節・付録A."""
    parts = [p.strip() for p in sections.split(",") if p.strip()]
    shown = [
        _("appendix {letter}", letter=p.removeprefix("appendix ").strip())
        if p.startswith("appendix ")
        # TRANSLATORS: a section number of the book, cited in a sentence ("5.5.2" is 5.5.2 節)
        else _("{section}", section=p)
        for p in parts
    ]
    return _(", ").join(shown)


def N_(msgid: str) -> str:  # noqa: N802 - the name gettext's tools look for
    """Mark a sentence of the shell that is kept now and translated where it is shown, with ``_``."""
    return msgid
