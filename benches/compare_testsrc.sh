#!/usr/bin/env bash
# Side by side: Eyrie's default run (two live synthetic 1280x720 30 fps NV12
# cameras, each fed into two relays) against the GStreamer pipeline a user would
# write for the same shape (two live videotestsrc, each tee'd into two queues).
# Both run 10 s of wall clock; we compare whole-process CPU time (user+sys) and
# peak RSS, alternating runs, and report medians and the ratio.
#
#   benches/compare_testsrc.sh [RUNS] [PATTERN]
#
# PATTERN is videotestsrc's (default `ball`: a moving object on a flat field;
# `snow` is per-pixel noise). Eyrie's testsrc draws more per frame than either
# (texture, noise, several moving objects, text and a stamp), so the ratio
# flatters GStreamer, not Eyrie. Needs gst-launch-1.0 (Debian
# gstreamer1.0-tools gstreamer1.0-plugins-base).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
pattern=${2:-ball}
command -v gst-launch-1.0 >/dev/null || { echo "needs gst-launch-1.0 (gstreamer1.0-tools gstreamer1.0-plugins-base)"; exit 2; }
cargo build --release --bin eyrie -q

caps="video/x-raw,format=NV12,width=1280,height=720,framerate=30/1"
cam() { echo "videotestsrc is-live=true pattern=$pattern num-buffers=300 ! $caps ! tee name=t$1 t$1. ! queue ! fakesink t$1. ! queue ! fakesink"; }
gst=(gst-launch-1.0 -q $(cam 0) $(cam 1))
eyrie=(./target/release/eyrie run --for 10 --log warn)

measure() { /usr/bin/time -f "%U %S %M" "$@" 2>&1 >/dev/null | tail -1; }
declare -a e_cpu g_cpu e_rss g_rss
for i in $(seq "$runs"); do
  read -r u s m < <(measure "${eyrie[@]}"); e_cpu+=("$(echo "$u + $s" | bc)"); e_rss+=("$m")
  read -r u s m < <(measure "${gst[@]}"); g_cpu+=("$(echo "$u + $s" | bc)"); g_rss+=("$m")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ec=$(median "${e_cpu[@]}"); gc=$(median "${g_cpu[@]}")
er=$(median "${e_rss[@]}"); gr=$(median "${g_rss[@]}")
echo "runs: $runs, 10 s each, videotestsrc pattern=$pattern"
echo "CPU s (median):  eyrie $ec   gstreamer $gc   ratio eyrie/gstreamer $(echo "scale=2; $ec / $gc" | bc)"
echo "peak RSS KiB:    eyrie $er   gstreamer $gr   ratio $(echo "scale=2; $er / $gr" | bc)"
