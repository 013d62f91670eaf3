#!/usr/bin/env bash
# Load benchmark: Switchyard vs. an nginx `return 200` baseline, same payloads, same machine,
# same run. Measurement only — never a pass/fail test. See tests/bench/load/README.md.
#
#   tests/bench/load/run.sh
#
# Knobs (environment):
#   ROUNDS=3            rounds per scenario; each round runs every server in SERVERS in turn
#   DURATION=10s        wrk -d per run (s/m/h suffix or plain seconds)
#   CONNECTIONS=64      wrk -c (the track-c16 scenario always uses 16)
#   THREADS=2           wrk -t
#   SCENARIOS="track track-c16 batch20 batch100"   any subset, space- or comma-separated
#   DURABILITY          Switchyard log.durability (fsync, interval, none); unset = the daemon's
#                       default (fsync)
#   LOG_CAPACITY        Switchyard log.capacity_bytes (e.g. 8GiB); unset = the daemon's default
#   SERVERS="nginx switchyard switchyard-file"
#                       switchyard: the full pipeline delivering to a `null` destination;
#                       switchyard-file: the same plus a `file` destination (NDJSON, fsync)
#   STARTUP_RUNS=5      cold starts timed (exec -> /readyz 200) before the load runs; 0 = none
#   BODIES=rotate       rotate: varied events from make_payloads.py (unique messageIds);
#                       fixed: the reference track.json / batch20.json / batch100.json verbatim
#   WARMUP=2s           unrecorded wrk run per server before each scenario (0 = none)
#   PAYLOAD_DIR=/work/shared/bench       where track.json, batch*.json, make_payloads.py live
#   SWITCHYARD_BIN      use this binary instead of building build-release/switchyard
#   OUT                 JSON report path (default build-release/bench-last.json)
#   BENCH_TMPDIR        parent of the temp dir (data dir + dd test live here; default $TMPDIR or /tmp)
#   PLAN=tests/bench/load/bench-plan.yaml
#                       the tracking plan the bench source validates every event against
#                       (violations tagged, none dropped); PLAN=none: no validation
#   ENRICH=on           on: every enrichment step (user agent, bots, geo, campaign, referrer);
#                       off: enrich.enabled false (events stored as received)
#   GEO_DB=auto         a City .mmdb for the geo step; auto: built for the bench traffic by
#                       tests/bench/geo/make_bench_mmdb.py (every address covered); none: no geo
#   IP_POLICY=keep      the bench source's sources[].ip (keep, truncate, remove)
#   IDENTITY=on         on: identity stitching as the daemon defaults it (identity.enabled, LMDB
#                       under the data dir, sync on); off: identity.enabled false (no
#                       context.identity, no identity_link records, no suppression check)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SCENARIOS=${SCENARIOS:-track track-c16 batch20 batch100}
DURABILITY=${DURABILITY:-}
LOG_CAPACITY=${LOG_CAPACITY:-}
PLAN=${PLAN:-$HERE/bench-plan.yaml}
[[ $PLAN == none ]] && PLAN=
ENRICH=${ENRICH:-on}
GEO_DB=${GEO_DB:-auto}
[[ $GEO_DB == none || $ENRICH == off ]] && GEO_DB=
STARTUP_RUNS=${STARTUP_RUNS:-5}
IP_POLICY=${IP_POLICY:-keep}
IDENTITY=${IDENTITY:-on}
case $ENRICH in on | off) ;; *) echo "ENRICH must be on or off" >&2; exit 2 ;; esac
case $IDENTITY in on | off) ;; *) echo "IDENTITY must be on or off" >&2; exit 2 ;; esac
[[ -z $PLAN || $PLAN = /* ]] || PLAN=$PWD/$PLAN
[[ -z $GEO_DB || $GEO_DB == auto || $GEO_DB = /* ]] || GEO_DB=$PWD/$GEO_DB
SERVERS=${SERVERS:-nginx switchyard switchyard-file}
BODIES=${BODIES:-rotate}
WARMUP=${WARMUP:-2s}
PAYLOAD_DIR=${PAYLOAD_DIR:-/work/shared/bench}
OUT=${OUT:-$ROOT/build-release/bench-last.json}
SETTLE_MAX_S=30          # after each run, wait (at most this long) for the server to go idle

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SCENARIOS=${SCENARIOS//,/ }
SERVERS=${SERVERS//,/ }
read -r -a SCENARIO_LIST <<<"$SCENARIOS"
read -r -a SERVER_LIST <<<"$SERVERS"
[[ ${#SCENARIO_LIST[@]} -gt 0 ]] || die "SCENARIOS is empty"
for s in "${SCENARIO_LIST[@]}"; do
  case $s in track | track-c16 | batch20 | batch100) ;; *) die "unknown scenario '$s' (track, track-c16, batch20, batch100)" ;; esac
done
WANT_NGINX=0
WANT_SY=0
SY_VARIANTS=()
for s in "${SERVER_LIST[@]}"; do
  case $s in
    nginx) WANT_NGINX=1 ;;
    switchyard | switchyard-file) WANT_SY=1; SY_VARIANTS+=("$s") ;;
    *) die "unknown server '$s' (nginx, switchyard, switchyard-file)" ;;
  esac
done
((WANT_NGINX + WANT_SY > 0)) || die "SERVERS is empty"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $STARTUP_RUNS =~ ^[0-9]+$ ]] || die "STARTUP_RUNS must be a non-negative integer"
# post.lua has 2 hex digits for the run number in each messageId (unique ids across runs).
((${#SCENARIO_LIST[@]} * (ROUNDS + 1) < 256)) || die "too many runs per server: scenarios x (ROUNDS + 1) must stay under 256"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ && $THREADS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS/THREADS must be positive integers"
((CONNECTIONS >= THREADS)) || die "CONNECTIONS must be >= THREADS"
case $BODIES in rotate | fixed) ;; *) die "BODIES must be rotate or fixed" ;; esac

# "10s" / "2m" / "1h" / "10" -> seconds (wrk's own suffixes)
to_seconds() {
  local v=$1
  case $v in
    *h) echo $((${v%h} * 3600)) ;;
    *m) echo $((${v%m} * 60)) ;;
    *s) echo $((${v%s})) ;;
    *) echo $((v)) ;;
  esac
}
DURATION_S=$(to_seconds "$DURATION") || die "bad DURATION '$DURATION'"
WARMUP_S=$(to_seconds "$WARMUP") || die "bad WARMUP '$WARMUP'"
((DURATION_S > 0)) || die "DURATION must be > 0"

# --------------------------------------------------------------------------- tools
find_nginx() {
  if command -v nginx >/dev/null 2>&1; then command -v nginx
  elif [[ -x /usr/sbin/nginx ]]; then echo /usr/sbin/nginx
  else return 1; fi
}

ensure_tools() {
  local pkgs=()
  if ((WANT_NGINX)) && ! find_nginx >/dev/null; then pkgs+=(nginx-light); fi
  command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
  command -v curl >/dev/null 2>&1 || pkgs+=(curl)
  command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
  if ((WANT_SY)) && [[ $GEO_DB == auto ]] && ! perl -MMaxMind::DB::Writer::Tree -e 1 2>/dev/null; then
    pkgs+=(libmaxmind-db-writer-perl)
  fi
  if ((WANT_SY)) && [[ -z ${SWITCHYARD_BIN:-} && ! -x $ROOT/build-release/switchyard ]]; then
    command -v cmake >/dev/null 2>&1 || pkgs+=(cmake)
    command -v ninja >/dev/null 2>&1 || pkgs+=(ninja-build)
  fi
  ((${#pkgs[@]} == 0)) && return 0
  if [[ $(id -u) -ne 0 ]]; then
    die "missing: ${pkgs[*]} — install them (e.g. sudo apt-get install -y ${pkgs[*]}) or run as root"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get to install them"
  log "installing: ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -q || die "apt-get update failed"
  if ! timeout 900 apt-get install -y -q "${pkgs[@]}"; then
    # nginx-light is not in every release; the full package works the same here.
    local alt=()
    for p in "${pkgs[@]}"; do [[ $p == nginx-light ]] && alt+=(nginx) || alt+=("$p"); done
    timeout 900 apt-get install -y -q "${alt[@]}" || die "apt-get install ${alt[*]} failed"
  fi
}
ensure_tools
if ((WANT_NGINX)); then NGINX_BIN=$(find_nginx) || die "nginx not found after install"; fi
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------------------------- switchyard binary
SY_BIN=""
if ((WANT_SY)); then
  if [[ -n ${SWITCHYARD_BIN:-} ]]; then
    SY_BIN=$SWITCHYARD_BIN
  else
    SY_BIN=$ROOT/build-release/switchyard
    if [[ ! -f $ROOT/build-release/build.ninja ]]; then
      log "configuring Release build in $ROOT/build-release"
      cmake -S "$ROOT" -B "$ROOT/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DSWITCHYARD_BUILD_TESTS=OFF >&2 || die "cmake configure failed"
    fi
    # Incremental (a no-op when up to date) so the numbers are for the current source.
    log "building $SY_BIN"
    cmake --build "$ROOT/build-release" -j"$(nproc)" --target switchyard >&2 ||
      die "build failed (set SWITCHYARD_BIN=... to benchmark an existing binary)"
  fi
  [[ -x $SY_BIN ]] || die "Switchyard binary not found or not executable: $SY_BIN"
fi

# --------------------------------------------------------------------------- temp dir + cleanup
TMP=""
NGINX_PID=""
declare -A SY_PID_OF=() SY_PORT_OF=() ADMIN_PORT_OF=() DATA_OF=()
STARTUP_PID=""

# stop_pid PID NAME: TERM, wait up to 10 s, then KILL (plus any children it leaves behind).
stop_pid() {
  local pid=$1 name=$2 kids i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kids=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name (pid $pid) did not stop in 10 s; killing"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local v
  for v in "${!SY_PID_OF[@]}"; do stop_pid "${SY_PID_OF[$v]}" "$v"; done
  stop_pid "$STARTUP_PID" switchyard
  stop_pid "$NGINX_PID" nginx
  if [[ -n $TMP && -d $TMP ]]; then rm -rf -- "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP_PARENT=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
TMP=$(mktemp -d "$TMP_PARENT/switchyard-bench.XXXXXX")
if [[ $(stat -f -c %T "$TMP") == tmpfs ]]; then
  log "WARNING: $TMP is on tmpfs — disk baseline and durability numbers are meaningless; set BENCH_TMPDIR to a disk path"
fi

# Free loopback ports (bound together so they differ, then released): nginx, then an API and
# an admin port for each Switchyard variant.
read -r NGINX_PORT SY_PORT ADMIN_PORT SYF_PORT SYF_ADMIN_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
')
SY_PORT_OF=([switchyard]=$SY_PORT [switchyard-file]=$SYF_PORT)
ADMIN_PORT_OF=([switchyard]=$ADMIN_PORT [switchyard-file]=$SYF_ADMIN_PORT)
DATA_OF=([switchyard]=$TMP/data-null [switchyard-file]=$TMP/data-file)

AUTH="Basic $(printf 'bench-key:' | base64)"
log "temp dir $TMP; ports nginx=$NGINX_PORT switchyard=$SY_PORT/$ADMIN_PORT switchyard-file=$SYF_PORT/$SYF_ADMIN_PORT; $(nproc) CPUs"

# --------------------------------------------------------------------------- payloads
declare -A EPR=([track]=1 [track-c16]=1 [batch20]=20 [batch100]=100)
declare -A PATH_OF=([track]=/v1/track [track-c16]=/v1/track [batch20]=/v1/batch [batch100]=/v1/batch)
declare -A BODY_OF=([track]=track [track-c16]=track [batch20]=batch20 [batch100]=batch100)
declare -A CONN_OF=([track]=$CONNECTIONS [track-c16]=16 [batch20]=$CONNECTIONS [batch100]=$CONNECTIONS)
declare -A REF_BODY BODY_FILE
for s in "${SCENARIO_LIST[@]}"; do
  REF_BODY[$s]=$PAYLOAD_DIR/${BODY_OF[$s]}.json
  [[ -r ${REF_BODY[$s]} ]] || die "payload ${REF_BODY[$s]} not found (set PAYLOAD_DIR)"
done
if [[ $BODIES == rotate || ($WANT_SY == 1 && $GEO_DB == auto) ]]; then
  [[ -r $PAYLOAD_DIR/make_payloads.py ]] || die "$PAYLOAD_DIR/make_payloads.py not found (or use BODIES=fixed GEO_DB=none)"
  log "generating the reference traffic (make_payloads.py → events_100k.ndjson, ~10 s)"
  timeout 300 python3 "$PAYLOAD_DIR/make_payloads.py" "$TMP/payloads" >/dev/null || die "make_payloads.py failed"
fi
if ((WANT_SY)) && [[ $GEO_DB == auto ]]; then
  log "building a City database covering the traffic's addresses (make_bench_mmdb.py)"
  timeout 600 python3 "$ROOT/tests/bench/geo/make_bench_mmdb.py" "$TMP/payloads/events_100k.ndjson" \
    "$TMP/bench-city.mmdb" >"$TMP/mmdb.log" 2>&1 || die "make_bench_mmdb.py failed: $(tail -n 5 "$TMP/mmdb.log")"
  GEO_DB=$TMP/bench-city.mmdb
fi
if [[ $BODIES == rotate ]]; then
  timeout 300 python3 "$HERE/make_bodies.py" "$TMP/payloads/events_100k.ndjson" "$TMP/bodies" ||
    die "make_bodies.py failed"
  for s in "${SCENARIO_LIST[@]}"; do BODY_FILE[$s]=$TMP/bodies/${BODY_OF[$s]}.bodies; done
else
  for s in "${SCENARIO_LIST[@]}"; do BODY_FILE[$s]=${REF_BODY[$s]}; done
fi
rm -f "$TMP/payloads/events_100k.ndjson" "$TMP/payloads/user_agents.txt"

# --------------------------------------------------------------------------- /proc helpers
# Sum of utime+stime (clock ticks) over the given pids.
proc_ticks() {
  local total=0 p line rest
  local -a f
  for p in "$@"; do
    line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    rest=${line##*) }   # fields from 3 (state) on; comm may contain spaces
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
# Sum of VmHWM (kB) over the given pids.
proc_hwm_kb() {
  local total=0 p v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# Reset the peak-RSS counter so VmHWM covers one run (Linux >= 4.0; ignored if not permitted).
proc_reset_hwm() {
  local p
  for p in "$@"; do { echo 5 >"/proc/$p/clear_refs"; } 2>/dev/null || true; done
}
server_pids() {
  case $1 in
    nginx) echo "$NGINX_PID" "$(pgrep -P "$NGINX_PID" 2>/dev/null | xargs)" ;;
    *) echo "${SY_PID_OF[$1]}" ;;
  esac
}
worker_pids() {
  case $1 in
    nginx) pgrep -P "$NGINX_PID" 2>/dev/null || true ;;
    *) echo "${SY_PID_OF[$1]}" ;;
  esac
}

# Wait until the server uses < ~5 % of one core and (Switchyard) its destinations have no
# lag, bounded by SETTLE_MAX_S: the delivery backlog is drained, so that work neither leaks
# into the next run nor goes uncounted.
settle() {
  local name=$1 a b i lag limit=$(((CLK_TCK + 19) / 20 / 2 + 1))
  local -a pids
  read -r -a pids <<<"$(server_pids "$name")"
  for ((i = 0; i < SETTLE_MAX_S * 2; i++)); do
    a=$(proc_ticks "${pids[@]}")
    sleep 0.5
    b=$(proc_ticks "${pids[@]}")
    ((b - a <= limit)) || continue
    [[ $name == switchyard* ]] || return 0
    lag=$(destination_lag "$name")
    [[ -z $lag || $lag == 0 ]] && return 0
  done
  log "WARNING: $name not idle ${SETTLE_MAX_S}s after the run${lag:+ (destination lag: $lag events)}"
}

# --------------------------------------------------------------------------- nginx
start_nginx() {
  local ngx=$TMP/nginx
  mkdir -p "$ngx"
  chmod 755 "$TMP" "$ngx"   # workers run as nobody when started as root
  sed -e "s|@PREFIX@|$ngx|g" -e "s|@PORT@|$NGINX_PORT|g" "$HERE/nginx.conf.in" >"$ngx/nginx.conf"
  "$NGINX_BIN" -t -q -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" ||
    die "nginx config test failed: $(cat "$ngx/error.log" 2>/dev/null)"
  "$NGINX_BIN" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" >"$ngx/stdout.log" 2>&1 &
  NGINX_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(tail -n 20 "$ngx/error.log" "$ngx/stdout.log" 2>/dev/null)"
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$NGINX_PORT/healthz" 2>/dev/null; then
      log "nginx $("$NGINX_BIN" -v 2>&1 | sed 's/.*version: //') ready on 127.0.0.1:$NGINX_PORT (pid $NGINX_PID, workers: $(worker_pids nginx | xargs))"
      return 0
    fi
    sleep 0.1
  done
  die "nginx not answering on 127.0.0.1:$NGINX_PORT after 10 s"
}

# --------------------------------------------------------------------------- switchyard
# write_config VARIANT DATA_DIR PORT ADMIN_PORT FILE: the bench config. Both variants run the
# full pipeline (every enrichment step, the tracking plan, identity stitching, the log at its
# default durability) and deliver to a `null` destination; switchyard-file also writes NDJSON.
write_config() {
  local variant=$1 data=$2 port=$3 admin=$4 cfg=$5
  cat >"$cfg" <<EOF
data_dir: $data
server:
  listen: 127.0.0.1:$port
admin:
  listen: 127.0.0.1:$admin
logging:
  level: warn
sources:
  - name: bench
    write_keys: [bench-key]
    ip: $IP_POLICY
destinations:
  - name: sink
    type: "null"
EOF
  if [[ $variant == switchyard-file ]]; then
    printf '  - name: ndjson\n    type: file\n    path: %s/out\n' "$data" >>"$cfg"
  fi
  if [[ -n $DURABILITY || -n $LOG_CAPACITY ]]; then
    printf 'log:\n' >>"$cfg"
    [[ -n $DURABILITY ]] && printf '  durability: %s\n' "$DURABILITY" >>"$cfg"
    [[ -n $LOG_CAPACITY ]] && printf '  capacity_bytes: %s\n' "$LOG_CAPACITY" >>"$cfg"
  fi
  if [[ $ENRICH == off ]]; then
    printf 'enrich:\n  enabled: false\n' >>"$cfg"
  elif [[ -n $GEO_DB ]]; then
    printf 'enrich:\n  geo:\n    database: %s\n' "$GEO_DB" >>"$cfg"
  fi
  if [[ $IDENTITY == off ]]; then
    printf 'identity:\n  enabled: false\n' >>"$cfg"
  fi
  if [[ -n $PLAN ]]; then
    printf 'plans:\n  - name: bench\n    files: [%s]\n' "$PLAN" >>"$cfg"
    sed -i 's/^    write_keys: \[bench-key\]$/    write_keys: [bench-key]\n    plan: bench/' "$cfg"
  fi
  return 0
}

start_switchyard() {
  local variant=$1 cfg=$TMP/$1.yaml data=${DATA_OF[$1]} port=${SY_PORT_OF[$1]} admin=${ADMIN_PORT_OF[$1]}
  mkdir -p "$data"
  write_config "$variant" "$data" "$port" "$admin" "$cfg"
  if ! timeout 30 "$SY_BIN" check -c "$cfg" >"$TMP/check.log" 2>&1; then
    cat "$cfg" "$TMP/check.log" >&2
    die "'switchyard check' rejected the bench config above ($cfg)"
  fi
  "$SY_BIN" run -c "$cfg" >"$TMP/$variant.log" 2>&1 &
  local pid=$! i code
  SY_PID_OF[$variant]=$pid
  for ((i = 0; i < 300; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$TMP/$variant.log" >&2 || true
      die "$variant exited during startup"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$admin/readyz" 2>/dev/null || true)
    if [[ $code == 200 ]]; then
      log "$variant ready on 127.0.0.1:$port (admin $admin, pid $pid, durability=${DURABILITY:-default}, enrich=$ENRICH, geo=${GEO_DB:+on}, plan=${PLAN:+on}, identity=$IDENTITY)"
      return 0
    fi
    sleep 0.1
  done
  tail -n 40 "$TMP/$variant.log" >&2 || true
  die "$variant /readyz not 200 after 30 s"
}

# Cold starts of the `switchyard` variant's config, each on an empty data dir: exec until
# /readyz answers 200 (polled every 2 ms), then SIGTERM. Prints JSON {"ms":[...]}.
time_startups() {
  local cfg=$TMP/startup.yaml data=$TMP/data-startup
  write_config switchyard "$data" "$SY_PORT" "$ADMIN_PORT" "$cfg"
  timeout 30 "$SY_BIN" check -c "$cfg" >"$TMP/check.log" 2>&1 || die "'switchyard check' rejected $cfg: $(cat "$TMP/check.log")"
  python3 - "$SY_BIN" "$cfg" "$data" "$ADMIN_PORT" "$STARTUP_RUNS" "$TMP/startup.log" <<'PY'
import json, shutil, signal, socket, subprocess, sys, time
binary, cfg, data, port, runs, logpath = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]


def ready():
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


out = []
with open(logpath, "ab") as log:
    for _ in range(runs):
        shutil.rmtree(data, ignore_errors=True)
        t0 = time.monotonic()
        p = subprocess.Popen([binary, "run", "-c", cfg], stdout=log, stderr=log)
        ms = None
        while time.monotonic() - t0 < 30 and p.poll() is None:
            if ready():
                ms = (time.monotonic() - t0) * 1000
                break
            time.sleep(0.002)
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        out.append(None if ms is None else round(ms, 1))
shutil.rmtree(data, ignore_errors=True)
print(json.dumps({"ms": out}))
PY
}

# Bytes appended to Switchyard's log: the counter from /metrics, else the size of data/log.
# Prints "BYTES SOURCE", or "null none".
log_bytes_now() {
  local v
  v=$(curl -fsS --max-time 5 "http://127.0.0.1:${ADMIN_PORT_OF[$1]}/metrics" 2>/dev/null |
    awk '/^switchyard_log_appended_bytes_total([{ ])/ {s += $NF; n++} END {if (n) printf "%.0f", s}' || true)
  if [[ -n $v ]]; then echo "$v metrics"; return; fi
  if [[ -d ${DATA_OF[$1]}/log ]]; then
    v=$(du -sb "${DATA_OF[$1]}/log" 2>/dev/null | awk '{print $1}')
    [[ -n $v ]] && { echo "$v du"; return; }
  fi
  echo "null none"
}

# A few Switchyard counters/gauges as a JSON object (labels summed), or {} if unavailable.
metrics_json() {
  local text
  text=$(curl -fsS --max-time 5 "http://127.0.0.1:${ADMIN_PORT_OF[$1]}/metrics" 2>/dev/null) || text=""
  printf '%s\n' "$text" | awk '
    /^switchyard_(events_duplicate_total|log_appended_bytes_total|log_appended_records_total|log_full_refusals_total|log_bytes|destination_lag_events|destination_delivered_events|destination_dead_lettered_events|identity_lookups_total|identity_cache_hits_total|identity_store_reads_total|identity_links_total|identity_links_refused_total|identity_errors_total)[{ ]/ {
      name = $1; sub(/\{.*/, "", name); v[name] += $NF; seen[name] = 1
    }
    END {
      printf "{"; sep = ""
      for (k in seen) { printf "%s\"%s\":%.0f", sep, k, v[k]; sep = "," }
      printf "}"
    }'
}

