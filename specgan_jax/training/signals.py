"""SIGINT/SIGTERM during training: the loop saves at the end of the current chunk and stops."""

from __future__ import annotations

import signal
import threading
from typing import Optional

EXIT_SIGNAL_BASE = 128  # exit status after SIGINT/SIGTERM: 128 + signal number (Unix convention)


class SignalFlag:
    """Records SIGINT/SIGTERM in `signum` instead of raising. A second signal restores the
    default handler, so pressing Ctrl-C twice stops at once. Outside the main thread (where
    Python cannot install handlers) it records nothing."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        for s, old in self._old.items():
            signal.signal(s, old)

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        return False
