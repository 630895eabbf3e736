# image-gallery-script: check-appx
# Lists AppX packages installed for a user and the packages provisioned for all users: one installed for
# a user but not provisioned (or updated for a user only) makes sysprep fail with 0x80073cf2.
# Frameworks, system and non-removable packages are left out. Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$result = [ordered]@{ supported = $false; packages = @(); provisioned = @(); error = '' }
if (Get-Command -Name Get-AppxPackage -ErrorAction SilentlyContinue) {
    $result.supported = $true
    try {
        $result.provisioned = @(Get-AppxProvisionedPackage -Online | ForEach-Object {
            [ordered]@{ name = $_.DisplayName; version = "$($_.Version)" }
        })
        $result.packages = @(Get-AppxPackage -AllUsers | Where-Object {
            -not $_.IsFramework -and -not $_.NonRemovable -and "$($_.SignatureKind)" -ne 'System'
        } | ForEach-Object {
            $users = @($_.PackageUserInformation | Where-Object { "$($_.InstallState)" -eq 'Installed' } | ForEach-Object {
                if ($_.UserSecurityId.Username) { $_.UserSecurityId.Username } else { $_.UserSecurityId.Sid }
            })
            if ($users.Count -gt 0) {
                [ordered]@{ name = $_.Name; version = "$($_.Version)"; full_name = $_.PackageFullName; users = $users }
            }
        })
    } catch {
        $result.error = $_.Exception.Message
    }
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 5
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
