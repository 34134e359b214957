/*
 * A minimal virtio-blk driver over VFIO: the C peer of bench/vm-blk.ts. Runs inside the test VM
 * (viommu profile: VFIO type1 behind QEMU's intel-iommu), does 4 KiB random reads on queue 0 for a
 * fixed time at a given queue depth, split or packed ring, and prints one JSON line:
 * {"iops":..,"done":..,"seconds":..,"kicks":..,"kickChances":..,"wakeups":..,"cpuUs":..}
 * (notifications written, how many times it would have written one had the device not suppressed
 * them, the interrupt wake-ups it slept for, and its user + system CPU time in the timed window).
 *
 *   gcc -static -O2 -o vfio-blk bench/c/vfio-blk.c
 *   vfio-blk 0000:01:00.0 split|packed DEPTH SECONDS [SEED] [poll|always-kick|msix]
 *
 * poll (the default) busy-polls the used ring with used-buffer notifications suppressed, no MSI-X
 * vector. always-kick polls too but writes a notification for every request, ignoring the device's
 * suppression: it shows what a notification costs (each is an MMIO exit to QEMU; under TCG a slow
 * one). msix gives queue 0 MSI-X vector 0, signalled to an eventfd (VFIO_DEVICE_SET_IRQS), and
 * sleeps in read(2) on it whenever the used ring is empty: the shortest interrupt path a user-space
 * driver has over VFIO (no event loop, no EVENT_IDX), the floor for uvirtio's MSI-X mode.
 *
 * It follows the virtio 1.2 specification (4.1 PCI transport, 2.7 split and 2.8 packed rings, 5.2
 * block device) and the kernel's linux/vfio.h; it trusts nothing it reads from the device: every used
 * id is checked against the requests in flight. Written for this project; no code copied.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096u
#define QSIZE 256u
#define MAXDEPTH 64u
#define DMA_BYTES (2u << 20)
#define DMA_IOVA (1ull << 32)

#define F_VERSION_1 32
#define F_ACCESS_PLATFORM 33
#define F_RING_PACKED 34

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8

#define D_NEXT 1
#define D_WRITE 2
#define P_AVAIL (1u << 7)
#define P_USED (1u << 15)

#define barrier() __asm__ __volatile__("" ::: "memory")
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static void die(const char *what) {
  fprintf(stderr, "vfio-blk: %s: %s\n", what, errno ? strerror(errno) : "failed");
  exit(1);
}

static void fail(const char *what) {
  errno = 0;
  die(what);
}

/* Common configuration (virtio 1.2, 4.1.4.3). */
struct common_cfg {
  uint32_t device_feature_select, device_feature, driver_feature_select, driver_feature;
  uint16_t msix_config, num_queues;
  uint8_t device_status, config_generation;
  uint16_t queue_select, queue_size, queue_msix_vector, queue_enable, queue_notify_off;
  uint64_t queue_desc, queue_driver, queue_device;
} __attribute__((packed));

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct pdesc { uint64_t addr; uint32_t len; uint16_t id, flags; };
struct blk_hdr { uint32_t type, reserved; uint64_t sector; };

static int devfd;
static uint64_t cfg_off;
static volatile struct common_cfg *common;
static volatile uint8_t *notify_base;
static uint32_t notify_mult;
static volatile uint8_t *devcfg;

static uint8_t *dma; /* DMA_BYTES, at DMA_IOVA for the device */
static inline uint64_t iova(const void *p) { return DMA_IOVA + (uint64_t)((const uint8_t *)p - dma); }

static void cfg_read(void *buf, size_t len, uint64_t off) {
  if (pread(devfd, buf, len, (off_t)(cfg_off + off)) != (ssize_t)len) die("config space read");
}
static void cfg_write(const void *buf, size_t len, uint64_t off) {
  if (pwrite(devfd, buf, len, (off_t)(cfg_off + off)) != (ssize_t)len) die("config space write");
}

