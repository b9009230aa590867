"""Per-device latency: fingerprint, op catalogue, measurement backends, LUT build/load, latency model."""
from .build import build_lut, calibrate_lut, default_lut_path, executor_fingerprint, is_foreign, load_lut
from .catalogue import OpKey, block_templates, catalogue
from .fingerprint import fingerprint, fingerprint_diff
from .lut import LUT, FingerprintMismatch, LUTFingerprintWarning, MissingRow, Row
from .model import InfeasibleTarget, LatencyModel
from .timing import measure_module, time_interleaved

__all__ = ["LUT", "LatencyModel", "InfeasibleTarget", "MissingRow", "FingerprintMismatch", "LUTFingerprintWarning",
           "Row", "OpKey", "measure_module", "time_interleaved", "build_lut", "calibrate_lut", "default_lut_path",
           "executor_fingerprint", "is_foreign", "load_lut", "fingerprint", "fingerprint_diff", "catalogue", "block_templates"]
