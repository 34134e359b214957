/*
 * vduse-blk NAME: the vdpa profile's parent WITHOUT suspend (opt-in, kernel argument uvirtio.vduse=1;
 * docs/test-vm.md#the-vdpa-profile). VDUSE (drivers/vdpa/vdpa_user, stock vduse.ko in Debian's 6.12)
 * has no suspend/resume config ops, so vhost-vdpa offers neither VHOST_BACKEND_F_SUSPEND nor _RESUME
 * on it: the device a state facility must refuse.
 *
 * It creates a VDUSE virtio-blk device (include/uapi/linux/vduse.h: VDUSE_SET_API_VERSION,
 * VDUSE_CREATE_DEV, VDUSE_VQ_SETUP), then a child process answers the control requests read from
 * /dev/vduse/NAME (SET_STATUS, GET_VQ_STATE, UPDATE_IOTLB) with VDUSE_REQ_RESULT_OK, so status changes
 * through vhost-vdpa complete instead of waiting out VDUSE's message timeout. It serves no I/O: the
 * queue is never processed. The parent exits 0 once the device exists (then `vdpa dev add mgmtdev
 * vduse name NAME` attaches it to the vDPA bus); any failure exits 1 with the call named on stderr.
 * Built on the host with gcc -static (scripts/vm/vdpa.mjs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vduse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

/* The device's shape: one queue of up to 256 entries, 8 MiB of (never served) capacity. */
#define QUEUE_MAX 256
#define CAPACITY_SECTORS (8u * 1024 * 1024 / 512)

static int fail(const char *what) {
  fprintf(stderr, "vduse-blk: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2 || !argv[1][0] || strlen(argv[1]) >= VDUSE_NAME_MAX) {
    fprintf(stderr, "usage: vduse-blk NAME\n");
    return 2;
  }
  const char *name = argv[1];
  int control = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);
  if (control < 0) return fail("open /dev/vduse/control (is vduse.ko loaded?)");
  uint64_t api = VDUSE_API_VERSION;
  if (ioctl(control, VDUSE_SET_API_VERSION, &api) < 0) return fail("VDUSE_SET_API_VERSION");

  /* struct vduse_dev_config is followed by config_size bytes of virtio-blk config space. */
  size_t size = sizeof(struct vduse_dev_config) + sizeof(struct virtio_blk_config);
  struct vduse_dev_config *config = calloc(1, size);
  if (!config) return fail("calloc");
  strcpy(config->name, name);
  config->vendor_id = 0;
  config->device_id = VIRTIO_ID_BLOCK;
  /* VDUSE requires ACCESS_PLATFORM (vduse_dev.c features_is_valid); VERSION_1 for a modern device. */
  config->features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_ACCESS_PLATFORM);
  config->vq_num = 1;
  config->vq_align = 4096;
  config->config_size = sizeof(struct virtio_blk_config);
  struct virtio_blk_config blk;
  memset(&blk, 0, sizeof(blk));
  blk.capacity = CAPACITY_SECTORS;
  memcpy(config->config, &blk, sizeof(blk));
  if (ioctl(control, VDUSE_CREATE_DEV, config) < 0) return fail("VDUSE_CREATE_DEV");
  free(config);

  char path[VDUSE_NAME_MAX + 16];
  snprintf(path, sizeof(path), "/dev/vduse/%s", name);
  int dev = -1;
  /* The node appears through devtmpfs; wait for it at most 100 x 10 ms = 1 s. */
  for (int i = 0; i < 100 && dev < 0; i++) {
    dev = open(path, O_RDWR | O_CLOEXEC);
    if (dev < 0) usleep(10000);
  }
  if (dev < 0) return fail(path);
  struct vduse_vq_config vq;
  memset(&vq, 0, sizeof(vq));
  vq.index = 0;
  vq.max_size = QUEUE_MAX;
  if (ioctl(dev, VDUSE_VQ_SETUP, &vq) < 0) return fail("VDUSE_VQ_SETUP");

  pid_t child = fork();
  if (child < 0) return fail("fork");
  if (child > 0) return 0; /* the device exists; the child answers its requests */
  close(control);
  setsid();
  for (;;) {
    struct vduse_dev_request req;
    ssize_t n = read(dev, &req, sizeof(req));
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof(req)) return fail("read /dev/vduse request");
    struct vduse_dev_response resp;
    memset(&resp, 0, sizeof(resp));
    resp.request_id = req.request_id;
    resp.result = VDUSE_REQ_RESULT_OK;
    if (req.type == VDUSE_GET_VQ_STATE) resp.vq_state.index = req.vq_state.index; /* indices 0: nothing served */
    if (write(dev, &resp, sizeof(resp)) != (ssize_t)sizeof(resp)) return fail("write /dev/vduse response");
  }
}
