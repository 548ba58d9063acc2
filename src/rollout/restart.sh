# privlink-restart: restart the ECS agent under its own supervisor, wait for it to come
# back, and print one evidence line. Sent as is over SSM (AWS-RunShellScript); the tool
# puts exactly two assignments in front of it, from its own enum and integer:
#   PRIVLINK_METHOD=auto|systemd|upstart|docker   PRIVLINK_WAIT=<seconds>
# Nothing else is spliced in.
#
# Why the supervisor matters: on Amazon Linux the agent container is run by ecs-init
# (systemd unit or upstart job `ecs`). The agent exits 0 on SIGTERM and ecs-init treats
# that as final, so a bare `docker restart ecs-agent` ends the unit, whose post-stop
# removes the task-credential route (169.254.170.2): tasks lose their IAM credentials.
set -u
method="${PRIVLINK_METHOD:-auto}"
wait_limit="${PRIVLINK_WAIT:-240}"

reason=""
supervisor="none"
agent_version="unknown"
restart_at=0
agent_started=0
acs_connected=0
credentials_before="none"
credentials_after="none"
boot_id="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null | tr -d '\n' || true)"

evidence() {
  local result="$1"
  echo "PRIVLINK-EVIDENCE v=1 result=${result} reason=${reason:-none} method=${method} supervisor=${supervisor}" \
       "agent_version=${agent_version} restart_at=${restart_at} agent_started=${agent_started}" \
       "acs_connected=${acs_connected} credentials_before=${credentials_before}" \
       "credentials_after=${credentials_after} boot_id=${boot_id:-unknown}"
}

fail() {
  reason="$1"
  evidence failed
  exit 1
}

# The task-credential endpoint's HTTP status: compared before and after, because hosts
# without tasks that use IAM roles never answer there at all ("000").
credentials_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://169.254.170.2/v2/credentials/ 2>/dev/null || true
}

agent_start_epoch() {
  local started
  started="$(docker inspect -f '{{.State.StartedAt}}' ecs-agent 2>/dev/null)" || return 1
  date -u -d "${started}" +%s 2>/dev/null
}

if command -v systemctl >/dev/null 2>&1 && systemctl cat ecs >/dev/null 2>&1; then
  supervisor="systemd"
elif command -v initctl >/dev/null 2>&1 && initctl status ecs >/dev/null 2>&1; then
  supervisor="upstart"
elif command -v docker >/dev/null 2>&1 && docker inspect ecs-agent >/dev/null 2>&1; then
  supervisor="docker"
fi

case "${method}" in
  auto)
    [ "${supervisor}" = "none" ] && fail "unknown-supervisor"
    method="${supervisor}"
    ;;
  docker)
    { [ "${supervisor}" = "systemd" ] || [ "${supervisor}" = "upstart" ]; } && fail "docker-restart-on-supervised-host"
    [ "${supervisor}" = "docker" ] || fail "no-agent-container"
    ;;
  systemd|upstart)
    [ "${supervisor}" = "${method}" ] || fail "supervisor-is-${supervisor}"
    ;;
  *)
    fail "unknown-method"
    ;;
esac

credentials_before="$(credentials_status)"
restart_at="$(date -u +%s)"
case "${method}" in
  systemd) systemctl restart ecs || fail "restart-command-failed" ;;
  upstart) { stop ecs; start ecs; } || fail "restart-command-failed" ;;
  docker) docker restart ecs-agent >/dev/null || fail "restart-command-failed" ;;
esac

# One budget for all the waiting below: PRIVLINK_WAIT seconds in all (SSM's execution
# timeout leaves a minute beyond it, so the script always ends itself and reports), polled
# every 2 seconds, also counted in rounds so the budget holds whatever the clock does.
deadline=$(( SECONDS + wait_limit ))
rounds=$(( wait_limit / 2 ))
[ "${rounds}" -lt 1 ] && rounds=1
waiting() {
  [ "${SECONDS}" -lt "${deadline}" ] && [ "${rounds}" -gt 0 ] && rounds=$(( rounds - 1 ))
}

metadata=""
while waiting; do
  metadata="$(curl -sf --max-time 2 http://localhost:51678/v1/metadata 2>/dev/null)" && break
  metadata=""
  sleep 2
done
[ -n "${metadata}" ] || fail "introspection-api-not-back"
agent_version="$(printf '%s' "${metadata}" | sed -n 's/.*"Version":"[^"]*v\([0-9][0-9.]*\).*/\1/p')"
[ -n "${agent_version}" ] || agent_version="unknown"

case "${method}" in
  systemd) systemctl is-active --quiet ecs || fail "supervisor-not-running-agent" ;;
  upstart) initctl status ecs 2>/dev/null | grep -q "start/running" || fail "supervisor-not-running-agent" ;;
  docker) [ "$(docker inspect -f '{{.State.Running}}' ecs-agent 2>/dev/null)" = "true" ] || fail "agent-container-not-running" ;;
esac

agent_started="$(agent_start_epoch)" || agent_started=0
[ "${agent_started:-0}" -ge "${restart_at}" ] || fail "agent-not-restarted"

# The newest "Connected to ACS endpoint" line at or after the agent's start, from the
# container's log and the agent's log file, in the logfmt (time=…) or JSON ("time":"…")
# format the agent may be set to write.
acs_time() {
  local line stamp newest=0 at
  for line in "$(docker logs --since "${agent_started}" ecs-agent 2>&1 | grep 'Connected to ACS endpoint' | tail -n 1)" \
              "$(grep -h 'Connected to ACS endpoint' /var/log/ecs/ecs-agent.log 2>/dev/null | tail -n 1)"; do
    stamp="$(printf '%s' "${line}" | sed -n -e 's/.*"time": *"\([^"]*\)".*/\1/p' -e 's/.*time=\([^ ]*\).*/\1/p' | head -n 1)"
    [ -n "${stamp}" ] || continue
    at="$(date -u -d "${stamp}" +%s 2>/dev/null)" || continue
    [ "${at}" -gt "${newest}" ] && newest="${at}"
  done
  echo "${newest}"
}

while waiting; do
  acs_connected="$(acs_time)"
  [ "${acs_connected}" -ge "${agent_started}" ] && break
  acs_connected=0
  sleep 2
done
[ "${acs_connected}" -gt 0 ] || fail "acs-not-connected"

credentials_after="$(credentials_status)"
[ "${credentials_after}" = "${credentials_before}" ] || fail "credentials-endpoint-changed"

evidence ok
