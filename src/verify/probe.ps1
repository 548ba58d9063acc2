# privlink-restart probe: report which network path the ECS agent uses, as one line with
# the same fields and grammar as probe.sh. Sent as is over SSM (AWS-RunPowerShellScript)
# behind two assignments from the tool, filtered to [a-z0-9-] and digits:
#   $PrivlinkRegion = '<region>'   $PrivlinkAccount = '<12 digits>'|'unknown'
# It changes nothing on the instance. Every field is computed inside its own try/catch, so
# a missing cmdlet or an error makes that field `unknown` and the line is always printed.
# Not verified on a real host yet: the Linux script is the one tested end to end.
$ErrorActionPreference = 'Stop'
if (-not $PrivlinkRegion) { $PrivlinkRegion = '' }
if (-not $PrivlinkAccount) { $PrivlinkAccount = 'unknown' }
$suffix = 'amazonaws.com'
if ($PrivlinkRegion.StartsWith('cn-')) { $suffix = 'amazonaws.com.cn' }
$octet = '(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])'
$ipv4 = "^$octet(\.$octet){3}$"

# Valid IPv4 addresses, deduped, sorted by number ([version] compares the four parts as
# numbers), capped; `none` when there are none.
function IpList($addresses, [int]$max) {
  $list = @($addresses | ForEach-Object { "$_" -replace '^::ffff:', '' } | Where-Object { $_ -match $ipv4 } |
    Select-Object -Unique | Sort-Object { [version]$_ } | Select-Object -First $max)
  if ($list.Count -eq 0) { return 'none' }
  return ($list -join ',')
}

function ResolveName($name) {
  $found = @()
  if (Get-Command Resolve-DnsName -ErrorAction SilentlyContinue) {
    try {
      $found = @(Resolve-DnsName -Name $name -Type A -ErrorAction Stop |
        Where-Object { $_.Type -eq 'A' } | ForEach-Object { $_.IPAddress })
    } catch { $found = @() }
  }
  if ($found.Count -eq 0) {
    try {
      $found = @([System.Net.Dns]::GetHostAddresses($name) |
        Where-Object { $_.AddressFamily -eq 'InterNetwork' } | ForEach-Object { $_.IPAddressToString })
    } catch { $found = @() }
  }
  return (IpList $found 8)
}

# --- the agent's process (the AmazonECS service runs amazon-ecs-agent.exe) ---------------
$agent = 'unknown'
try {
  $process = Get-Process amazon-ecs-agent -ErrorAction SilentlyContinue | Select-Object -First 1
  if ($process) { $agent = "$($process.Id)" } else { $agent = 'none' }
} catch { $agent = 'unknown' }

# --- proxy settings: the machine environment the service reads -----------------------------
$proxy = 'unknown'; $noProxy = 'unknown'
try {
  $items = @()
  foreach ($name in 'HTTP_PROXY', 'HTTPS_PROXY') {
    $value = "$([Environment]::GetEnvironmentVariable($name, 'Machine'))" -replace '[^\x21-\x7E]', ''
    if (-not $value) { continue }
    # Credentials in a proxy URL must not end up in SSM's command output; a comma would
    # split the list.
    $value = $value -replace '^([A-Za-z][A-Za-z0-9+.-]*://)?[^/]*@', '$1***@'
    $value = $value -replace ',', '%2C'
    if ($value.Length -gt 200) { $value = $value.Substring(0, 200) }
    $items += "${name}:$value"
  }
  $proxy = 'none'
  if ($items.Count -gt 0) { $proxy = $items -join ',' }
  $value = "$([Environment]::GetEnvironmentVariable('NO_PROXY', 'Machine'))" -replace '[^\x21-\x7E]', ''
  if ($value.Length -gt 300) { $value = $value.Substring(0, 300) }
  $noProxy = 'none'
  if ($value) { $noProxy = $value }
} catch { $proxy = 'unknown'; $noProxy = 'unknown' }

# --- the agent's established TLS connections ----------------------------------------------
# Without the agent's process there is nothing to attribute connections to.
$peers = $agent
if ($agent -match '^[0-9]+$') {
  try {
    $connections = @(Get-NetTCPConnection -State Established -RemotePort 443 -OwningProcess ([int]$agent) -ErrorAction SilentlyContinue)
    $peers = IpList ($connections | ForEach-Object { $_.RemoteAddress }) 64
  } catch { $peers = 'unknown' }
}

