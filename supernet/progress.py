"""Progress bars that suit where the output goes: redrawn on a terminal, a line every 30 s into a file."""
from __future__ import annotations

import sys

from tqdm import tqdm

FILE_INTERVAL_S = 30.0   # a stage run into a log file (CI, nohup, a cluster job) writes a few lines, not redraws


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """A tqdm bar; when stderr is not a terminal it updates at most every FILE_INTERVAL_S seconds."""
    if not sys.stderr.isatty():
        kwargs.update(mininterval=max(kwargs.get("mininterval", 0.0), FILE_INTERVAL_S), dynamic_ncols=False,
                      ncols=kwargs.get("ncols", 100))
    else:
        kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
