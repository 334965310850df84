"""The one error type of the data package."""


class DataError(ValueError):
    """Bad data input: unreadable file, missing id column, duplicate or null id, ….

    The message is one line and names the source (path) and what is wrong, so
    a command line can print it as is.
    """
