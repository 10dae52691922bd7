/* Queue dma-bufs on a V4L2 capture device: does the device accept them?
 *
 *   v4l2-qbuf /dev/videoN COUNT     (the dma-buf fds are 3 .. 3+COUNT-1)
 *
 * Sets the device's current format, requests COUNT buffers with V4L2_MEMORY_DMABUF, queues fd
 * 3+i as buffer i, and prints one line per buffer: "i ok" or "i <errno name> <errno>", then
 * "sizeimage N". A videobuf2 dma-contig device refuses (EFAULT) a dma-buf whose pages are not
 * physically contiguous: the test of test/kernel/contiguity.test.ts. Exit 0 unless setup fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/videodev2.h>

static const char *ename(int e) {
  switch (e) {
  case EFAULT: return "EFAULT";
  case EINVAL: return "EINVAL";
  case ENOMEM: return "ENOMEM";
  case EBUSY: return "EBUSY";
  default: return "E?";
  }
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s /dev/videoN COUNT\n", argv[0]); return 2; }
  int count = atoi(argv[2]);
  int dev = open(argv[1], O_RDWR | O_CLOEXEC);
  if (dev < 0) { perror(argv[1]); return 2; }
  struct v4l2_format fmt;
  memset(&fmt, 0, sizeof fmt);
  fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  if (ioctl(dev, VIDIOC_G_FMT, &fmt) < 0) { perror("VIDIOC_G_FMT"); return 2; }
  printf("sizeimage %u\n", fmt.fmt.pix.sizeimage);
  struct v4l2_requestbuffers req;
  memset(&req, 0, sizeof req);
  req.count = count;
  req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  req.memory = V4L2_MEMORY_DMABUF;
  if (ioctl(dev, VIDIOC_REQBUFS, &req) < 0) { perror("VIDIOC_REQBUFS"); return 2; }
  if ((int)req.count < count) { fprintf(stderr, "REQBUFS gave %u buffers\n", req.count); return 2; }
  for (int i = 0; i < count; i++) {
    struct v4l2_buffer buf;
    memset(&buf, 0, sizeof buf);
    buf.index = i;
    buf.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
    buf.memory = V4L2_MEMORY_DMABUF;
    buf.m.fd = 3 + i;
    buf.length = (unsigned)lseek(3 + i, 0, SEEK_END);
    if (ioctl(dev, VIDIOC_QBUF, &buf) < 0) printf("%d %s %d\n", i, ename(errno), errno);
    else printf("%d ok\n", i);
  }
  memset(&req, 0, sizeof req);
  req.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
  req.memory = V4L2_MEMORY_DMABUF;
  ioctl(dev, VIDIOC_REQBUFS, &req); /* count 0: release the buffers */
  close(dev);
  return 0;
}