# Sum of switchyard_destination_lag_events, or empty if unavailable.
destination_lag() {
  local text
  text=$(curl -fsS --max-time 5 "http://127.0.0.1:${ADMIN_PORT_OF[$1]}/metrics" 2>/dev/null) || return 0
  printf '%s\n' "$text" | awk '/^switchyard_destination_lag_events[{ ]/ {s += $NF; n++} END {if (n) printf "%.0f", s}'
}

# --------------------------------------------------------------------------- runs
url_of() {
  case $1 in
    nginx) echo "http://127.0.0.1:$NGINX_PORT${PATH_OF[$2]}" ;;
    *) echo "http://127.0.0.1:${SY_PORT_OF[$1]}${PATH_OF[$2]}" ;;
  esac
}

# One request with the reference body; prints the HTTP status. Catches what wrk's error
# count does not (it only counts status >= 400): redirects, 1xx, an unexpected 204.
preflight() {
  local server=$1 sc=$2 code
  code=$(curl -s -o "$TMP/preflight.body" -w '%{http_code}' --max-time 10 -X POST \
    -H 'Content-Type: application/json' -H "Authorization: $AUTH" \
    --data-binary "@${REF_BODY[$sc]}" "$(url_of "$server" "$sc")" 2>/dev/null || true)
  echo "${code:-000}"
}

