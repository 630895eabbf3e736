"""Offline plan: run the real Pulumi program under the SDK's mocks with `Pulumi.<stack>.yaml`.

No network, no credentials, no Pulumi CLI. `secure:` values are replaced by "[secret]" and never decrypted.
Prints the resource tree (type, name, parent), each resource's dependencies and key inputs, and for each version
the ordered imperative steps and the checks `pulumi preview` runs. `--format json` prints one JSON object.

    python -m commands.plan dev [--format text|json]      (make plan STACK=dev [FORMAT=json])
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from commands.stack_file import ROOT, SECRET, StackFileError, read_stack

# The step texts from hooks.steps, not from the modules that run the steps: those import the Azure SDK, paramiko
# or pywinrm, which the plan never needs.
from hooks import steps

DYNAMIC_GUEST = "pulumi-python:dynamic/generalization:GuestGeneralization"
DYNAMIC_VM = "pulumi-python:dynamic/generalization:VmGeneralization"
DYNAMIC_PROMOTION = "pulumi-python:dynamic/promotion:VersionPromotion"
DYNAMIC_TEST_BOOT = "pulumi-python:dynamic/validation:VersionTestBoot"
VERSION = "azure-native:compute:GalleryImageVersion"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the SDK sends a value not known yet (here: what another stack exports, read only by the engine)."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"


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
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
    main: Path | None = None,
    restore_gc: bool = True,
) -> ProgramRun:
    """Run __main__.py (or another program file, for the benchmark) under mocks (preview) and return what it
    registered and exported.

    The program turns the cyclic GC off for its process (__main__.py). With `restore_gc` the caller's process gets
    it back as it was, and its first collection then scans all the program left (0.2 s for 60 versions); a
    one-shot process that exits after the plan (`make plan`, the benchmark) passes False, as the engine's program
    process ends without that scan."""
    import pulumi
    from google.protobuf import json_format
    from pulumi.runtime import mocks as pmocks
    from pulumi.runtime import settings as psettings
    from pulumi.runtime.proto import resource_pb2

    registered: list[PlannedResource] = []
    # The engine hands strings over as they are (a GUID is not JSON text).
    subscription = config.get("azure-native:subscriptionId", "<subscription>")
    with contextlib.suppress(ValueError):
        subscription = str(json.loads(subscription))

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            state = dict(args.inputs)
            return _fake_id(args.typ, args.inputs, args.name, subscription), state

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            return {}, None

    class RecordingMonitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            if request.type == "pulumi:pulumi:Stack":
                return super().RegisterResource(request)  # type: ignore[no-untyped-call]
            raw = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            urn = self.make_urn(request.parent, request.type, request.name)
            inputs = _unwrap(raw)
            registered.append(
                PlannedResource(
                    type=request.type,
                    name=request.name,
                    urn=urn,
                    parent=request.parent or None,
                    depends_on=list(request.dependencies),
                    inputs=inputs,
                    provider_blob_bytes=_provider_blob_bytes(raw),
                    property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                    options={
                        "protect": request.protect,
                        "deleteBeforeReplace": request.deleteBeforeReplace,
                        "additionalSecretOutputs": list(request.additionalSecretOutputs),
                        "customTimeouts": json_format.MessageToDict(request.customTimeouts),
                        "provider": request.provider or None,
                        "ignoreChanges": list(request.ignoreChanges),
                    },
                )
            )
            # The outputs are the inputs (as `Mocks.new_resource` has them): the request's properties go back as
            # they came. MockMonitor would deserialize every property and serialize it again, which cost the plan
            # of 60 versions 0.16 s of CPU for nothing.
            id_ = _fake_id(request.type, inputs, request.name, subscription)
            self.resources[urn] = pmocks.MockMonitor.ResourceRegistration(urn, id_, inputs)
            return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=request.object)

        def ReadResource(self, request: Any) -> Any:
            # Reads (a StackReference): the engine reads the other stack's outputs; the mocks know none of them,
            # so everything taken from it stays unknown in the plan, as in a preview before that stack exists.
            raw = json_format.MessageToDict(request.properties, preserving_proto_field_name=True)
            registered.append(
                PlannedResource(
                    type=request.type,
                    name=request.name,
                    urn=self.make_urn(request.parent, request.type, request.name),
                    parent=request.parent or None,
                    depends_on=list(request.dependencies),
                    inputs=_unwrap(raw),
                    options={"read": request.id},
                )
            )
            return super().ReadResource(request)  # type: ignore[no-untyped-call]

    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(Mocks(), project=project, stack=stack, preview=True, monitor=RecordingMonitor(Mocks()))
    exports: dict[str, Any] = {}

    def program() -> pulumi.Output[Any]:
        runpy.run_path(str(main or ROOT / "__main__.py"), run_name="__pulumi_program__")
        root = psettings.get_root_resource()
        outputs = dict(getattr(root, "outputs", {}) or {})
        return pulumi.Output.from_input(outputs).apply(exports.update)

    gc_was_enabled = gc.isenabled()
    try:
        pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]
    finally:
        psettings.reset_options()
        if restore_gc and gc_was_enabled:
            gc.enable()
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


PARTNER_CENTER_REGISTRATION = "pulumi-python:dynamic/partnercenter:ProviderRegistration"
PARTNER_CENTER_PRINCIPAL = "pulumi-python:dynamic/partnercenter:PartnerCenterServicePrincipal"


def _capture_checks(capture: Any) -> list[str]:
    """The capture-time checks of one version; the Marketplace's rules only when the gallery is for it."""
    marketplace = not isinstance(capture, dict) or capture.get("marketplace", True) is not False
    return [c for c in steps.CAPTURE_CHECKS if marketplace or not c.startswith("marketplace")]


