"""Derivations as HTML, the same in the report and a notebook: LaTeX as MathML, figures as inline SVG."""

from __future__ import annotations

import html
import re


def math(tex: str, display: bool = False) -> str:
    """Our printed LaTeX as MathML Core; ``display`` for an equation set on its own line."""
    from latex2mathml.converter import convert

    # latex2mathml drops mathvariant="normal" from a one-letter \mathrm{d}, and a one-letter <mi>
    # is italic in MathML; \text keeps the differential's d upright, as the LaTeX shows it.
    tex = re.sub(r"\\mathrm\{([A-Za-z])\}", r"\\text{\1}", tex)
    return spaced(convert(tex, display="block" if display else "inline"))


MINUS = "<mo>&#x02212;</mo>"
BAR = '<mo stretchy="false">&#x0007C;</mo>'
# What may come just before a minus that is a sign, not a subtraction: the start of a row, an
# operator (=, +, \cdot, an opening bracket ...) or an element's first child.
_SIGN_AFTER = re.compile(
    r"(<mrow>|<math [^>]*>|<mo(?P<attrs>[^>]*)>(?P<op>[^<]*)</mo>|<msup>|<msub>|<mfrac>|<msqrt>|<mtd>)$"
)
# Operators after which a minus is a subtraction: closing brackets and bars.
_CLOSING = {")", "]", "}", "|", "&#x00029;", "&#x0005D;", "&#x0007D;", "&#x0007C;", "&#x0232A;", "&#x027E9;"}


def _is_sign(before: str) -> bool:
    """Whether a minus written after ``before`` is a sign: nothing, or an operator that is no closing one."""
    m = _SIGN_AFTER.search(before)
    if m is None:
        return False
    return m.group("op") is None or (
        m.group("op") not in _CLOSING and 'form="postfix"' not in m.group("attrs")
    )


def spaced(mathml: str) -> str:
    """MathML Core's spacing fixed where latex2mathml leaves an operator's default.

    A minus that is a sign (``a = -x``, ``e^{-x}``) is a prefix operator without space around it,
    not the binary minus of ``y - t``; a pair of bars ``|x|`` are fences, set tight against x.
    """
    out: list[str] = []
    at = 0
    for m in re.finditer(re.escape(MINUS), mathml):
        out.append(mathml[at : m.start()])
        out.append(
            '<mo form="prefix" lspace="0" rspace="0">&#x02212;</mo>' if _is_sign("".join(out)) else MINUS
        )
        at = m.end()
    out.append(mathml[at:])
    text = "".join(out)
    pieces = text.split(BAR)
    if len(pieces) > 1 and len(pieces) % 2 == 1:  # bars in pairs: open, close, open, close ...
        fences = ('<mo fence="true" form="prefix" lspace="0" rspace="0">|</mo>',
                  '<mo fence="true" form="postfix" lspace="0" rspace="0">|</mo>')  # fmt: skip
        text = pieces[0] + "".join(fences[i % 2] + piece for i, piece in enumerate(pieces[1:]))
    return text


def prose_html(text: str) -> str:
    """A reason or note: its words HTML-escaped, its inline math as MathML."""
    from chainrule.codegen.document import prose

    return "".join(math(t) if is_math else html.escape(t) for is_math, t in prose(" ".join(text.split())))


def boxed(tex: str) -> str:
    """A result as the LaTeX document sets it: displayed, in a box."""
    return math(rf"\boxed{{{tex}}}", display=True)


def figure_names(derivation: str) -> tuple[str, ...]:
    """The figures that go with a derivation, by name (``document_figures`` gives their TikZ)."""
    from chainrule.codegen.figures import DOCUMENT_FIGURES, FIGURES

    return tuple(n for n in DOCUMENT_FIGURES.get(derivation, (derivation,)) if n in FIGURES)


def inline_svg(name: str) -> str:
    """A figure's SVG for inside an HTML page: no XML declaration, ids unique among the figures."""
    from chainrule.codegen.figures import svg

    return inline(svg(name), name)


def inline(document: str, prefix: str) -> str:
    """An SVG document for inside an HTML page: no XML declaration, its ids prefixed with ``prefix``."""
    text = re.sub(r"\A<\?xml[^>]*\?>\s*", "", document)
    # Every figure defines the same marker ids; an HTML page must not repeat an id.
    for ident in re.findall(r'\bid="([^"]+)"', text):
        text = text.replace(f'id="{ident}"', f'id="{prefix}-{ident}"')
        text = text.replace(f"url(#{ident})", f"url(#{prefix}-{ident})")
    return scaled_svg(text)


def scaled_svg(text: str) -> str:
    """An SVG drawn at the size where its smallest text is the page's body text (1rem), never smaller.

    The figure is as many rem wide as its viewBox is wide in units of its smallest font size; a figure
    wider than the column scrolls sideways instead of shrinking its labels.
    """
    box = re.search(r'<svg [^>]*\bviewBox="[-\d.]+ [-\d.]+ ([\d.]+) [\d.]+"', text)
    sizes = [float(size) for size in re.findall(r'\bfont-size="([\d.]+)"', text)]
    if box is None or not sizes:
        return text
    width = float(box.group(1)) / min(sizes)
    return re.sub(r"<svg ([^>]*)>", rf'<svg \1 style="width: {width:.2f}rem; height: auto">', text, count=1)


def filters() -> dict[str, object]:
    """What a page's template sets derivations with: formulas, results, plain text and prose."""
    return {"math": math, "boxed": boxed, "text": html.escape, "prose": prose_html}
