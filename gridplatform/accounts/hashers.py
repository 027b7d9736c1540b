"""Password hashing that cannot exhaust the server's memory.

Django's Argon2 hasher takes 100 MiB per hash (memory cost 102,400 KiB, 8 lanes): 16 anonymous
failed logins at once grew a web process from 190 MB to 1.8 GB. This one uses the parameters
OWASP's Password Storage Cheat Sheet gives for Argon2id (19 MiB, 2 passes, 1 lane), and lets at
most ``PASSWORD_HASHING_CONCURRENCY`` hashes run at once in a process (2 by default; the others
wait their turn), so hashing never holds more than that many times 19 MiB. Its hashes are
ordinary ``argon2`` hashes with their parameters inside: hashes made with Django's defaults
still verify, and are re-hashed with these at the user's next login.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher

_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _hashing_slots() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max(1, settings.PASSWORD_HASHING_CONCURRENCY))
        return _slots


class BoundedArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19_456  # KiB: 19 MiB
    parallelism = 1

    def encode(self, password: str, salt: str) -> str:
        with _hashing_slots():
            return str(super().encode(password, salt))

    def verify(self, password: str, encoded: str) -> bool:
        with _hashing_slots():
            return bool(super().verify(password, encoded))

    def harden_runtime(self, password: str, encoded: str) -> None:
        with _hashing_slots():
            super().harden_runtime(password, encoded)
