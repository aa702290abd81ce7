"""Name folding: searches by name are case- and accent-insensitive prefix searches on a stored folded form."""

from __future__ import annotations

import unicodedata

MAX_NAME_KEYS = 12  # bounds the index entries one contact adds, whatever its names
# Letters NFKD does not split into base letter + mark (dotless i, o with stroke, l with stroke, d with stroke)
UNDECOMPOSABLE = str.maketrans({"\u0131": "i", "\u00f8": "o", "\u00d8": "o", "\u0142": "l", "\u0141": "l",
                                "\u0111": "d", "\u0110": "d"})


def fold(text: str) -> str:
    """'Émile  ÇAĞRI' -> 'emile cagri': no accents, case-folded, single spaces (NFKD drops the marks)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    special = stripped.translate(UNDECOMPOSABLE)
    return " ".join(special.casefold().split())


def name_keys(*names: str | None) -> list[str]:
    """The folded full names and every word-suffix ('anna maria silva' -> also 'maria silva', 'silva'),
    so a prefix search finds a contact by any of its words, in order."""
    keys: list[str] = []
    for name in names:
        if not name:
            continue
        words = fold(name).split(" ")
        for start in range(len(words)):
            key = " ".join(words[start:])
            if key and key not in keys:
                keys.append(key)
    return keys[:MAX_NAME_KEYS]