# run_wrk SERVER SCENARIO SECONDS OUTFILE
# Every run against a server gets its own number, which post.lua puts into each messageId, so
# no run repeats an id an earlier one sent (the dedup window would answer it from memory).
declare -A RUN_NO=()
run_wrk() {
  local server=$1 sc=$2 secs=$3 out=$4 mode=rotate
  [[ $BODIES == fixed ]] && mode=fixed
  RUN_NO[$server]=$((${RUN_NO[$server]:-0} + 1))
  timeout --kill-after=10 $((secs + 60)) \
    wrk -t"$THREADS" -c"${CONN_OF[$sc]}" -d"${secs}s" --latency -s "$HERE/post.lua" \
    "$(url_of "$server" "$sc")" -- "${PATH_OF[$sc]}" "$AUTH" "$mode" "${BODY_FILE[$sc]}" \
    "${RUN_NO[$server]}" >"$out" 2>&1
}

RUNS=$TMP/runs.jsonl
: >"$RUNS"
declare -A PREFLIGHT_NOTE

# measure SERVER SCENARIO ROUND: one recorded wrk run, appended to $RUNS
measure() {
  local server=$1 sc=$2 rnd=$3 out=$TMP/wrk-$2-$1-$3.txt
  local -a pids workers
  read -r -a pids <<<"$(server_pids "$server")"
  read -r -a workers <<<"$(worker_pids "$server")"
  local lb0=(null none) lb1=(null none) m0='{}' m1='{}' m2='{}' t0 t1 t2 rc=0 wrkjson
  local note=${PREFLIGHT_NOTE[$server/$sc]:-}
  proc_reset_hwm "${workers[@]}"
  if [[ $server == switchyard* ]]; then
    read -r -a lb0 <<<"$(log_bytes_now "$server")"
    m0=$(metrics_json "$server")
  fi
  t0=$(proc_ticks "${pids[@]}")
  run_wrk "$server" "$sc" "$DURATION_S" "$out" || rc=$?
  t1=$(proc_ticks "${pids[@]}")
  if [[ $server == switchyard* ]]; then
    read -r -a lb1 <<<"$(log_bytes_now "$server")"
    m1=$(metrics_json "$server")
  fi
  settle "$server"
  t2=$(proc_ticks "${pids[@]}")
  [[ $server == switchyard* ]] && m2=$(metrics_json "$server")
  local rss
  rss=$(proc_hwm_kb "${workers[@]}")
  wrkjson=$(sed -n 's/^WRKRESULT //p' "$out" | tail -n 1)
  if [[ -z $wrkjson || $rc -ne 0 ]]; then
    log "wrk against $server failed (rc=$rc):"
    tail -n 20 "$out" >&2 || true
    wrkjson=${wrkjson:-null}
    note="${note:+$note; }wrk exited with status $rc"
  fi
  local logb=null src=none
  if [[ ${lb0[1]} == "${lb1[1]}" && ${lb0[0]} != null && ${lb1[0]} != null ]] && ((lb1[0] >= lb0[0])); then
    logb=$((lb1[0] - lb0[0]))
    src=${lb1[1]}
  fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then
    note="${note:+$note; }$server process died"
  fi
  printf '{"scenario":"%s","server":"%s","round":%d,"connections":%d,"events_per_request":%d,"clk_tck":%d,"cpu_ticks":%d,"cpu_ticks_during_wrk":%d,"rss_kb":%d,"log_bytes":%s,"log_bytes_source":"%s","note":"%s","metrics_before":%s,"metrics_after":%s,"metrics_settled":%s,"wrk":%s}\n' \
    "$sc" "$server" "$rnd" "${CONN_OF[$sc]}" "${EPR[$sc]}" "$CLK_TCK" $((t2 - t0)) $((t1 - t0)) "$rss" "$logb" "$src" "$note" \
    "${m0:-null}" "${m1:-null}" "${m2:-null}" "$wrkjson" >>"$RUNS"
  python3 - "$wrkjson" "$server" "$sc" "$rnd" "${EPR[$sc]}" <<'PY' >&2 || true
import json, sys
w = json.loads(sys.argv[1]) if sys.argv[1] != "null" else None
srv, sc, rnd, epr = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
if w:
    rps = w["requests"] / (w["duration_us"] / 1e6)
    e = w["errors"]
    bad = sum(e.values())
    print(f"    {sc:<9} round {rnd} {srv:<15} {rps:>10,.0f} req/s {rps * epr:>11,.0f} events/s"
          f"  p50 {w['latency_us']['p50']:>7,} µs  p99 {w['latency_us']['p99']:>8,} µs"
          + (f"  !! non-2xx {e['status']}, socket errors {bad - e['status']}" if bad else ""))
PY
}

