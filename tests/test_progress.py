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


def test_an_error_while_a_bar_is_drawn_starts_on_its_own_line(tmp_path, capsys, monkeypatch):
    """The one error line was printed after the bar's last drawing ("supernet:   0%|...| 0/6 [...]srnas supernet:
    error: ..."), and on a terminal the bar's close then drew over it."""
    import srnas.supernet.cli as supernet_cli
    from conftest import tiny_config
    from srnas.search.cli import main
    from srnas.supernet.errors import UserError

    def stopped(*a, **k):
        from srnas.supernet.progress import progress_bar
        bar = progress_bar(total=6, desc="supernet")
        bar.update(3)
        raise UserError("something the user can fix")

    monkeypatch.setattr(supernet_cli, "train_supernet", stopped)
    assert main(["supernet", "train", "-c", str(tiny_config(tmp_path))]) == 2
    lines = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines[-1] == "srnas supernet: error: something the user can fix", lines
