# privlink-restart probe: report which network path the ECS agent uses, as one line.
# Sent as is over SSM (AWS-RunShellScript); the tool puts exactly two assignments in
# front of it, filtered to [a-z0-9-] and digits:
#   PRIVLINK_REGION=<region>   PRIVLINK_ACCOUNT=<12 digits>|unknown
# Nothing else is spliced in, and the probe changes nothing on the instance.
#
# Why these fields: an agent on PrivateLink talks to the endpoints' private addresses, so
# the proof is what the ECS/ECR names resolve to here, where the agent's own TLS
# connections go, the host of its newest ACS/TACS websocket, and any proxy (which would
# make the peers the proxy's, not AWS's). Any tool may be missing: its field is then
# `unknown` (could not look); `none` means looked and found nothing. Values never hold
# spaces, lists are comma-separated, and the script always prints its line and exits 0.
set -u
export LC_ALL=C
region="${PRIVLINK_REGION:-}"
account="${PRIVLINK_ACCOUNT:-unknown}"
agent_log="${PRIVLINK_AGENT_LOG:-/var/log/ecs/ecs-agent.log}"
ecs_config="${PRIVLINK_ECS_CONFIG:-/etc/ecs/ecs.config}"
case "${region}" in cn-*) suffix="amazonaws.com.cn" ;; *) suffix="amazonaws.com" ;; esac

have() { command -v "$1" >/dev/null 2>&1; }
# The tool gives the probe 60 seconds: a hung resolver or docker daemon must not keep the
# line from being printed, so each call is cut at 5 seconds and none starts after 40.
bounded() {
  (( SECONDS < 40 )) || return 124
  if have timeout; then timeout 5 "$@"; else "$@"; fi
}