# --------------------------------------------------------------------------- main
log "disk baseline: dd 256 MiB with fdatasync into $TMP"
DD_T0=$(date +%s%N)
timeout 300 dd if=/dev/zero of="$TMP/ddtest" bs=1M count=256 conv=fdatasync status=none || die "dd failed"
DD_T1=$(date +%s%N)
rm -f "$TMP/ddtest"
DISK_MB_S=$(awk -v ns=$((DD_T1 - DD_T0)) 'BEGIN {printf "%.1f", 268435456 / (ns / 1e9) / 1e6}')
log "disk: $DISK_MB_S MB/s"

STARTUP_JSON='{"ms":[]}'
if ((WANT_SY && STARTUP_RUNS > 0)); then
  log "timing $STARTUP_RUNS cold starts (exec -> /readyz 200, empty data dir, uap-core loaded)"
  STARTUP_JSON=$(time_startups) || die "startup timing failed: $(tail -n 20 "$TMP/startup.log")"
  log "startup: $STARTUP_JSON"
fi

((WANT_NGINX)) && start_nginx
for v in "${SY_VARIANTS[@]}"; do start_switchyard "$v"; done

for sc in "${SCENARIO_LIST[@]}"; do
  for server in "${SERVER_LIST[@]}"; do
    code=$(preflight "$server" "$sc")
    if [[ $code != 2?? ]]; then
      log "WARNING: $server answered HTTP $code to one $sc request: $(head -c 300 "$TMP/preflight.body" 2>/dev/null || true)"
      PREFLIGHT_NOTE[$server/$sc]="preflight request got HTTP $code"
    fi
    if ((WARMUP_S > 0)); then
      log "warm-up $sc on $server (${WARMUP_S}s)"
      run_wrk "$server" "$sc" "$WARMUP_S" "$TMP/warmup.txt" || log "warm-up wrk failed: $(tail -n 5 "$TMP/warmup.txt")"
      settle "$server"
    fi
  done
  for ((rnd = 1; rnd <= ROUNDS; rnd++)); do
    for server in "${SERVER_LIST[@]}"; do
      log "$sc round $rnd/$ROUNDS: $server (${DURATION_S}s, -t$THREADS -c${CONN_OF[$sc]})"
      measure "$server" "$sc" "$rnd"
      sleep 1
    done
  done
