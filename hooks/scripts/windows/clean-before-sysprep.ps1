# image-gallery-script: clean-before-sysprep
# Removes what would drive or break this sysprep run (Microsoft, "Generalize a Windows VM"): answer files from
# every place of Windows Setup's implicit search order, the Panther directory, an earlier success tag. Keeps the
# previous sysprep logs aside. Does nothing while sysprep runs. Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

$sysprepDir = Join-Path $env:SystemRoot 'System32\Sysprep'
$result = [ordered]@{ sysprep_running = @(); removed = @(); kept_aside = @(); errors = @() }
function Remove-Leftover([string]$Path) {
    try { Remove-Item -LiteralPath $Path -Force -Recurse; $result.removed += $Path }
    catch { $result.errors += "${Path}: $($_.Exception.Message)" }
}

$result.sysprep_running = @(Get-Process -Name sysprep -ErrorAction SilentlyContinue | ForEach-Object { $_.Id })
if ($result.sysprep_running.Count -eq 0) {
    $key = 'HKLM:\SYSTEM\Setup'
    $pointer = (Get-ItemProperty -Path $key -Name UnattendFile -ErrorAction SilentlyContinue).UnattendFile
    if ($null -ne $pointer) {
        try { Remove-ItemProperty -Path $key -Name UnattendFile; $result.removed += "HKLM\SYSTEM\Setup!UnattendFile (was $pointer)" }
        catch { $result.errors += "HKLM\SYSTEM\Setup!UnattendFile: $($_.Exception.Message)" }
    }
    $panther = Join-Path $env:SystemRoot 'Panther'
    foreach ($dir in (Join-Path $panther 'Unattend'), $panther, $sysprepDir, "$env:SystemDrive\") {
        foreach ($name in 'Unattend.xml', 'Autounattend.xml') {
            $file = Join-Path $dir $name
            if (Test-Path -LiteralPath $file -PathType Leaf) { Remove-Leftover $file }
        }
    }
    # Logs of earlier setup runs can make sysprep fail; setup creates the directory again.
    if (Test-Path -LiteralPath $panther) { Remove-Leftover $panther }
    $tag = Join-Path $sysprepDir 'Sysprep_succeeded.tag'
    if (Test-Path -LiteralPath $tag) { Remove-Leftover $tag }
    foreach ($name in 'setuperr.log', 'setupact.log') {
        $log = Join-Path $sysprepDir "Panther\$name"
        if (Test-Path -LiteralPath $log) {
            Move-Item -LiteralPath $log -Destination "$log.previous" -Force
            $result.kept_aside += "$log.previous"
        }
    }
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
