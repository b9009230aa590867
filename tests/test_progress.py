"""Progress bars into a log file write a few lines, not thousands of redraws."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import time
from srnas.supernet.progress import progress_bar
bar = progress_bar(total=3000, desc="steps")
for i in range(3000):
    time.sleep(0.001)
    bar.update(1)
    bar.set_postfix(loss=f"{1 / (i + 1):.4f}")      # as supernet training does every step
bar.close()
"""


def test_bar_into_a_file_stays_small(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", SCRIPT], stderr=f, stdout=f, check=True, timeout=120)
    text = log.read_text()
    assert "3000/3000" in text                   # the final state is written
    assert len(text) < 1000, len(text)           # tqdm's default would redraw ~every 0.1 s


def test_every_bar_goes_through_progress_bar():
    """tqdm is used in one place only, so no stage writes redraws into a log file."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    users = [str(f.relative_to(root)) for pkg in ("supernet", "latency", "pruning", "search", "experiments")
             for f in (root / pkg).rglob("*.py") if "tqdm" in f.read_text()]
    assert users == ["supernet/progress.py"]
