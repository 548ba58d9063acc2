# privlink-restart: restart the ECS agent service on Windows, wait for it to come back,
# and print one evidence line (the same fields as restart.sh). Sent as is over SSM
# (AWS-RunPowerShellScript) behind one assignment from the tool: $PrivlinkWait = <seconds>.
# Not verified on a real host yet: the Linux script is the one tested end to end.
$ErrorActionPreference = 'Stop'
if (-not $PrivlinkWait) { $PrivlinkWait = 240 }
$reason = 'none'; $version = 'unknown'; $restartAt = 0; $agentStarted = 0; $acsConnected = 0
$bootId = 'unknown'
try { $bootId = (Get-CimInstance Win32_OperatingSystem).LastBootUpTime.ToUniversalTime().ToString('yyyyMMddTHHmmss') } catch {}
function Evidence($result) {
  Write-Output ("PRIVLINK-EVIDENCE v=1 result=$result reason=$reason method=service supervisor=service " +
    "agent_version=$version restart_at=$restartAt agent_started=$agentStarted acs_connected=$acsConnected " +
    "credentials_before=none credentials_after=none boot_id=$bootId")
}
function Fail($why) { $script:reason = $why; Evidence 'failed'; exit 1 }
function Epoch($time) { [DateTimeOffset]::new($time.ToUniversalTime()).ToUnixTimeSeconds() }

if (-not (Get-Service AmazonECS -ErrorAction SilentlyContinue)) { Fail 'no-amazonecs-service' }
$restartAt = [DateTimeOffset]::UtcNow.ToUnixTimeSeconds()
try { Restart-Service AmazonECS -Force } catch { Fail 'restart-command-failed' }

# One budget for all the waiting: SSM's execution timeout leaves a minute beyond it.
$deadline = (Get-Date).AddSeconds($PrivlinkWait)
$metadata = $null
while ((Get-Date) -lt $deadline -and -not $metadata) {
  try { $metadata = Invoke-RestMethod -TimeoutSec 2 http://localhost:51678/v1/metadata } catch { Start-Sleep 2 }
}
if (-not $metadata) { Fail 'introspection-api-not-back' }
if ($metadata.Version -match 'v([0-9][0-9.]*)') { $version = $Matches[1] }
if ((Get-Service AmazonECS).Status -ne 'Running') { Fail 'supervisor-not-running-agent' }
$process = Get-Process amazon-ecs-agent -ErrorAction SilentlyContinue | Select-Object -First 1
if ($process) { $agentStarted = Epoch $process.StartTime }
if ($agentStarted -lt $restartAt) { Fail 'agent-not-restarted' }

$log = 'C:\ProgramData\Amazon\ECS\log\ecs-agent.log'
while ((Get-Date) -lt $deadline -and $acsConnected -eq 0) {
  $line = Select-String -Path $log -Pattern 'Connected to ACS endpoint' -ErrorAction SilentlyContinue | Select-Object -Last 1
  if ($line -and $line.Line -match 'time=(\S+)') {
    $stamp = Epoch ([DateTime]::Parse($Matches[1]))
    if ($stamp -ge $agentStarted) { $acsConnected = $stamp }
  }
  if ($acsConnected -eq 0) { Start-Sleep 2 }
}
if ($acsConnected -eq 0) { Fail 'acs-not-connected' }
Evidence 'ok'
