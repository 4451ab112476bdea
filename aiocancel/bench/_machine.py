"""Which machine, interpreter and libraries the figures come from."""
from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import aiocancel

from ._config import Config


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe(argv: list[str]) -> dict[str, Any]:
    """Facts about this machine and run (`argv`: the bench's options), for
    the header and the JSON."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "aiocancel": _version("aiocancel"),
        "mode": (f"trampoline, cancel signal {aiocancel.cancel_signal()}"
                 if aiocancel.SUPPORTED else "fallback (blocked calls not interruptible)"),
        "uvloop": _version("uvloop"),
        "anyio": _version("anyio"),
        "loadavg": os.getloadavg(),
        "command": " ".join(["python -m aiocancel bench", *argv]),
    }


def header(info: dict[str, Any], cfg: Config, seconds: float) -> str:
    load = "/".join(f"{x:.2f}" for x in info["loadavg"])
    end = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"aiocancel {info['aiocancel']} bench ({'quick' if cfg.quick else 'full'} run, "
            f"{seconds:.0f} s): {info['mode']}\n"
            f"{info['cpu']}, {info['usable_cpus']}/{info['cpus']} cpus, {info['kernel']}, "
            f"{info['python']}, uvloop {info['uvloop']}, anyio {info['anyio']}; "
            f"load average {load} at start, {end} at end\n"
            f"command: {info['command']}\n"
            "medians; ratios are medians of per-round ratios of contenders run "
            "interleaved, [interquartile range]")