def describe(resources: list[PlannedResource]) -> list[dict[str, Any]]:
    """The JSON shape: type, name, parent, dependsOn (names), inputs, plus steps/checks for the chain."""
    by_urn = {r.urn: r.name for r in resources}
    from hooks.promotion import CHECK_DESCRIPTIONS as promotion_checks

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
            entry["steps"] = list(steps.LINUX_GUEST_STEPS if os_type == "Linux" else steps.WINDOWS_GUEST_STEPS)
            entry["previewChecks"] = _capture_checks(inputs.get("capture"))
            entry["safetySnapshot"] = steps.safety_snapshot_plan(inputs.get("vm_id"), inputs.get("safety_snapshot"))
        if r.type == PARTNER_CENTER_PRINCIPAL:
            entry["previewChecks"] = [
                f"Microsoft Graph (GET {inputs.get('graph_endpoint')}/v1.0/servicePrincipals"
                + (
                    f"/{inputs['configured_object_id']}, configured in {inputs.get('config_key')})"
                    if inputs.get("configured_object_id")
                    else f"?$filter=displayName eq '{inputs.get('display_name')}'): exactly one, owned by Microsoft"
                )
                + ": the tenant has the service principal; fails naming it and what to register when missing"
            ]
        if r.type == PARTNER_CENTER_REGISTRATION:
            entry["steps"] = [
                f"register {inputs.get('namespace')} on the gallery's subscription (POST .../register) unless it is, "
                "and wait until Registered (bounded); never unregistered on delete"
            ]
        if r.type == STACK_REFERENCE:
            entry["read"] = r.options.get("read")
        if r.type == DYNAMIC_PROMOTION:
            source = inputs.get("source") or {}
            stack, key = source.get("stack"), source.get("export_key")
            if stack:
                definition, _, version = str(key).partition("/")
                entry["promotedFrom"] = f"promoted from stack {stack}: {definition} {version}"
            else:
                entry["promotedFrom"] = f"promoted from {source.get('label')}"
            if inputs.get("source_id") == UNKNOWN:
                entry["sourceVersionId"] = f"unknown until stack {stack} is read (by `pulumi preview` / `up`)"
            else:
                entry["sourceVersionId"] = inputs.get("source_id")
            entry["previewChecks"] = list(promotion_checks)
        if r.type == DYNAMIC_TEST_BOOT:
            entry["steps"] = list(steps.TEST_BOOT_STEPS)
            entry["notes"] = [
                "nothing is touched in `pulumi preview`; a failed boot fails this resource, not the version"
            ]
        if r.type == VERSION:
            entry["notes"] = _version_notes(r)
        if r.type == DYNAMIC_VM:
            generalize = inputs.get("generalize")
            entry["steps"] = list(steps.VM_STEPS_GENERALIZED if generalize else steps.VM_STEPS_SPECIALIZED)
            if inputs.get("capture"):  # Specialized: the ARM half runs the capture-time checks
                entry["previewChecks"] = _capture_checks(inputs.get("capture"))
        out.append(entry)
    _add_capture_notes(out)
    return out


def _version_notes(r: PlannedResource) -> list[str]:
    """What the version takes from the Azure CLI's defaults (issue 12): said so, with how it is kept stable."""
    from components.captured_image_version import BLOCK_DELETION_PROPERTY, END_OF_LIFE_PROPERTY
    from config import DEFAULT_END_OF_LIFE_MONTHS

    pinned = r.options.get("ignoreChanges") or []
    notes = []
    if END_OF_LIFE_PROPERTY in pinned:
        eol = (r.inputs.get("publishingProfile") or {}).get("endOfLifeDate")
        notes.append(
            f"endOfLifeDate {eol}: the Azure CLI's default ({DEFAULT_END_OF_LIFE_MONTHS} months after the version is "
            "first created; endOfLifeDate not configured), kept from the first creation on (later runs show no diff)"
        )
    if BLOCK_DELETION_PROPERTY in pinned:
        notes.append(
            "blockDeletionBeforeEndOfLife true: the Azure CLI's default (not configured): Azure refuses to delete the "
            "version before its end of life, `pulumi destroy` and replacements of it included (to delete it sooner: "
            "set blockDeletionBeforeEndOfLife: false, `pulumi up`, then delete)"
        )
    return notes


