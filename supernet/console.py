"""What reaches the console: third-party warnings a user cannot act on are muted where they are triggered,
each by its category and message (never a blanket ignore, so a new warning still shows), and the command
line prints srnas's own warnings as one plain line each, once per command."""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

# (category, message regex): what torch.ao, torch.onnx and ONNX Runtime's quantization tooling say on every
# call about their own internals or future releases; srnas pins the versions it runs with (constraints.txt)
KNOWN_NOISE: list[tuple[type[Warning], str]] = [
    # torch.ao: observers built with reduce_range (its x86 defaults), and torch's int8 tensors (its int8 kernels)
    (UserWarning, r"Please use quant_min and quant_max to specify the range for observers"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation"),
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"must run observer before calling calculate_qparams"),
    # torch.onnx's TorchScript exporter on plain conv graphs
    (UserWarning, r"Constant folding - Only steps=1 can be constant folded"),
    (UserWarning, r"Exporting aten::index operator of advanced indexing"),
    (DeprecationWarning, r"You are using the legacy TorchScript-based ONNX export"),
    (FutureWarning, r"You are using the legacy TorchScript-based ONNX export"),
    # torch's notes on its own TorchScript API, which exported files and torch.ao's int8 form still use
    (DeprecationWarning, r"`torch\.jit\.(load|script|trace)` is deprecated"),
    # ONNX Runtime's quantize_static: its advice to pre-process, which srnas does first
    (UserWarning, r"Please consider to run pre-processing before quantization"),
]


@contextlib.contextmanager
def muted() -> Iterator[None]:
    """Mute the known third-party warnings (KNOWN_NOISE) inside the block, and nothing else."""
    with warnings.catch_warnings():
        for category, message in KNOWN_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category)
        yield


def _plain(seen: set[str]):
    """A warnings.formatwarning giving 'srnas: warning: <message>' once per distinct message ("" after)."""
    def fmt(message, category, filename, lineno, line=None) -> str:
        text = " ".join(str(message).split())
        if text in seen:
            return ""
        seen.add(text)
        return f"srnas: warning: {text}\n"
    return fmt


@contextlib.contextmanager
def plain_warnings() -> Iterator[None]:
    """Inside the block (one command), every warning prints as one plain line, a repeated one not again; the
    known third-party noise is muted. Formatting, not showing, is replaced: a caller recording warnings
    (warnings.catch_warnings(record=True), pytest.warns) still gets every one."""
    saved = warnings.formatwarning
    warnings.formatwarning = _plain(set())
    try:
        with muted():
            yield
    finally:
        warnings.formatwarning = saved
