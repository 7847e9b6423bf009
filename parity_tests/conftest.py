"""Fixtures of the parity suite. Helpers and the tolerance table live in parity_tests/helpers.py
(tests import from there, never from this file)."""

import os

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh generator per test: a test's inputs must not depend on which tests ran before it
    (a session-wide generator made them depend on -k selection and test order)."""
    return np.random.default_rng(1234)


def pytest_report_header(config):
    """Which kernels this run's rounding comes from (the suite must pass under any of them)."""
    import platform

    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor()) \
        if os.path.exists("/proc/cpuinfo") else platform.processor()
    return (f"parity ISA: cpu={cpu!r} torch={torch.backends.cpu.get_cpu_capability()} "
            f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(default)')} "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '(default)')!r}")