static volatile uint8_t *bar_map(unsigned bar, uint32_t offset, uint32_t length) {
  static volatile uint8_t *maps[6];
  static uint64_t sizes[6];
  if (bar > 5) fail("capability names a BAR above 5");
  if (!maps[bar]) {
    struct vfio_region_info r = { .argsz = sizeof r, .index = bar };
    if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &r)) die("VFIO_DEVICE_GET_REGION_INFO");
    if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) fail("BAR cannot be mmapped");
    void *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, (off_t)r.offset);
    if (p == MAP_FAILED) die("mmap BAR");
    maps[bar] = p;
    sizes[bar] = r.size;
  }
  if ((uint64_t)offset + length > sizes[bar]) fail("capability outside its BAR");
  return maps[bar] + offset;
}

static void open_device(const char *bdf) {
  char path[300], link[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", bdf);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) die(path);
  link[n] = 0;
  const char *grp = strrchr(link, '/');
  snprintf(path, sizeof path, "/dev/vfio/%s", grp ? grp + 1 : link);
  int container = open("/dev/vfio/vfio", O_RDWR);
  if (container < 0) die("/dev/vfio/vfio");
  if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) fail("VFIO API version");
  int group = open(path, O_RDWR);
  if (group < 0) die(path);
  struct vfio_group_status st = { .argsz = sizeof st };
  if (ioctl(group, VFIO_GROUP_GET_STATUS, &st)) die("VFIO_GROUP_GET_STATUS");
  if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) fail("group not viable (every device in it must be bound to vfio-pci)");
  if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container)) die("VFIO_GROUP_SET_CONTAINER");
  if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) die("VFIO_SET_IOMMU type1v2 (this peer needs the viommu profile)");
  devfd = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
  if (devfd < 0) die("VFIO_GROUP_GET_DEVICE_FD");

  void *mem = mmap(NULL, DMA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (mem == MAP_FAILED) mem = mmap(NULL, DMA_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap DMA memory");
  memset(mem, 0, DMA_BYTES);
  dma = mem;
  struct vfio_iommu_type1_dma_map map = { .argsz = sizeof map, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
    .vaddr = (uint64_t)(uintptr_t)mem, .iova = DMA_IOVA, .size = DMA_BYTES };
  if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map)) die("VFIO_IOMMU_MAP_DMA");

  struct vfio_region_info r = { .argsz = sizeof r, .index = VFIO_PCI_CONFIG_REGION_INDEX };
  if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &r)) die("config region info");
  cfg_off = r.offset;
  uint16_t cmd;
  cfg_read(&cmd, 2, 4);
  cmd |= 0x6; /* memory space + bus master: vfio-pci leaves bus mastering off */
  cfg_write(&cmd, 2, 4);

  /* Walk the capability list for the virtio vendor capabilities (4.1.4). */
  uint8_t ptr;
  cfg_read(&ptr, 1, 0x34);
  for (int guard = 0; ptr && guard < 48; guard++) {
    uint8_t cap[20];
    cfg_read(cap, sizeof cap, ptr & 0xfc);
    if (cap[0] == 0x09) {
      uint8_t type = cap[3], bar = cap[4];
      uint32_t off, len;
      memcpy(&off, cap + 8, 4);
      memcpy(&len, cap + 12, 4);
      if (type == 1 && !common) common = (volatile struct common_cfg *)bar_map(bar, off, len);
      else if (type == 2 && !notify_base) { notify_base = bar_map(bar, off, len); memcpy(&notify_mult, cap + 16, 4); }
      else if (type == 4 && !devcfg) devcfg = bar_map(bar, off, len);
    }
    ptr = cap[1];
  }
  if (!common || !notify_base || !devcfg) fail("virtio capabilities missing");
}

static uint64_t device_features(void) {
  common->device_feature_select = 0;
  uint64_t lo = common->device_feature;
  common->device_feature_select = 1;
  return lo | (uint64_t)common->device_feature << 32;
}

/* Request slots: header, status and data buffer per slot, fixed places in the DMA region. */
static struct blk_hdr *hdrs;
static volatile uint8_t *status;
static uint8_t *data;
static volatile uint16_t *notify;
static int packed;
static uint16_t qsize;

/* split ring */
static volatile struct desc *sdesc;
static volatile uint16_t *avail_flags, *avail_idx, *avail_ring;
static volatile uint16_t *used_flags, *used_idx;
static volatile uint32_t *used_ring; /* pairs id, len */
static uint16_t s_avail, s_used;

