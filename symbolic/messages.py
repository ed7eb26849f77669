"""Sentences a derivation carries, marked so they can be shown in the reader's language.

A derivation's title, summary, step reasons and notes are English strings, and stay
ordinary strings everywhere: this module only marks them.  ``N_("...")`` marks a fixed
sentence; ``N_("... {value} ...", value=...)`` marks a sentence with values in it and keeps the sentence and the values apart, so that a translation can place them where
its grammar wants them.  The lookup happens where the sentence is rendered (codegen.i18n);
symbolic/ does no file reading and knows no language but English.
"""

from __future__ import annotations


class Message(str):
    """An English sentence (the string itself) that remembers its msgid and the values filled in."""

    msgid: str
    params: dict[str, str]

    def __new__(cls, msgid: str, params: dict[str, str]) -> Message:
        # A value that is itself a marked sentence (a node's name in a reason) stays a Message,
        # so that it is translated with the sentence it sits in.
        text = super().__new__(cls, msgid.format(**params) if params else msgid)
        text.msgid = msgid
        text.params = params
        return text

    def __reduce__(self) -> tuple:
        """Pickled (a derivation crosses a process boundary in the bounded worker) with its msgid."""
        return (Message, (self.msgid, self.params))


def N_(msgid: str, /, **params: object) -> Message:  # noqa: N802 - the name gettext's tools look for
    """A sentence marked for translation; ``{name}`` fields take the values (math, names, numbers), untranslated."""
    return Message(msgid, {k: v if isinstance(v, Message) else str(v) for k, v in params.items()})
