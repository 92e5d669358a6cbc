#!/usr/bin/env bash
# The GPU-only checks in one call, in two halves:
#
#   scripts/gpu-check.sh build   here (Rust, no GPU): builds the crate's unit-test
#                                binary with `--features cuda`, stripped, into
#                                target/gpu-check/ with the shared libraries it
#                                links (glibc apart, used only if the GPU
#                                machine's is older), and checks the folder
#                                stays under 64 MiB;
#   scripts/gpu-check.sh run     on the GPU machine (NVIDIA driver, CUDA with
#                                NVRTC, no Rust, no network), from the
#                                repository root with target/gpu-check carried:
#                                runs every GPU-only test — the preprocessing
#                                kernel against the CPU path (within 1/255, every
#                                pixel format and three sizes) and its throughput
#                                against the card's memory bandwidth — and prints
#                                a summary. Well under 10 minutes (seconds, in fact).
#
# With the `device` tool: `run` with carry ["target/gpu-check"] and the command
# `scripts/gpu-check.sh run`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/gpu-check
# The GPU-only tests: #[ignore]d unit tests in src/infer/cuda.rs.
filter=infer::cuda::

case "${1:-}" in
build)
  rm -rf "$dir"
  mkdir -p "$dir/lib" "$dir/glibc"
  exe=$(cargo test --lib --features cuda --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
  [ -n "$exe" ] || { echo "gpu-check: no unit-test binary was built" >&2; exit 1; }
  strip -o "$dir/eyrie-lib-tests" "$exe"
  # Shared libraries: glibc's own (with its loader) apart, for the fallback.
  ldd "$exe" | awk '/=> \// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*) cp -L "$lib" "$dir/glibc/" ;;
      *) cp -L "$lib" "$dir/lib/" ;;
    esac
  done
  "$dir/eyrie-lib-tests" --list --ignored 2>/dev/null | grep "^$filter" > "$dir/tests.txt"
  size=$(du -sm "$dir" | cut -f1)
  echo "gpu-check: $dir is ${size} MiB, with $(wc -l < "$dir/tests.txt") GPU-only tests:"
  sed 's/^/  /' "$dir/tests.txt"
  [ "$size" -lt 64 ] || { echo "gpu-check: $dir is over 64 MiB" >&2; exit 1; }
  ;;
run)
  [ -x "$dir/eyrie-lib-tests" ] || {
    echo "gpu-check: no $dir/eyrie-lib-tests: run 'scripts/gpu-check.sh build' where Rust is and carry $dir" >&2
    exit 2
  }
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  # cudarc loads libnvrtc under the names of CUDA 12 and unversioned ones; a
  # CUDA 13 install has libnvrtc.so.13: offer it under the unversioned name.
  shim=$(mktemp -d)
  trap 'rm -rf "$shim"' EXIT
  for name in nvrtc nvrtc-builtins; do
    found=$( (ldconfig -p 2>/dev/null | awk -v n="lib$name.so" 'index($1, n) == 1 {print $NF}';
              ls /usr/local/cuda*/lib64/lib$name.so* /usr/local/cuda*/targets/*/lib/lib$name.so* 2>/dev/null || true) | head -1)
    if [ -n "$found" ]; then ln -sf "$found" "$shim/lib$name.so"; fi
  done
  export LD_LIBRARY_PATH="$shim:$PWD/$dir/lib:${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64"
  test_bin=("$dir/eyrie-lib-tests")
  # This machine's glibc may be older than the build machine's: then use the carried one.
  if ! "$dir/eyrie-lib-tests" --list >/dev/null 2>&1; then
    echo "gpu-check: the binary does not start with this machine's glibc; using the carried one"
    loader=$(ls "$dir"/glibc/ld-linux* | head -1)
    test_bin=("$loader" --library-path "$PWD/$dir/glibc:$LD_LIBRARY_PATH" "$dir/eyrie-lib-tests")
  fi
  log=$(mktemp)
  set +e
  timeout 540 "${test_bin[@]}" "$filter" --ignored --nocapture --test-threads 1 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  echo
  echo "== gpu-check summary"
  grep -h "GPU-CHECK" "$log" | sed 's/^GPU-CHECK /  /' || true
  grep -hE "^test .* (ok|FAILED)$|^test result" "$log" | sed 's/^/  /' || true
  if [ "$rc" -eq 0 ]; then echo "gpu-check: PASSED"; else echo "gpu-check: FAILED (exit $rc)"; fi
  rm -f "$log"
  exit "$rc"
  ;;
*)
  echo "usage: scripts/gpu-check.sh build | run" >&2
  exit 2
  ;;
esac
