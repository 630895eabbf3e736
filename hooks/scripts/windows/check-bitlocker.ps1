# image-gallery-script: check-bitlocker
# Reports BitLocker on every fixed drive: sysprep fails with 0x80310039 unless the OS volume is fully decrypted,
# and Microsoft's "Generalize a Windows VM" asks for every fixed drive to be. Get-BitLockerVolume where
# available, manage-bde otherwise (English output only). Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$result = [ordered]@{ source = 'none'; os_drive = $env:SystemDrive; volumes = @(); error = '' }
$manageBde = Join-Path $env:SystemRoot 'System32\manage-bde.exe'
try {
    # DriveType 3: local fixed disks.
    $drives = @(Get-CimInstance -ClassName Win32_LogicalDisk -Filter 'DriveType = 3' | ForEach-Object { $_.DeviceID })
    if ($drives.Count -eq 0) { $drives = @($env:SystemDrive) }
    if (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue) {
        $result.source = 'Get-BitLockerVolume'
        $result.volumes = @(foreach ($drive in $drives) {
            $volume = Get-BitLockerVolume -MountPoint $drive
            [ordered]@{
                mount_point = $drive
                protection_status = "$($volume.ProtectionStatus)"
                volume_status = "$($volume.VolumeStatus)"
                encryption_percentage = [double]$volume.EncryptionPercentage
            }
        })
    } elseif (Test-Path -LiteralPath $manageBde) {
        $result.source = 'manage-bde'
        $result.volumes = @(foreach ($drive in $drives) {
            $text = (& $manageBde -status $drive) -join "`n"
            $entry = [ordered]@{ mount_point = $drive; protection_status = ''; volume_status = ''; encryption_percentage = -1 }
            if ($text -match 'Protection Status:\s*([^\r\n]+)') { $entry.protection_status = $Matches[1].Trim() }
            if ($text -match 'Conversion Status:\s*([^\r\n]+)') { $entry.volume_status = $Matches[1].Trim() }
            if ($text -match 'Percentage Encrypted:\s*([0-9.]+)') { $entry.encryption_percentage = [double]$Matches[1] }
            $entry
        })
    }
} catch {
    $result.error = $_.Exception.Message
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 5
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
