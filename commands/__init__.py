"""The project's commands, run next to the Pulumi program (never by it): `python -m commands.plan` (the offline
plan) and `python -m commands.replication` (replication progress). Both read the stack file with
commands.stack_file."""
