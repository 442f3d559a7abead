"""Pure rules for free text that people see: names, labels, contact names.

A name made only of a zero-width space looks empty; one holding a right-to-left override
(U+202E) shows its characters in another order than they are stored ("‮txt.exe" reads
as "exe.txt"), which is how a name or an address label is made to impersonate another.
Names must hold at least one visible character (a letter, digit, punctuation mark or
symbol that draws something) and no control or format character: the bidirectional
controls, zero-width spaces and joiners, the byte-order mark, soft hyphens, line and
paragraph separators, tag characters, private-use and unassigned code points.
"""

from __future__ import annotations

import unicodedata

from doorstep.errors import InvalidInput

# Categories that may not appear at all: controls (Cc), format characters (Cf: bidi
# controls, zero-width space/joiners, BOM, soft hyphen, tags), surrogates (Cs),
# private use (Co), unassigned (Cn), line (Zl) and paragraph (Zp) separators.
_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Categories that draw something by themselves.
_VISIBLE = frozenset({"L", "N", "P", "S"})
# Letters and symbols that render as blank (Unicode's Default_Ignorable_Code_Point
# letters, and the braille blank): a "name" of these looks empty.
_BLANK = frozenset(
    {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e", "\u034f", "\u17b4", "\u17b5"}
)


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def check_visible_text(
    text: str,
    field: str,
    *,
    max_length: int,
    required: bool = True,
    single_line: bool = True,
    error: type[InvalidInput] = InvalidInput,
) -> str:
    """``text`` trimmed, or :class:`InvalidInput` naming ``field`` and the rule it broke.

    ``required`` texts need a visible character; optional ones may be empty (after
    trimming) but, when not empty, follow the same rules.
    """
    text = text.strip()
    if not text:
        if required:
            raise error("must hold at least one visible character", field=field)
        return text
    if len(text) > max_length:
        raise error(f"must be at most {max_length} characters", field=field)
    for ch in text:
        category = unicodedata.category(ch)
        if category in _FORBIDDEN and (single_line or ch != "\n"):
            kind = (
                "bidirectional control"
                if unicodedata.bidirectional(ch) in {"LRE", "RLE", "LRO", "RLO", "PDF"}
                or ch in "\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
                else "invisible or control character"
            )
            raise error(
                f"must not contain a {kind} ({_describe(ch)})",
                field=field,
            )
    if not any(unicodedata.category(ch)[0] in _VISIBLE and ch not in _BLANK for ch in text):
        raise error("must hold at least one visible character", field=field)
    return text
