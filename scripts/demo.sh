#!/usr/bin/env bash
# Starts the Genesys simulator on a free loopback port, plays the walkthrough against it, and
# stops the simulator on exit, Ctrl-C or failure.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
sim_log="$(mktemp)"
coproc SIM { exec "$target_dir/debug/genesys-sim" --addr 127.0.0.1:0 2>"$sim_log"; }
sim_pid=$SIM_PID
cleanup() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -f "$sim_log"; }
trap cleanup EXIT INT TERM

if ! read -r -t 10 base_url <&"${SIM[0]}"; then
  echo "genesys-sim did not start:" >&2
  cat "$sim_log" >&2
  exit 1
fi
echo "Genesys simulator at $base_url"
"$target_dir/debug/examples/walkthrough" "$base_url"
