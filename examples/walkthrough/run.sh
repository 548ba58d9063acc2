#!/usr/bin/env bash
# A guided tour of privlink-restart on a small emulated cluster: no AWS account needed,
# nothing leaves this machine. Every AWS call goes to the emulator the end-to-end tests
# use (moto plus tests/support/emulator.py) on 127.0.0.1.
#
#   examples/walkthrough/run.sh [path/to/privlink-restart]
#
# The binary: the argument, else $PRIVLINK_RESTART, else target/debug/privlink-restart.
# The emulator needs moto: run scripts/test once, or pip install 'moto[server]==5.2.1'.
set -euo pipefail

binary=${1:-${PRIVLINK_RESTART:-}}
repo=$(cd "$(dirname "$0")/../.." && pwd)
if [[ -n $binary && $binary != /* && -e $binary ]]; then
  binary="$PWD/$binary"  # relative to where you ran this from
fi
cd "$repo"
binary=${binary:-target/debug/privlink-restart}
if [[ ! -x $binary ]]; then
  echo "run.sh: no privlink-restart binary at $binary; build it first: cargo build" >&2
  exit 2
fi
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import moto, boto3' 2>/dev/null; then
  echo "run.sh: the AWS emulator needs moto and boto3; run scripts/test once (it installs them)," >&2
  echo "        or: $PYTHON -m pip install 'moto[server]==5.2.1'" >&2
  exit 2
fi

bold=$'\e[1m' plain=$'\e[0m'
if [[ ! -t 1 || -n ${NO_COLOR:-} ]]; then bold='' plain=''; fi
step=0
heading() {  # one line saying what happens next and why
  step=$((step + 1))
  printf '\n%s== %d. %s%s\n\n' "$bold" "$step" "$*" "$plain"
}
# expect CODE COMMAND...: runs it, shows the exit code, stops the tour on any other code.
expect() {
  local want=$1 code=0
  shift
  echo "\$ privlink-restart ${*:2}"
  "$@" || code=$?
  echo "(exit $code)"
  if [[ $code -ne $want ]]; then
    echo "run.sh: expected exit $want, got $code; the emulator's log: $work/emulator.log" >&2
    keep_work=1  # for a look at the log
    exit 1
  fi
}

# Everything temporary lives here: the emulator's log, empty AWS config files, and the
# journals privlink-restart keeps (PRIVLINK_RESTART_STATE_DIR).
work=$(mktemp -d "${TMPDIR:-/tmp}/privlink-walkthrough.XXXXXX")
emulator_pid='' emulator_stdin='' keep_work=''
cleanup() {
  if [[ -n $emulator_pid ]]; then
    exec {emulator_stdin}>&- 2>/dev/null || true  # the emulator exits when its stdin closes
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  if [[ -z $keep_work ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

heading "Start the AWS emulator (moto + tests/support/emulator.py) on a free port of 127.0.0.1"
# --port 0 lets the OS pick a free port; the emulator prints it as its first line. It
# serves until its stdin reaches EOF, so it runs as a coprocess whose stdin we hold.
coproc EMU { exec "$PYTHON" tests/support/emulator.py --port 0 2>"$work/emulator.log"; }
emulator_pid=$EMU_PID emulator_stdin=${EMU[1]}
line=''
read -r -t 30 line <&"${EMU[0]}" || true
port=${line#PRIVLINK_EMULATOR_PORT=}
if [[ ! $port =~ ^[0-9]+$ ]]; then
  echo "run.sh: the emulator did not start; its log:" >&2
  cat "$work/emulator.log" >&2
  exit 2
fi
echo "emulator on http://127.0.0.1:$port"

# Only the emulator, never AWS: drop every inherited AWS_* setting (profiles, service
# endpoint overrides, tokens), then give dummy credentials and the emulator's address.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^AWS_' || true)
: >"$work/aws-config"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
export AWS_CONFIG_FILE="$work/aws-config" AWS_SHARED_CREDENTIALS_FILE="$work/aws-config"
export AWS_EC2_METADATA_DISABLED=true
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export PRIVLINK_RESTART_STATE_DIR="$work/state"

heading "Build cluster 'demo': VPC in 3 AZs, endpoints, 3 instances, a task; but no ecs-agent endpoint"
"$PYTHON" examples/walkthrough/cluster.py build

heading "check reads the cluster and finds what blocks the cutover (expect exit 1: the missing endpoint)"
expect 1 "$binary" check --cluster demo

heading "Fix it the way check says: create the ecs-agent interface endpoint, private DNS on"
"$PYTHON" examples/walkthrough/cluster.py fix

heading "check again: nothing blocks now (expect exit 0)"
expect 0 "$binary" check --cluster demo

heading "The cutover: restart each agent over SSM in waves and prove it is on the endpoints (exit 0)"
# --yes: no prompt (there is no terminal to ask on in a script).
expect 0 "$binary" --cluster demo --yes

heading "verify probes every instance: all agents' websockets end on the endpoints (exit 0)"
expect 0 "$binary" verify --cluster demo

heading "Done: check -> fix -> check -> cutover -> verify all behaved as expected"
echo "Against a real cluster it is the same commands, with your own credentials and no emulator."
