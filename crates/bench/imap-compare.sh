#!/usr/bin/env bash
# IMAP benchmark: Postern and Dovecot (the peers in ../shared/peers) measured by the same load
# generator (`postern-bench imap`), one after the other, in the same run. Prints Markdown tables.
#
#   crates/bench/imap-compare.sh          # defaults below, about 15 minutes
#   CONC="20 50" DUR=30 IDLE_N=2000 crates/bench/imap-compare.sh
#   MODES="select mix" crates/bench/imap-compare.sh
#   REPORT=target/bench-imap-....jsonl crates/bench/imap-compare.sh   # tables of an earlier run
#
# Data (the same generated messages for both servers, `postern-bench gen-mail`):
#   u001..u$USERS: $MSGS messages of ~$SIZE each (mean; 0.5x..1.5x), for mix / commands / idle
#   u100:          $BIG messages of ~$SIZE each, for select
# Postern imports the generated Maildir (`postern import`); Dovecot gets hard links of the same
# files in its Maildirs (only the users above are replaced; other peer mail is left alone).
# Needs root (Dovecot via the peers scripts). Everything is on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS:-$root/../shared/peers}
USERS=${USERS:-20}           # users with a filled INBOX
MSGS=${MSGS:-10000}          # messages per filled INBOX
SIZE=${SIZE:-4k}             # mean message size
BIG=${BIG:-100000}           # messages in u100's INBOX (select)
CONC=${CONC:-"20"}           # clients for mix / commands
DUR=${DUR:-20}               # seconds per mix / commands run
SELECT_K=${SELECT_K:-20}     # SELECT round trips
IDLE_N=${IDLE_N:-10000}      # idle connections held by Postern
IDLE_N_DOVECOT=${IDLE_N_DOVECOT:-1000}   # Dovecot: default_process_limit=1500 in the peers config
IDLE_N_FULL=${IDLE_N_FULL:-2000}     # diagnostic run on the full mailboxes (see below)
IDLE_ROUNDS=${IDLE_ROUNDS:-2}
MEM_CAP=${MEM_CAP:-6144}     # MiB: stop opening idle connections above this server RSS
MODES=${MODES:-"select mix commands idle"}
PORT=${PORT:-2243}           # Postern IMAP
DPORT=1143                   # Dovecot IMAP (peers)
# Timed after the SELECTs on the 100k mailbox (select mode), each SELECT_K times.
QUERIES=(--then "UID SEARCH FROM user32@daum" --then "UID SEARCH SUBJECT notice"
  --then "UID SORT (DATE) UTF-8 ALL" --then "UID SORT (SUBJECT) UTF-8 ALL"
  --then "UID THREAD REFERENCES UTF-8 ALL" --then "UID SEARCH BODY zzzzqqq"
  --then "UID SEARCH BODY \"budget for the new\"" --then "UID SEARCH TEXT \"quarterly report\""
  --then "UID FETCH 99951:100000 (UID FLAGS RFC822.SIZE ENVELOPE)"
  --then "UID FETCH 99951:100000 (BODYSTRUCTURE)")
out=${OUT:-$root/target/bench-imap-$(date +%Y%m%d-%H%M%S).jsonl}
vhosts=/opt/mailpeers/vhosts/naver.test

