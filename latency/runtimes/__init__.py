"""Runtimes that deploy and time a model: one module per runtime behind the interface of base.py.

Adding one (TensorRT, CoreML, LiteRT, ...) is a new module with a ``Runtime`` subclass plus one
``register(...)`` line in registry.py; ``make_infer``, timing, the auto choice and ``srnas bench``
then reach it by its name. Runtimes that run an exported ONNX file subclass files.FileRuntime.
This package's __init__ imports nothing, so importing one of its modules loads only what that needs.
"""
