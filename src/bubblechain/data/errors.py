"""The one error type of the data package."""

from bubblechain.errors import UsageError


class DataError(UsageError):
    """Bad data input: unreadable file, missing id column, duplicate or null id, ….

    The message is one line and names the source (path) and what is wrong, so
    the command line prints it as is (a UsageError, hence exit status 2).
    """
