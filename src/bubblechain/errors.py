"""Error types shared by the library and the command line.

The CLI maps `UsageError` (bad input, unreadable files, wrong home) to exit 2;
everything that is a *finding* about the record is reported, not raised.
"""


def one_line(text: str) -> str:
    """``text`` with control characters (newlines, escape sequences) written as escapes:
    every message is one line, and a file name or a byte of bad input must not steer
    the terminal it is printed on."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text).strip()


class BubblechainError(Exception):
    """Base of all errors this package raises on purpose."""


class UsageError(BubblechainError, ValueError):
    """Bad input: a wrong path, a missing or unreadable file, a refused operation."""


class KeyFileError(UsageError):
    """A key file is missing, unreadable, malformed or too widely readable."""


class KeyFileForbidden(KeyFileError):
    """A key file this user may not read: a reader with read access only, such as an
    auditor, is expected to meet it, so reading commands say what they did not check
    instead of reporting the key as broken."""


class StoreError(UsageError):
    """A SQLite store is missing, corrupt, or not a bubblechain store."""


class Rejected(BubblechainError, ValueError):
    """A message broke a ledger rule; the text says which rule and why."""


class WitnessRefusal(BubblechainError):
    """A witness declined to cosign a block; the text says why."""

    def __init__(self, witness: str, reason: str):
        super().__init__(f"witness {witness} refused: {reason}")
        self.witness = witness
        self.reason = reason


class NotFinal(BubblechainError):
    """Blocks could not reach the witness quorum."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command was, so that it ends as an interruption does:
    a training job is recorded as failed instead of being left open."""

    def __init__(self) -> None:
        super().__init__("terminated")
