/*
 * vivid-capture: a V4L2 camera (the vivid test driver) writing frames into dma-bufs it
 * did not allocate (V4L2_MEMORY_DMABUF). Written for dma-heap's tests.
 *
 *   vivid-capture probe <width> <height>
 *       finds vivid's first video capture node, sets YUYV width x height and prints
 *       "device <path>" and "format <width> <height> <bytesperline> <sizeimage>"
 *   vivid-capture capture <width> <height> <nbufs> <frames>
 *       the same, then imports the dma-buf fds 3 .. 3+nbufs-1, streams until <frames>
 *       frames were dequeued and prints "frame <index> <bytesused> <sequence>" for each;
 *       every buffer is dequeued (filled) at least once when frames >= nbufs.
 * VIVID_DEVICE=/dev/videoN picks the node instead (e.g. the vmalloc instance when instance 0
 * uses dma-contig, which refuses memory that is not contiguous).
 * Errors: "error <ioctl> <errno>" on stderr, exit status 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int xioctl(int fd, unsigned long cmd, void *arg, const char *what) {
  int r;
  do r = ioctl(fd, cmd, arg); while (r < 0 && errno == EINTR);
  if (r < 0) {
    fprintf(stderr, "error %s %d\n", what, errno);
    exit(1);
  }
  return r;
}

static int open_vivid(char *path, size_t len) {
  const char *want = getenv("VIVID_DEVICE");
  for (int i = 0; i < 64; i++) {
    if (want && *want) {
      if (i > 0) break;
      snprintf(path, len, "%s", want);
    } else {
      snprintf(path, len, "/dev/video%d", i);
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    struct v4l2_capability cap;
    memset(&cap, 0, sizeof cap);
    if (ioctl(fd, VIDIOC_QUERYCAP, &cap) == 0 && strcmp((char *)cap.driver, "vivid") == 0) {
      unsigned caps = cap.capabilities & V4L2_CAP_DEVICE_CAPS ? cap.device_caps : cap.capabilities;
      if ((caps & V4L2_CAP_VIDEO_CAPTURE) && (caps & V4L2_CAP_STREAMING)) return fd;
    }
    close(fd);
  }
  fprintf(stderr, "error no-vivid-capture-node %d\n", ENODEV);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: vivid-capture probe|capture <width> <height> [<nbufs> <frames>]\n");
    return 2;
  }
  int capture = strcmp(argv[1], "capture") == 0;
  char path[32];
  int fd = open_vivid(path, sizeof path);
  printf("device %s\n", path);

  struct v4l2_format fmt;
  memset(&fmt, 0, sizeof fmt);
  fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  fmt.fmt.pix.width = (unsigned)atoi(argv[2]);
  fmt.fmt.pix.height = (unsigned)atoi(argv[3]);
  fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
  fmt.fmt.pix.field = V4L2_FIELD_NONE;
  xioctl(fd, VIDIOC_S_FMT, &fmt, "VIDIOC_S_FMT");
  printf("format %u %u %u %u\n", fmt.fmt.pix.width, fmt.fmt.pix.height, fmt.fmt.pix.bytesperline,
         fmt.fmt.pix.sizeimage);
  fflush(stdout);
  if (!capture) return 0;
  if (argc < 6) return 2;

  unsigned nbufs = (unsigned)atoi(argv[4]);
  int frames = atoi(argv[5]);
  struct v4l2_requestbuffers req;
  memset(&req, 0, sizeof req);
  req.count = nbufs;
  req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  req.memory = V4L2_MEMORY_DMABUF;
  xioctl(fd, VIDIOC_REQBUFS, &req, "VIDIOC_REQBUFS");
  if (req.count < nbufs) {
    fprintf(stderr, "error REQBUFS-count %u\n", req.count);
    return 1;
  }
  for (unsigned i = 0; i < nbufs; i++) {
    struct v4l2_buffer b;
    memset(&b, 0, sizeof b);
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_DMABUF;
    b.index = i;
    b.m.fd = 3 + (int)i;
    b.length = (unsigned)lseek(3 + (int)i, 0, SEEK_END);
    xioctl(fd, VIDIOC_QBUF, &b, "VIDIOC_QBUF");
  }
  int type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  xioctl(fd, VIDIOC_STREAMON, &type, "VIDIOC_STREAMON");
  for (int n = 0; n < frames; n++) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 20000) != 1) {
      fprintf(stderr, "error poll-timeout %d\n", ETIMEDOUT);
      return 1;
    }
    struct v4l2_buffer b;
    memset(&b, 0, sizeof b);
    b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    b.memory = V4L2_MEMORY_DMABUF;
    xioctl(fd, VIDIOC_DQBUF, &b, "VIDIOC_DQBUF");
    printf("frame %u %u %u\n", b.index, b.bytesused, b.sequence);
    fflush(stdout);
    /* the last nbufs frames stay dequeued, so the buffers hold the newest ones */
    if (n < frames - (int)nbufs) xioctl(fd, VIDIOC_QBUF, &b, "VIDIOC_QBUF");
  }
  xioctl(fd, VIDIOC_STREAMOFF, &type, "VIDIOC_STREAMOFF");
  memset(&req, 0, sizeof req);
  req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  req.memory = V4L2_MEMORY_DMABUF;
  xioctl(fd, VIDIOC_REQBUFS, &req, "VIDIOC_REQBUFS(0)");
  return 0;
}
