"""Domain errors. Services raise these; app.py maps them to HTTP once."""

from __future__ import annotations


class SaldoError(Exception):
    """Base of every error a user can be told about."""

    status_code = 400
    title = "Bad request"


class NotFound(SaldoError):
    status_code = 404
    title = "Not found"


class Conflict(SaldoError):
    status_code = 409
    title = "Conflict"


class ValidationFailed(SaldoError):
    status_code = 422
    title = "Invalid input"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ImportFileError(SaldoError):
    """A portfolio file has a bad row; nothing of that file was imported."""

    status_code = 422
    title = "Import rejected"

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class LoginRequired(SaldoError):
    """The page needs a signed-in debtor (HTML: redirect to /login; JSON: 401)."""

    status_code = 401
    title = "Sign-in required"