# Markdown tables from a results file: report FILE.jsonl RUN-SECONDS
report() {
python3 - "$1" "$2" "$USERS" "$MSGS" "$SIZE" "$BIG" <<'PY'
import json, sys
path, secs, users, msgs, size, big = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
def get(mode, label, c=None):
    for r in rows:
        if r.get("mode") == mode and r.get("label") == label and (c is None or r.get("concurrency") == c):
            return r
    return None
def f(v, d=1):
    return "n/a" if v is None else f"{v:.{d}f}"
def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"
print(f"results: {path} (total run time {int(secs) // 60} min {int(secs) % 60} s)\n")
print(f"Data: u001..u{int(users):03d} with {msgs} messages of ~{size} each (same generated mail on both); "
      f"u100 with {big} messages (select).\n")
print("| mode | settings | metric | Postern | Dovecot | Postern/Dovecot | target | met |")
print("|---|---|---|---|---|---|---|---|")
for mode in ("mix", "commands"):
    cs = sorted({r["concurrency"] for r in rows if r.get("mode") == mode})
    for c in cs:
        p, d = get(mode, "postern", c), get(mode, "dovecot", c)
        if not p or not d:
            continue
        st = f"C={c}, {p['duration']} s, {p['users']} users"
        if mode == "mix":
            met = "yes" if d["sessions_per_s"] and p["sessions_per_s"] >= 2 * d["sessions_per_s"] else "no"
            print(f"| mix | {st} | sessions/s | {f(p['sessions_per_s'])} | {f(d['sessions_per_s'])} | "
                  f"{ratio(p['sessions_per_s'], d['sessions_per_s'])} | >= 2x | {met} |")
            print(f"| mix | {st} | server CPU ms/session | {f(p['server_cpu_ms_per_session'], 2)} | "
                  f"{f(d['server_cpu_ms_per_session'], 2)} | {ratio(p['server_cpu_ms_per_session'], d['server_cpu_ms_per_session'])} | | |")
            print(f"| mix | {st} | errors | {p['errors_total']} | {d['errors_total']} | | 0 | |")
        else:
            met = "yes" if d["commands_per_s"] and p["commands_per_s"] >= 1.5 * d["commands_per_s"] else "no"
            print(f"| commands | {st} | commands/s | {f(p['commands_per_s'])} | {f(d['commands_per_s'])} | "
                  f"{ratio(p['commands_per_s'], d['commands_per_s'])} | >= 1.5x | {met} |")
            print(f"| commands | {st} | server CPU ms/command | {f(p['server_cpu_ms_per_command'], 3)} | "
                  f"{f(d['server_cpu_ms_per_command'], 3)} | {ratio(p['server_cpu_ms_per_command'], d['server_cpu_ms_per_command'])} | | |")
            print(f"| commands | {st} | errors | {p['errors_total']} | {d['errors_total']} | | 0 | |")
idle = [r for r in rows if r.get("mode") == "idle-connections"]
p = next((r for r in idle if r["label"] == "postern"), None)
d = next((r for r in idle if r["label"] == "dovecot" and r["user_first"] == 1), None)
if p and d:
    st = (f"full INBOXes; Postern N={p['held']}/{p['connections']}{' (RSS cap)' if p['capped'] else ''}, "
          f"Dovecot N={d['held']}/{d['connections']}")
    met = "yes" if p["pss_kb_per_conn"] is not None and p["pss_kb_per_conn"] <= 64 else "no"
    print(f"| idle | {st} | PSS KiB/connection | {f(p['pss_kb_per_conn'])} | {f(d['pss_kb_per_conn'])} | "
          f"{ratio(p['pss_kb_per_conn'], d['pss_kb_per_conn'])} | <= 64 KiB | {met} |")
    print(f"| idle | {st} | RSS KiB/connection | {f(p['rss_kb_per_conn'])} | {f(d['rss_kb_per_conn'])} | | | |")
p, d = get("select", "postern"), get("select", "dovecot")
if p and d and "p50_ms" in p and "p50_ms" in d:
    st = f"{p['exists']} msgs, {p['iterations']} x {p['verb']}"
    met = "yes" if p["p50_ms"] < 50 else "no"
    print(f"| select | {st} | p50 ms | {f(p['p50_ms'], 2)} | {f(d['p50_ms'], 2)} | {ratio(p['p50_ms'], d['p50_ms'])} | < 50 ms | {met} |")
    print(f"| select | {st} | min ms | {f(p['min_ms'], 2)} | {f(d['min_ms'], 2)} | | | |")
    print(f"| select | {st} | first (cold) ms | {f(p['first_ms'], 2)} | {f(d['first_ms'], 2)} | | | |")
elif p or d:
    print(f"| select | | error | {p} | {d} | | | |")
for p in [r for r in rows if r.get("mode") == "query" and r.get("label") == "postern"]:
    d = next((r for r in rows if r.get("mode") == "query" and r.get("label") == "dovecot"
              and r.get("command") == p["command"]), None)
    dp = d["p50_ms"] if d else None
    met = "yes" if p["p50_ms"] < 1000 else "no"
    print(f"| query | {p['exists']} msgs: `{p['command']}` | p50 ms | {f(p['p50_ms'], 1)} | {f(dp, 1)} | "
          f"{ratio(p['p50_ms'], dp)} | < 1 s | {met} |")
for mode in ("mix", "commands"):
    for c in sorted({r["concurrency"] for r in rows if r.get("mode") == mode}):
        p, d = get(mode, "postern", c), get(mode, "dovecot", c)
        if not p or not d:
            continue
        print(f"\nLatency per command, {mode} C={c} (ms, p50 / p99 / max, count >= 100 ms):\n")
        print("| command | Postern | Dovecot |")
        print("|---|---|---|")
        for k in p["latency"]:
            a, b = p["latency"][k], d["latency"].get(k)
            cell = lambda x: "n/a" if not x else f"{x['p50_ms']:.2f} / {x['p99_ms']:.2f} / {x['max_ms']:.1f}" + (f" ({x['slow']})" if "slow" in x else "")
            print(f"| {k} | {cell(a)} | {cell(b)} |")
if idle:
    print("\nIdle connections (LOGIN + SELECT INBOX + IDLE), every run:\n")
    print("| server | users | mean EXISTS | held/asked | rounds | PSS KiB/conn (last round) | RSS KiB/conn | PSS KiB/conn round 1 | server PSS MiB holding | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in idle:
        users_s = f"u{r['user_first']:03d}..u{r['user_first'] + r['user_count'] - 1:03d}"
        note = f"stopped at RSS cap {r['mem_cap_mib']} MiB" if r["capped"] else ""
        if r["label"] == "postern-mmapfix":
            note = (note + "; " if note else "") + "MALLOC_MMAP_THRESHOLD_=131072 (diagnostic)"
        print(f"| {r['label']} | {users_s} | {f(r['exists'], 0)} | {r['held']}/{r['connections']} | {r['rounds']} | "
              f"{f(r['pss_kb_per_conn'])} | {f(r['rss_kb_per_conn'])} | {f(r['first_round_pss_kb_per_conn'])} | "
              f"{f(r['pss_holding_kb'] / 1024)} | {note} |")
PY
}

# REPORT=FILE.jsonl: only print the tables of an earlier run
if [ -n "${REPORT:-}" ]; then report "$REPORT" 0; exit 0; fi

cd "$root"
t_start=$(date +%s)
cargo build --release -q -p postern -p bench
P=$root/target/release/postern
B=$root/target/release/postern-bench
[ -x /usr/sbin/dovecot ] || bash "$peers/setup.sh"
[ -r /etc/dovecot/bench/dovecot.conf ] || bash "$peers/setup.sh"
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((IDLE_N + 100)) ]; then
  echo "open-file limit $(ulimit -n) is below IDLE_N=$IDLE_N + 100; lowering IDLE_N" >&2
  IDLE_N=$(( $(ulimit -n) - 200 ))