/* packed ring */
static volatile struct pdesc *pring;
static volatile uint16_t *drv_evt_flags, *dev_evt_flags;
static uint16_t p_next, p_used;
static int p_wrap = 1, p_used_wrap = 1;

static int inflight[MAXDEPTH];

/* With MSI-X: the eventfd VFIO signals for vector 0; -1 when polling. */
static int irqfd = -1;

/* linux/vfio.h VFIO_DEVICE_SET_IRQS: MSI-X vector 0 of the device signals `irqfd`. */
static void enable_msix(void) {
  struct vfio_irq_info info = { .argsz = sizeof info, .index = VFIO_PCI_MSIX_IRQ_INDEX };
  if (ioctl(devfd, VFIO_DEVICE_GET_IRQ_INFO, &info)) die("VFIO_DEVICE_GET_IRQ_INFO");
  if (info.count < 1 || !(info.flags & VFIO_IRQ_INFO_EVENTFD)) fail("the device has no MSI-X vector with eventfd signalling");
  irqfd = eventfd(0, EFD_CLOEXEC);
  if (irqfd < 0) die("eventfd");
  struct { struct vfio_irq_set set; int32_t fd; } irq = {
    .set = { .argsz = sizeof irq, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
             .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 },
    .fd = irqfd,
  };
  if (ioctl(devfd, VFIO_DEVICE_SET_IRQS, &irq)) die("VFIO_DEVICE_SET_IRQS (MSI-X vector 0)");
}

/* How long one interrupt wait may take before the device counts as silent (ms). */
#define IRQ_WAIT_MS 2000

/* Sleeps until the device signals vector 0 (a completion may already have signalled it); a device
   silent for IRQ_WAIT_MS ends the run with an error instead of a wait without end. */
static uint64_t wakeups;
static void wait_interrupt(void) {
  struct pollfd p = { .fd = irqfd, .events = POLLIN };
  int r;
  while ((r = poll(&p, 1, IRQ_WAIT_MS)) < 0) if (errno != EINTR) die("poll(eventfd)");
  if (r == 0) fail("no interrupt within 2000 ms (IRQ_WAIT_MS): the device is silent");
  uint64_t n;
  if (read(irqfd, &n, sizeof n) != (ssize_t)sizeof n) die("read(eventfd)");
  wakeups++;
}

static void setup(int want_packed) {
  common->device_status = 0;
  while (common->device_status) barrier();
  common->device_status = S_ACK;
  common->device_status = S_ACK | S_DRIVER;
  uint64_t offered = device_features();
  if (!(offered & (1ull << F_VERSION_1))) fail("device does not offer VERSION_1");
  uint64_t want = (1ull << F_VERSION_1) | (offered & (1ull << F_ACCESS_PLATFORM));
  if (want_packed) {
    if (!(offered & (1ull << F_RING_PACKED))) fail("device does not offer RING_PACKED");
    want |= 1ull << F_RING_PACKED;
  }
  common->driver_feature_select = 0;
  common->driver_feature = (uint32_t)want;
  common->driver_feature_select = 1;
  common->driver_feature = (uint32_t)(want >> 32);
  common->device_status = S_ACK | S_DRIVER | S_FEATURES_OK;
  if (!(common->device_status & S_FEATURES_OK)) fail("device refused the features");
  common->msix_config = 0xffff;
  common->queue_select = 0;
  uint16_t max = common->queue_size;
  if (max == 0) fail("queue 0 is not available");
  qsize = max < QSIZE ? max : QSIZE;
  if (!want_packed && (qsize & (qsize - 1))) fail("split queue size not a power of two");
  common->queue_size = qsize;
  packed = want_packed;
  if (irqfd >= 0) {
    /* virtio 1.2 4.1.4.3 / 4.1.5.1.2: the queue's vector is set, then read back (0xffff: refused). */
    common->queue_msix_vector = 0;
    if (common->queue_msix_vector != 0) fail("the device refused MSI-X vector 0 for queue 0");
  } else {
    common->queue_msix_vector = 0xffff; /* no interrupts: we poll */
  }
  uint8_t *ring = dma, *drv = dma + 0x2000, *devarea = dma + 0x4000;
  if (packed) {
    pring = (volatile struct pdesc *)ring;
    drv_evt_flags = (volatile uint16_t *)(drv + 2);
    dev_evt_flags = (volatile uint16_t *)(devarea + 2);
    *drv_evt_flags = irqfd >= 0 ? 0 : 1; /* RING_EVENT_FLAGS_ENABLE with MSI-X, else DISABLE */
  } else {
    sdesc = (volatile struct desc *)ring;
    avail_flags = (volatile uint16_t *)drv;
    avail_idx = avail_flags + 1;
    avail_ring = avail_flags + 2;
    used_flags = (volatile uint16_t *)devarea;
    used_idx = used_flags + 1;
    used_ring = (volatile uint32_t *)(devarea + 4);
    *avail_flags = irqfd >= 0 ? 0 : 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT unless MSI-X */
  }
  common->queue_desc = iova(ring);
  common->queue_driver = iova(drv);
  common->queue_device = iova(devarea);
  notify = (volatile uint16_t *)(notify_base + (uint32_t)common->queue_notify_off * notify_mult);
  common->queue_enable = 1;
  hdrs = (struct blk_hdr *)(dma + 0x8000);
  status = dma + 0x9000;
  data = dma + 0x10000;
  common->device_status = S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK;
}