# --- the newest websocket (ACS/TACS) connection in the agent's log ----------------------
# As in probe.sh: older agents put the URL only on the "Establishing" line before.
$wsHost = 'unknown'; $wsAt = 'unknown'
try {
  $log = 'C:\ProgramData\Amazon\ECS\log\ecs-agent.log'
  if (Test-Path -LiteralPath $log -PathType Leaf) {
    $established = $null; $establishing = $null; $before = $null
    $patterns = 'Websocket connection established', 'Established a Websocket connection', 'Establishing a Websocket connection'
    foreach ($hit in @(Select-String -LiteralPath $log -SimpleMatch -Pattern $patterns)) {
      $text = $hit.Line
      if ($text.Contains('Establishing a Websocket connection')) { $establishing = $text }
      else { $established = $text; $before = $establishing }
    }
    if (-not $established) {
      $wsHost = 'none'; $wsAt = 'none'
    } else {
      foreach ($candidate in @($established, $before)) {
        if ($candidate -and $candidate -match '(wss|https)://([^/"?:\s\\]+)') { $wsHost = $Matches[2]; break }
      }
      if ($established -match '(^|\s)time="?([^"\s]+)') { $wsAt = $Matches[2] }
      elseif ($established -match '"time":\s*"([^"]+)"') { $wsAt = $Matches[1] }
      elseif ($established -match '^([0-9]{4}-[0-9]{2}-[0-9]{2}T\S+)') { $wsAt = $Matches[1] }
      if ($wsHost.Length -gt 253) { $wsHost = $wsHost.Substring(0, 253) }
      if ($wsAt.Length -gt 64) { $wsAt = $wsAt.Substring(0, 64) }
    }
  }
} catch { $wsHost = 'unknown'; $wsAt = 'unknown' }

# --- the record line ------------------------------------------------------------------
$dns = @('unknown', 'unknown', 'unknown', 'unknown', 'unknown')
if ($PrivlinkRegion) {
  $dkr = "dkr.ecr.$PrivlinkRegion.$suffix"
  if ($PrivlinkAccount -match '^[0-9]{12}$') { $dkr = "$PrivlinkAccount.$dkr" }
  $dnsNames = @("ecs.$PrivlinkRegion.$suffix", "ecs-a.$PrivlinkRegion.$suffix", "ecs-t.$PrivlinkRegion.$suffix",
    "api.ecr.$PrivlinkRegion.$suffix", $dkr)
  for ($i = 0; $i -lt 5; $i++) {
    try { $dns[$i] = ResolveName $dnsNames[$i] } catch { $dns[$i] = 'unknown' }
  }
}
$names = @('agent', 'proxy', 'no_proxy', 'dns.ecs', 'dns.ecs-a', 'dns.ecs-t', 'dns.ecr-api', 'dns.ecr-dkr', 'peers', 'ws_host', 'ws_at')
$values = @($agent, $proxy, $noProxy) + $dns + @($peers, $wsHost, $wsAt)
for ($i = 0; $i -lt $values.Count; $i++) {
  $values[$i] = "$($values[$i])" -replace '[^\x21-\x7E]', ''
  if (-not $values[$i]) { $values[$i] = 'unknown' }
}
function Render {
  $parts = for ($i = 0; $i -lt $names.Count; $i++) { "$($names[$i])=$($values[$i])" }
  return ('PRIVLINK-PROBE v=1 ' + ($parts -join ' '))
}
# SSM lists only the first 2,500 characters of output: while the line is too long, drop
# the last item of the longest list.
$line = Render
while ($line.Length -ge 1990) {
  $longest = -1; $longestLength = 0
  for ($i = 0; $i -lt $values.Count; $i++) {
    if ($values[$i].Contains(',') -and $values[$i].Length -gt $longestLength) { $longest = $i; $longestLength = $values[$i].Length }
  }
  if ($longest -lt 0) { break }
  $values[$longest] = $values[$longest].Substring(0, $values[$longest].LastIndexOf(','))
  $line = Render
}
Write-Output $line
exit 0
