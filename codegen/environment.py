"""The one Jinja environment every template is rendered with."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

from codegen import i18n

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
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    return env


def render(template: str, **context: object) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