/* Queues slot `s` (header, data, status) reading `sector`; the caller kicks. */
static void submit(unsigned s, uint64_t sector) {
  hdrs[s] = (struct blk_hdr){ .type = 0, .reserved = 0, .sector = sector };
  status[s] = 0xff;
  uint64_t a[3] = { iova(&hdrs[s]), iova(data + (size_t)s * BLOCK), iova((const void *)&status[s]) };
  uint32_t l[3] = { sizeof(struct blk_hdr), BLOCK, 1 };
  uint16_t f[3] = { D_NEXT, D_NEXT | D_WRITE, D_WRITE };
  inflight[s] = 1;
  if (!packed) {
    /* Slot s owns descriptors 3s..3s+2; its chain is written once per request (cheap, keeps it honest). */
    unsigned h = 3 * s;
    for (int i = 0; i < 3; i++) {
      sdesc[h + i].addr = a[i];
      sdesc[h + i].len = l[i];
      sdesc[h + i].flags = f[i];
      sdesc[h + i].next = (uint16_t)(h + i + 1);
    }
    avail_ring[s_avail & (qsize - 1)] = (uint16_t)h;
    wmb();
    *avail_idx = ++s_avail;
    return;
  }
  uint16_t first = p_next, first_flags = 0;
  for (int i = 0; i < 3; i++) {
    uint16_t fl = f[i] | (p_wrap ? P_AVAIL : P_USED);
    pring[p_next].addr = a[i];
    pring[p_next].len = l[i];
    pring[p_next].id = (uint16_t)s;
    if (i == 0) first_flags = fl;
    else pring[p_next].flags = fl;
    if (++p_next == qsize) { p_next = 0; p_wrap ^= 1; }
  }
  wmb();
  pring[first].flags = first_flags; /* the head last: the device sees the whole chain at once */
}

static uint64_t kicks, kick_chances;
static int always_kick;

static void kick(void) {
  mb();
  kick_chances++;
  if (always_kick || (packed ? (*dev_evt_flags & 3) != 1 : !(*used_flags & 1))) {
    *notify = 0;
    kicks++;
  }
}

/* Completions since the last call, their slots written to `out`; checks every id from the device. */
static unsigned reap(unsigned *out) {
  unsigned n = 0;
  if (!packed) {
    uint16_t idx = *used_idx;
    rmb();
    if ((uint16_t)(idx - s_used) > qsize) fail("used index moved too far");
    while (s_used != idx) {
      uint32_t id = used_ring[2 * (s_used & (qsize - 1))];
      if (id % 3 || id / 3 >= MAXDEPTH || !inflight[id / 3]) fail("device returned a bad used id");
      out[n++] = id / 3;
      s_used++;
    }
  } else {
    for (;;) {
      uint16_t fl = pring[p_used].flags;
      if (!!(fl & P_AVAIL) != p_used_wrap || !!(fl & P_USED) != p_used_wrap) break;
      rmb();
      uint16_t id = pring[p_used].id;
      if (id >= MAXDEPTH || !inflight[id]) fail("device returned a bad used id");
      out[n++] = id;
      p_used = (uint16_t)(p_used + 3);
      if (p_used >= qsize) { p_used -= qsize; p_used_wrap ^= 1; }
    }
  }
  for (unsigned i = 0; i < n; i++) {
    if (status[out[i]] != 0) fail("read failed (status not OK)");
    inflight[out[i]] = 0;
  }
  return n;
}

