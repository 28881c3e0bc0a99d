"""Errors the user can fix. The command line prints them as one clear line and exits non-zero,
without a traceback (`--debug` shows one)."""


class UserError(Exception):
    """Bad input: a file, a line, a field or a flag that is not what was expected."""
