"""A guard around azure-mgmt-compute's lazy model set-up, which is not thread-safe (Azure/azure-sdk-for-python#47426).

Put in place by the first ARM session a process makes (hooks/arm/session.py), before any answer is read into a
model; importing hooks.arm changes nothing in the SDK. tests/unit/test_arm_models.py fails once the locked SDK
works its models out safely by itself, so that this module is removed then rather than kept out of habit.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.mgmt.compute import models as compute_models

_GUARDED = "_image_gallery_guarded"
_GUARDING = threading.Lock()
"""Held while the guard is put in place: two sessions made at once by two threads wrap `__new__` once."""


def guard_compute_models() -> bool:
    """Make azure-mgmt-compute work out its model classes one thread at a time. True when the guard is in place.

    Its typespec-generated models (azure-mgmt-compute 39, the locked version) work out a class's fields the first
    time the class is instantiated, without a lock: one thread iterates the class's `__dict__` while another,
    done first, stores its result there. The loser's `RuntimeError` is swallowed by the SDK's deserializer, which
    then hands back the raw JSON dict: a VM whose `storage_profile` is a dict (seen with 8 chains in the
    benchmark: `'dict' object has no attribute 'os_disk'`). Known upstream as Azure/azure-sdk-for-python#47426,
    fixed in the generator (microsoft/typespec#11236) but not yet in a released azure-mgmt-compute.

    The guard wraps the models' common `__new__` in a lock; building an instance is otherwise unchanged, and the
    lock is held only for the moment `__new__` takes (answers are read into models after the HTTP call, never
    during it). Working every class out in advance instead would cost 0.3 s of CPU per process (168 classes
    reachable from a VM answer), about half a second on the first chain's path. Idempotent and cheap once in
    place: every new session calls it."""
    base = next(
        (k for k in compute_models.VirtualMachine.__mro__ if k.__name__ == "Model" and "__new__" in vars(k)), None
    )
    if base is None:
        return False  # not the typespec models (msrest-based SDKs build no such table)
    if getattr(base, _GUARDED, False):
        return True
    with _GUARDING:
        if not getattr(base, _GUARDED, False):
            setup = base.__new__
            lock = threading.RLock()

            def guarded_new(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
                with lock:
                    return setup(cls, *args, **kwargs)

            base.__new__ = staticmethod(guarded_new)  # type: ignore[method-assign, assignment]
            setattr(base, _GUARDED, True)
    return True