# The valid IPv4 addresses among the first words of stdin, deduped, sorted and capped: a
# sparse array indexed by the address's number does all three in bash, so the host needs
# no sort or head.
ip_list() {
  local max="$1" ip rest n=0 out="" a b c d
  local -a seen=()
  while read -r ip rest; do
    [[ "${ip}" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || continue
    a=$((10#${BASH_REMATCH[1]})) b=$((10#${BASH_REMATCH[2]})) c=$((10#${BASH_REMATCH[3]})) d=$((10#${BASH_REMATCH[4]}))
    (( a < 256 && b < 256 && c < 256 && d < 256 )) && seen[$(( (a << 24) | (b << 16) | (c << 8) | d ))]="${a}.${b}.${c}.${d}"
  done
  # ${x[@]+...}: bash 4.2 (Amazon Linux 2) calls an empty array unbound under set -u.
  for ip in ${seen[@]+"${seen[@]}"}; do
    (( n++ < max )) && out+="${out:+,}${ip}"
  done
  printf '%s' "${out:-none}"
}

# getent exits 2 for a name that does not exist; `hosts` is the fallback where ahostsv4 is
# not known (exit 1); a lookup cut short (124) could not look.
resolve() {
  have getent || { printf unknown; return; }
  local answer status
  answer="$(bounded getent ahostsv4 "$1" 2>/dev/null)"; status=$?
  if [ "${status}" = 1 ]; then answer="$(bounded getent hosts "$1" 2>/dev/null)"; status=$?; fi
  if [ "${status}" = 124 ]; then printf unknown; else ip_list 8 <<< "${answer}"; fi
}

# --- the agent's process: the ecs-agent container, else a host process named agent ------
agent="unknown"
if have docker; then
  agent="$(bounded docker inspect -f '{{.State.Pid}}' ecs-agent 2>/dev/null)"
  [[ "${agent}" =~ ^[1-9][0-9]*$ ]] || agent="none"
fi
if [[ ! "${agent}" =~ ^[0-9]+$ ]] && have pgrep; then
  agent="$(pgrep -o -x agent 2>/dev/null)" agent="${agent%%[!0-9]*}" agent="${agent:-none}"
fi

# --- proxy settings: the agent container's live environment first, then ecs.config -----
proxy="" no_proxy="" proxy_looked=0
take_env() {
  local line key value
  while IFS= read -r line || [ -n "${line}" ]; do
    [[ "${line}" =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]//[^[:graph:]]/}"
    [[ "${value}" =~ ^\"(.*)\"$ || "${value}" =~ ^\'(.*)\'$ ]] && value="${BASH_REMATCH[1]}"
    [ -n "${value}" ] || continue
    case "${key^^}" in
      HTTP_PROXY|HTTPS_PROXY)
        # Credentials in a proxy URL must not end up in SSM's command output; a comma
        # would split the list.
        [[ "${value}" =~ ^([A-Za-z][A-Za-z0-9+.-]*://)?.*@([^@]*)$ ]] && value="${BASH_REMATCH[1]}***@${BASH_REMATCH[2]}"
        value="${value//,/%2C}" value="${value:0:200}"
        [[ ",${proxy}," == *",${key}:${value},"* ]] || proxy+="${proxy:+,}${key}:${value}" ;;
      NO_PROXY) no_proxy="${no_proxy:-${value:0:300}}" ;;
    esac
  done
}
if have docker && agent_env="$(bounded docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' ecs-agent 2>/dev/null)"; then
  proxy_looked=1
  take_env <<< "${agent_env}"
fi
if [ -f "${ecs_config}" ] && [ -r "${ecs_config}" ]; then
  proxy_looked=1
  take_env < "${ecs_config}"
fi
if [ "${proxy_looked}" = 1 ]; then proxy="${proxy:-none}" no_proxy="${no_proxy:-none}"; else proxy="unknown" no_proxy="unknown"; fi

# --- the agent's established TLS connections -----------------------------------------------
# Matched by the agent's pid, else (pid unknown) by its process name. -H (no header) is
# missing from older iproute2, and the parse tolerates a header and a State column: the
# local address is the first word with a colon, the peer the second.
peers="unknown"
if have ss; then
  listing="$(bounded ss -Htnp state established '( dport = :443 )' 2>/dev/null)" \
    || listing="$(bounded ss -tnp state established '( dport = :443 )' 2>/dev/null)" \
    || listing="unknown"
  owner=""
  [[ "${agent}" =~ ^[0-9]+$ ]] && owner="pid=${agent},"
  [ "${listing}" = unknown ] || peers="$(
    while read -r -a words; do
      [ "${#words[@]}" -gt 0 ] || continue
      line=" ${words[*]} " addresses=()
      if [ -n "${owner}" ]; then [[ "${line}" == *"${owner}"* ]] || continue
      else [[ "${line}" == *'"agent",'* || "${line}" == *'"amazon-ecs-agent",'* ]] || continue; fi
      for word in "${words[@]}"; do
        [[ "${word}" == users:* || "${word}" != *:* ]] || addresses+=("${word}")
      done
      peer="${addresses[1]:-}"
      [[ "${peer}" == *:443 ]] || continue
      # IPv4-mapped forms: [::ffff:a.b.c.d]:443, ::ffff:a.b.c.d:443; a.b.c.d%eth0:443.
      peer="${peer%:443}" peer="${peer#[}" peer="${peer%]}" peer="${peer%%\%*}"
      [[ "${peer,,}" == ::ffff:* ]] && peer="${peer:7}"
      printf '%s\n' "${peer}"
    done <<< "${listing}" | ip_list 64
  )"
fi

# --- the newest websocket (ACS/TACS) connection in the agent's log ----------------------
# Agents from 1.76 put the URL on the "established" line; older ones only on the
# "Establishing" line before it (and on a debug-level "Established a Websocket connection
# to URL"), so the host falls back to the newest "Establishing" line before it.
ws_host="unknown" ws_at="unknown"
if have grep && [ -f "${agent_log}" ] && [ -r "${agent_log}" ]; then
  established="" establishing="" before=""
  while IFS= read -r line; do
    case "${line}" in
      *"Websocket connection established"*|*"Established a Websocket connection"*) established="${line}" before="${establishing}" ;;
      *) establishing="${line}" ;;
    esac
  done < <(grep -a -e 'Websocket connection established' -e 'Established a Websocket connection' \
             -e 'Establishing a Websocket connection' "${agent_log}" 2>/dev/null)
  if [ -z "${established}" ]; then
    ws_host="none" ws_at="none"
  else
    url='(wss|https)://([^/"?:[:space:]\\]+)'
    logfmt_time='(^|[[:space:]])time="?([^"[:space:]]+)'
    json_time='"time":[[:space:]]*"([^"]+)"'
    leading_time='^([0-9]{4}-[0-9]{2}-[0-9]{2}T[^[:space:]]+)'
    for candidate in "${established}" "${before}"; do
      [[ "${candidate}" =~ ${url} ]] && { ws_host="${BASH_REMATCH[2]:0:253}"; break; }
    done
    if [[ "${established}" =~ ${logfmt_time} ]]; then ws_at="${BASH_REMATCH[2]:0:64}"
    elif [[ "${established}" =~ ${json_time} ]]; then ws_at="${BASH_REMATCH[1]:0:64}"
    elif [[ "${established}" =~ ${leading_time} ]]; then ws_at="${BASH_REMATCH[1]:0:64}"
    fi
  fi
fi

# --- the record line ------------------------------------------------------------------
dns=(unknown unknown unknown unknown unknown)
if [ -n "${region}" ]; then
  dkr="dkr.ecr.${region}.${suffix}"
  [[ "${account}" =~ ^[0-9]{12}$ ]] && dkr="${account}.${dkr}"
  dns=("$(resolve "ecs.${region}.${suffix}")" "$(resolve "ecs-a.${region}.${suffix}")" "$(resolve "ecs-t.${region}.${suffix}")"
       "$(resolve "api.ecr.${region}.${suffix}")" "$(resolve "${dkr}")")
fi
names=(agent proxy no_proxy dns.ecs dns.ecs-a dns.ecs-t dns.ecr-api dns.ecr-dkr peers ws_host ws_at)
values=("${agent}" "${proxy}" "${no_proxy}" "${dns[@]}" "${peers}" "${ws_host}" "${ws_at}")
for i in "${!values[@]}"; do
  values[i]="${values[i]//[^[:graph:]]/}" values[i]="${values[i]:-unknown}"
done
render() {
  local i
  line="PRIVLINK-PROBE v=1"
  for i in "${!names[@]}"; do line+=" ${names[i]}=${values[i]}"; done
}
# SSM lists only the first 2,500 characters of output: while the line is too long, drop
# the last item of the longest list (no value without a comma exceeds 300 bytes).
render
while (( ${#line} >= 1990 )); do
  longest=-1 longest_length=0
  for i in "${!values[@]}"; do
    [[ "${values[i]}" == *,* ]] && (( ${#values[i]} > longest_length )) && longest="${i}" longest_length="${#values[i]}"
  done
  (( longest >= 0 )) || break
  values[longest]="${values[longest]%,*}"
  render
done
printf '%s\n' "${line}"
exit 0
