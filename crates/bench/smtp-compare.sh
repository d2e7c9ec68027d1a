#!/usr/bin/env bash
# SMTP delivery benchmark: Postern and Postfix (the peers in ../shared/peers) measured by the
# same load generator, one after the other, in the same run. Prints a Markdown table.
#   crates/bench/smtp-compare.sh                 # N=5000, S=4k,100k, C=1,10,50
#   N=1000 SIZES="4k" CONC="10" crates/bench/smtp-compare.sh
# Needs root (installs and starts Postfix via the peers scripts). Everything is on loopback.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peers=${PEERS:-$root/../shared/peers}
N=${N:-5000}
SIZES=${SIZES:-"4k 100k"}
CONC=${CONC:-"1 10 50"}
PORT=${PORT:-2526}
out=${OUT:-$root/target/bench-smtp-$(date +%Y%m%d-%H%M%S).jsonl}

cd "$root"
cargo build --release -q -p postern -p bench
P=$root/target/release/postern
B=$root/target/release/postern-bench
[ -x /usr/sbin/postfix ] || bash "$peers/setup.sh"
grep -q BENCH-PEER /etc/postfix/main.cf 2>/dev/null || bash "$peers/setup.sh"

work=$(mktemp -d)
trap 'bash "$peers/ctl.sh" stop >/dev/null 2>&1 || true; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

postern_start() {
  rm -rf "$work/data"
  "$P" --data-dir "$work/data" domain add naver.test >/dev/null
  for i in $(seq -f %03g 1 100); do
    echo benchpass | "$P" --data-dir "$work/data" user add "u$i@naver.test" --password-stdin >/dev/null
  done
  printf 'hostname = "mx.naver.test"\ndata_dir = "%s"\n[listen]\nsmtp = "127.0.0.1:%s"\n[limits]\nmax_connections_per_ip = 1000\n' \
    "$work/data" "$PORT" >"$work/postern.toml"
  POSTERN_LOG=warn "$P" serve --config "$work/postern.toml" >"$work/postern.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.1; done
  echo "postern did not start" >&2; cat "$work/postern.log" >&2; exit 1
}

postern_stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# The previous run's files (hundreds of MB at 100 KiB) are still being written back by the
# kernel; flushed first, so that neither server's fsyncs queue behind the other's data.
settle() { sync; sleep 2; }

for S in $SIZES; do
  for C in $CONC; do
    # Postfix: Maildir delivery by virtual(8); end-to-end = files in the Maildirs.
    bash "$peers/ctl.sh" stop >/dev/null 2>&1 || true
    bash "$peers/ctl.sh" reset >/dev/null
    settle
    bash "$peers/ctl.sh" start </dev/null >/dev/null 2>&1
    eval "$(bash "$peers/ctl.sh" pids)"
    "$B" smtp --addr 127.0.0.1:2525 -n "$N" -s "$S" -c "$C" --label postfix --json \
      --wait-maildir /opt/mailpeers/vhosts/naver.test --server-pid "$postfix" | tail -1 >>"$out"
    bash "$peers/ctl.sh" stop >/dev/null
    # Postern: "250" means stored and fsync'd, so end-to-end = acceptance; checked below.
    postern_start
    settle
    "$B" smtp --addr "127.0.0.1:$PORT" -n "$N" -s "$S" -c "$C" --label postern --json \
      --wait-cmd "$P --data-dir $work/data stats | awk '/^messages/ {print \$2}'" --server-pid "$pid" | tail -1 >>"$out"
    postern_stop
  done
done

python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["size"], r["concurrency"]), {})[r["label"]] = r
print(f"results: {sys.argv[1]}\n")
print("| size | C | Postfix e2e msg/s | Postern e2e msg/s | ratio | Postfix CPU ms/msg | Postern CPU ms/msg | Postern p50/p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for (size, c), d in sorted(by.items()):
    pf, pt = d.get("postfix"), d.get("postern")
    if not pf or not pt:
        continue
    ratio = pt["e2e_rate"] / pf["e2e_rate"] if pf["e2e_rate"] else float("nan")
    print(f"| {size//1024} KiB | {c} | {pf['e2e_rate']:.0f} | {pt['e2e_rate']:.0f} | {ratio:.1f}x | "
          f"{pf['server_cpu_ms_per_msg']:.2f} | {pt['server_cpu_ms_per_msg']:.2f} | {pt['lat_p50_ms']:.1f}/{pt['lat_p99_ms']:.1f} |")
PY
