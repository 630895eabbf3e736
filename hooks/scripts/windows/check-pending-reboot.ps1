# image-gallery-script: check-pending-reboot
# Reports a pending reboot (servicing, Windows Update, file renames): sysprep fails or the image
# inherits half-finished servicing. Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$sessionManager = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager'
$renames = @((Get-ItemProperty -Path $sessionManager -Name PendingFileRenameOperations -ErrorAction SilentlyContinue).PendingFileRenameOperations |
    Where-Object { $_ })

$result = [ordered]@{
    cbs_reboot_pending  = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending'
    wu_reboot_required  = Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
    file_rename_count   = $renames.Count
    file_renames        = @($renames | Select-Object -First 10)
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