done

mkdir -p "$(dirname "$OUT")"
GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
NGINX_VERSION=""
((WANT_NGINX)) && NGINX_VERSION=$("$NGINX_BIN" -v 2>&1 | sed 's/.*version: //')
WRK_VERSION=$(wrk -v 2>&1 | head -n 1 | awk '{print $2}' || true)
export DISK_MB_S DURATION CONNECTIONS THREADS ROUNDS DURABILITY BODIES SY_BIN GIT_REV NGINX_VERSION WRK_VERSION SCENARIOS SERVERS ENRICH IDENTITY STARTUP_JSON
export PLAN_USED=${PLAN:+on} GEO_USED=${GEO_DB:+on}
python3 - "$TMP/meta.json" <<'PY'
import json, os, platform, sys, time
e = os.environ
sy = any(s.startswith("switchyard") for s in e["SERVERS"].split())
meta = {
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
    "disk_mb_per_s": float(e["DISK_MB_S"]),
    "duration": e["DURATION"], "connections": int(e["CONNECTIONS"]), "threads": int(e["THREADS"]),
    "rounds": int(e["ROUNDS"]), "scenarios": e["SCENARIOS"].split(), "servers": e["SERVERS"].split(),
    "durability": (e["DURABILITY"] or "default (fsync)") if sy else None,
    "enrich": e["ENRICH"] if sy else None,
    "geo": (e["GEO_USED"] == "on") if sy else None,
    "plan": (e["PLAN_USED"] == "on") if sy else None,
    "identity": e["IDENTITY"] if sy else None,
    "startup_ms": json.loads(e["STARTUP_JSON"])["ms"],
    "bodies": e["BODIES"], "switchyard_bin": e.get("SY_BIN") or None, "git_rev": e["GIT_REV"],
    "nginx_version": e.get("NGINX_VERSION") or None, "wrk_version": e.get("WRK_VERSION") or None,
}
with open(sys.argv[1], "w") as f:
    json.dump(meta, f)
PY
python3 "$HERE/report.py" "$RUNS" "$TMP/meta.json" "$OUT"
