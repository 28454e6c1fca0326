"""Translations: Babel catalogs under `locale/<lang>/LC_MESSAGES/*.po`.

Message ids are the Spanish source strings (Spanish is the default language), so Spanish needs no
catalog. Every `.po` file of a language is read and merged at first use: each surface of the
product keeps its own file (web.po, portal.po, notify.po, ...).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LANGUAGE = "es"
SUPPORTED_LANGUAGES = ("es", "en")


@cache
def catalog(language: str) -> dict[str, str]:
    messages: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / language / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as fh:
            for message in read_po(fh, locale=language):
                if message.id and message.string and not message.fuzzy:
                    messages[str(message.id)] = str(message.string)
    return messages


def gettext(language: str, message: str) -> str:
    if language == DEFAULT_LANGUAGE:
        return message
    return catalog(language).get(message, message)