fi

work=$(mktemp -d /tmp/imap-compare.XXXXXX)
pid=
dovecot_started=0
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$dovecot_started" = 1 ] && bash "$peers/ctl.sh" stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Wait (at most 30 s) until the machine is quiet (< 25% of all cores busy over 1 s): other jobs
# on this shared machine (e.g. compilers) would otherwise take CPU from the servers under test.
quiet() {
  local i a b
  for i in $(seq 30); do
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local tot=0 idle k
    for k in 1 2 3 4 5 6 7 8; do tot=$((tot + b[k] - a[k])); done
    idle=$(( b[4] - a[4] + b[5] - a[5] ))
    [ "$tot" -gt 0 ] && [ $(( (tot - idle) * 100 / tot )) -lt 25 ] && return 0
  done
  echo "warning: machine still busy after 30 s; measuring anyway" >&2
}

users() { seq -f "u%03g@naver.test" "$1" "$2"; }

echo "== generating mail ($USERS x $MSGS + $BIG messages of ~$SIZE)" >&2
"$B" gen-mail -n "$MSGS" -s "$SIZE" --maildir "$work/md-small" --seed 1
"$B" gen-mail -n "$BIG" -s "$SIZE" --maildir "$work/md-big" --seed 2

echo "== Postern: 100 users, importing" >&2
D=$work/data
"$P" --data-dir "$D" domain add naver.test >/dev/null
for u in $(users 1 100); do
  echo benchpass | "$P" --data-dir "$D" user add "$u" --password-stdin >/dev/null
done
for u in $(users 1 "$USERS"); do "$P" --data-dir "$D" import "$u" "$work/md-small" >/dev/null; done
"$P" --data-dir "$D" import u100@naver.test "$work/md-big" >/dev/null
"$P" --data-dir "$D" stats | sed 's/^/  /' >&2
printf 'hostname = "mx.naver.test"\ndata_dir = "%s"\n[listen]\nimap = "127.0.0.1:%s"\n[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n' \
  "$D" "$PORT" >"$work/postern.toml"

