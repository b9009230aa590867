"""The one base class for mistakes a user can fix; the CLI prints these without a traceback."""


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text for a one-line error, cut at a word (``clip``); its type if empty."""
    lines = str(e).strip().splitlines()
    return clip(lines[0], limit) if lines else type(e).__name__


def clip(text: str, limit: int = 200) -> str:
    """``text`` at most ``limit`` characters long, cut after a whole word and marked '...' where it was cut."""
    if len(text) <= limit:
        return text
    head = text[:limit - 3]
    cut = head.rsplit(" ", 1)[0] if " " in head else head   # one long token (a path): cut inside it, said by ...
    return cut.rstrip(" ,;:") + "..."
