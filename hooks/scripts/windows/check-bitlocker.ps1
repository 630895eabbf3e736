# image-gallery-script: check-bitlocker
# Reports BitLocker on the OS volume: sysprep fails with 0x80310039 unless it is fully decrypted.
# Get-BitLockerVolume where available, manage-bde otherwise (English output only). Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$drive = $env:SystemDrive
$result = [ordered]@{ mount_point = $drive; source = 'none'; protection_status = ''; volume_status = ''; encryption_percentage = -1; error = '' }
$manageBde = Join-Path $env:SystemRoot 'System32\manage-bde.exe'
try {
    if (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue) {
        $volume = Get-BitLockerVolume -MountPoint $drive
        $result.source = 'Get-BitLockerVolume'
        $result.protection_status = "$($volume.ProtectionStatus)"
        $result.volume_status = "$($volume.VolumeStatus)"
        $result.encryption_percentage = [double]$volume.EncryptionPercentage
    } elseif (Test-Path -LiteralPath $manageBde) {
        $text = (& $manageBde -status $drive) -join "`n"
        $result.source = 'manage-bde'
        if ($text -match 'Protection Status:\s*([^\r\n]+)') { $result.protection_status = $Matches[1].Trim() }
        if ($text -match 'Conversion Status:\s*([^\r\n]+)') { $result.volume_status = $Matches[1].Trim() }
        if ($text -match 'Percentage Encrypted:\s*([0-9.]+)') { $result.encryption_percentage = [double]$Matches[1] }
    }
} catch {
    $result.error = $_.Exception.Message
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
