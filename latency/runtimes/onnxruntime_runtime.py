"""ONNX Runtime (CPU execution provider) as a runtime: fp32, or INT8 from a static QDQ file."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..fingerprint import resolve_threads
from ..quantize import is_quantized
from .base import Compiled
from .files import FileRuntime


def ort_session(path: str | Path, threads: int):
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort  # why: optional runtime, and its import is heavy
    so = ort.SessionOptions()
    so.intra_op_num_threads = resolve_threads(threads)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


class OnnxRuntime(FileRuntime):
    """ONNX Runtime's CPU session; an INT8 file runs its QDQ nodes as integer kernels."""
    name = "onnxruntime"
    precisions = ("fp32", "int8")
    package = "onnxruntime"

    def load(self, path: str | Path, precision: str, threads: int,
             shapes: Sequence[Sequence[int]] | None = None) -> Compiled:
        sess = ort_session(path, threads)
        names = [i.name for i in sess.get_inputs()]
        # ORT runs a file as it is: its precision is the file's (the QDQ nodes fold into integer kernels)
        return Compiled(lambda xs: sess.run(None, dict(zip(names, xs)))[0], "int8" if is_quantized(path) else "fp32")
