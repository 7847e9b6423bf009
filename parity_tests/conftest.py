"""Fixtures of the parity suite. Helpers and the tolerance table live in parity_tests/helpers.py
(tests import from there, never from this file)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh generator per test: a test's inputs must not depend on which tests ran before it
    (a session-wide generator made them depend on -k selection and test order)."""
    return np.random.default_rng(1234)
