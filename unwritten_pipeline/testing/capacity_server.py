"""A loopback LLM server that, like a real one, serves only `capacity` requests at a time: further
requests wait for a free slot (the scale-out benchmark's fixed-latency, capacity-2 server)."""

from __future__ import annotations

import threading

from unwritten_pipeline.testing.fake_llm_server import FakeLLMServer


class CapacityLLMServer(FakeLLMServer):
    def __init__(self, *args, capacity: int, **kwargs) -> None:
        # set before the base class builds its handler, which closes over the slots
        self._slots = threading.BoundedSemaphore(capacity)
        super().__init__(*args, **kwargs)

    def _handler_class(self):
        slots = self._slots

        class CapacityHandler(super()._handler_class()):
            def do_POST(self):
                with slots:
                    super().do_POST()

        return CapacityHandler
