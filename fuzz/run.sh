#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer's coverage instrumentation (stable
# Rust: only codegen flags, no sanitizer) and runs each for SECONDS
# (default 300), seeded with the test fixtures and muxed files. Crashers (and
# inputs that take over 5 s: a reader looping on a count) land
# in fuzz/artifacts/TARGET/; minimize one with
#   fuzz/target/HOST/release/TARGET -minimize_crash=1 fuzz/artifacts/TARGET/crash-...
# and turn it into a unit test.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=("${@:-nal sps demux camera_uri y4m rtsp_guard node_spec rtsp_request rtp_packetize hls_request auth_header}")
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With an explicit --target, RUSTFLAGS skip build scripts (which must not be instrumented).
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins --target "$host"
bin=target/$host/release
seeds=corpus/seeds
mkdir -p "$seeds"
cp ../tests/fixtures/tiny.* "$seeds"/
for c in ts mkv mp4; do
  ../target/debug/eyrie mux ../tests/fixtures/tiny.h264 "$seeds/tiny.$c" --fps 25 2>/dev/null || true
done
../target/debug/eyrie mux ../tests/fixtures/tiny.h265 "$seeds/tiny-frag.mp4" --fps 25 --fragmented 2>/dev/null || true
failed=()
for t in ${targets[@]}; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${secs}s"
  "$bin/$t" -max_total_time="$secs" -max_len=65536 -timeout=5 -artifact_prefix="artifacts/$t/" \
    -print_final_stats=1 "corpus/$t" "$seeds" > "artifacts/$t.log" 2>&1 || failed+=("$t")
  tail -8 "artifacts/$t.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/)"; exit 1
fi
