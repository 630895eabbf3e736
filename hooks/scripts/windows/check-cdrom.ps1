# image-gallery-script: check-cdrom
# Reports the start type of the CD/DVD-ROM driver: Azure provisions a VM through a virtual DVD (the ovf-env
# answer), so with the driver disabled a VM from the image is stuck at OOBE (Microsoft, "Generalize a Windows VM":
# HKLM\SYSTEM\CurrentControlSet\Services\cdrom Start must be 1). Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$key = 'HKLM:\SYSTEM\CurrentControlSet\Services\cdrom'
$result = [ordered]@{ present = $false; start = -1 }
$service = Get-ItemProperty -Path $key -Name Start -ErrorAction SilentlyContinue
if ($null -ne $service) {
    $result.present = $true
    $result.start = [int]$service.Start
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 3
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