def _add_capture_notes(entries: list[dict[str, Any]]) -> None:
    """The data disks a captured version gets, and the plan image type, on the version's entry (from the capture
    input of its chain)."""
    captures = {}
    for e in entries:
        capture = e["inputs"].get("capture")
        if e["type"] in (DYNAMIC_GUEST, DYNAMIC_VM) and isinstance(capture, dict):
            captures[e["name"].rsplit("-", 1)[0]] = capture
    for e in entries:
        capture = captures.get(e["name"]) if e["type"] == VERSION else None
        if capture is None:
            continue
        luns = capture.get("data_disk_luns")
        if luns is not None:
            shown = ", ".join(str(lun) for lun in luns) or "none"
            e["notes"].append(f"data disks: LUN {shown} (dataDiskLuns; preview holds the VM to them)")
        else:
            e["notes"].append(
                "data disks: every data disk of the VM is captured with its LUN (Azure does it); `pulumi preview` "
                "lists them as read from the VM (set dataDiskLuns to have them checked, and shown here)"
            )
        definition = capture.get("definition") or {}
        if definition.get("plan_image_type"):
            e["notes"].append(
                f"Marketplace plan: planImageType {definition['plan_image_type']} fits architecture "
                f"{definition.get('architecture')} and hyperVGeneration {definition.get('hyper_v_generation')} "
                "(checked by the config)"
            )


def render_text(stack: str, entries: list[dict[str, Any]]) -> str:
    children: dict[str | None, list[dict[str, Any]]] = {}
    urns = {e["urn"] for e in entries}
    for e in entries:
        children.setdefault(e["parentUrn"] if e["parentUrn"] in urns else None, []).append(e)
    lines = [f"Offline plan of stack '{stack}' ({len(entries)} resources; no network, secrets not decrypted)", ""]

    def walk(parent: str | None, depth: int) -> None:
        for e in children.get(parent, []):
            pad = "    " * depth
            read = f"  (read: the outputs of stack {e['read']})" if e.get("read") else ""
            lines.append(f"{pad}{'=' if read else '+'} {e['type']}  {e['name']}{read}")
            if e.get("promotedFrom"):
                lines.append(f"{pad}    {e['promotedFrom']}")
                lines.append(f"{pad}    source version ID: {e['sourceVersionId']}")
            if e["dependsOn"]:
                lines.append(f"{pad}    depends on: {', '.join(e['dependsOn'])}")
            for key, value in _key_inputs(e).items():
                lines.append(f"{pad}    {key}: {value}")
            for note in e.get("notes", []):
                lines.append(f"{pad}    note: {note}")
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
        "purchasePlan",
        "disallowed",
        "eula",
        "privacyStatementUri",
        "releaseNoteUri",
        "recommended",
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
    DYNAMIC_TEST_BOOT: ("boot",),
    PARTNER_CENTER_REGISTRATION: ("subscription_id", "namespace"),
    PARTNER_CENTER_PRINCIPAL: ("display_name", "configured_object_id", "graph_endpoint"),
}


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text.replace(json.dumps(UNKNOWN), '"<unknown until the stack it comes from is read>"')


def _key_inputs(e: dict[str, Any]) -> dict[str, str]:
    keys = _SHOWN.get(e["type"], ())
    shown = {k: _shown(e["inputs"][k]) for k in keys if e["inputs"].get(k) not in (None, {}, [])}
    if e.get("protect"):
        shown["protect"] = "true"
    if e.get("customTimeouts"):
        shown["customTimeouts"] = json.dumps(e["customTimeouts"])
    if "providerBlobBytes" in e:
        module = {
            DYNAMIC_PROMOTION: "hooks.providers.promotion",
            DYNAMIC_TEST_BOOT: "hooks.providers.version_test_boot",
            PARTNER_CENTER_REGISTRATION: "hooks.providers.partner_center",
            PARTNER_CENTER_PRINCIPAL: "hooks.providers.partner_center",
        }.get(e["type"], "hooks.providers.chain")
        shown["provider blob"] = f"{e['providerBlobBytes']} bytes (a reference to {module}, no secrets)"
    return shown


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    """`root` holds Pulumi.yaml and the stack files (tests point it at a copy); the program is always ROOT's."""
    parser = argparse.ArgumentParser(
        prog="python -m commands.plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))

    import config as stack_config
    from hooks.errors import ConfigError

    try:
        read = read_stack(args.stack, root)
        project, values, secret_keys = read.project, read.values, read.secret_keys
        raw = stack_config.parse_engine_values(values, project)
        own_secrets = [k.partition(":")[2] for k in secret_keys if k.startswith(f"{project}:")]
        strays = stack_config.stray_keys(values, project)
        spec = stack_config.load(raw, own_secrets, None, read.plain_paths, strays, stack=args.stack)
    except (StackFileError, ConfigError) as exc:
        print(f"plan of stack '{args.stack}' failed: {exc}", file=sys.stderr)
        return 2
    for warning in spec.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    entries = describe(run_program(project, args.stack, values, secret_keys, restore_gc=False).resources)
    if args.format == "json":
        print(json.dumps({"stack": args.stack, "resources": entries}, indent=2))
    else:
        print(render_text(args.stack, entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
