# image-gallery-script: check-removable-storage
# Reports the group policies that deny access to removable storage (Removable Storage Access; Microsoft, "Policy
# CSP - ADMX_RemovableStorage"): Deny_All under the root key ("All Removable Storage classes: Deny all access"), and
# every Deny_Read / Deny_Write / Deny_Execute value set on a device class's key (the class GUID, e.g. CD and DVD
# {53f56308-b6bf-11d0-94f2-00a0c91efb8b}). Azure provisions a VM through a virtual DVD, so only what denies reading
# it matters; hooks/windows/sysprep.py decides which. Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$root = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\RemovableStorageDevices'
$result = [ordered]@{ deny_all = $false; denied = @() }
if (Test-Path -LiteralPath $root) {
    $top = Get-ItemProperty -Path $root -ErrorAction SilentlyContinue
    $result.deny_all = [bool]($top -and $top.Deny_All -eq 1)
    foreach ($class in @(Get-ChildItem -LiteralPath $root -ErrorAction SilentlyContinue)) {
        $values = Get-ItemProperty -LiteralPath $class.PSPath -ErrorAction SilentlyContinue
        foreach ($name in 'Deny_Read', 'Deny_Write', 'Deny_Execute') {
            if ($values -and $values.$name -eq 1) { $result.denied += "$($class.PSChildName)!$name" }
        }
    }
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 3
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
