"""Generalize a Windows guest with sysprep over WinRM.

- `sysprep.py`: the step itself, read top to bottom like hooks/pipeline.py (`WindowsSysprep.run`);
- `scripts.py`: the script protocol (a .ps1 from hooks/scripts/windows behind a prelude, one JSON line back);
- `transport.py`: WinRM (`WinRmGuest`): certificates, credentials, dropped connections, bounded commands.
"""

from hooks.windows.scripts import SCRIPTS
from hooks.windows.sysprep import sysprep, validate

__all__ = ["SCRIPTS", "sysprep", "validate"]
