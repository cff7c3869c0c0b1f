#!/usr/bin/env bash
# devenv.sh — PostgreSQL and Redis for local runs and tests, without Docker.
#
# Usage:
#   eval "$(scripts/devenv.sh up NAME)"   start (or reuse) the servers of environment NAME
#                                         (run, test or bench) and print export lines for eval
#   scripts/devenv.sh down NAME           stop the servers that `up NAME` started, only those
#   scripts/devenv.sh status NAME         print what runs for NAME (exit 0: both run, 3: not)
#   scripts/devenv.sh reset-db NAME       drop and recreate the database of the PostgreSQL that
#                                         `up NAME` started (never one of SETTLE_DATABASE_URL)
#   scripts/devenv.sh install PKG...      apt-get install PKG... when root, else print the command
#
# `up` reuses SETTLE_DATABASE_URL / SETTLE_REDIS_URL when they are set (it checks that they
# answer and prints them back unchanged). For each one that is not set it starts a throw-away
# server from the installed binaries — installing the Debian packages postgresql / redis-server
# when they are missing and we run as root — on a free 127.0.0.1 port, with its data in
# .dev/NAME/postgres and .dev/NAME/redis (git-ignored). When the `postgres` system user cannot
# reach the repository (PostgreSQL refuses to run as root), both live under
# /tmp/settle-dev-<hash of the repo path>/NAME instead.
#
# Only the export lines go to stdout; every message goes to stderr.
#
# Overrides (rarely needed): SETTLE_PG_LIBDIR (default /usr/lib/postgresql, where Debian keeps
# <version>/bin), SETTLE_DEVENV_TIMEOUT (seconds to wait for a server, default 60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_LIBDIR="${SETTLE_PG_LIBDIR:-/usr/lib/postgresql}"
WAIT_SECONDS="${SETTLE_DEVENV_TIMEOUT:-60}"
PG_SUPERUSER=postgres
PG_DBNAME=settle
PG_SYSUSER=postgres

log() { printf 'devenv: %s\n' "$*" >&2; }
die() {
	printf 'devenv: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: scripts/devenv.sh up NAME       start or reuse PostgreSQL and Redis for NAME (run|test|bench);
                                       prints export lines: eval "$(scripts/devenv.sh up test)"
       scripts/devenv.sh down NAME     stop what `up NAME` started
       scripts/devenv.sh status NAME   show what runs for NAME
       scripts/devenv.sh reset-db NAME drop and recreate the database of the PostgreSQL of NAME
       scripts/devenv.sh install PKG...  install Debian packages (root) or print the command
EOF
	exit 2
}

# ---------------------------------------------------------------------------------------------
# small helpers

# shell_quote VALUE: VALUE in single quotes, safe for eval.
shell_quote() {
	local s=$1
	printf "'%s'" "${s//\'/\'\\\'\'}"
}

# redact URL: the URL (or key=value conninfo) with any password replaced by ***.
redact() {
	printf '%s' "$1" | sed -E -e 's#^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?]*):[^@/?]*@#\1:***@#' \
		-e "s#(password=)('[^']*'|[^ &]*)#\\1***#g"
}

