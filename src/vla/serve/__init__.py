"""vla.serve: deployment. A websocket + msgpack policy server (openpi client wire format), a
numpy-only client, the asynchronous chunk executor with its watchdog, and the safety filter.

Nothing here imports a simulator or training code; torch is imported only by the server side.
"""

from vla.serve.client import PolicyClient
from vla.serve.executor import ChunkExecutor, ExecutorConfig, run_control_loop
from vla.serve.obs_schema import ObservationSpec
from vla.serve.safety import SafetyConfig, SafetyFilter, load_safety_config
from vla.serve.server import PolicyServer

__all__ = ["ChunkExecutor", "ExecutorConfig", "ObservationSpec", "PolicyClient", "PolicyServer", "SafetyConfig",
           "SafetyFilter", "load_safety_config", "run_control_loop"]
