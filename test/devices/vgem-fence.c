/*
 * vgem-fence: plays a GPU for the fence tests, through the vgem DRM driver.
 * Written for dma-heap from the facts in shared/kernel-abi.md; no kernel header needed.
 *
 * fd 3 is a Unix socket (SOCK_SEQPACKET). Each message in is one text command, with at
 * most one fd attached; each reply is one message "ok ..." or "err <errno> <what>",
 * with at most one fd attached:
 *   import            + a dma-buf fd  -> ok <handle>   (DRM_IOCTL_PRIME_FD_TO_HANDLE)
 *   attach <h> r|w                    -> ok <fence>    (DRM_IOCTL_VGEM_FENCE_ATTACH)
 *   signal <fence>                    -> ok            (DRM_IOCTL_VGEM_FENCE_SIGNAL)
 *   dumb <bytes>                      -> ok <handle> + a dma-buf fd exported by drm
 *   close <h>                         -> ok            (DRM_IOCTL_GEM_CLOSE)
 * vgem signals every fence by itself 10 s after attaching it, and all of them when this
 * process exits (its DRM file closes). Exit: when the socket closes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct prime_handle { uint32_t handle, flags; int32_t fd; };
struct create_dumb { uint32_t height, width, bpp, flags, handle, pitch; uint64_t size; };
struct gem_close { uint32_t handle, pad; };
struct vgem_attach { uint32_t handle, flags, out_fence, pad; };
struct vgem_signal { uint32_t fence, flags; };
struct drm_version_s {
  int major, minor, patch;
  size_t name_len; char *name;
  size_t date_len; char *date;
  size_t desc_len; char *desc;
};

#define DRM_RW(nr, type) _IOWR('d', nr, type)
#define IOCTL_VERSION DRM_RW(0x00, struct drm_version_s)
#define IOCTL_GEM_CLOSE _IOW('d', 0x09, struct gem_close)
#define IOCTL_HANDLE_TO_FD DRM_RW(0x2d, struct prime_handle)
#define IOCTL_FD_TO_HANDLE DRM_RW(0x2e, struct prime_handle)
#define IOCTL_CREATE_DUMB DRM_RW(0xb2, struct create_dumb)
#define IOCTL_VGEM_ATTACH DRM_RW(0x41, struct vgem_attach)
#define IOCTL_VGEM_SIGNAL _IOW('d', 0x42, struct vgem_signal)
#define VGEM_WRITE 1

static int sock = 3;

static void reply(const char *text, int fd) {
  struct iovec iov = { (void *)text, strlen(text) };
  char ctl[CMSG_SPACE(sizeof(int))];
  struct msghdr m = { 0 };
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (fd >= 0) {
    memset(ctl, 0, sizeof ctl);
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (getenv("VGEM_FENCE_TRACE")) fprintf(stderr, "vgem-fence: -> %s%s\n", text, fd >= 0 ? " +fd" : "");
  if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0) exit(1);
}

static void fail(const char *what) {
  char buf[128];
  snprintf(buf, sizeof buf, "err %d %s", errno, what);
  reply(buf, -1);
}

static int xioctl(int fd, unsigned long cmd, void *arg) {
  int r;
  do r = ioctl(fd, cmd, arg); while (r < 0 && (errno == EINTR || errno == EAGAIN));
  return r;
}

static int open_vgem(void) {
  for (int i = 0; i < 16; i++) {
    char path[32], name[16] = { 0 };
    snprintf(path, sizeof path, "/dev/dri/card%d", i);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    struct drm_version_s v = { 0 };
    v.name_len = sizeof name - 1;
    v.name = name;
    if (xioctl(fd, IOCTL_VERSION, &v) == 0 && strcmp(name, "vgem") == 0) return fd;
    close(fd);
  }
  return -1;
}

int main(void) {
  int flags = fcntl(sock, F_GETFL);
  if (flags < 0 || fcntl(sock, F_SETFL, flags & ~O_NONBLOCK) < 0) return 2;
  int drm = open_vgem();
  if (drm < 0) {
    fail("no vgem device under /dev/dri");
    return 3;
  }
  reply("ready", -1);
  for (;;) {
    char text[256] = { 0 }, ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { text, sizeof text - 1 };
    struct msghdr m = { 0 };
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (n <= 0) return 0;
    if (getenv("VGEM_FENCE_TRACE")) fprintf(stderr, "vgem-fence: <- %s\n", text);
    int infd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&infd, CMSG_DATA(c), sizeof infd);

    char out[128];
    unsigned long a = 0;
    char rw = 0;
    if (strncmp(text, "import", 6) == 0) {
      struct prime_handle p = { 0, 0, infd };
      if (infd < 0) { errno = EBADF; fail("import needs an fd"); continue; }
      int r = xioctl(drm, IOCTL_FD_TO_HANDLE, &p);
      close(infd);
      if (r < 0) { fail("PRIME_FD_TO_HANDLE"); continue; }
      snprintf(out, sizeof out, "ok %u", p.handle);
      reply(out, -1);
    } else if (sscanf(text, "attach %lu %c", &a, &rw) == 2) {
      struct vgem_attach at = { (uint32_t)a, rw == 'w' ? VGEM_WRITE : 0, 0, 0 };
      if (xioctl(drm, IOCTL_VGEM_ATTACH, &at) < 0) { fail("VGEM_FENCE_ATTACH"); continue; }
      snprintf(out, sizeof out, "ok %u", at.out_fence);
      reply(out, -1);
    } else if (sscanf(text, "signal %lu", &a) == 1) {
      struct vgem_signal s = { (uint32_t)a, 0 };
      if (xioctl(drm, IOCTL_VGEM_SIGNAL, &s) < 0) { fail("VGEM_FENCE_SIGNAL"); continue; }
      reply("ok", -1);
    } else if (sscanf(text, "dumb %lu", &a) == 1) {
      /* width x 1 rows of 32 bpp: a buffer of (about) a bytes */
      struct create_dumb d = { 1, (uint32_t)((a + 3) / 4), 32, 0, 0, 0, 0 };
      if (xioctl(drm, IOCTL_CREATE_DUMB, &d) < 0) { fail("MODE_CREATE_DUMB"); continue; }
      struct prime_handle p = { d.handle, O_CLOEXEC | O_RDWR, -1 };
      if (xioctl(drm, IOCTL_HANDLE_TO_FD, &p) < 0) { fail("PRIME_HANDLE_TO_FD"); continue; }
      snprintf(out, sizeof out, "ok %u", d.handle);
      reply(out, p.fd);
      close(p.fd);
    } else if (sscanf(text, "close %lu", &a) == 1) {
      struct gem_close g = { (uint32_t)a, 0 };
      if (xioctl(drm, IOCTL_GEM_CLOSE, &g) < 0) { fail("GEM_CLOSE"); continue; }
      reply("ok", -1);
    } else {
      if (infd >= 0) close(infd);
      errno = EINVAL;
      fail("unknown command");
    }
  }
}
