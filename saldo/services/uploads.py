"""Files debtors send (payment receipts, dispute evidence): checked by content, stored outside
`static/`, served back only as downloads.

- The type is what the bytes say, never the name or the browser's Content-Type: a PDF starts
  with `%PDF-` and ends with `%%EOF`, a PNG with its 8-byte signature and an IHDR chunk, a JPEG
  with an SOI marker followed by another marker. Anything else is refused.
- At most `MAX_UPLOAD_BYTES` (5 MB); an empty file is refused too.
- The file is stored under `<data_dir>/uploads/<first two hex digits>/<sha256>.<ext>`, so the
  same receipt sent twice is kept once, and a stored name never comes from user input. The
  `Attachment` row keeps the original (cleaned) file name for the download.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.tables import Attachment

__all__ = [
    "MAX_UPLOAD_BYTES",
    "StoredFile",
    "UploadRejected",
    "check_upload",
    "read_upload",
    "sniff",
    "store_upload",
]

#: The largest file a debtor may upload (5 MB).
MAX_UPLOAD_BYTES: Final = 5 * 1024 * 1024
UPLOADS_DIR: Final = "uploads"
_MAX_NAME: Final = 120
_PDF_TRAILER_WINDOW: Final = 2048


class UploadRejected(ValidationFailed):
    """The file is empty, too large or not a PDF, JPEG or PNG (`reason` says which)."""

    def __init__(self, message: str, reason: str, field: str = "receipt") -> None:
        super().__init__(message, field=field)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredFile:
    filename: str
    content_type: str
    content: bytes

    @property
    def disposition(self) -> str:
        """`Content-Disposition` for a download: an ASCII name plus the UTF-8 one (RFC 6266)."""
        fallback = unicodedata.normalize("NFKD", self.filename).encode("ascii", "ignore").decode()
        fallback = re.sub(r"[^A-Za-z0-9._ -]+", "", fallback).strip() or "comprobante"
        return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(self.filename)}"


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of a PDF, PNG or JPEG judged by its bytes, else None."""
    if data.startswith(b"%PDF-") and b"%%EOF" in data[-_PDF_TRAILER_WINDOW:]:
        return "application/pdf", "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return "image/png", "png"
    if len(data) > 4 and data.startswith(b"\xff\xd8\xff") and data[3] >= 0xC0:
        return "image/jpeg", "jpg"
    return None


def clean_filename(filename: str, extension: str) -> str:
    """A safe display name: no path, no control characters, the extension the content has."""
    base = re.split(r"[\\/]", filename or "")[-1]
    base = "".join(
        c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C"
    )
    base = re.sub(r'["<>:|?*;]+', "", base).strip(" .")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = stem[:_MAX_NAME].strip(" .") or "comprobante"
    return f"{stem}.{extension}"


def check_upload(data: bytes, *, language: str = "es") -> tuple[str, str]:
    """(content type, extension) of an acceptable file, else `UploadRejected`."""
    if not data:
        raise UploadRejected(gettext(language, "El archivo está vacío."), "empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadRejected(gettext(language, "El archivo supera el máximo de 5 MB."), "too_large")
    kind = sniff(data)
    if kind is None:
        raise UploadRejected(
            gettext(
                language,
                "El archivo no es un PDF, JPG ni PNG. Adjunte el comprobante en uno de esos "
                "formatos.",
            ),
            "type",
        )
    return kind


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return  # same content already stored
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    with temporary.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


async def store_upload(
    data: bytes,
    filename: str,
    *,
    data_dir: Path,
    uploaded_by: str = "debtor",
    language: str = "es",
) -> int:
    """Check and store one uploaded file; returns the new `Attachment` id.

    Raises `UploadRejected` (a `ValidationFailed` for the field `receipt`) with a message in
    `language` when the file is empty, larger than `MAX_UPLOAD_BYTES`, or not a PDF/JPEG/PNG.
    """
    content_type, extension = check_upload(data, language=language)
    digest = hashlib.sha256(data).hexdigest()
    relative = Path(UPLOADS_DIR) / digest[:2] / f"{digest}.{extension}"
    await asyncio.to_thread(_write, data_dir / relative, data)
    rows = await Attachment.insert(
        Attachment(
            filename=clean_filename(filename, extension),
            content_type=content_type,
            size=len(data),
            sha256=digest,
            storage_path=relative.as_posix(),
            uploaded_by=uploaded_by,
        )
    ).returning(Attachment.id)
    return int(rows[0]["id"])


def _read(path: Path) -> bytes:
    return path.read_bytes()


async def read_upload(attachment_id: int, *, data_dir: Path) -> StoredFile:
    """The stored file of an attachment (callers check who may see it first)."""
    row = await Attachment.objects().get(Attachment.id == attachment_id)
    if row is None:
        raise NotFound("attachment not found")
    root = (data_dir / UPLOADS_DIR).resolve()
    path = (data_dir / row.storage_path).resolve()
    if not path.is_relative_to(root):
        raise NotFound("attachment not found")
    try:
        content = await asyncio.to_thread(_read, path)
    except FileNotFoundError:
        raise NotFound("attachment file is missing") from None
    return StoredFile(row.filename, row.content_type, content)
