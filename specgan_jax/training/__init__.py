"""A training run: setup (ExitStack-owned resources), the loop, signals, multi-host wiring.
"""
