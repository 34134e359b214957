#!/bin/sh
# A migration rehearsal scripted step by step, as a migration engineer would from a shell:
# attach a device (a session agent holds it, with checked traffic running), then for each cycle
# stop it mid-traffic, show the virtqueue state, save it to a file, and bring the other device up
# from that file; at the end, detach with --verify: every request completed exactly once, data
# intact, or the script exits non-zero.
#
#   examples/rehearse.sh [SOURCE [TARGET [CYCLES]]]
#   examples/rehearse.sh                                      sim:blk (hold mode) ⇄ sim:blk
#   examples/rehearse.sh 'sim:net?state=suspend' 'sim:net?state=suspend&latency=0' 2
#   examples/rehearse.sh vfio:0000:01:00.0 vfio:0000:03:00.0  two VFIO devices of the same kind
#
# One command does all of this too: uvirtio rehearse --device SOURCE --to TARGET --json
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
uv() { ${UVIRTIO:-node "$root/bin/uvirtio.js"} "$@"; }
src=${1:-'sim:blk?mode=hold&latency=1'}
dst=${2:-'sim:blk?latency=1'}
cycles=${3:-3}
dir=$(mktemp -d)
session="rehearsal-$$"

# However the script ends, the session goes (its device reset) and so do the files. Ctrl-C and
# kill end it with the statuses uvirtio itself uses: 130 and 143. Set before the attach: a Ctrl-C
# that lands as the attach ends must still detach what it attached.
trap 'uv detach --session "$session" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
uv attach "$src" --name "$session" --traffic 16

here=$src there=$dst
for cycle in $(seq 1 "$cycles"); do
  sleep 0.3                                                     # traffic runs on $here
  uv stop --session "$session"                                  # requests are in flight right now
  uv vq-state --session "$session"
  uv snapshot --session "$session" --out "$dir/cycle-$cycle.json"
  uv reinit --session "$session" --from "$dir/cycle-$cycle.json" --to "$there"
  tmp=$here here=$there there=$tmp
done

sleep 0.3
verdict=$(uv detach --session "$session" --verify --json)
trap - EXIT INT TERM
rm -rf "$dir"
echo "$verdict" | node -e '
  let s = "";
  process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    const r = JSON.parse(s);
    const v = r.verdict;
    const q = r.requests;
    console.log(`rehearse.sh: ${q.completed} of ${q.submitted} requests completed; lost ${v.lost}, duplicated ${v.duplicated}, corrupted ${v.corrupted}`);
    process.exit(v.lost || v.duplicated || v.corrupted || q.completed !== q.submitted ? 1 : 0);
  });
'
