"""Machine description shared by the benchmarks (CPU, threads, load) for their JSON output."""

from __future__ import annotations

import os
import platform


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "loadavg_1_5_15": list(os.getloadavg()),
        "note": "CPUs shared with other jobs: load > cpus means less than a full core for this process",
    }


def write_result(path, result: dict) -> None:
    """Write a benchmark's result as JSON (atomically) and echo it to stdout."""
    import json

    from vla.data.atomic import write_json_atomic

    write_json_atomic(path, result)
    print(json.dumps(result, indent=2))