# url_host_port URL DEFAULT_PORT: prints "host port" of a URL like scheme://[user[:pw]@]host[:port]/...
url_host_port() {
	local rest=${1#*://} default_port=$2 hostport host port
	rest=${rest%%[/?#]*}
	hostport=${rest##*@}
	if [[ $hostport == \[* ]]; then # [ipv6]:port
		host=${hostport%%]*}
		host=${host#[}
		port=${hostport##*]}
		port=${port#:}
	elif [[ $hostport == *:* ]]; then
		host=${hostport%%:*}
		port=${hostport##*:}
	else
		host=$hostport
		port=
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# tcp_open HOST PORT: true when something accepts TCP connections there (3 s at most).
tcp_open() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# free_port [AVOID...]: a port on 127.0.0.1 that nothing listens on, outside the ephemeral range.
free_port() {
	local p i a skip
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12000))
		skip=
		for a in "$@"; do [[ $a == "$p" ]] && skip=1; done
		[[ -n $skip ]] && continue
		if ! tcp_open 127.0.0.1 "$p"; then
			printf '%s\n' "$p"
			return 0
		fi
	done
	die "found no free TCP port on 127.0.0.1"
}

# port_free PORT: true when PORT is a number and nothing listens on 127.0.0.1:PORT.
port_free() {
	[[ $1 =~ ^[0-9]+$ ]] && ! tcp_open 127.0.0.1 "$1"
}

# log_tail FILE: the end of a server log, to stderr.
log_tail() {
	if [[ -r $1 ]]; then
		printf -- '--- last lines of %s ---\n' "$1" >&2
		tail -n 25 "$1" >&2 || true
		printf -- '---\n' >&2
	else
		printf 'devenv: (no log at %s)\n' "$1" >&2
	fi
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# install_packages PKG...: apt-get install them when root; else print the exact command and fail.
install_packages() {
	(($# > 0)) || return 0
	if is_root && command -v apt-get >/dev/null 2>&1; then
		log "installing Debian packages: $* (apt-get update first)"
		DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
			die "apt-get update failed; run it yourself: apt-get update && apt-get install -y $*"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2 ||
			die "apt-get install failed; run it yourself: apt-get install -y $*"
		return 0
	fi
	if command -v apt-get >/dev/null 2>&1; then
		die "missing $*; install with: sudo apt-get update && sudo apt-get install -y $*"
	fi
	die "missing $*; on Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y $* (or install PostgreSQL >= 13 and Redis >= 6.2 with your package manager)"
}

# ---------------------------------------------------------------------------------------------
# binaries

PGBIN=
REDIS_SERVER=

# find_pgbin: sets PGBIN to the newest PostgreSQL bin directory holding initdb and pg_ctl.
find_pgbin() {
	local d best=
	if [[ -d $PG_LIBDIR ]]; then
		best=$(
			for d in "$PG_LIBDIR"/*/bin; do
				[[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]] && printf '%s\n' "$d"
			done | sort -V | tail -n 1
		)
	fi
	if [[ -z $best ]] && command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
		best=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
		[[ -x $best/initdb && -x $best/postgres ]] || best=
	fi
	PGBIN=$best
	[[ -n $PGBIN ]]
}

# find_redis: sets REDIS_SERVER to redis-server from PATH or /usr/bin.
find_redis() {
	REDIS_SERVER=$(command -v redis-server 2>/dev/null || true)
	[[ -n $REDIS_SERVER && -x $REDIS_SERVER ]] || REDIS_SERVER=
	if [[ -z $REDIS_SERVER && -x /usr/bin/redis-server ]]; then
		REDIS_SERVER=/usr/bin/redis-server
	fi
	[[ -n $REDIS_SERVER ]]
}

pg_tool() {
	if [[ -n $PGBIN && -x $PGBIN/$1 ]]; then
		printf '%s\n' "$PGBIN/$1"
	else
		command -v "$1" 2>/dev/null || true
	fi
}

# ensure_binaries NEED_PG NEED_REDIS: finds (or installs) what is needed.
ensure_binaries() {
	local need_pg=$1 need_redis=$2 missing=()
	if [[ $need_pg == 1 ]] && ! find_pgbin; then missing+=(postgresql); fi
	if [[ $need_redis == 1 ]] && ! find_redis; then missing+=(redis-server); fi
	((${#missing[@]} == 0)) && return 0
	log "not installed: ${missing[*]}"
	install_packages "${missing[@]}"
	if [[ $need_pg == 1 ]] && ! find_pgbin; then
		die "PostgreSQL binaries still not found (looked in $PG_LIBDIR/*/bin and PATH)"
	fi
	if [[ $need_redis == 1 ]] && ! find_redis; then
		die "redis-server still not found (looked in PATH and /usr/bin)"
	fi
}

# ---------------------------------------------------------------------------------------------
# where an environment lives

NAME=
LOCAL_BASE=    # $ROOT/.dev/NAME
FALLBACK_BASE= # /tmp/settle-dev-<hash>/NAME

set_name() {
	[[ $1 =~ ^[A-Za-z0-9_-]+$ ]] || die "bad environment name '$1' (use run, test or bench)"
	NAME=$1
	local hash
	hash=$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
	LOCAL_BASE=$ROOT/.dev/$NAME
	FALLBACK_BASE=/tmp/settle-dev-$hash/$NAME
}

# as_pg CMD...: run CMD as the user that owns the PostgreSQL data (postgres when we are root).
as_pg() {
	if is_root; then
		runuser -u "$PG_SYSUSER" -- "$@"
	else
		"$@"
	fi
}

# pg_user_can_reach DIR: true when the PostgreSQL user can enter DIR.
pg_user_can_reach() {
	if is_root; then
		runuser -u "$PG_SYSUSER" -- test -x "$1" 2>/dev/null
	else
		test -x "$1"
	fi
}

# safe_mkdir DIR: mkdir -p, refusing a DIR (in /tmp) that is a symlink or someone else's.
safe_mkdir() {
	mkdir -p "$1"
	[[ -L $1 ]] && die "$1 is a symlink; remove it"
	[[ -O $1 ]] || die "$1 belongs to another user; remove it"
	chmod 0755 "$1"
}

# choose_base NEED_PG: prints the base directory of the environment, creating it.
choose_base() {
	# An environment that already exists keeps its place.
	if [[ -d $FALLBACK_BASE && ! -d $LOCAL_BASE/postgres && ! -d $LOCAL_BASE/redis ]]; then
		printf '%s\n' "$FALLBACK_BASE"
		return
	fi
	if ! is_root || [[ $1 != 1 ]]; then
		mkdir -p "$LOCAL_BASE"
		printf '%s\n' "$LOCAL_BASE"
		return
	fi
	id "$PG_SYSUSER" >/dev/null 2>&1 ||
		die "no '$PG_SYSUSER' system user to run PostgreSQL as (PostgreSQL refuses to run as root); reinstall the postgresql package or create the user"
	if mkdir -p "$LOCAL_BASE" 2>/dev/null; then
		chmod 0755 "$ROOT/.dev" "$LOCAL_BASE" 2>/dev/null || true
		if pg_user_can_reach "$LOCAL_BASE"; then
			printf '%s\n' "$LOCAL_BASE"
			return
		fi
	fi
	log "user '$PG_SYSUSER' cannot reach $ROOT; keeping the $NAME environment in $FALLBACK_BASE"
	safe_mkdir "${FALLBACK_BASE%/*}"
	safe_mkdir "$FALLBACK_BASE"
	printf '%s\n' "$FALLBACK_BASE"
}

# existing_bases: the candidate base directories that exist.
existing_bases() {
	local b
	for b in "$LOCAL_BASE" "$FALLBACK_BASE"; do
		[[ -d $b ]] && printf '%s\n' "$b"
	done
	return 0
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_url() { printf 'postgres://%s@127.0.0.1:%s/%s?sslmode=disable' "$PG_SUPERUSER" "$1" "$PG_DBNAME"; }

# pg_running_port BASE: prints the port of the server running on BASE/postgres/data, or fails.
pg_running_port() {
	local data=$1/postgres/data pid port
	[[ -f $data/postmaster.pid ]] || return 1
	pid=$(sed -n 1p "$data/postmaster.pid")
	port=$(sed -n 4p "$data/postmaster.pid")
	[[ $pid =~ ^[0-9]+$ && $port =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null || [[ ! -d /proc/$pid ]] || return 1
	printf '%s\n' "$port"
}

pg_pid() { sed -n 1p "$1/postgres/data/postmaster.pid" 2>/dev/null || true; }

# pid_alive PID: true when PID runs and is not a zombie.
pid_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[[ -r /proc/$1/stat ]] || return 0
	[[ $(sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# pg_clear_stale_lock DATA: a postmaster.pid left by a killed server blocks a new start while
# its pid is a zombie or was reused by another program; wait for the first, remove it for both.
pg_clear_stale_lock() {
	local data=$1 pid i
	pid=$(sed -n 1p "$data/postmaster.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0 # gone: postgres removes the file itself
		pid_alive "$pid" || {
			sleep 0.1
			continue
		}
		grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null && return 0 # a real postgres: let pg_ctl judge
		break
	done
	log "removing stale $data/postmaster.pid (pid $pid is not a postgres server)"
	rm -f "$data/postmaster.pid"
}

# pg_answers PORT [DB]: true when the throw-away server answers a query.
pg_answers() {
	local psql
	psql=$(pg_tool psql)
	if [[ -n $psql ]]; then
		PGCONNECT_TIMEOUT=3 "$psql" -X -q -h 127.0.0.1 -p "$1" -U "$PG_SUPERUSER" -d "${2:-postgres}" \
			-tAc 'SELECT 1' >/dev/null 2>&1
	else
		tcp_open 127.0.0.1 "$1"
	fi
}

pg_init() {
	local pgdir=$1 init=$1/data.init data=$1/data sockdir
	log "initdb $data ($("$PGBIN/postgres" --version))"
	rm -rf "$init"
	as_pg "$PGBIN/initdb" -D "$init" -U "$PG_SUPERUSER" --auth=trust --encoding=UTF8 --locale=C \
		--no-sync >"$pgdir/initdb.log" 2>&1 || {
		log_tail "$pgdir/initdb.log"
		die "initdb failed (log above: $pgdir/initdb.log)"
	}
	# Unix sockets inside the data directory when the path fits (sun_path is 108 bytes).
	sockdir=$data
	if ((${#data} > 80)); then sockdir=; fi
	{
		printf '\n# settle devenv (%s)\n' "$NAME"
		printf "listen_addresses = '127.0.0.1'\n"
		printf "unix_socket_directories = '%s'\n" "$sockdir"
		printf 'max_connections = 300\n'
		printf "log_destination = 'stderr'\n"
		# What each statement costs, for make bench and for anyone curious.
		printf "shared_preload_libraries = 'pg_stat_statements'\n"
		# A payday writes a lot of WAL: room for it between checkpoints, and
		# full-page images compressed (docs/deployment.md, PostgreSQL).
		printf 'shared_buffers = 512MB\nmax_wal_size = 4GB\nwal_compression = on\n'
		if [[ $NAME == test ]]; then
			printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
		fi
	} >>"$init/postgresql.conf"
	cat >"$init/pg_hba.conf" <<'EOF'
# settle devenv: throw-away server, trust on loopback only.
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
EOF
	if is_root; then chown "$PG_SYSUSER:" "$init/postgresql.conf" "$init/pg_hba.conf"; fi
	mv "$init" "$data"
}

pg_up() {
	local base=$1 pgdir=$1/postgres port prev tries psql exists deadline logsize
	if port=$(pg_running_port "$base"); then
		log "postgres ($NAME) already runs on 127.0.0.1:$port"
	else
		mkdir -p "$pgdir"
		if is_root; then chown "$PG_SYSUSER:" "$pgdir"; fi
		chmod 0700 "$pgdir"
		[[ -f $pgdir/data/PG_VERSION ]] || pg_init "$pgdir"
		pg_clear_stale_lock "$pgdir/data"
		prev=$(cat "$pgdir/port" 2>/dev/null || true)
		for tries in 1 2 3; do
			if [[ $tries == 1 ]] && port_free "$prev"; then port=$prev; else port=$(free_port "$prev"); fi
			log "starting postgres ($NAME) on 127.0.0.1:$port, data $pgdir/data"
			logsize=$(stat -c %s "$pgdir/postgres.log" 2>/dev/null || echo 0)
			# 9>&-: the server must not inherit the lock of this script.
			if as_pg "$PGBIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t "$WAIT_SECONDS" \
				-o "-p $port" start >"$pgdir/pg_ctl.log" 2>&1 9>&-; then
				break
			fi
			if tail -c +"$((logsize + 1))" "$pgdir/postgres.log" 2>/dev/null |
				grep -qiE 'could not bind|address already in use' && ((tries < 3)); then
				log "port $port was taken; trying another"
				continue
			fi
			cat "$pgdir/pg_ctl.log" >&2 || true
			log_tail "$pgdir/postgres.log"
			die "postgres ($NAME) did not start"
		done
		printf '%s\n' "$port" >"$pgdir/port"
	fi
	deadline=$((SECONDS + WAIT_SECONDS))
	until pg_answers "$port"; do
		if ((SECONDS >= deadline)); then
			log_tail "$pgdir/postgres.log"
			die "postgres ($NAME) on 127.0.0.1:$port does not answer after ${WAIT_SECONDS}s"
		fi
		sleep 0.2
	done
	psql=$(pg_tool psql)
	exists=$("$psql" -X -q -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d postgres -tA \
		-c "SELECT 1 FROM pg_database WHERE datname = '$PG_DBNAME'")
	if [[ $exists != 1 ]]; then
		log "creating database $PG_DBNAME"
		"$psql" -X -q -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 \
			-c "CREATE DATABASE $PG_DBNAME" >&2 || die "could not create database $PG_DBNAME"
	fi
	PG_PORT=$port
}

pg_down() {
	local base=$1 data=$1/postgres/data port
	[[ -d $data ]] || return 0
	if ! port=$(pg_running_port "$base"); then
		log "postgres ($NAME): not running ($data)"
		return 0
	fi
	find_pgbin || die "PostgreSQL binaries not found; cannot stop the server on $data (pid $(pg_pid "$base"))"
	log "stopping postgres ($NAME) on 127.0.0.1:$port"
	if ! as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1; then
		log "fast shutdown failed; using immediate"
		as_pg "$PGBIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop >&2 ||
			die "could not stop postgres on $data"
	fi
}

# ---------------------------------------------------------------------------------------------
# Redis

# redis_pid BASE: prints the pid of our redis-server on BASE/redis, or fails.
redis_pid() {
	local pid
	pid=$(cat "$1/redis/redis.pid" 2>/dev/null || true)
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	grep -qa redis-server "/proc/$pid/cmdline" 2>/dev/null || [[ ! -d /proc/$pid ]] || return 1
	printf '%s\n' "$pid"
}

# redis_ping HOST PORT: true when Redis answers PING with PONG (raw RESP over bash /dev/tcp).
redis_ping() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/$1/$2" || exit 1
		printf "PING\r\n" >&3
		IFS= read -r -t 2 line <&3 || exit 1
		[[ $line == "+PONG"* ]]' _ "$1" "$2" 2>/dev/null
}

redis_up() {
	local base=$1 dir=$1/redis port prev pid tries deadline started
	if pid=$(redis_pid "$base"); then
		port=$(cat "$dir/port" 2>/dev/null || true)
		deadline=$((SECONDS + 10))
		until [[ -n $port ]] && redis_ping 127.0.0.1 "$port"; do
			((SECONDS < deadline)) ||
				die "redis-server pid $pid ($dir/redis.pid) runs but does not answer on 127.0.0.1:${port:-?}; stop it (scripts/devenv.sh down $NAME) and retry"
			sleep 0.2
		done
		log "redis ($NAME) already runs on 127.0.0.1:$port"
		REDIS_PORT=$port
		return 0
	fi
	mkdir -p "$dir"
	rm -f "$dir/redis.pid"
	prev=$(cat "$dir/port" 2>/dev/null || true)
	for tries in 1 2 3; do
		if [[ $tries == 1 ]] && port_free "$prev"; then port=$prev; else port=$(free_port "$prev"); fi
		log "starting redis ($NAME) on 127.0.0.1:$port, dir $dir"
		: >"$dir/redis.log"
		"$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
			--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
			--save "" --appendonly no --maxmemory-policy noeviction >&2 9>&- || {
			log_tail "$dir/redis.log"
			die "redis-server ($NAME) did not start"
		}
		deadline=$((SECONDS + WAIT_SECONDS))
		started=
		while ((SECONDS < deadline)); do
			if redis_ping 127.0.0.1 "$port"; then
				started=1
				break
			fi
			# The daemon writes its pid file before it listens: a pid file whose process is
			# gone, or none after 10 s, means it exited.
			if [[ -f $dir/redis.pid ]] && ! redis_pid "$base" >/dev/null; then break; fi
			if [[ ! -f $dir/redis.pid ]] && ((SECONDS >= deadline - WAIT_SECONDS + 10)); then break; fi
			if grep -q 'Address already in use' "$dir/redis.log" 2>/dev/null; then break; fi
			sleep 0.1
		done
		if [[ -n $started ]]; then
			printf '%s\n' "$port" >"$dir/port"
			REDIS_PORT=$port
			return 0
		fi
		if grep -q 'Address already in use' "$dir/redis.log" 2>/dev/null && ((tries < 3)); then
			log "port $port was taken; trying another"
			continue
		fi
		log_tail "$dir/redis.log"
		die "redis ($NAME) on 127.0.0.1:$port does not answer after ${WAIT_SECONDS}s"
	done
}

redis_down() {
	local base=$1 dir=$1/redis pid i
	[[ -d $dir ]] || return 0
	if ! pid=$(redis_pid "$base"); then
		log "redis ($NAME): not running ($dir)"
		return 0
	fi
	log "stopping redis ($NAME) pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	if pid_alive "$pid"; then
		log "redis pid $pid ignored SIGTERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/redis.pid"
}

# ---------------------------------------------------------------------------------------------
# reusing the user's servers

# check_pg_url URL: true when the PostgreSQL server of URL answers.
check_pg_url() {
	local url=$1 psql hp
	find_pgbin || true
	psql=$(pg_tool psql)
	if [[ -n $psql ]]; then
		PGCONNECT_TIMEOUT=5 "$psql" -X -q -tA -d "$url" -c 'SELECT 1' >/dev/null 2>&1
		return
	fi
	[[ $url == postgres://* || $url == postgresql://* ]] || return 0 # cannot check without psql
	read -r -a hp <<<"$(url_host_port "$url" 5432)"
	tcp_open "${hp[0]}" "${hp[1]}"
}

# check_redis_url URL: true when the Redis server of URL answers PING.
check_redis_url() {
	local url=$1 hp cli
	cli=$(command -v redis-cli 2>/dev/null || true)
	if [[ -n $cli ]]; then
		local args=(-u "$url")
		[[ $url == rediss://* ]] && args+=(--tls)
		[[ $(timeout 5 "$cli" "${args[@]}" --no-auth-warning PING 2>/dev/null) == PONG ]]
		return
	fi
	read -r -a hp <<<"$(url_host_port "$url" 6379)"
	if [[ $url == rediss://* || $url == *@* ]]; then
		tcp_open "${hp[0]}" "${hp[1]}" # TLS or AUTH: a TCP check is all bash can do
	else
		redis_ping "${hp[0]}" "${hp[1]}"
	fi
}

# ---------------------------------------------------------------------------------------------
# commands

# take_lock: one up/down per environment at a time (fd 9, which servers must not inherit).
take_lock() {
	local lockfile=$ROOT/.dev/.$NAME.lock
	command -v flock >/dev/null 2>&1 || return 0
	mkdir -p "$ROOT/.dev" 2>/dev/null || return 0
	exec 9>"$lockfile" || return 0
	flock -w 300 9 || die "another scripts/devenv.sh has held $lockfile for 5 minutes"
}

cmd_up() {
	local db_url=${SETTLE_DATABASE_URL:-} redis_url=${SETTLE_REDIS_URL:-} need_pg=0 need_redis=0 base

	if [[ -n $db_url ]]; then
		check_pg_url "$db_url" ||
			die "SETTLE_DATABASE_URL ($(redact "$db_url")) is unreachable: start that server, fix the URL, or unset SETTLE_DATABASE_URL to get a throw-away local PostgreSQL"
		log "reusing SETTLE_DATABASE_URL ($(redact "$db_url"))"
	else
		need_pg=1
	fi
	if [[ -n $redis_url ]]; then
		check_redis_url "$redis_url" ||
			die "SETTLE_REDIS_URL ($(redact "$redis_url")) is unreachable: start that server, fix the URL, or unset SETTLE_REDIS_URL to get a throw-away local Redis"
		log "reusing SETTLE_REDIS_URL ($(redact "$redis_url"))"
	else
		need_redis=1
	fi

	if ((need_pg || need_redis)); then
		ensure_binaries "$need_pg" "$need_redis"
		take_lock
		base=$(choose_base "$need_pg")
		if ((need_pg)); then
			pg_up "$base"
			db_url=$(pg_url "$PG_PORT")
		fi
		if ((need_redis)); then
			redis_version_check
			redis_up "$base"
			redis_url=redis://127.0.0.1:$REDIS_PORT/0
		fi
	fi
	printf 'export SETTLE_DATABASE_URL=%s\n' "$(shell_quote "$db_url")"
	printf 'export SETTLE_REDIS_URL=%s\n' "$(shell_quote "$redis_url")"
}

# redis_version_check: warn when redis-server is older than 6.2 (Asynq needs 6.2).
redis_version_check() {
	local v major minor
	v=$("$REDIS_SERVER" --version 2>/dev/null | sed -nE 's/.* v=([0-9]+)\.([0-9]+).*/\1 \2/p')
	read -r major minor <<<"$v"
	if [[ -n ${major:-} ]] && ((major < 6 || (major == 6 && minor < 2))); then
		log "warning: $REDIS_SERVER is Redis $major.$minor; settle needs Redis >= 6.2"
	fi
}

cmd_down() {
	local base
	take_lock
	while IFS= read -r base; do
		pg_down "$base"
		redis_down "$base"
	done < <(existing_bases)
	log "$NAME environment stopped"
}

# cmd_reset_db: an empty database in place of the one on the PostgreSQL server that `up NAME`
# started; a server the user gave in SETTLE_DATABASE_URL is never touched.
cmd_reset_db() {
	local base port psql
	take_lock
	find_pgbin || die "PostgreSQL binaries not found (looked in $PG_LIBDIR/*/bin and PATH)"
	psql=$(pg_tool psql)
	while IFS= read -r base; do
		port=$(pg_running_port "$base") || continue
		log "recreating database $PG_DBNAME ($NAME) on 127.0.0.1:$port"
		"$psql" -X -q -h 127.0.0.1 -p "$port" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 \
			-c "DROP DATABASE IF EXISTS $PG_DBNAME WITH (FORCE)" -c "CREATE DATABASE $PG_DBNAME" >&2 ||
			die "could not recreate database $PG_DBNAME on 127.0.0.1:$port"
		return 0
	done < <(existing_bases)
	die "no PostgreSQL of the $NAME environment runs: start it with scripts/devenv.sh up $NAME"
}

cmd_status() {
	local base found=0 port pid all=1
	while IFS= read -r base; do
		found=1
		if [[ -d $base/postgres/data ]]; then
			if port=$(pg_running_port "$base"); then
				printf 'postgres (%s): running, pid %s, %s, data %s\n' "$NAME" "$(pg_pid "$base")" \
					"$(pg_url "$port")" "$base/postgres/data"
			else
				printf 'postgres (%s): stopped, data %s\n' "$NAME" "$base/postgres/data"
				all=0
			fi
		fi
		if [[ -d $base/redis ]]; then
			if pid=$(redis_pid "$base"); then
				printf 'redis (%s): running, pid %s, redis://127.0.0.1:%s/0, dir %s\n' "$NAME" "$pid" \
					"$(cat "$base/redis/port" 2>/dev/null || echo '?')" "$base/redis"
			else
				printf 'redis (%s): stopped, dir %s\n' "$NAME" "$base/redis"
				all=0
			fi
		fi
	done < <(existing_bases)
	if ((found == 0)); then
		# shellcheck disable=SC2016 # a command to copy, printed as is
		printf '%s: no environment yet (start it with: eval "$(scripts/devenv.sh up %s)")\n' "$NAME" "$NAME"
		all=0
	fi
	if [[ -n ${SETTLE_DATABASE_URL:-} ]]; then
		printf 'SETTLE_DATABASE_URL is set (%s): up reuses it instead of a local PostgreSQL\n' "$(redact "$SETTLE_DATABASE_URL")"
	fi
	if [[ -n ${SETTLE_REDIS_URL:-} ]]; then
		printf 'SETTLE_REDIS_URL is set (%s): up reuses it instead of a local Redis\n' "$(redact "$SETTLE_REDIS_URL")"
	fi
	((all)) || return 3
}

main() {
	(($# >= 1)) || usage
	local cmd=$1
	shift
	case $cmd in
	up | down | status | reset-db)
		(($# == 1)) || usage
		set_name "$1"
		"cmd_${cmd//-/_}"
		;;
	install)
		(($# >= 1)) || usage
		install_packages "$@"
		;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"
