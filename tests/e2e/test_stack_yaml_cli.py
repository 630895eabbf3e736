"""`make plan` reads stack files as the real Pulumi CLI reads them: the same files through both.

1. The values: for each file, what `pulumi config --json` shows equals what the plan's reader hands the program
   (commands/stack_file.py with config.stack_yaml: go-yaml v3's scalars, Pulumi's rendering), key by key; a file
   the CLI refuses (a key written twice, a number that is not finite, a value not of its tag) the plan refuses too.
2. The verdicts: stack files written with YAML 1.1 scalars (`yes`, `off`, unquoted dates, `22.0`) are accepted or
   refused alike by `make plan` and `pulumi preview`, with the same problem lines when the program refuses them.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from commands import plan, stack_file
from tests.e2e.harness import Workspace
from tests.fakes.arm import DEFAULT_SUBSCRIPTION, FakeArm
from tests.fakes.azure_native_provider import AZURE_NATIVE_VERSION, install_plugin
from tests.unit.stack_configs import HOST_KEY, PRIVATE_KEY

pytestmark = pytest.mark.e2e

SCALARS = """\
  image-gallery:galleryName: yes
  image-gallery:galleryDescription: 2028-12-31
  image-gallery:marketplace: TRUE
  image-gallery:parallelHosts: 0x4
  image-gallery:armOperationTimeoutMinutes: 2.0
  image-gallery:armAudience:
  image-gallery:t1: 0o17
  image-gallery:t2: 017
  image-gallery:t3: 1_000
  image-gallery:t4: .5
  image-gallery:t5: 1e3
  image-gallery:t6: +12
  image-gallery:t7: 2001-12-14t21:59:43.10-05:00
  image-gallery:t8: 12:30:00
  image-gallery:t9: Off
  image-gallery:t10: 99999999999999999999
  image-gallery:t11: ~
  image-gallery:t12: '0x10'
  image-gallery:t13: !!str 123
  image-gallery:t14: 1e400
  image-gallery:nested:
    y: yes
    n: NO
    t: True
    d: 2028-12-31
    dt: 2001-12-14 21:59:43.10
    ts: 2001-12-14T21:59:43.10Z
    h: 0x_10
    o: 0o17
    f: 1.0
    f2: 240.5
    f3: 1e21
    f4: 1.5e-7
    c: 08
    nul: null
    e:
    big: 99999999999999999999
    sexa: 1:30
    3: three
    true: tkey
    ~: nothing
    neg: -0b11
    html: "<a&b>\\t"
    list: [1, yes, 2028-01-01, "2028-01-01", {secure: 1}]
    merged: {<<: {a: 1, b: 1}, b: 2}
    tagged: !foo bar
  azure-native:location: westeurope
  azure-native:useMsi: True
"""
REFUSED = {
    "duplicate-top-level-key": "  image-gallery:a: 1\n  image-gallery:a: 2\n",
    "duplicate-nested-key": "  image-gallery:a:\n    b: 1\n    b: 2\n",
    "one-key-two-spellings": "  image-gallery:a:\n    '1': x\n    1: y\n",
    "infinite": "  image-gallery:a: {b: .inf}\n",
    "not-a-number": "  image-gallery:a: .NaN\n",
    "not-of-its-tag": "  image-gallery:a: {b: !!bool yes}\n",
}


def read_with_the_plan(ws: Workspace) -> dict[str, str] | str:
    """The values the plan's reader hands the program, or its refusal."""
    try:
        read = stack_file.read_stack(ws.stack, ws.project)
    except stack_file.StackFileError as exc:
        return str(exc)
    return {k: v for k, v in read.values.items() if k not in read.secret_keys}


def test_the_plan_reads_each_value_as_the_cli_does(tmp_path: Path, engine: Path) -> None:
    ws = Workspace(tmp_path, engine)
    ws.login()
    ws.init_stack({})
    salt = next(line for line in ws.stack_file.read_text().splitlines() if line.startswith("encryptionsalt"))

    ws.stack_file.write_text(f"{salt}\nconfig:\n{SCALARS}")
    result = ws.pulumi("config", "--json").expect_ok()
    cli = {k: v["value"] for k, v in result.json().items() if not v.get("secret")}
    ours = read_with_the_plan(ws)
    assert isinstance(ours, dict), ours
    assert ours == cli, "\n".join(
        f"{k}: plan {ours.get(k)!r}, CLI {cli.get(k)!r}" for k in sorted({*ours, *cli}) if ours.get(k) != cli.get(k)
    )
    assert cli["image-gallery:galleryName"] == "yes" and cli["image-gallery:marketplace"] == "true"

    for name, text in REFUSED.items():
        ws.stack_file.write_text(f"{salt}\nconfig:\n{text}")
        result = ws.pulumi("config", "--json")
        ours = read_with_the_plan(ws)
        assert result.returncode != 0, f"{name}: the CLI accepted it:\n{result.output}"
        assert isinstance(ours, str), f"{name}: the plan accepted it: {ours}"
        assert ws.stack_file.name in ours and re.search(r"line \d+", ours), f"{name}: {ours}"


# --- pulumi preview against make plan ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeArm]:
    fake = FakeArm(tmp_path_factory.mktemp("arm")).start()
    try:
        yield fake
    finally:
        fake.stop()


