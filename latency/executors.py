"""Executors (runtime x precision): the names callers have always imported from here, re-exported.

An executor is what a model is deployed with: torch eager (NCHW or channels_last) in fp32 or bf16,
ONNX Runtime fp32 or INT8 (static QDQ), OpenVINO fp32, bf16 or INT8. The same network can be
several times faster in one than in another, and which one is fastest depends on the CPU, so
latency always names its executor, and ``choose_executor`` picks one for this machine by timing.

Where things live: one module per runtime behind runtimes/base.py's interface, registered by name in
runtimes/registry.py; deploy.py (make_infer, make_runner, file_infer); onnx_export.py; quantize.py
(the INT8 routes); auto.py (the auto choice and its tables). New code imports from those.
"""
from __future__ import annotations

from .auto import (auto_candidates, choose_executor, executor_name, executor_summary,  # noqa: F401
                   executor_table_markdown, reference_nets)
from .deploy import deploy_file, file_infer, make_infer, make_runner, pixel_infer, torch_infer  # noqa: F401
from .onnx_export import as_arrays, export_onnx, input_names  # noqa: F401
from .quantize import (cpu_has_vnni, float_output_nodes, int8_weight_bits, is_quantized,  # noqa: F401
                       quantize_onnx, quantize_qdq)
from .runtimes.base import Compiled, Infer, Runner, Runtime, Samples  # noqa: F401
from .runtimes.files import FileRuntime, random_calibration  # noqa: F401
from .runtimes.onnxruntime_runtime import ort_session  # noqa: F401
from .runtimes.openvino_runtime import (check_openvino_precision, openvino_capabilities,  # noqa: F401
                                        openvino_compile, openvino_conv_precisions)
from .runtimes.registry import (SUPPORTED, available_executors, check_backend, check_executor,  # noqa: F401
                                executors_for, file_backends, register, unregister)
from .runtimes.torch_runtime import torch_cpu_bf16  # noqa: F401
