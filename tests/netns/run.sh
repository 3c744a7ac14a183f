#!/usr/bin/env bash
# strata under mpirun across network namespaces, as across machines: two
# hosts (network namespaces, each with its own HOME and TMPDIR for Open MPI's
# session files) on one subnet through a bridge in a third, switch namespace;
# Open MPI's TCP transport between them; a delay on each host's link.
#
# For stories260K and a synthetic F32 GQA model, greedy `strata run` under
# --split tensor (2 ranks, one per host; 4 ranks, two per host),
# --split layer (2 ranks, one per host) and --split none --kv-nodes (2 ranks,
# remote KV read each way and as measured) prints the same text as the
# single-process run, and its logits are within 1e-4 of the single process's.
# Prints the ping RTT between the hosts without and with the delay (before
# and after the runs), per case the tok/s and the bytes that crossed the
# second host's link, and `strata bench`'s communication line of each split
# over the delayed links.
#
# Usage: tests/netns/run.sh STRATA_BINARY
#   STRATA_SHARED_DIR      test data (default: ../shared next to the repo)
#   STRATA_NETNS_DELAY_MS  delay added to every packet leaving a host (default 1; 0: none)
#   STRATA_REQUIRE_NETNS=1 fail, not skip, when the namespaces cannot be made
#                          (not root, no CAP_SYS_ADMIN, tools missing)
# Needs root, iproute2, ping, Open MPI, python3, and for the delay tc's netem
# or, on kernels without sch_netem, iptables' NFQUEUE (tests/netns/delay.py).
# Fails if the delay was asked for but the RTT did not rise by it.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 STRATA_BINARY" >&2
  exit 2
fi
strata=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
shared=${STRATA_SHARED_DIR:-$here/../../../shared}
stories=$shared/models/stories260K.gguf
delay_ms=${STRATA_NETNS_DELAY_MS:-1}
[ -x "$strata" ] || { echo "netns: $strata is not an executable" >&2; exit 1; }
[ -f "$stories" ] || { echo "netns: $stories not found (set STRATA_SHARED_DIR)" >&2; exit 1; }

skip() {
  if [ "${STRATA_REQUIRE_NETNS:-0}" = 1 ]; then
    echo "netns: FAIL (STRATA_REQUIRE_NETNS=1): $*" >&2
    exit 1
  fi
  echo "netns: SKIP: $*"
  exit 0
}
for tool in ip ping mpirun python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/setup.sh)"
done
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"

