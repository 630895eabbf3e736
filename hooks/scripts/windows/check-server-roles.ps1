# image-gallery-script: check-server-roles
# Lists installed Windows features, Hyper-V virtual switches and whether WDS is initialized. The policy
# (which roles sysprep does not support) lives in hooks/windows/sysprep.py; a query that fails is reported in
# `errors`, never taken for "no roles". Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$result = [ordered]@{ feature_query = $false; installed = @(); vm_switches = @(); wds_initialized = $false; errors = @() }

# Get-WindowsFeature exists on Windows Server only; client editions have no server roles.
if (Get-Command -Name Get-WindowsFeature -ErrorAction SilentlyContinue) {
    try {
        $result.installed = @(Get-WindowsFeature | Where-Object { $_.Installed } | ForEach-Object { $_.Name })
        $result.feature_query = $true
    } catch { $result.errors += "Get-WindowsFeature: $($_.Exception.Message)" }
}
if (Get-Command -Name Get-VMSwitch -ErrorAction SilentlyContinue) {
    try { $result.vm_switches = @(Get-VMSwitch | ForEach-Object { $_.Name }) }
    catch { $result.errors += "Get-VMSwitch: $($_.Exception.Message)" }
}
# WDS is only a problem once initialized; initialization sets the TFTP root (the RemoteInstall folder).
$tftp = Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Services\WDSServer\Providers\WDSTFTP' -Name RootFolder -ErrorAction SilentlyContinue
$result.wds_initialized = [bool]($tftp -and $tftp.RootFolder)

$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
