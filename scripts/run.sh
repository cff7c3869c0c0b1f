#!/usr/bin/env bash
# run.sh — `make run`: the settle daemon with the sandbox bank, a demo data set and asynqmon.
#
# Starts (or reuses) PostgreSQL and Redis through devenv.sh, builds bin/settle, applies the
# migrations, starts the sandbox bank, creates demo customers and streams payroll deposits,
# and runs `settle serve`. Ctrl-C stops everything it started, including the throw-away
# PostgreSQL and Redis: the settle processes run in sessions of their own, so that they get
# one SIGTERM from this script (a graceful stop) rather than the terminal's SIGINT as well.
# That holds with the output piped (make run 2>&1 | tee run.log) too, although Ctrl-C kills
# the reader of the pipe first: nothing here dies of SIGPIPE on its next line.
#
# Ports: the daemon on 127.0.0.1:8080, the sandbox bank on 127.0.0.1:8181 and the demo lender
# app on 127.0.0.1:8282, as in configs/demo.yaml. Override with SETTLE_HTTP_ADDR,
# SETTLE_DEV_BANK_ADDR and SETTLE_DEV_LENDER_ADDR. SETTLE_DEV_CONFIG replaces configs/demo.yaml
# (for example with a copy that adds a real Slack workspace, docs/slack-app.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/local/go/bin"

log() { printf 'run: %s\n' "$*" >&2; }
die() {
	printf 'run: error: %s\n' "$*" >&2
	exit 1
}

port_free() { ! (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
# sq quotes a word in single quotes, for a line to paste into a shell.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

DEFAULT_BANK_ADDR=127.0.0.1:8181
HTTP_ADDR="${SETTLE_HTTP_ADDR:-127.0.0.1:8080}"
BANK_ADDR="${SETTLE_DEV_BANK_ADDR:-$DEFAULT_BANK_ADDR}"
LENDER_ADDR="${SETTLE_DEV_LENDER_ADDR:-127.0.0.1:8282}"
port_free "$HTTP_ADDR" || die "$HTTP_ADDR is in use: stop what uses it or run SETTLE_HTTP_ADDR=127.0.0.1:PORT make run"
port_free "$BANK_ADDR" || die "$BANK_ADDR is in use: stop what uses it or run SETTLE_DEV_BANK_ADDR=127.0.0.1:PORT make run"
port_free "$LENDER_ADDR" || die "$LENDER_ADDR (the demo lender app) is in use: stop what uses it or run SETTLE_DEV_LENDER_ADDR=127.0.0.1:PORT make run"

own_db=${SETTLE_DATABASE_URL:-}    # given by the user: kept as it is
own_redis=${SETTLE_REDIS_URL:-} # likewise
env_lines="$(scripts/devenv.sh up run)"
eval "$env_lines"
if [[ -z $own_db ]]; then
	# The sandbox bank keeps its accounts in memory and starts empty: so does the demo's database,
	# or settle verify --bank-journal and settle reconcile would report the last run's transfers.
	scripts/devenv.sh reset-db run
else
	log "reusing SETTLE_DATABASE_URL: settlements of earlier runs stay, but the sandbox bank starts empty; settle verify --bank-journal and settle reconcile will report their transfers"
fi

pids=()
names=()
cleanup() {
	trap - INT TERM EXIT
	# With the output piped the terminal's Ctrl-C kills the reader (tee) too: then writing to it
	# fails (EPIPE) instead of killing this script before it stopped anything, and the rest of
	# what it and devenv.sh say goes nowhere.
	trap '' PIPE
	log "stopping" || exec >/dev/null 2>&1
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ -z $own_db || -z $own_redis ]]; then # devenv.sh started a server of its own
		scripts/devenv.sh down run || true
	fi
}
trap 'cleanup; exit 0' INT # Ctrl-C is how make run is meant to stop
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# start NAME PREFIX CMD...: runs CMD in the background in a session of its own (so the
# terminal's Ctrl-C reaches only this script, which stops it with one SIGTERM), its output
# prefixed with PREFIX by a sed that ignores Ctrl-C and SIGPIPE; if what reads this script's
# output is gone (a tee killed by the same Ctrl-C), sed stops at its next line and cat reads
# the rest into /dev/null: CMD's next log line must never kill it with SIGPIPE before it
# could stop cleanly.
start() {
	local name=$1 prefix=$2
	shift 2
	setsid "$@" > >(
		trap '' INT PIPE
		sed -u "s/^/$prefix | /" >&2
		exec cat >/dev/null
	) 2>&1 &
	pids+=($!)
	names+=("$name")
}

