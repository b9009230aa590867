"""Progress bars that suit where the output goes: redrawn on a terminal, a line every 30 s into a file."""
from __future__ import annotations

import sys

from tqdm import tqdm

FILE_INTERVAL_S = 30.0   # a stage run into a log file (CI, nohup, a cluster job) writes a few lines, not redraws


class _FileBar(tqdm):
    """A bar writing into a file: a new postfix waits for the next timed update instead of redrawing."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)


def end_bars() -> None:
    """Close every bar still drawn (a stage stopped by an error): a message printed next starts on a line of its own
    instead of after the bar's last drawing, which the bar's own close would then draw over."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar; when stderr is not a terminal it updates at most every FILE_INTERVAL_S seconds."""
    if sys.stderr.isatty():
        return tqdm(iterable, **{"dynamic_ncols": True, **kwargs})
    # maxinterval too: tqdm's monitor thread otherwise forces a redraw of a slow bar every 10 s
    kwargs.update(mininterval=max(kwargs.get("mininterval", 0.0), FILE_INTERVAL_S), maxinterval=FILE_INTERVAL_S,
                  dynamic_ncols=False, ncols=kwargs.get("ncols", 100))
    return _FileBar(iterable, **kwargs)
