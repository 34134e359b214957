#!/bin/sh
# Rehearses a migration from a shell script: `uvirtio rehearse --json`, then a verdict read from the
# JSON with node. Exits 0 only when every request completed exactly once with its data intact.
#
#   examples/rehearse.sh [DEVICE] [more rehearse options…]     default DEVICE: sim:blk
#   examples/rehearse.sh 'sim:net?pairs=2' --cycles 3
#   examples/rehearse.sh vfio:0000:00:03.0 --to vfio:0000:00:04.0
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
uvirtio=${UVIRTIO:-"node $root/bin/uvirtio.js"}
device=${1:-sim:blk}
[ $# -gt 0 ] && shift

report=$($uvirtio rehearse --device "$device" --json "$@")
status=$?
echo "$report" | node -e '
  let s = "";
  process.stdin.on("data", (d) => { s += d; }).on("end", () => {
    let r;
    try { r = JSON.parse(s); } catch { console.error("rehearse.sh: no JSON verdict"); process.exit(1); }
    if (!r.ok) {
      console.error(`rehearse.sh: FAILED ${r.error ? `${r.error.code}: ${r.error.message}` : JSON.stringify(r.requests)}`);
      process.exit(1);
    }
    const q = r.requests;
    console.log(`rehearse.sh: ok — ${r.device} → ${r.target}, ${r.mechanism}, ${r.cycles} cycles, ${q.completed}/${q.submitted} requests, lost ${q.lost}, duplicated ${q.duplicated}, corrupted ${q.corrupted}, pause median ${r.pause_ms.median} ms`);
  });
' || exit 1
exit $status
