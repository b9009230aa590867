"""The one base class for mistakes a user can fix; the CLI prints these without a traceback."""


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do."""
