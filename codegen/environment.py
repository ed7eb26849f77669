"""The one Jinja environment every template is rendered with."""

from __future__ import annotations

import shlex
from functools import cache
from pathlib import Path

import jinja2

from chainrule.codegen import i18n

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    """Strict (an undefined name is an error), whitespace-tidy, deterministic.

    Sentences a reader sees are marked ``{% trans %}`` (Jinja's i18n extension) and looked
    up in the active language at render time (codegen.i18n).
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=["jinja2.ext.i18n"],
    )
    env.filters.update(pyrepr=pyrepr, shell_quote=shell_quote, comment=comment)
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def pyrepr(value: object) -> str:
    """A Python literal of ``value``: the only way a user's string (a folder name, a path) enters code."""
    if not isinstance(value, str):
        raise TypeError(f"pyrepr takes a string, not {type(value).__name__}")
    return repr(value)


def _escape(char: str) -> str:
    code = ord(char)
    if char in "\\'":
        return "\\" + char
    if code < 0x100:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shell_quote(text: str) -> str:
    """``text`` as one shell word on one line of printable characters.

    shlex.quote when every character is printable; otherwise bash's ``$'...'`` with every
    character that is not printable (a newline, a line or paragraph separator) escaped, so
    the word can stand in a comment or a one-line message and still be typed.
    """
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(c if c.isprintable() and c not in "\\'" else _escape(c) for c in text) + "'"


def comment(text: str) -> str:
    """``text`` safe in a ``#`` comment: nothing in it can end the line (every unprintable character escaped)."""
    return "".join(c if c.isprintable() else _escape(c) for c in str(text))


def render(template: str, **context: object) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
