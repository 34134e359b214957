#!/bin/sh
# The test VM's /init (busybox sh). The kernel console (ttyS0) gets init's own messages and the
# exit marker the host runner waits for; the command's output goes to ttyS1, which the host streams.
#   kernel command line: uvirtio.profile=viommu|noiommu|vdpa  uvirtio.cmd=<base64 of a shell script>
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run /root /dev/shm /dev/pts
echo "UVIRTIO-INIT $(cut -d' ' -f1 /proc/uptime)"

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | head -n1; }
profile=$(arg uvirtio.profile)

fail() { echo "UVIRTIO-SETUP-FAILED $*"; echo "UVIRTIO-EXIT 125"; poweroff -f; reboot -f; }

# Modules in dependency order, with their parameters (written by scripts/vm/initramfs.mjs), then
# those the kernel command line gives as <module>.<param>=<value>, as modprobe would pass them
# (the runner's --kernel-arg, e.g. vdpa_sim.use_va=0).
while read -r mod params; do
  [ -n "$mod" ] || continue
  name=$(basename "$mod" .ko | tr - _)
  insmod "/lib/modules/$(uname -r)/$mod" $params $(tr ' ' '\n' < /proc/cmdline | sed -n "s/^$name\.//p") || fail "insmod $mod"
done < /etc/uvirtio/modules

# No-IOMMU DMA regions bigger than a page need hugepages (lib/vfio/dma.ts).
[ "$profile" = noiommu ] && echo 64 > /proc/sys/vm/nr_hugepages

# A profile's own set-up, when its initramfs part ships one (vdpa: scripts/vm/vdpa-setup.sh).
if [ -x /etc/uvirtio/setup ]; then /etc/uvirtio/setup || fail "the $profile profile's set-up (/etc/uvirtio/setup)"; fi

# Every virtio function (vendor 0x1af4) to vfio-pci (docs/test-vm.md#iommu-profiles).
[ "$profile" = vdpa ] || for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor")" = 0x1af4 ] || continue
  echo vfio-pci > "$d/driver_override"
  echo "${d##*/}" > /sys/bus/pci/drivers_probe || fail "binding ${d##*/} to vfio-pci"
done

arg uvirtio.cmd | base64 -d > /tmp/uvirtio-cmd.sh || fail "decoding the command"
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo "UVIRTIO-RUN $(cut -d' ' -f1 /proc/uptime)"
cd /project && sh /tmp/uvirtio-cmd.sh > /dev/ttyS1 2>&1 < /dev/null
echo "UVIRTIO-EXIT $?"
poweroff -f
reboot -f
