"""Offline plan: run the real Pulumi program under the SDK's mocks with `Pulumi.<stack>.yaml`.

No network, no credentials, no Pulumi CLI. `secure:` values are replaced by "[secret]" and never decrypted.
Prints the resource tree (type, name, parent), each resource's dependencies and key inputs, and for each version
the ordered imperative steps and the checks `pulumi preview` runs. `--format json` prints one JSON object.

    python plan.py dev [--format text|json]
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
SECRET = "[secret]"
DYNAMIC_GUEST = "pulumi-python:dynamic/generalization:GuestGeneralization"
DYNAMIC_VM = "pulumi-python:dynamic/generalization:VmGeneralization"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


class PlanError(Exception):
    """The plan cannot be made; the message says why and what to do."""


def read_stack_config(stack: str, root: Path = ROOT) -> tuple[str, dict[str, str], list[str]]:
    """Project name, config map (full keys → JSON strings, as the engine passes them) and the secret keys."""
    project_file = root / "Pulumi.yaml"
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
        raise PlanError(f"no {stack_file.name}: known stacks are {', '.join(stacks) or 'none'}")
    project_doc = yaml.safe_load(project_file.read_text())
    project = project_doc["name"]
    doc = yaml.safe_load(stack_file.read_text()) or {}
    values: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        plain, had_secret = _mask_secure(value)
        values[full] = _engine_value(plain)
        if had_secret:
            secret_keys.append(full)
    # Like the CLI: declared project keys not set by the stack take their Pulumi.yaml default.
    for key, declaration in (project_doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if full not in values and isinstance(declaration, dict) and "default" in declaration:
            values[full] = _engine_value(declaration["default"])
    return project, values, secret_keys


def _engine_value(value: Any) -> str:
    """How the engine hands a config value to the program: strings as they are, numbers and booleans as their
    text, structured values as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def _mask_secure(value: Any) -> tuple[Any, bool]:
    """Replace every `{secure: ...}` leaf with "[secret]": the plan never decrypts anything."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECRET, True
        found = False
        out = {}
        for k, v in value.items():
            out[k], f = _mask_secure(v)
            found = found or f
        return out, found
    if isinstance(value, list):
        items = [_mask_secure(v) for v in value]
        return [i[0] for i in items], any(i[1] for i in items)
    return value, False


@dataclass
class PlannedResource:
    type: str
    name: str
    urn: str
    parent: str | None
    depends_on: list[str]
    inputs: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    provider_blob_bytes: int | None = None
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)


def _unwrap(value: Any) -> Any:
    """Struct → plain JSON, with secret values shown as "[secret]" (Struct numbers are floats: restore ints)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return SECRET
        return {k: _unwrap(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _provider_blob_bytes(raw: dict[str, Any]) -> int | None:
    """Size of the pickled dynamic provider (`__provider`, base64), looking inside its secret wrapper."""
    blob = raw.get("__provider")
    if isinstance(blob, dict):
        blob = blob.get("value")
    return len(blob) if isinstance(blob, str) else None


@dataclass
class ProgramRun:
    """What the program registered (in order) and what it exported."""

    resources: list[PlannedResource]
    exports: dict[str, Any]


def run_program(
    project: str, stack: str, config: dict[str, str], secret_keys: list[str], main: Path | None = None
) -> ProgramRun:
    """Run __main__.py (or another program file, for the benchmark) under mocks (preview) and return what it
    registered and exported."""
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings

    registered: list[PlannedResource] = []
    subscription = json.loads(config.get("azure-native:subscriptionId", '"<subscription>"'))

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            state = dict(args.inputs)
            return _fake_id(args.typ, args.inputs, args.name, subscription), state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            return {}, None

    class RecordingMonitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            if request.type != "pulumi:pulumi:Stack":
                raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
                registered.append(
                    PlannedResource(
                        type=request.type,
                        name=request.name,
                        urn=self.make_urn(request.parent, request.type, request.name),
                        parent=request.parent or None,
                        depends_on=list(request.dependencies),
                        inputs=_unwrap(raw),
                        provider_blob_bytes=_provider_blob_bytes(raw),
                        property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                        options={
                            "protect": request.protect,
                            "deleteBeforeReplace": request.deleteBeforeReplace,
                            "additionalSecretOutputs": list(request.additionalSecretOutputs),
                            "customTimeouts": json_format.MessageToDict(request.customTimeouts),
                            "provider": request.provider or None,
                        },
                    )
                )
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(Mocks(), project=project, stack=stack, preview=True, monitor=RecordingMonitor(Mocks()))
    exports: dict[str, Any] = {}

    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(main or ROOT / "__main__.py"), run_name="__pulumi_program__")
        root = psettings.get_root_resource()
        outputs = dict(getattr(root, "outputs", {}) or {})
        return pulumi.Output.from_input(outputs).apply(exports.update)

    try:
        pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
    finally:
        psettings.reset_options()
    return ProgramRun(registered, exports)


def _fake_id(typ: str, inputs: dict[str, Any], name: str, subscription: str) -> str:
    """ARM-shaped IDs, so that IDs derived from them (role definition, scope) look as they will."""
    rg = inputs.get("resourceGroupName", "<rg>")
    base = f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.Compute/galleries"
    if typ == "azure-native:compute:Gallery":
        return f"{base}/{inputs.get('galleryName', name)}"
    if typ == "azure-native:compute:GalleryImage":
        return f"{base}/{inputs.get('galleryName')}/images/{inputs.get('galleryImageName', name)}"
    if typ == "azure-native:compute:GalleryImageVersion":
        return (
            f"{base}/{inputs.get('galleryName')}/images/{inputs.get('galleryImageName')}"
            f"/versions/{inputs.get('galleryImageVersionName', name)}"
        )
    return f"{name}-id"


def describe(resources: list[PlannedResource]) -> list[dict[str, Any]]:
    """The JSON shape: type, name, parent, dependsOn (names), inputs, plus steps/checks for the chain."""
    by_urn = {r.urn: r.name for r in resources}
    from hooks import pipeline

    try:
        from hooks.preflight import CHECK_DESCRIPTIONS as checks
    except ImportError:  # capture-time checks not built yet
        checks = ()

    out = []
    for r in resources:
        inputs = {k: v for k, v in r.inputs.items() if k != "__provider"}
        entry: dict[str, Any] = {
            "urn": r.urn,
            "parentUrn": r.parent,
            "type": r.type,
            "name": r.name,
            "parent": by_urn.get(r.parent or ""),
            "dependsOn": sorted({by_urn.get(d, d) for d in r.depends_on}),
            "inputs": inputs,
        }
        if r.options.get("protect"):
            entry["protect"] = True
        if r.options.get("customTimeouts"):
            entry["customTimeouts"] = r.options["customTimeouts"]
        if r.provider_blob_bytes is not None:
            entry["providerBlobBytes"] = r.provider_blob_bytes
        if r.type == DYNAMIC_GUEST:
            os_type = inputs.get("os_type")
            entry["steps"] = list(pipeline.LINUX_GUEST_STEPS if os_type == "Linux" else pipeline.WINDOWS_GUEST_STEPS)
            if checks:
                entry["previewChecks"] = list(checks)
        if r.type == DYNAMIC_VM:
            generalize = inputs.get("generalize")
            entry["steps"] = list(pipeline.VM_STEPS_GENERALIZED if generalize else pipeline.VM_STEPS_SPECIALIZED)
            if inputs.get("capture") and checks:  # Specialized: the ARM half runs the capture-time checks
                entry["previewChecks"] = list(checks)
        out.append(entry)
    return out


def render_text(stack: str, entries: list[dict[str, Any]]) -> str:
    children: dict[str | None, list[dict[str, Any]]] = {}
    urns = {e["urn"] for e in entries}
    for e in entries:
        children.setdefault(e["parentUrn"] if e["parentUrn"] in urns else None, []).append(e)
    lines = [f"Offline plan of stack '{stack}' ({len(entries)} resources; no network, secrets not decrypted)", ""]

    def walk(parent: str | None, depth: int) -> None:
        for e in children.get(parent, []):
            pad = "    " * depth
            lines.append(f"{pad}+ {e['type']}  {e['name']}")
            if e["dependsOn"]:
                lines.append(f"{pad}    depends on: {', '.join(e['dependsOn'])}")
            for key, value in _key_inputs(e).items():
                lines.append(f"{pad}    {key}: {value}")
            for i, step in enumerate(e.get("steps", []), 1):
                lines.append(f"{pad}    step {i}. {step}")
            if e.get("previewChecks"):
                lines.append(f"{pad}    checks run in `pulumi preview` (read-only):")
                lines.extend(f"{pad}      - {c}" for c in e["previewChecks"])
            walk(e["urn"], depth + 1)

    walk(None, 0)
    return "\n".join(lines)


_SHOWN = {
    "azure-native:compute:Gallery": ("galleryName", "resourceGroupName", "location"),
    "azure-native:compute:GalleryImage": (
        "galleryImageName",
        "osType",
        "osState",
        "hyperVGeneration",
        "architecture",
        "features",
        "identifier",
    ),
    "azure-native:authorization:RoleAssignment": (
        "scope",
        "principalId",
        "principalType",
        "roleDefinitionId",
        "roleAssignmentName",
    ),
    "azure-native:compute:GalleryImageVersion": ("galleryImageVersionName", "storageProfile", "publishingProfile"),
    DYNAMIC_GUEST: ("vm_id", "os_type", "ssh", "winrm", "credentials"),
    DYNAMIC_VM: ("vm_id", "generalize", "deallocate"),
}


def _key_inputs(e: dict[str, Any]) -> dict[str, str]:
    keys = _SHOWN.get(e["type"], ())
    shown = {k: json.dumps(e["inputs"][k]) for k in keys if e["inputs"].get(k) not in (None, {}, [])}
    if e.get("protect"):
        shown["protect"] = "true"
    if e.get("customTimeouts"):
        shown["customTimeouts"] = json.dumps(e["customTimeouts"])
    if "providerBlobBytes" in e:
        shown["provider blob"] = f"{e['providerBlobBytes']} bytes (a reference to hooks.providers, no secrets)"
    return shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))

    import config as stack_config
    from hooks.errors import ConfigError

    try:
        project, values, secret_keys = read_stack_config(args.stack)
        raw = stack_config.parse_engine_values(values, project)
        stack_config.load(raw, [k.partition(":")[2] for k in secret_keys if k.startswith(f"{project}:")])
    except (PlanError, ConfigError) as exc:
        print(f"plan of stack '{args.stack}' failed: {exc}", file=sys.stderr)
        return 2
    entries = describe(run_program(project, args.stack, values, secret_keys).resources)
    if args.format == "json":
        print(json.dumps({"stack": args.stack, "resources": entries}, indent=2))
    else:
        print(render_text(args.stack, entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
