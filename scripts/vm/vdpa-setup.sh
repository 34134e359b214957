#!/bin/sh
# The vdpa profile's boot-time set-up, run by /init after the modules are loaded (installed as
# /etc/uvirtio/setup by scripts/vm/vdpa.mjs; docs/test-vm.md#the-vdpa-profile). Creates two
# vdpa_sim block devices and two vdpa_sim net devices with iproute2's `vdpa dev add`; with
# vhost_vdpa loaded and virtio_vdpa not, each binds to vhost_vdpa and gets /dev/vhost-vdpa-N.
# With uvirtio.vduse=1 on the kernel command line, also vduse0 (VDUSE, no SUSPEND; see below).
# Writes what it made to /run/vdpa-devices.json, one object per device:
#   name, mgmtdev, type ("block" | "network", as `vdpa dev show` prints it), deviceId (the virtio
#   device ID: block 2, network 1), vendorId, maxVqs, maxVqSize, mac (net only), driver, dev
# Any failure exits non-zero, and /init reports UVIRTIO-SETUP-FAILED.
set -eu
OUT=/run/vdpa-devices.json
# Bound on waiting for a device's vhost-vdpa class device and node: 100 x 0.05 s = 5 s.
WAIT_TRIES=100

waitfor() { # test-expression...
  n=0
  while ! "$@"; do
    n=$((n + 1))
    [ "$n" -lt "$WAIT_TRIES" ] || return 1
    sleep 0.05
  done
}

field() { # line key -> the word after key
  echo "$1" | tr ' ' '\n' | sed -n "/^$2\$/{n;p;q}"
}

vdpa mgmtdev show > /run/vdpa-mgmtdevs.txt
entries=''
add() { # name mgmtdev [mac]
  name=$1 mgmtdev=$2 mac=${3:-}
  if [ -n "$mac" ]; then vdpa dev add mgmtdev "$mgmtdev" name "$name" mac "$mac"
  else vdpa dev add mgmtdev "$mgmtdev" name "$name"; fi
  sys=/sys/bus/vdpa/devices/$name
  waitfor sh -c "ls -d $sys/vhost-vdpa-* >/dev/null 2>&1" || { echo "vdpa-setup: $name has no vhost-vdpa device (driver: $(readlink "$sys/driver" 2>/dev/null))" >&2; exit 1; }
  node=$(basename "$(ls -d "$sys"/vhost-vdpa-* | head -n1)")
  waitfor test -c "/dev/$node" || { echo "vdpa-setup: /dev/$node did not appear" >&2; exit 1; }
  driver=$(basename "$(readlink "$sys/driver")")
  line=$(vdpa dev show "$name" | head -n1)
  type=$(field "$line" type)
  case "$type" in
    block) id=2 ;;
    network) id=1 ;;
    *) echo "vdpa-setup: $name has unexpected type '$type' ($line)" >&2; exit 1 ;;
  esac
  entry=$(printf '{"name":"%s","mgmtdev":"%s","type":"%s","deviceId":%s,"vendorId":%s,"maxVqs":%s,"maxVqSize":%s,"mac":%s,"driver":"%s","dev":"/dev/%s"}' \
    "$name" "$mgmtdev" "$type" "$id" "$(field "$line" vendor_id)" "$(field "$line" max_vqs)" "$(field "$line" max_vq_size)" \
    "$([ -n "$mac" ] && echo "\"$mac\"" || echo null)" "$driver" "$node")
  entries="${entries:+$entries,
}  $entry"
}

add blk0 vdpasim_blk
add blk1 vdpasim_blk
add net0 vdpasim_net 52:54:00:56:00:01
add net1 vdpasim_net 52:54:00:56:00:02
# Opt-in (kernel argument uvirtio.vduse=1): vduse0, a VDUSE blk device, the parent without SUSPEND
# (scripts/vm/vduse-blk.c answers its control requests; it serves no I/O).
if tr ' ' '\n' < /proc/cmdline | grep -qx 'uvirtio.vduse=1'; then
  while read -r mod; do insmod "/lib/modules/$(uname -r)/$mod"; done < /etc/uvirtio/vduse-modules
  vduse-blk vduse0
  add vduse0 vduse
fi
printf '[\n%s\n]\n' "$entries" > "$OUT"
echo "vdpa-setup: $(grep -c '"name"' "$OUT") devices in $OUT"
