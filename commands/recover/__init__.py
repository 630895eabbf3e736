"""Recover a stack after a killed `pulumi up`, in one command for people and CI:

    make recover STACK=dev [PREVIEW=1] [WAIT_MINUTES=N] [DEPROVISIONED=NAME]
    (python -m commands.recover STACK [--preview-only] [--wait-minutes N] [--deprovisioned NAME] [--cwd DIR];
    the `recover` option of the up workflow runs the same)

A `pulumi up` that was killed (a cancelled CI job, a lost runner) leaves the stack locked, and a pending create in
the state for each step that was running. What that step left in Azure decides what becomes of it:

1. read the state (`pulumi stack export`) and ask Azure about each pending create (decisions.py):
   - a gallery, image definition, image version or role assignment (azure-native) is looked for at the ID the
     program gives it (from the create's own inputs, azure.py): there with the program's properties, it is
     imported; there with other ones (a version of that number captured from another VM), recovery stops and
     changes nothing; not there, the pending create is cleared and `pulumi up` creates it;
   - a step of a chain (a dynamic resource: the guest's or the VM's generalization, a test boot, a promotion's
     checks) is cleared: each step starts again from the VM's real state and never repeats what is done;
   - except a Linux guest's step (guest_step.py, killed_deprovision.py): a deprovision the killed run started runs
     to its end in the guest and leaves it unreachable, so recovery looks first (read-only, waiting for a
     deprovision still running): when the guest's host keys are gone, the VM is marked generalized in Azure
     (deallocate, generalize: the step's ARM half) before the step is cleared, and `pulumi up` skips the guest;
     when it cannot tell, it stops, changing nothing (DEPROVISIONED=NAME: the user says the guest was
     deprovisioned);
   a pending update or delete is dropped too: the resource is still in the state, and `pulumi up` redoes it;
2. release the lock (`pulumi cancel`, lock.py) when a killed update holds it; stop if a `pulumi` of this machine
   holds it; mark the VMs generalized whose deprovision went through (with --preview-only, where there is one,
   nothing is changed at all: `pulumi stack import` would drop the pending step, the only record of the
   deprovision);
3. write the state back (`pulumi stack import`, repair.py) and refresh what was imported (`pulumi refresh
   --target`), so its outputs are the provider's own;
4. an imported version still replicating is shown region by region and waited for (replicating.py), bounded by
   its createTimeoutMinutes (or --wait-minutes), so `pulumi up` never runs against a half-made version;
5. `pulumi up`, or with --preview-only `pulumi preview`: what `pulumi up` will do (the state is repaired either way;
   with --preview-only nothing in Azure is touched).

recovery.py runs these steps in order; __main__.py reads the command line and the stack file.

Not `pulumi refresh --import-pending-creates URN ID`: in the pinned CLI (v3.274.1) that turns the pending create
into a pending import which the refresh then drops: the resource is forgotten, not imported (its snapshot keeps
only pending creates of the base state; tests/e2e/test_recovery.py shows it under the CLI).

Exit codes: 0 recovered and `pulumi up` (or the preview) succeeded; 1 refused (nothing changed) or `pulumi up`
failed; 2 usage, config, ARM or CLI error; 3 an imported version still replicates after the bound: the state is
repaired, run the command again to keep waiting.
"""