def stack_text(arm: FakeArm, vm_id: str, salt: str, secret_key: str) -> str:
    """A stack file as a user used to YAML 1.1 writes it: unquoted dates, `off` as a tag value, whole floats,
    `True`, underscores in numbers. The VM is reported generalized and deallocated: no guest is contacted."""
    return f"""{salt}
config:
  azure-native:subscriptionId: {DEFAULT_SUBSCRIPTION}
  image-gallery:galleryName: yaml_gallery
  image-gallery:galleryResourceGroup: rg-gallery
  image-gallery:galleryLocation: westeurope
  image-gallery:galleryTags:
    autoShutdown: off
    backup: no
  image-gallery:armEndpoint: {arm.endpoint}
  image-gallery:armPollIntervalSeconds: 1
  image-gallery:armOperationTimeoutMinutes: 2.0
  image-gallery:marketplace: TRUE
  image-gallery:images:
    - name: ubuntu-2204
      osType: Linux
      hyperVGeneration: V2
      securityType: TrustedLaunch
      identifier: {{publisher: contoso, offer: ubuntu, sku: 22_04-gen2}}
      versions:
        - version: 1.0.0
          sourceVm: ubuntu-build
          endOfLifeDate: 2030-12-31
          excludeFromLatest: False
          createTimeoutMinutes: 1_440
          targetRegions:
            - name: westeurope
              replicaCount: 1.0
  image-gallery:sourceVms:
    ubuntu-build:
      id: {vm_id}
      ssh:
        host: 127.0.0.1
        port: 22.0
        username: azureuser
        hostKey: {HOST_KEY}
        privateKey:
          secure: {secret_key}
"""


def plan_of(ws: Workspace) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = plan.main([ws.stack], root=ws.project)
    return code, err.getvalue()


def problems(text: str) -> set[str]:
    """The `  - key.path: message` lines of a refusal, wherever they are printed."""
    return {m.strip() for m in re.findall(r"^\s*- ([\w\[\].:-]+: .*)$", text, re.M)}


def test_plan_and_preview_agree_on_stack_files_written_with_yaml_1_1_scalars(
    tmp_path: Path, engine: Path, arm: FakeArm
) -> None:
    vm = arm.add_vm("ubuntu-build-yaml", "rg-build", os_type="Linux", power_state="deallocated")
    vm.generalized = True
    env = {**arm.env, "IMAGE_GALLERY_FAKE_ARM_ENDPOINT": arm.endpoint, "ARM_SUBSCRIPTION_ID": DEFAULT_SUBSCRIPTION}
    ws = Workspace(tmp_path, engine, env_extra=env)
    install_plugin(ws.home, ws.python, AZURE_NATIVE_VERSION)
    ws.login()
    ws.init_stack({})
    ws.set_secret("sourceVms.ubuntu-build.ssh.privateKey", PRIVATE_KEY)
    written = ws.stack_file.read_text()
    salt = next(line for line in written.splitlines() if line.startswith("encryptionsalt"))
    secret_key = re.search(r"secure: (\S+)", written)
    assert secret_key, written
    good = stack_text(arm, vm.id, salt, secret_key[1])

    # Accepted by both: the program gets past its config under the CLI and previews the version.
    ws.stack_file.write_text(good)
    code, err = plan_of(ws)
    assert code == 0, err
    result = ws.pulumi("preview", "--json", program=True)
    assert result.returncode == 0, result.output[-4000:]
    assert any(s["urn"].endswith("::ubuntu-2204-1.0.0") for s in result.events()), result.output[-2000:]

    # name -> (the stack file, what the plan's message names, what the CLI's names when it refuses the file
    # before the program runs; None: the program refuses it, with the same problem lines as the plan)
    refused: dict[str, tuple[str, str, str | None]] = {
        # Pulumi.yaml declares these keys' types: the CLI refuses before the program runs.
        "declared-boolean-no": (
            good.replace("marketplace: TRUE", "marketplace: no"),
            "marketplace",
            "configuration key 'marketplace' must be of type 'boolean'",
        ),
        "declared-integer-hex-text": (
            good.replace("armPollIntervalSeconds: 1", "armPollIntervalSeconds: '0x1'"),
            "armPollIntervalSeconds",
            "configuration key 'armPollIntervalSeconds' must be of type 'integer'",
        ),
        # The program refuses these.
        "nested-yes": (good.replace("excludeFromLatest: False", "excludeFromLatest: yes"), "excludeFromLatest", None),
        "nested-off": (good.replace("      ssh:\n", "      deallocate: off\n      ssh:\n"), "deallocate", None),
        "unquoted-number-as-text": (good.replace("sku: 22_04-gen2", "sku: 2204"), "identifier.sku", None),
        # The azure-native login settings: the program refuses them as the plan does.
        "login-secret-in-plaintext": (
            good.replace("config:\n", "config:\n  azure-native:clientSecret: Xy7~Q8.not-encrypted\n"),
            "azure-native:clientSecret",
            None,
        ),
        "login-tenants-not-a-list": (
            good.replace(
                "config:\n", f"config:\n  azure-native:auxiliaryTenantIds: {DEFAULT_SUBSCRIPTION};x.example\n"
            ),
            "azure-native:auxiliaryTenantIds",
            None,
        ),
        # The CLI cannot hand `.inf` over at all.
        "infinite-timeout": (
            good.replace("createTimeoutMinutes: 1_440", "createTimeoutMinutes: .inf"),
            "createTimeoutMinutes: .inf is not a finite number",
            "json: unsupported value: +Inf",
        ),
    }
    for name, (text, names, cli_names) in refused.items():
        ws.stack_file.write_text(text)
        code, err = plan_of(ws)
        assert code == 2 and names in err, f"{name}: plan exit {code}:\n{err}"
        result = ws.pulumi("preview", program=True)
        assert result.returncode != 0, f"{name}: preview accepted it:\n{result.output[-3000:]}"
        assert "Traceback" not in result.output, f"{name}:\n{result.output}"
        if cli_names is not None:
            assert cli_names in result.output, f"{name}:\n{result.output}"
        else:
            ours = problems(err)
            assert ours and ours <= problems(result.output), f"{name}: plan said {ours}, the CLI:\n{result.output}"
