"""Frames in flight: frames of one size through a model, answered in the order given, one at a time (Flight) or
several in the runtime's own asynchronous queue (AsyncFlight, OpenVINO's AsyncInferQueue)."""
from __future__ import annotations

import collections
import functools
import threading
import time
from typing import Callable, Iterable, Iterator

import numpy as np


class Flight:
    """Frames of one size and dtype through the model, answered in the order given: this base runs each at
    ``submit`` (torch, ONNX Runtime: one call at a time); AsyncFlight keeps several in the runtime's queue.

    ``prepare`` makes a decoded frame model-ready (off the model's thread in a video); ``busy_s`` is the wall
    time the model had at least one frame, the model's share of a pipeline; ``planes``: answers are YUV 4:2:0
    planes (Y, UV) for an encoder, not RGB.
    """

    jobs = 1
    planes = False

    def __init__(self, like: np.ndarray, prepare: Callable[[np.ndarray], object], run: Callable[[object], object]):
        self.shape, self.dtype = like.shape, like.dtype
        self.prepare, self.run = prepare, run
        self.busy_s = 0.0
        self._done: collections.deque = collections.deque()

    def accepts(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` has this flight's size and dtype (a stream may change size midway)."""
        return frame.shape == self.shape and frame.dtype == self.dtype

    @property
    def pending(self) -> int:
        """Frames submitted and not yet taken."""
        return len(self._done)

    @property
    def ready(self) -> bool:
        """Whether the oldest frame in flight is answered (``take`` would not wait)."""
        return bool(self._done)

    def submit(self, x) -> None:
        """Start the model on a prepared frame."""
        t = time.perf_counter()
        self._done.append(self.run(x))
        self.busy_s += time.perf_counter() - t

    def take(self):
        """The model's output for the oldest frame not yet taken (waits for it)."""
        return self._done.popleft()

    def outputs(self, frames: Iterable[np.ndarray]) -> Iterator:
        """Each frame's output in order, with up to ``jobs`` frames in the model at a time."""
        for f in frames:
            if self.pending >= max(1, self.jobs):
                yield self.take()
            self.submit(self.prepare(f))
        while self.pending:
            yield self.take()

    def close(self) -> None:
        """Wait for every frame in flight."""


class AsyncFlight(Flight):
    """Up to ``jobs`` frames in the runtime's asynchronous queue (``queue.start(frame, done)``, ``idle()``,
    ``wait()``): the next frame starts inside the runtime the moment one finishes, with no Python thread (and
    no GIL) between them; answers come back on the runtime's threads and are handed out in submit order."""

    def __init__(self, like: np.ndarray, queue, planes: bool = False):
        super().__init__(like, np.ascontiguousarray, None)
        self.queue, self.jobs, self.planes = queue, queue.jobs, planes
        self._cv = threading.Condition()
        self._out: dict[int, object] = {}
        self._inputs: dict[int, np.ndarray] = {}   # the runtime reads these buffers in place until done
        self._sent = self._taken = self._running = 0
        self._since = 0.0

    @property
    def pending(self) -> int:
        return self._sent - self._taken

    @property
    def ready(self) -> bool:
        with self._cv:
            return self._taken in self._out

    def submit(self, x: np.ndarray) -> None:
        with self._cv:
            seq, self._sent = self._sent, self._sent + 1
            self._inputs[seq] = x
            if self._running == 0:
                self._since = time.perf_counter()
            self._running += 1
        self.queue.start(x, functools.partial(self._finished, seq))

    def _finished(self, seq: int, out) -> None:
        """The runtime's callback (its thread): keep the answer, count the model's busy time."""
        with self._cv:
            self._out[seq] = out
            self._inputs.pop(seq, None)
            self._running -= 1
            if self._running == 0:
                self.busy_s += time.perf_counter() - self._since
            self._cv.notify_all()

    def take(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        seq = self._taken
        with self._cv:
            while seq not in self._out:
                if not self._cv.wait(timeout=1.0) and seq not in self._out and self.queue.idle():
                    # idle with no answer: the inference failed inside the runtime and no callback came
                    raise RuntimeError(f"the runtime stopped without upscaling frame {seq} of this flight")
            out = self._out.pop(seq)
        self._taken += 1
        if isinstance(out, BaseException):
            raise out
        return out

    def close(self) -> None:
        self.queue.wait()
