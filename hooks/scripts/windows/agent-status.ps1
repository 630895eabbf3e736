# image-gallery-script: agent-status
# Reports the Azure VM agent services (absent ones as absent). The agent takes part in sysprep, so
# sysprep must not start before they run (packer#5945). Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$services = @(foreach ($name in 'RdAgent', 'WindowsAzureTelemetryService', 'WindowsAzureGuestAgent') {
    $svc = Get-Service -Name $name -ErrorAction SilentlyContinue
    if ($null -eq $svc) {
        [ordered]@{ name = $name; present = $false; status = ''; start_type = '' }
    } else {
        # Enums as text ("$(...)"): ConvertTo-Json would print their numbers. StartType is missing on old .NET.
        [ordered]@{ name = $name; present = $true; status = "$($svc.Status)"; start_type = "$($svc.StartType)" }
    }
})

$json = ConvertTo-Json -InputObject ([ordered]@{ services = $services }) -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
