#!/usr/bin/env bash
# A pipeline's cutover step: check the cluster, then run the cutover unattended, and fail
# the pipeline on anything but a clean run. Needs AWS credentials with the policy from
# `privlink-restart iam-policy --cluster "$CLUSTER" --region "$AWS_REGION" --account ACCOUNT`.
#
#   CLUSTER=prod AWS_REGION=eu-west-1 examples/pipeline/cutover.sh
#
# Optional: WINDOW="Sat,Sun 02:00-05:00 Europe/Berlin" (repeat --window in EXTRA for more),
# DEADLINE=90m, STATE_DIR (keep it between runs, e.g. a cache, so --resume finds the
# journal; without it the run still resumes from the records kept on AWS), EXTRA (more
# options, e.g. "--max-unavailable 20% --by-az").
set -euo pipefail

: "${CLUSTER:?set CLUSTER to the ECS cluster name}"
BIN=${PRIVLINK_RESTART:-privlink-restart}
OUT=${OUT:-privlink-restart-out}
mkdir -p "$OUT"

# 1. The preflight, as JSON for the pipeline's artifacts. Exit 1 means a blocking finding:
#    stop here, nothing was changed.
set +e
"$BIN" check --cluster "$CLUSTER" --output json > "$OUT/check.json"
code=$?
set -e
if [ "$code" -ne 0 ]; then
  echo "check: exit $code; the findings are in $OUT/check.json (docs/TROUBLESHOOTING.md says how to fix each)" >&2
  exit "$code"
fi

# 2. The cutover, unattended. --resume finishes a run an earlier pipeline left (or starts
#    one when there is none); the JSON lines are the events, then the summary.
args=(--cluster "$CLUSTER" --yes --resume --output json)
[ -n "${WINDOW:-}" ] && args+=(--window "$WINDOW")
[ -n "${DEADLINE:-}" ] && args+=(--deadline "$DEADLINE")
[ -n "${STATE_DIR:-}" ] && args+=(--state-dir "$STATE_DIR")
# shellcheck disable=SC2206 # EXTRA is split on purpose
[ -n "${EXTRA:-}" ] && args+=($EXTRA)
set +e
"$BIN" "${args[@]}" > "$OUT/cutover.jsonl"
code=$?
set -e
case "$code" in
  0) echo "cutover: every agent moved and proven; $OUT/cutover.jsonl has the evidence" ;;
  3) echo "cutover: stopped and resumable (interrupted, lease lost, or out of its window); run this step again to resume" >&2 ;;
  4) echo "cutover: another run holds the cluster's lease; see privlink-restart status --cluster $CLUSTER" >&2 ;;
  *) echo "cutover: exit $code; the summary (last line of $OUT/cutover.jsonl) says which instances failed and why" >&2 ;;
esac
[ "$code" -eq 0 ] || exit "$code"

# 3. The proof, independent of the run: every agent's path, probed again.
"$BIN" verify --cluster "$CLUSTER" --output json > "$OUT/verify.json"
