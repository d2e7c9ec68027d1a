#!/usr/bin/env bash
# Runs every test of Postern. On a fresh Debian machine it first installs what the tests
# need (swaks, mbsync from isync and fetchmail: the real SMTP, IMAP and POP3 client programs
# the interop tests drive; python3 for the imaplib and poplib tests).
#   ./test.sh            format check, clippy, and the whole test suite
#   ./test.sh --quick    the test suite only
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v mbsync >/dev/null 2>&1 || need+=(isync)
command -v fetchmail >/dev/null 2>&1 || need+=(fetchmail)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)" ]; then
    $sudo apt-get update -qq
  fi
  # Stale package lists fail with 404s: refresh them once and retry.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null ||
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

if [ "${1:-}" != "--quick" ]; then
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi
cargo test --workspace --locked
