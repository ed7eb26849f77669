"""Translations: every sentence a reader sees has a Japanese translation, and the language is chosen as documented."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from chainrule.codegen import i18n
from chainrule.symbolic.messages import N_
from tests.helpers import chainrule

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


def _extracted() -> dict[str, list[str]]:
    """msgid -> where it is used, from the Python sources and the templates, as pybabel extract -F babel.cfg sees them."""
    found: dict[str, list[str]] = {}
    for package in ("chainrule", "codegen", "symbolic"):
        method_map = [("**.py", "python"), ("**.jinja", "jinja2")]
        options_map = {"**.jinja": {"extensions": "jinja2.ext.i18n"}}
        for filename, lineno, msg, _comments, _context in extract_from_dir(
            ROOT / package, method_map, options_map, keywords=KEYWORDS
        ):
            msgid = msg[0] if isinstance(msg, tuple) else msg  # a plural entry is filed under its singular
            if msgid:
                found.setdefault(msgid, []).append(f"{package}/{filename}:{lineno}")
    return found


def _catalog():
    with i18n.catalog_path("ja").open("rb") as f:
        return read_po(f, locale="ja")


def _fields(text: str) -> set[str]:
    """The {name} fields of a str.format sentence and the %(name)s fields of a Jinja one.

    A sentence without values keeps LaTeX's braces as they are ($\\frac{1}{y}$), so only a
    single-braced name counts as a field; doubled braces are literal braces.
    """
    braces = set(re.findall(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})", text))
    return braces | set(re.findall(r"%\((\w+)\)s", text))


def test_every_marked_sentence_has_a_japanese_translation() -> None:
    extracted = _extracted()
    po = _catalog()
    assert len(extracted) > 0
    missing = []
    for msgid, where in sorted(extracted.items()):
        entry = po.get(msgid)
        if (
            entry is None
            or entry.fuzzy
            or not entry.string
            or (isinstance(entry.string, tuple) and not all(entry.string))
        ):
            missing.append(f"{msgid!r} ({where[0]})")
    assert not missing, "no Japanese translation for:\n" + "\n".join(missing)


def test_the_catalog_has_no_sentence_the_code_no_longer_uses() -> None:
    extracted = _extracted()
    stale = [
        entry.id
        for entry in _catalog()
        if entry.id and (entry.id[0] if isinstance(entry.id, tuple) else entry.id) not in extracted
    ]
    assert not stale, f"entries no code uses (run pybabel update): {stale}"


def test_translations_keep_every_field_of_their_sentence() -> None:
    wrong = []
    for entry in _catalog():
        if not entry.id:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        for translated in strings:
            if translated and _fields(translated) != _fields(ids[0]):
                wrong.append(f"{ids[0]!r}: {translated!r}")
    assert not wrong, "\n".join(wrong)


def _marked_calls():
    """Every ``_("...", k=v)`` and ``N_("...", k=v)`` call in the sources: (where, msgid, keywords, has **kwargs)."""
    import ast

    for package in ("chainrule", "codegen", "symbolic"):
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                if node.func.id not in ("_", "N_") or not node.args:
                    continue
                first = node.args[0]
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    continue
                names = {k.arg for k in node.keywords if k.arg is not None}
                spread = any(k.arg is None for k in node.keywords)
                yield f"{path.relative_to(ROOT)}:{node.lineno}", first.value, names, spread


def test_every_field_of_a_marked_sentence_is_given_a_value() -> None:
    # A field without its value is a KeyError when the sentence is shown: an error message
    # that itself fails is a traceback for the user.
    calls = list(_marked_calls())
    assert len(calls) > 300
    wrong = []
    for where, msgid, names, spread in calls:
        fields = set(re.findall(r"(?<!\{)\{([A-Za-z_]\w*)\}(?!\})", msgid)) if names or spread else set()
        if spread:
            if not names <= fields:
                wrong.append(f"{where}: {msgid!r} given {sorted(names - fields)} it does not use")
        elif fields != names:
            wrong.append(f"{where}: {msgid!r} has {sorted(fields)}, given {sorted(names)}")
    assert not wrong, "\n".join(wrong)


def test_language_comes_from_the_option_then_the_variable_then_the_locale() -> None:
    assert i18n.resolve("ja", {"CHAINRULE_LANG": "en"}) == "ja"
    assert i18n.resolve(None, {"CHAINRULE_LANG": "ja", "LANG": "en_US.UTF-8"}) == "ja"
    assert i18n.resolve(None, {"LANG": "ja_JP.UTF-8"}) == "ja"
    assert i18n.resolve(None, {"LC_ALL": "ja_JP.eucJP", "LANG": "en_GB.UTF-8"}) == "ja"
    assert i18n.resolve(None, {"LANG": "C.UTF-8"}) == "en"
    assert i18n.resolve(None, {"LANG": "fr_FR.UTF-8"}) == "en"
    assert i18n.resolve(None, {}) == "en"
    assert i18n.resolve("ja-JP", {}) == "ja"
    with pytest.raises(i18n.LanguageError, match="'fr' is not a language"):
        i18n.resolve("fr", {})
    with pytest.raises(i18n.LanguageError, match="CHAINRULE_LANG"):
        i18n.resolve(None, {"CHAINRULE_LANG": "klingon"})


def test_a_marked_sentence_is_english_until_rendered_and_survives_pickling() -> None:
    fixed = N_("chainrule: error: {message}")
    filled = N_("chainrule: error: {message}", message="x")
    assert filled == "chainrule: error: x"
    assert pickle.loads(pickle.dumps(filled)).params == {"message": "x"}
    with i18n.language("ja"):
        assert i18n.translate(filled) == "chainrule: エラー: x"
        assert i18n.translate("a user's own words") == "a user's own words"
    assert i18n.translate(fixed) == "chainrule: error: {message}"
    nested = N_("chainrule: error: {message}", message=N_("chainrule: error: {message}", message="x"))
    assert nested == "chainrule: error: chainrule: error: x"
    with i18n.language("ja"):
        assert i18n.translate(nested) == "chainrule: エラー: chainrule: エラー: x"


def test_an_unknown_language_is_one_line_and_exit_2() -> None:
    done = chainrule("derive", "relu", "--lang", "fr")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "chainrule: error: --lang 'fr' is not a language chainrule speaks (en, ja)"
    ]


def test_a_library_user_gets_the_language_of_the_environment():
    """In Jupyter there is no --lang: a derivation shows itself in CHAINRULE_LANG's language, else the locale's."""
    code = "from chainrule import symbolic; print(symbolic.derive('add').markdown().splitlines()[0])"
    env = {
        k: v for k, v in os.environ.items() if k not in ("CHAINRULE_LANG", "LC_ALL", "LC_MESSAGES", "LANG")
    }
    for extra, first in (
        ({"CHAINRULE_LANG": "ja"}, "## 加算ノード"),
        ({"LANG": "ja_JP.UTF-8"}, "## 加算ノード"),
        ({}, "## Add node"),
    ):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={**env, **extra}
        )
        assert done.stdout.strip() == first, (extra, done.stderr)