# running: whether every process started is still running.
running() {
	local pid
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || return 1
	done
}

# exited: the name of the first process that is no longer running.
exited() {
	local i
	for i in "${!pids[@]}"; do
		kill -0 "${pids[$i]}" 2>/dev/null || {
			printf '%s\n' "${names[$i]}"
			return
		}
	done
	printf 'a process\n'
}

log "building bin/settle"
go build -o bin/settle ./cmd/settle

# SETTLE_DEV_CONFIG names another demo configuration, such as a copy of configs/demo.yaml with a
# Slack app's keys (docs/slack-app.md); its providers and ports must stay the demo's.
export SETTLE_CONFIG="${SETTLE_DEV_CONFIG:-$ROOT/configs/demo.yaml}"
export SETTLE_HTTP_ADDR="$HTTP_ADDR"
export SETTLE_PROVIDERS_SANDBOX_BASE_URL="http://$BANK_ADDR"
export SETTLE_NOTIFY_CUSTOMER_WEBHOOK_URL="http://$LENDER_ADDR/events"
export SETTLE_BANKSIM_TOKEN=demo-sandbox-token # sandbox-only, as in configs/demo.yaml

bin/settle config check >/dev/null
bin/settle migrate up >&2

start "settle banksim" banksim bin/settle banksim --addr "$BANK_ADDR"
for _ in $(seq 100); do
	port_free "$BANK_ADDR" || break
	sleep 0.1
done
port_free "$BANK_ADDR" && die "the sandbox bank did not start on $BANK_ADDR"

# The engine's accounts and the customers exist at the sandbox bank before settle serve checks
# them at start (providers_check_at_start); the demo's stream below finds them there.
bin/settle demo --customers 50 --once 2>&1 | sed -u "s/^/demo    | /" >&2
start "settle demo receiver" "lender " bin/settle demo receiver --addr "$LENDER_ADDR"
start "settle serve" "serve  " bin/settle serve
start "settle demo" "demo   " bin/settle demo --customers 50 --per-tick 3 --every 4s

# What another terminal needs to reach the same database, Redis and sandbox bank.
env_line="export SETTLE_CONFIG=$(sq "$SETTLE_CONFIG") SETTLE_DATABASE_URL=$(sq "$SETTLE_DATABASE_URL") SETTLE_REDIS_URL=$(sq "$SETTLE_REDIS_URL")"
if [[ $BANK_ADDR != "$DEFAULT_BANK_ADDR" ]]; then
	env_line+=" SETTLE_PROVIDERS_SANDBOX_BASE_URL=$(sq "$SETTLE_PROVIDERS_SANDBOX_BASE_URL")"
fi

# The banner comes once settle serve listens, below its start-up lines.
for _ in $(seq 300); do
	port_free "$HTTP_ADDR" && running || break
	sleep 0.1
done

cat >&2 <<MSG

  settle is running with the sandbox bank and demo customers.
    status page:         http://$HTTP_ADDR/  (user demo, password demo-dashboard-password)
    asynqmon (queues):   http://$HTTP_ADDR/monitoring/  (same credentials, read-only)
    metrics:             http://$HTTP_ADDR/metrics  (same credentials)
    health:              http://$HTTP_ADDR/healthz and /readyz
    sandbox bank:        http://$BANK_ADDR  (token: demo-sandbox-token)
    lender app (demo):   http://$LENDER_ADDR/events  (prints each signed settlement.settled event)
  In another terminal (same database):
    $env_line
    bin/settle settlements list
  Ctrl-C stops everything.

MSG

# Once the demo's first deposits have settled, the addresses again, in one line below the log
# that scrolled the banner away.
for _ in $(seq 120); do
	running || break
	if [[ $(bin/settle settlements list --status settled --limit 1 --json 2>/dev/null) == *'"id"'* ]]; then
		log "the demo is settling: status page http://$HTTP_ADDR/ (demo, demo-dashboard-password), queues http://$HTTP_ADDR/monitoring/; the command line: the export line above; Ctrl-C stops everything"
		break
	fi
	sleep 1
done
wait -n "${pids[@]}" || true
log "$(exited) exited; stopping the rest"
exit 1
