#!/usr/bin/env bash
# POP3 benchmark: Postern and Dovecot (the peers in ../shared/peers) measured by the same load
# generator (`postern-bench pop3`), one after the other, in the same run. Prints a Markdown table.
#
#   crates/bench/pop3-compare.sh                         # defaults below, a few minutes
#   USERS=20 MSGS=1000 DUR=20 CONC="10" crates/bench/pop3-compare.sh
#   REPORT=target/bench-pop3-....jsonl crates/bench/pop3-compare.sh   # tables of an earlier run
#
# Each session: connect, USER/PASS, STAT, LIST, RETR of every message, QUIT (nothing deleted).
# Data: u001..u$USERS each get the same $MSGS generated messages of ~$SIZE (mean; 0.5x..1.5x),
# imported into Postern (`postern import`) and hard-linked into Dovecot's Maildirs (only those
# users are replaced; other peer mail is left alone). Before each measured run, one unmeasured
# session per user lets both servers build what they cache (Dovecot its index and the
# messages' CRLF sizes). Needs root (Dovecot via the peers scripts). Everything is on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS:-$root/../shared/peers}
USERS=${USERS:-20}           # users with a filled INBOX
MSGS=${MSGS:-1000}           # messages per INBOX
SIZE=${SIZE:-4k}             # mean message size
CONC=${CONC:-"10"}           # concurrent clients (each on its own user while C <= USERS)
DUR=${DUR:-20}               # seconds per run
PORT=${PORT:-2210}           # Postern POP3
DPORT=1110                   # Dovecot POP3 (peers)
out=${OUT:-$root/target/bench-pop3-$(date +%Y%m%d-%H%M%S).jsonl}
vhosts=/opt/mailpeers/vhosts/naver.test

report() { # FILE.jsonl
python3 - "$1" "$USERS" "$MSGS" "$SIZE" <<'PY'
import json, sys
path, users, msgs, size = sys.argv[1:5]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
def get(label, c):
    return next((r for r in rows if r.get("label") == label and r.get("concurrency") == c), None)
def f(v, d=1):
    return "n/a" if v is None else f"{v:.{d}f}"
def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"
print(f"results: {path}\n")
print(f"Data: u001..u{int(users):03d}, each INBOX {msgs} messages of ~{size} (the same files on both).\n")
print("| C | metric | Postern | Dovecot | Postern/Dovecot |")
print("|---|---|---|---|---|")
for c in sorted({r["concurrency"] for r in rows}):
    p, d = get("postern", c), get("dovecot", c)
    if not p or not d:
        continue
    print(f"| {c} | sessions/s (login, STAT, LIST, {msgs} x RETR, QUIT) | {f(p['sessions_per_s'], 2)} | {f(d['sessions_per_s'], 2)} | {ratio(p['sessions_per_s'], d['sessions_per_s'])} |")
    print(f"| {c} | messages retrieved/s | {f(p['messages_per_s'], 0)} | {f(d['messages_per_s'], 0)} | {ratio(p['messages_per_s'], d['messages_per_s'])} |")
    print(f"| {c} | server CPU ms/session | {f(p['server_cpu_ms_per_session'], 1)} | {f(d['server_cpu_ms_per_session'], 1)} | {ratio(p['server_cpu_ms_per_session'], d['server_cpu_ms_per_session'])} |")
    for k in ("login", "list", "retr"):
        a, b = p["latency"].get(k), d["latency"].get(k)
        cell = lambda x: "n/a" if not x else f"{x['p50_ms']:.3f} / {x['p99_ms']:.3f}"
        print(f"| {c} | {k.upper()} ms p50 / p99 | {cell(a)} | {cell(b)} | |")
    print(f"| {c} | errors | {p['errors_total']} | {d['errors_total']} | |")
    print(f"| {c} | machine CPU busy % | {f(p['machine_busy_pct'], 0)} | {f(d['machine_busy_pct'], 0)} | |")
PY
}

