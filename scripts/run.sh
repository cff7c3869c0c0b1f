#!/usr/bin/env bash
# run.sh — `make run`: the settle daemon with the sandbox bank, a demo data set and asynqmon.
#
# Starts (or reuses) PostgreSQL and Redis through devenv.sh, builds bin/settle, applies the
# migrations, starts the sandbox bank, creates demo customers and streams payroll deposits,
# and runs `settle serve`. Ctrl-C stops everything it started, including the throw-away
# PostgreSQL and Redis.
#
# Ports: the daemon on 127.0.0.1:8080 and the sandbox bank on 127.0.0.1:8181, as in
# configs/demo.yaml. Override with SETTLE_HTTP_ADDR and SETTLE_DEV_BANK_ADDR.
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

HTTP_ADDR="${SETTLE_HTTP_ADDR:-127.0.0.1:8080}"
port_free 127.0.0.1:8282 || die "127.0.0.1:8282 (the demo lender app) is in use: stop what uses it"
BANK_ADDR="${SETTLE_DEV_BANK_ADDR:-127.0.0.1:8181}"
port_free "$HTTP_ADDR" || die "$HTTP_ADDR is in use: stop what uses it or run SETTLE_HTTP_ADDR=127.0.0.1:PORT make run"
port_free "$BANK_ADDR" || die "$BANK_ADDR is in use: stop what uses it or run SETTLE_DEV_BANK_ADDR=127.0.0.1:PORT make run"

env_lines="$(scripts/devenv.sh up run)"
eval "$env_lines"

pids=()
cleanup() {
	trap - INT TERM EXIT
	log "stopping"
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	scripts/devenv.sh down run || true
}
trap cleanup INT TERM EXIT

log "building bin/settle"
go build -o bin/settle ./cmd/settle

export SETTLE_CONFIG="$ROOT/configs/demo.yaml"
export SETTLE_HTTP_ADDR="$HTTP_ADDR"
export SETTLE_PROVIDERS_SANDBOX_BASE_URL="http://$BANK_ADDR"
export SETTLE_BANKSIM_TOKEN=demo-sandbox-token # sandbox-only, as in configs/demo.yaml

bin/settle config check >/dev/null
bin/settle migrate up >&2

bin/settle banksim --addr "$BANK_ADDR" 2> >(sed -u 's/^/banksim | /' >&2) &
pids+=($!)
for _ in $(seq 100); do
	port_free "$BANK_ADDR" || break
	sleep 0.1
done
port_free "$BANK_ADDR" && die "the sandbox bank did not start on $BANK_ADDR"

bin/settle demo receiver --addr 127.0.0.1:8282 2> >(sed -u 's/^/lender  | /' >&2) &
pids+=($!)
bin/settle serve 2> >(sed -u 's/^/serve   | /' >&2) &
pids+=($!)
bin/settle demo --customers 50 --per-tick 3 --every 4s 2> >(sed -u 's/^/demo    | /' >&2) &
pids+=($!)

cat >&2 <<MSG

  settle is running with the sandbox bank and demo customers.
    asynqmon (queues):   http://$HTTP_ADDR/monitoring/
    health:              http://$HTTP_ADDR/healthz
    sandbox bank:        http://$BANK_ADDR  (token: demo-sandbox-token)
    lender app (demo):   http://127.0.0.1:8282/events  (prints each signed settlement.settled event)
  In another terminal (same database):
    export SETTLE_CONFIG=$SETTLE_CONFIG $(printf 'SETTLE_DATABASE_URL=%q SETTLE_REDIS_URL=%q' "$SETTLE_DATABASE_URL" "$SETTLE_REDIS_URL")
    bin/settle settlements list
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}" || true
log "a process exited; stopping the rest"