postern_start() { # [VAR=value ...] extra environment
  env "$@" POSTERN_LOG=warn "$P" serve --config "$work/postern.toml" >>"$work/postern.log" 2>&1 &
  pid=$!
  local up=
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && up=1 && break; sleep 0.1; done
  [ -n "$up" ] || { echo "postern did not start" >&2; cat "$work/postern.log" >&2; exit 1; }
  # The import does not summarise (delivery does, in the background): let the server's indexer
  # catch up first, as it would have while the mail arrived, so the first query is not the
  # one that summarises a whole mailbox.
  for _ in $(seq 600); do
    [ "$("$P" --data-dir "$D" stats | awk '/^unsummarized/ {print $2}')" = 0 ] && return 0
    sleep 0.5
  done
  echo "warning: the indexer has not caught up after 5 minutes" >&2
}
postern_stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

echo "== Dovecot: same messages into the peers' Maildirs" >&2
if ! bash "$peers/ctl.sh" pids | grep -q 'dovecot=[0-9]'; then
  bash "$peers/ctl.sh" start </dev/null >/dev/null 2>&1
  dovecot_started=1
fi
eval "$(bash "$peers/ctl.sh" pids)"
fill_dovecot() { # user-dir source
  rm -rf "${vhosts:?}/$1"
  mkdir -p "$vhosts/$1"
  cp -al "$2/cur" "$2/new" "$2/tmp" "$vhosts/$1/"
  chown -R vmail:vmail "$vhosts/$1"
}
for i in $(seq -f %03g 1 "$USERS"); do fill_dovecot "u$i" "$work/md-small"; done
fill_dovecot u100 "$work/md-big"
sync

run() { # label server-pid args...
  local label=$1 spid=$2; shift 2
  quiet
  "$B" imap --label "$label" --server-pid "$spid" --json "$@" >"$work/last.txt" 2>&1 || true
  grep -v '^{' "$work/last.txt" >&2 || true
  grep '^{' "$work/last.txt" >>"$out" || true
}

for mode in $MODES; do
  case $mode in
    select)
      postern_start
      run postern "$pid" --addr "127.0.0.1:$PORT" --mode select -k "$SELECT_K" --user-first 100 "${QUERIES[@]}"
      postern_stop
      run dovecot "$dovecot" --addr "127.0.0.1:$DPORT" --mode select -k "$SELECT_K" --user-first 100 "${QUERIES[@]}"
      ;;
    mix|commands)
      for C in $CONC; do
        postern_start
        run postern "$pid" --addr "127.0.0.1:$PORT" --mode "$mode" -c "$C" -d "$DUR" --user-count "$USERS"
        postern_stop
        run dovecot "$dovecot" --addr "127.0.0.1:$DPORT" --mode "$mode" -c "$C" -d "$DUR" --user-count "$USERS"
      done
      ;;
    idle)
      empty_first=$((USERS + 1)); empty_count=$((99 - USERS))
      # 1. as shipped, users with full INBOXes; capped by server RSS (see MEM_CAP)
      postern_start
      run postern "$pid" --addr "127.0.0.1:$PORT" --mode idle-connections -n "$IDLE_N" \
        --rounds "$IDLE_ROUNDS" --user-count "$USERS" --mem-cap-mib "$MEM_CAP"
      postern_stop
      # 2. diagnostic: glibc malloc with a fixed mmap threshold, so that the 19 MiB argon2id
      #    buffers of LOGIN are mmap'd/munmap'd instead of fragmenting the heap; shows what the
      #    sessions themselves cost: empty INBOXes (u021..u099), then full INBOXes
      postern_start MALLOC_MMAP_THRESHOLD_=131072
      run postern-mmapfix "$pid" --addr "127.0.0.1:$PORT" --mode idle-connections -n "$IDLE_N" \
        --rounds 1 --user-first "$empty_first" --user-count "$empty_count" --mem-cap-mib "$MEM_CAP"
      run postern-mmapfix "$pid" --addr "127.0.0.1:$PORT" --mode idle-connections -n "$IDLE_N_FULL" \
        --rounds 1 --user-count "$USERS" --mem-cap-mib "$MEM_CAP"
      postern_stop
      run dovecot "$dovecot" --addr "127.0.0.1:$DPORT" --mode idle-connections -n "$IDLE_N_DOVECOT" \
        --rounds "$IDLE_ROUNDS" --user-count "$USERS" --mem-cap-mib "$MEM_CAP"
      run dovecot "$dovecot" --addr "127.0.0.1:$DPORT" --mode idle-connections -n "$IDLE_N_DOVECOT" \
        --rounds 1 --user-first "$empty_first" --user-count "$empty_count" --mem-cap-mib "$MEM_CAP"
      ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done

report "$out" "$(( $(date +%s) - t_start ))"