if [ -n "${REPORT:-}" ]; then report "$REPORT"; exit 0; fi

cd "$root"
cargo build --release -q -p postern -p bench
P=$root/target/release/postern
B=$root/target/release/postern-bench
[ -x /usr/sbin/dovecot ] || bash "$peers/setup.sh"
[ -r /etc/dovecot/bench/dovecot.conf ] || bash "$peers/setup.sh"

work=$(mktemp -d /tmp/pop3-compare.XXXXXX)
pid=
dovecot_started=0
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ "$dovecot_started" = 1 ] && bash "$peers/ctl.sh" stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

# Wait (at most 30 s) until the machine is quiet (< 25% of all cores busy over 1 s).
quiet() {
  local i a b
  for i in $(seq 30); do
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local tot=0 idle k
    for k in 1 2 3 4 5 6 7 8; do tot=$((tot + b[k] - a[k])); done
    idle=$(( b[4] - a[4] + b[5] - a[5] ))
    [ "$tot" -gt 0 ] && [ $(( (tot - idle) * 100 / tot )) -lt 25 ] && return 0
  done
  echo "warning: machine still busy after 30 s (load: $(cut -d' ' -f1-3 /proc/loadavg)); measuring anyway" >&2
}

users() { seq -f "u%03g@naver.test" "$1" "$2"; }

echo "== generating mail ($MSGS messages of ~$SIZE)" >&2
"$B" gen-mail -n "$MSGS" -s "$SIZE" --maildir "$work/md" --seed 1

echo "== Postern: $USERS users, importing" >&2
D=$work/data
"$P" --data-dir "$D" domain add naver.test >/dev/null
for u in $(users 1 "$USERS"); do
  echo benchpass | "$P" --data-dir "$D" user add "$u" --password-stdin >/dev/null
  "$P" --data-dir "$D" import "$u" "$work/md" >/dev/null
done
"$P" --data-dir "$D" stats | sed 's/^/  /' >&2
printf 'hostname = "mx.naver.test"\ndata_dir = "%s"\n[listen]\npop3 = "127.0.0.1:%s"\n[limits]\nmax_connections = 20000\nmax_connections_per_ip = 20000\n' \
  "$D" "$PORT" >"$work/postern.toml"

echo "== Dovecot: same messages into the peers' Maildirs" >&2
if ! bash "$peers/ctl.sh" pids | grep -q 'dovecot=[0-9]'; then
  bash "$peers/ctl.sh" start </dev/null >/dev/null 2>&1
  dovecot_started=1
fi
eval "$(bash "$peers/ctl.sh" pids)"
for i in $(seq -f %03g 1 "$USERS"); do
  rm -rf "${vhosts:?}/u$i"
  mkdir -p "$vhosts/u$i"
  cp -al "$work/md/cur" "$work/md/new" "$work/md/tmp" "$vhosts/u$i/"
  chown -R vmail:vmail "$vhosts/u$i"
done
sync

run() { # label server-pid addr C
  local label=$1 spid=$2 addr=$3 c=$4
  # Unmeasured warm-up: one session per user.
  "$B" pop3 --addr "$addr" -c "$USERS" -d 1 --user-count "$USERS" >/dev/null 2>&1 || true
  quiet
  "$B" pop3 --label "$label" --server-pid "$spid" --json --addr "$addr" -c "$c" -d "$DUR" \
    --user-count "$USERS" >"$work/last.txt" 2>&1 || true
  grep -v '^{' "$work/last.txt" >&2 || true
  grep '^{' "$work/last.txt" >>"$out" || true
}

for C in $CONC; do
  POSTERN_LOG=warn "$P" serve --config "$work/postern.toml" >>"$work/postern.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  run postern "$pid" "127.0.0.1:$PORT" "$C"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  run dovecot "$dovecot" "127.0.0.1:$DPORT" "$C"
done

report "$out"
