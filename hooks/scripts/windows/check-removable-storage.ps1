# image-gallery-script: check-removable-storage
# Reports group policies that deny access to removable storage (Removable Storage Access: "All Removable Storage
# classes: Deny all access", or a Deny_* value for one device class such as CD and DVD): Azure provisions a VM
# through a virtual DVD, so a VM from such an image cannot finish setup. Prints one JSON line.
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