static uint32_t rng;
static uint64_t next_sector(uint64_t blocks) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return (uint64_t)(rng % blocks) * (BLOCK / 512);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs `depth` requests in flight until `until`; returns completions. */
/* User + system CPU time of this process so far, µs (getrusage(2)). */
static double cpu_us(void) {
  struct rusage u;
  if (getrusage(RUSAGE_SELF, &u)) die("getrusage");
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

static uint64_t run(unsigned depth, uint64_t blocks, double until) {
  unsigned done[MAXDEPTH];
  uint64_t count = 0;
  for (unsigned s = 0; s < depth; s++) submit(s, next_sector(blocks));
  kick();
  unsigned live = depth;
  int stop = 0;
  unsigned spins = 0;
  uint64_t checked = 0;
  while (live) {
    unsigned n = reap(done);
    if (!n) {
      /* With MSI-X, interrupts stay enabled (no suppression): every used buffer signals the
         eventfd, so one that came before this read leaves the counter non-zero and read returns. */
      if (irqfd >= 0) wait_interrupt();
      else if (++spins == 4096) { spins = 0; if (now() >= until) stop = 1; }
      continue;
    }
    count += n;
    live -= n;
    /* The clock every 64 completions, not per reap: in the TCG guest it is an HPET read, a trap to
       QEMU (~5 us); the JavaScript side reads it no more often (a timer ends its loop). */
    if (!stop && count - checked >= 64) {
      checked = count;
      if (now() >= until) stop = 1;
    }
    if (stop) continue;
    for (unsigned i = 0; i < n; i++) {
      submit(done[i], next_sector(blocks));
      if (always_kick) kick();
    }
    live += n;
    if (!always_kick) kick();
  }
  return count;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: vfio-blk BDF split|packed DEPTH SECONDS [SEED] [poll|always-kick|msix]\n");
    return 2;
  }
  int want_packed = strcmp(argv[2], "packed") == 0;
  if (!want_packed && strcmp(argv[2], "split")) fail("layout must be split or packed");
  unsigned depth = (unsigned)atoi(argv[3]);
  double seconds = atof(argv[4]);
  rng = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 0) | 1 : 1;
  const char *mode = argc > 6 ? argv[6] : "poll";
  always_kick = strcmp(mode, "always-kick") == 0;
  int msix = strcmp(mode, "msix") == 0;
  if (!always_kick && !msix && strcmp(mode, "poll")) fail("mode must be poll, always-kick or msix");
  if (depth < 1 || depth > MAXDEPTH || 3 * depth > QSIZE) fail("depth must be 1..64");
  open_device(argv[1]);
  if (msix) enable_msix();
  setup(want_packed);
  if (3 * depth > qsize) fail("queue too small for that depth");
  uint64_t capacity;
  memcpy(&capacity, (const void *)devcfg, 8); /* capacity in 512-byte sectors (5.2.4) */
  uint64_t blocks = capacity / (BLOCK / 512);
  if (!blocks) fail("disk smaller than one block");
  run(depth, blocks, now() + 0.2); /* warm-up */
  kicks = kick_chances = wakeups = 0;
  double cpu0 = cpu_us();
  double t0 = now();
  uint64_t count = run(depth, blocks, t0 + seconds);
  double elapsed = now() - t0;
  double cpu = cpu_us() - cpu0;
  common->device_status = 0;
  while (common->device_status) barrier();
  printf("{\"iops\":%.1f,\"done\":%llu,\"seconds\":%.3f,\"layout\":\"%s\",\"depth\":%u,\"mode\":\"%s\",\"kicks\":%llu,\"kickChances\":%llu,\"wakeups\":%llu,\"cpuUs\":%.0f}\n",
    (double)count / elapsed, (unsigned long long)count, elapsed, argv[2], depth, mode, (unsigned long long)kicks,
    (unsigned long long)kick_chances, (unsigned long long)wakeups, cpu);
  return 0;
}