# Namespace names are global: unique per run. Addresses live only inside the
# namespaces, so the subnet cannot clash with the machine's or another run's.
sw=strata-sw-$$ h1=strata-h1-$$ h2=strata-h2-$$
net=10.213.0
ip1=$net.1 ip2=$net.2
tmp=$(mktemp -d)
namespaces=()
delayers=()
cleanup() {
  set +e
  for pid in "${delayers[@]}"; do kill "$pid" 2>/dev/null; done
  for ns in "${namespaces[@]}"; do
    # Whatever still runs in them was started here (ranks, orted, delayers).
    mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null)
    [ ${#pids[@]} -eq 0 ] || kill -9 "${pids[@]}" 2>/dev/null
    ip netns del "$ns" 2>/dev/null  # takes its veth ends (and so their peers) with it
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM  # (timeout's signal) exit through the EXIT trap
trap 'exit 130' INT

if ! err=$(ip netns add "$h1" 2>&1); then
  skip "cannot create a network namespace (needs CAP_SYS_ADMIN): $err"
fi
namespaces+=("$h1")
for ns in "$h2" "$sw"; do
  ip netns add "$ns"
  namespaces+=("$ns")
done
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
i=1
for ns in "$h1" "$h2"; do
  ip -n "$sw" link add "port$i" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "port$i" master br0 up
  ip -n "$ns" addr add "$net.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  mkdir -p "$tmp/$ns/tmp"
  i=$((i + 1))
done

# "min/avg/max" of 20 pings from h1 to h2, in ms; exits if none was answered.
rtt() {
  local out
  out=$(ip netns exec "$h1" ping -c 20 -i 0.01 -q "$ip2") || true
  out=$(sed -n 's|^rtt min/avg/max/mdev = \([^/]*/[^/]*/[^/]*\)/.*|\1|p' <<<"$out")
  [ -n "$out" ] || { echo "netns: no ping answered from $h1 to $h2" >&2; exit 1; }
  echo "$out"
}
ip netns exec "$h1" ping -c 1 -w 5 -q "$ip2" >/dev/null || { echo "netns: $h1 cannot reach $h2" >&2; exit 1; }
rtt_plain=$(rtt)
echo "netns: hosts $h1 ($ip1) and $h2 ($ip2); ping RTT min/avg/max without delay: $rtt_plain ms"

failures=0
fail() {
  echo "netns: FAIL: $*" >&2
  failures=$((failures + 1))
}

if [ "$delay_ms" != 0 ]; then
  # Every packet leaving a host waits delay_ms: the RTT rises by twice that.
  how="tc netem"
  for ns in "$h1" "$h2"; do
    if ! ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "${delay_ms}ms" 2>/dev/null; then
      how=""
      break
    fi
  done
  if [ -z "$how" ]; then
    command -v iptables >/dev/null || skip "the kernel has no sch_netem and iptables is not installed (scripts/setup.sh)"
    how="delay.py (iptables NFQUEUE; the kernel has no sch_netem)"
    for ns in "$h1" "$h2"; do
      ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
      ip netns exec "$ns" python3 "$here/delay.py" 0 "$delay_ms" "$tmp/$ns/delay.ready" &
      delayers+=($!)
    done
    for ns in "$h1" "$h2"; do
      for _ in $(seq 100); do
        [ -s "$tmp/$ns/delay.ready" ] && break
        sleep 0.1
      done
      [ -s "$tmp/$ns/delay.ready" ] || { echo "netns: delay.py did not start in $ns" >&2; exit 1; }
      # --queue-bypass: without a reader the packets pass; the RTT check below catches that.
      ip netns exec "$ns" iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass
    done
  fi
  rtt_delayed=$(rtt)
  echo "netns: ping RTT min/avg/max with ${delay_ms} ms per packet leaving a host ($how): $rtt_delayed ms"
  # The delayed minimum must exceed the plain minimum by at least delay_ms (half the expected rise).
  if ! awk -v d="$rtt_delayed" -v p="$rtt_plain" -v ms="$delay_ms" \
      'BEGIN { split(d, a, "/"); split(p, b, "/"); exit !(a[1] - b[1] >= ms) }'; then
    fail "the delay did not raise the RTT by ${delay_ms} ms ($rtt_plain -> $rtt_delayed)"
    exit 1
  fi
fi

# mpirun NP HOSTS COMMAND...: runs in h1 as on the first host; reaches h2
# through agent.sh (as through ssh). TCP only, on the hosts' subnet. Both
# hosts' ranks and the delayers share this machine's cores: ranks yield while
# they wait instead of spinning, or they would starve the delayers and each
# other and the figures would measure that rather than the links.
export STRATA_NETNS_HOSTS="$ip1,$h1,$tmp/$h1 $ip2,$h2,$tmp/$h2"
mpi() {
  local np=$1 hosts=$2
  shift 2
  ip netns exec "$h1" env HOME="$tmp/$h1" TMPDIR="$tmp/$h1/tmp" timeout 120 \
    mpirun --oversubscribe --allow-run-as-root --bind-to none -np "$np" --host "$hosts" \
    --mca plm_rsh_agent "$here/agent.sh" --mca mpi_yield_when_idle 1 --mca pml ob1 --mca btl tcp,self \
    --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24" "$@"
}
# Bytes through h2's link (both ways) so far.
link_bytes() {
  local rx tx
  { read -r rx && read -r tx; } < <(ip netns exec "$h2" cat /sys/class/net/eth0/statistics/{rx,tx}_bytes)
  echo $((rx + tx))
}
# Times agent.sh launched Open MPI's daemon on h2.
launches() {
  if [ -f "$tmp/$h2/launches" ]; then wc -l <"$tmp/$h2/launches"; else echo 0; fi
}

gqa=$tmp/gqa.gguf
"$strata" synth "$gqa" --layers 4 --embd 128 --ff 256 --heads 8 --kv-heads 4 --vocab 320 --ctx 256 \
  --type f32 --seed 11 --threads 1 >/dev/null

run=(run -p "Once upon a time" -n 24 --temp 0 -t 1 --no-tune)
for model in stories260K gqa; do
  path=$stories
  [ "$model" = gqa ] && path=$gqa
  one=$tmp/$model.one
  if ! "$strata" "${run[@]}" -m "$path" --logits-out "$one.logits" >"$one.out" 2>"$one.err"; then
    cat "$one.err" >&2
    fail "$model: the single-process run failed"
    continue
  fi
  for case in "tensor 2 $ip1:1,$ip2:1" "tensor 4 $ip1:2,$ip2:2" "layer 2 $ip1:1,$ip2:1"; do
    read -r split np hosts <<<"$case"
    what="$model --split $split, $np ranks"
    many=$tmp/$model.$split.$np
    before_bytes=$(link_bytes)
    before_launches=$(launches)
    if ! mpi "$np" "$hosts" "$strata" "${run[@]}" -m "$path" --split "$split" --logits-out "$many.logits" \
        >"$many.out" 2>"$many.err"; then
      tail -n 20 "$many.err" >&2
      fail "$what: mpirun failed"
      continue
    fi
    kib=$(( ($(link_bytes) - before_bytes) / 1024 ))
    [ "$(launches)" -gt "$before_launches" ] || fail "$what: no rank ran on $h2"
    grep -q "MPI rank 0 of $np, split $split" "$many.err" || fail "$what: strata did not report rank 0 of $np, split $split"
    if ! cmp -s "$one.out" "$many.out"; then
      fail "$what: the text differs from the single process's"
      diff <(cat "$one.out"; echo) <(cat "$many.out"; echo) >&2 || true
    fi
    logits=$(python3 "$here/compare.py" "$one.logits" "$many.logits" 1e-4) || fail "$what: logits: $logits"
    speed=$(sed -n 's/.*generated \([0-9]* tokens in [0-9.]* s ([0-9.]* tok\/s)\).*/\1/p' "$many.err")
    echo "netns: $what: text equal: $(cmp -s "$one.out" "$many.out" && echo yes || echo NO); $logits;" \
      "generated $speed; $kib KiB through $h2's link (the whole job, start-up included)"
  done
done

# --split none --kv-nodes: rank 0 (on the first host) keeps 4 KV blocks of
# a 256-position context, the node on the other host the rest; remote blocks
# read by sending the computation there, or by fetching their data.
for model in stories260K gqa; do
  path=$stories ram=160K
  [ "$model" = gqa ] && path=$gqa ram=256K
  one=$tmp/$model.kv.one
  long=(run -p "Once upon a time" -n 200 -c 256 --temp 0 -t 1 --no-tune)
  if ! "$strata" "${long[@]}" -m "$path" --logits-out "$one.logits" >"$one.out" 2>"$one.err"; then
    cat "$one.err" >&2
    fail "$model: the single-process run of 200 tokens failed"
    continue
  fi
  for mode in compute data auto; do
    what="$model --split none --kv-nodes --kv-remote $mode, 2 ranks"
    many=$tmp/$model.kv.$mode
    if ! mpi 2 "$ip1:1,$ip2:1" "$strata" "${long[@]}" -m "$path" --split none --kv-nodes --kv-ram "$ram" \
        --kv-remote "$mode" --logits-out "$many.logits" >"$many.out" 2>"$many.err"; then
      tail -n 20 "$many.err" >&2
      fail "$what: mpirun failed"
      continue
    fi
    nodes=$(sed -n 's/^strata: \([0-9]*\) blocks on KV nodes.*/\1/p' "$many.err")
    [ "${nodes:-0}" -gt 0 ] || fail "$what: no block went to the KV node"
    cmp -s "$one.out" "$many.out" || fail "$what: the text differs from the single process's"
    logits=$(python3 "$here/compare.py" "$one.logits" "$many.logits" 1e-4) || fail "$what: logits: $logits"
    echo "netns: $what: text equal: $(cmp -s "$one.out" "$many.out" && echo yes || echo NO); $logits;" \
      "$(sed -n 's/^strata: \([0-9]* blocks on KV nodes.*\)/\1/p' "$many.err")"
  done
done

# Communication per token over the delayed links (issue 16's benchmark figures).
for split in tensor layer; do
  if mpi 2 "$ip1:1,$ip2:1" "$strata" bench -m "$stories" -p 0 -n 16 -r 1 -t 1 --no-tune --no-roofline \
      --split "$split" >"$tmp/bench.$split.out" 2>"$tmp/bench.$split.err"; then
    sed -n 's/^mpi: /netns: bench stories260K: /p' "$tmp/bench.$split.out"
  else
    tail -n 20 "$tmp/bench.$split.err" >&2
    fail "strata bench --split $split over the namespaces failed"
  fi
done
# KV nodes: 16 tokens after a 192-token prefix, rank 0 holding 4 of its 7 blocks.
for mode in compute data auto; do
  if mpi 2 "$ip1:1,$ip2:1" "$strata" bench -m "$stories" -p 0 -n 16 --depth 192 -r 1 -t 1 --no-tune --no-roofline \
      --split none --kv-nodes --kv-ram 160K --kv-remote "$mode" >"$tmp/bench.kv.$mode.out" 2>"$tmp/bench.kv.$mode.err"; then
    sed -n "s/^mpi: \(.*\)/netns: bench stories260K --kv-remote $mode: \1/p" "$tmp/bench.kv.$mode.out"
  else
    tail -n 20 "$tmp/bench.kv.$mode.err" >&2
    fail "strata bench --kv-nodes --kv-remote $mode over the namespaces failed"
  fi
done

if [ "$delay_ms" != 0 ]; then
  rtt_after=$(rtt)
  echo "netns: ping RTT min/avg/max with the delay, after the runs: $rtt_after ms"
  awk -v d="$rtt_after" -v p="$rtt_plain" -v ms="$delay_ms" \
    'BEGIN { split(d, a, "/"); split(p, b, "/"); exit !(a[1] - b[1] >= ms) }' ||
    fail "the delay no longer held after the runs ($rtt_plain -> $rtt_after)"
fi

if [ "$failures" -gt 0 ]; then
  echo "netns: $failures failure(s)" >&2
  exit 1
fi
echo "netns: all cases passed"
