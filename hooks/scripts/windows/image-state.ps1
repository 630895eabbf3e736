# image-gallery-script: image-state
# Reports Windows Setup's ImageState, whether Sysprep.exe is running, and the tails of its Panther logs.
# Prints one JSON line. Optional prelude: $TailLines = <0..200> (0: no log tails).
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
if (-not (Test-Path variable:TailLines)) { $TailLines = 40 }

# Look at the process before the state: if sysprep is gone here, the state read below is its final word.
$sysprepIds = @(Get-Process -Name sysprep -ErrorAction SilentlyContinue | ForEach-Object { $_.Id })
$stateKey = 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\State'
$state = (Get-ItemProperty -Path $stateKey -Name ImageState -ErrorAction SilentlyContinue).ImageState
$sysprepDir = Join-Path $env:SystemRoot 'System32\Sysprep'

function Get-LogTail([string]$Name) {
    $path = Join-Path $sysprepDir "Panther\$Name"
    if ($TailLines -le 0 -or -not (Test-Path -LiteralPath $path)) { return '' }
    (Get-Content -LiteralPath $path -Tail $TailLines -ErrorAction SilentlyContinue) -join "`n"
}

$result = [ordered]@{
    image_state      = $state
    sysprep_pids     = $sysprepIds
    succeeded_tag    = Test-Path -LiteralPath (Join-Path $sysprepDir 'Sysprep_succeeded.tag')
    setuperr_tail    = Get-LogTail 'setuperr.log'
    setupact_tail    = Get-LogTail 'setupact.log'
}
# One line of ASCII: the console code page would mangle anything else.
$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
