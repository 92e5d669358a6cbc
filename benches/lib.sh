# Shared by the load benches (sourced, with $work set to a scratch directory):
#   start CONFIG_OR_EMPTY SECONDS NAME  runs the release server in $work/NAME
#                                       (empty CONFIG: the built-in demo),
#                                       HTTP on a free loopback port; sets $pid and $addr
#   cpu PID                             CPU ticks the process has used

start() {
  local config=$1 for=$2 name=$3 args=()
  [ -n "$config" ] && args=(-c "$config")
  mkdir -p "$work/$name"
  (cd "$work/$name" && EYRIE_LOG=info exec "$OLDPWD/target/release/eyrie" run "${args[@]}" --for "$for" \
     --rtsp off --http 127.0.0.1:0 --stats stats.json) 2> "$work/$name/log" &
  pid=$!
  addr=""
  for _ in $(seq 600); do
    addr=$(grep -m1 -o 'open http://[0-9.:]*' "$work/$name/log" | cut -d/ -f3 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { cat "$work/$name/log"; exit 1; }
}

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
