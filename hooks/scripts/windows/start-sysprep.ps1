# image-gallery-script: start-sysprep
# Starts Sysprep.exe /oobe /generalize /quiet /quit [/mode:$Mode] [$ExtraArgs] detached and prints its PID.
# Optional prelude: $Mode = 'vm' or '' ; $ExtraArgs = @('/flag', ...) (validated by hooks/windows/sysprep.py).
# clean-before-sysprep.ps1 runs first.
# Detached through WMI (Win32_Process.Create): the process is created outside the WinRM shell's job object,
# so neither closing the shell nor a dropped connection kills it, and it runs as the connected administrator
# (WMI impersonates the caller; no password to hand over, unlike a scheduled task). Never as SYSTEM:
# "Sysprep cannot be run under the context of a System account". Prints one JSON line.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
if (-not (Test-Path variable:Mode)) { $Mode = 'vm' }
if (-not (Test-Path variable:ExtraArgs)) { $ExtraArgs = @() }

$sysprepDir = Join-Path $env:SystemRoot 'System32\Sysprep'
$result = [ordered]@{ started = $false; pid = 0; already_running = @(); command_line = '' }

# Never a second sysprep next to a running one: report it and let the caller watch it.
$result.already_running = @(Get-Process -Name sysprep -ErrorAction SilentlyContinue | ForEach-Object { $_.Id })
if ($result.already_running.Count -eq 0) {
    $sysprepArgs = @('/oobe', '/generalize', '/quiet', '/quit')
    if ($Mode) { $sysprepArgs += "/mode:$Mode" }
    $sysprepArgs += $ExtraArgs
    $commandLine = '"{0}" {1}' -f (Join-Path $sysprepDir 'Sysprep.exe'), ($sysprepArgs -join ' ')
    $created = Invoke-CimMethod -ClassName Win32_Process -MethodName Create `
        -Arguments @{ CommandLine = $commandLine; CurrentDirectory = $sysprepDir }
    if ($created.ReturnValue -ne 0) { throw "Win32_Process.Create returned $($created.ReturnValue) for: $commandLine" }
    $result.started = $true
    $result.pid = [int]$created.ProcessId
    $result.command_line = $commandLine
}

$json = ConvertTo-Json -InputObject $result -Compress -Depth 4
[regex]::Replace($json, '[^\x00-\x7f]', { param($m) '\u{0:x4}' -f [int]$m.Value[0] })
