"""`make bench`: the figures that matter, measured (never asserted by a timed test).

- offline plan of the dev stack (cold process, as `make plan` runs it);
- config validation of the dev stack;
- the pickled provider blob's size;
- dynamic provider host start-up;
- the ARM half (deallocate → generalize → verify) through the real host against the HTTPS fake ARM;
- one capture-time check (what `pulumi preview` runs per version) through the real host against the fake ARM.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), min(samples)


def report(name: str, median: float, best: float, unit: str = "s") -> None:
    print(f"{name:<58} median {median:8.3f} {unit}   best {best:8.3f} {unit}")


def main() -> int:
    sys.path.insert(0, str(ROOT))
    import base64

    from pulumi.dynamic.dynamic import serialize_provider

    import config
    import plan
    from hooks.providers import GuestGeneralizationProvider, VmGeneralizationProvider
    from tests.fakes.arm import FakeArm
    from tests.fakes.dynamic_host import DynamicHost
    from tests.integration.test_guest_provider_linux import GUEST_URN, guest_props
    from tests.integration.test_vm_provider import URN, props

    HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaKFZi9htO73Htd10oPJLzAGq+3TezxrfbeWW6DGXDr"

    def plan_cold() -> None:
        subprocess.run([sys.executable, "plan.py", "dev"], cwd=ROOT, check=True, capture_output=True)

    report("offline plan, dev stack (cold process)", *timed(plan_cold, 3))

    project, values, _secret_keys = plan.read_stack_config("dev")
    raw = config.parse_engine_values(values, project)
    median, best = timed(lambda: config.load(raw, ["sourceVms"]), 50)
    report("config validation, dev stack", median * 1000, best * 1000, "ms")

    for provider in (GuestGeneralizationProvider(), VmGeneralizationProvider()):
        blob = serialize_provider(provider)
        print(
            f"provider blob {type(provider).__name__:<44} {len(blob):8d} bytes base64 "
            f"({len(base64.b64decode(blob))} raw)"
        )

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeArm(Path(tmp)).start()
        try:
            report("dynamic provider host start-up", *timed(lambda: DynamicHost(fake.env).close(), 3))
            with DynamicHost(fake.env) as host:

                def arm_half() -> None:
                    vm = fake.add_vm(name=f"vm-{time.perf_counter_ns()}", power_state="running")
                    host.create(URN, props(fake, vm.id))

                report("ARM half through the host (fake ARM, 0.05 s polls)", *timed(arm_half, 5))
                print(f"{'  requests to ARM per ARM half':<58} {len(fake.requests) / 5:8.1f}")

                def capture_check() -> None:
                    # A new VM each time, so the check's short-lived read cache never answers for ARM.
                    vm = fake.add_vm(name=f"chk-{time.perf_counter_ns()}", power_state="running")
                    p = guest_props(fake, vm.id, host="127.0.0.1", port=9, host_key=HOST_KEY, private_key="k")
                    failures = host.check(GUEST_URN, {}, p).failures
                    assert not failures, failures

                before = len(fake.requests)
                report("capture-time check through the host (preview)", *timed(capture_check, 10))
                print(f"{'  requests to ARM per check (all GET)':<58} {(len(fake.requests) - before) / 10:8.1f}")
        finally:
            fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
