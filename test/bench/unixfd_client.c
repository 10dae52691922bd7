/*
 * Bench-only (test/bench/pipelines.js builds it into a temp dir; never shipped): the C twin of
 * UnixFdSource for `npm run bench:pipelines`, speaking GStreamer's unixfd protocol
 * (lib/share/unixfd/protocol.ts) with C11 and libc only.
 *
 *   unixfd_client client SOCKET WARMUP
 *       connect to a unixfdsink's socket; per NEW_BUFFER: the 8-byte header with its fds
 *       (SCM_RIGHTS), the payload, then for each memory mmap, read one byte per page inside
 *       [offset, offset+size), munmap, close the fd; then RELEASE_BUFFER. Until EOS, or until a
 *       release finds the sink gone (gst-launch exits at EOS without waiting for releases;
 *       UnixFdSource's connection ends there too, so both stop at the same point).
 *   unixfd_client ring FRAMES SIZE WARMUP
 *       socketpair + fork: the child is a producer with a pool of 4 sealed memfds of SIZE bytes,
 *       lending each (NEW_BUFFER, its fd on it) and taking it back on RELEASE_BUFFER, EOS after
 *       FRAMES; the parent is the client above. Both print their own CPU.
 *   unixfd_client rusage CMD ARGS...
 *       run CMD, wait4 it, print its user+sys CPU (with its waited-for children) and wall time.
 *
 * Each side prints one JSON line. CPU is CLOCK_PROCESS_CPUTIME_ID over the frames after the
 * first WARMUP ones: from the moment frame WARMUP is done to EOS (the consumer), from the
 * sending of frame WARMUP to the last release (the producer).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NEW_BUFFER = 0, RELEASE_BUFFER = 1, CAPS = 2, EOS = 3 };
#define NEW_BUFFER_FIXED 56
#define MEMORY_PAYLOAD 16
#define MAX_FDS 255
#define POOL 4

static void die(const char *what) {
  fprintf(stderr, "unixfd_client: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3; /* µs */
}

static uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; } /* little-endian hosts */
static uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* read exactly n bytes; the fds that come with them (the first read's) into fds; 0 at EOF */
static int read_full(int sock, unsigned char *buf, size_t n, int *fds, int *nfds) {
  size_t got = 0;
  union { char b[CMSG_SPACE(MAX_FDS * sizeof(int))]; struct cmsghdr align; } ctl;
  while (got < n) {
    struct iovec iov = { buf + got, n - got };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = fds ? ctl.b : NULL, .msg_controllen = fds ? sizeof ctl.b : 0 };
    ssize_t r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("recvmsg");
    }
    if (r == 0) return 0;
    if (fds) {
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
          *nfds += k;
        }
      }
    }
    got += r;
  }
  return 1;
}

/* 0 when the peer is gone (EPIPE, ECONNRESET) */
static int send_all(int sock, const void *buf, size_t n, int fd) {
  union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
  struct iovec iov = { (void *)buf, n };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (fd >= 0) {
    m.msg_control = ctl.b;
    m.msg_controllen = sizeof ctl.b;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t r;
  do r = sendmsg(sock, &m, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EPIPE || errno == ECONNRESET)) return 0;
  if (r != (ssize_t)n) die("sendmsg"); /* a blocking stream socket sends all of a small command */
  return 1;
}

/*
 * Releases not yet sent: unixfdsink reads releases only between its sends, so a client that
 * blocks sending a release while the sink blocks sending it a buffer deadlocks them both (the
 * socket's send buffer holds a few hundred 16-byte commands). As UnixFdSource does, a release
 * the socket cannot take now waits in a queue, and the client reads on.
 */
static unsigned char *pend;
static size_t pendLen, pendCap;

/* send what waits, without blocking; 0 when the peer is gone */
static int flush_pending(int sock) {
  while (pendLen) {
    ssize_t r = send(sock, pend, pendLen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
      if (errno == EPIPE || errno == ECONNRESET) return 0;
      die("send");
    }
    memmove(pend, pend + r, pendLen - r);
    pendLen -= r;
  }
  return 1;
}

static int queue_release(int sock, const unsigned char rel[16]) {
  if (pendLen + 16 > pendCap) {
    pend = realloc(pend, pendCap = pendCap ? pendCap * 2 : 4096);
    if (!pend) die("realloc");
  }
  memcpy(pend + pendLen, rel, 16);
  pendLen += 16;
  return flush_pending(sock);
}

/* wait until the socket is readable, sending queued releases as it takes them; 0: peer gone */
static int wait_readable(int sock) {
  while (pendLen) {
    struct pollfd p = { sock, POLLIN | POLLOUT, 0 };
    if (poll(&p, 1, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p.revents & POLLOUT && !flush_pending(sock)) return 0;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) return 1;
  }
  return 1;
}

/* the client: what UnixFdSource + a consumer's loop do, per frame */
static void client(int sock, long warmup, const char *who) {
  long pg = sysconf(_SC_PAGESIZE), frames = 0, pages = 0;
  unsigned char head[8], *payload = NULL;
  size_t cap = 0;
  int fds[MAX_FDS];
  double cpu0 = 0, wall0 = 0, wallFirst = 0;
  unsigned sum = 0;
  int gone = 0;
  for (;;) {
    int nfds = 0;
    if (!wait_readable(sock)) {
      gone = 1;
      break;
    }
    if (!read_full(sock, head, 8, fds, &nfds)) break;
    uint32_t type = rd32(head), len = rd32(head + 4);
    if (len > cap) {
      payload = realloc(payload, cap = len);
      if (!payload) die("realloc");
    }
    if (len && !read_full(sock, payload, len, NULL, NULL)) break;
    if (type == EOS) break;
    if (type != NEW_BUFFER || len < NEW_BUFFER_FIXED) {
      for (int i = 0; i < nfds; i++) close(fds[i]);
      continue;
    }
    unsigned n_memory = payload[53];
    if (nfds != (int)n_memory || len < NEW_BUFFER_FIXED + n_memory * MEMORY_PAYLOAD) {
      fprintf(stderr, "unixfd_client: %u memories, %d fds\n", n_memory, nfds);
      exit(1);
    }
    for (unsigned i = 0; i < n_memory; i++) {
      uint64_t size = rd64(payload + NEW_BUFFER_FIXED + i * MEMORY_PAYLOAD);
      uint64_t offset = rd64(payload + NEW_BUFFER_FIXED + i * MEMORY_PAYLOAD + 8);
      size_t maplen = offset + size;
      volatile unsigned char *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
      if (p == MAP_FAILED) die("mmap");
      for (uint64_t at = (offset + pg - 1) / pg * pg; at < offset + size; at += pg, pages++) sum += p[at];
      munmap((void *)p, maplen);
      close(fds[i]);
    }
    unsigned char rel[16];
    uint32_t t = RELEASE_BUFFER, l = 8;
    memcpy(rel, &t, 4);
    memcpy(rel + 4, &l, 4);
    memcpy(rel + 8, payload, 8); /* the id */
    /* the sink gone (gst-launch exits at EOS without waiting for releases): stop here, as
       UnixFdSource does (its connection ends with the failed send) */
    if (!queue_release(sock, rel)) {
      gone = 1;
      break;
    }
    if (++frames == 1) wallFirst = now(CLOCK_MONOTONIC);
    if (frames == warmup) {
      cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
      wall0 = now(CLOCK_MONOTONIC);
    }
  }
  double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0, wall = now(CLOCK_MONOTONIC) - wall0;
  if (warmup == 0) wall = now(CLOCK_MONOTONIC) - wallFirst;
  printf("{\"side\":\"%s\",\"frames\":%ld,\"counted\":%ld,\"cpuUs\":%.1f,\"wallUs\":%.1f,\"pagesTouched\":%ld,\"sum\":%u,\"end\":\"%s\"}\n",
         who, frames, frames - warmup, cpu, wall, pages, sum, gone ? "peer gone" : "EOS");
  fflush(stdout);
  free(payload);
}

/* the producer of the ring: POOL sealed memfds, each lent in turn, taken back on release */
static void producer(int sock, long total, size_t size, long warmup) {
  int fd[POOL];
  uint64_t lentId[POOL];
  int freeSlot[POOL], nfree = POOL;
  for (int i = 0; i < POOL; i++) {
    fd[i] = memfd_create("dma-heap:system", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd[i] < 0) die("memfd_create");
    if (ftruncate(fd[i], size) < 0) die("ftruncate");
    if (fcntl(fd[i], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) die("F_ADD_SEALS");
    freeSlot[i] = POOL - 1 - i;
    lentId[i] = 0;
  }
  static const char caps[] = "video/x-raw,format=RGBA";
  unsigned char msg[8 + sizeof caps];
  uint32_t t = CAPS, l = sizeof caps;
  memcpy(msg, &t, 4);
  memcpy(msg + 4, &l, 4);
  memcpy(msg + 8, caps, sizeof caps);
  if (!send_all(sock, msg, sizeof msg, -1)) die("the consumer went away");
  double cpu0 = 0;
  uint64_t nextId = 1;
  long back = 0;
  unsigned char nb[8 + NEW_BUFFER_FIXED + MEMORY_PAYLOAD];
  for (long n = 0; n < total || nfree < POOL;) {
    if (n < total && nfree > 0) {
      int s = freeSlot[--nfree];
      if (n == warmup) cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
      memset(nb, 0, sizeof nb);
      t = NEW_BUFFER;
      l = NEW_BUFFER_FIXED + MEMORY_PAYLOAD;
      memcpy(nb, &t, 4);
      memcpy(nb + 4, &l, 4);
      unsigned char *p = nb + 8;
      uint64_t id = nextId++, none = UINT64_MAX, sz = size;
      memcpy(p, &id, 8);
      for (int k = 1; k <= 5; k++) memcpy(p + 8 * k, &none, 8); /* pts dts duration offset offset_end */
      p[52] = 0;                                                 /* shm */
      p[53] = 1;                                                 /* one memory */
      memcpy(p + NEW_BUFFER_FIXED, &sz, 8);                      /* size; offset 0 */
      lentId[s] = id;
      if (!send_all(sock, nb, sizeof nb, fd[s])) die("the consumer went away");
      n++;
      continue;
    }
    unsigned char rel[16];
    if (!read_full(sock, rel, 16, NULL, NULL)) {
      fprintf(stderr, "unixfd_client: the consumer went away\n");
      exit(1);
    }
    uint64_t id = rd64(rel + 8);
    int s = 0;
    while (s < POOL && lentId[s] != id) s++;
    if (rd32(rel) != RELEASE_BUFFER || s == POOL) {
      fprintf(stderr, "unixfd_client: bad release\n");
      exit(1);
    }
    lentId[s] = 0;
    freeSlot[nfree++] = s;
    back++;
  }
  t = EOS;
  l = 0;
  memcpy(msg, &t, 4);
  memcpy(msg + 4, &l, 4);
  if (!send_all(sock, msg, 8, -1)) die("the consumer went away");
  double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
  printf("{\"side\":\"producer\",\"frames\":%ld,\"counted\":%ld,\"cpuUs\":%.1f}\n", back, total - warmup, cpu);
  fflush(stdout);
  for (int i = 0; i < POOL; i++) close(fd[i]);
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "client")) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(argv[2]) >= sizeof a.sun_path) { errno = ENAMETOOLONG; die(argv[2]); }
    strcpy(a.sun_path, argv[2]);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) die("connect");
    client(s, atol(argv[3]), "consumer");
    return 0;
  }
  if (argc >= 5 && !strcmp(argv[1], "ring")) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) die("socketpair");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      close(sv[0]);
      producer(sv[1], atol(argv[2]), (size_t)atol(argv[3]), atol(argv[4]));
      _exit(0);
    }
    close(sv[1]);
    client(sv[0], atol(argv[4]), "consumer");
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "unixfd_client: the producer failed\n"); return 1; }
    return 0;
  }
  if (argc >= 3 && !strcmp(argv[1], "rusage")) {
    double w0 = now(CLOCK_MONOTONIC);
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      execvp(argv[2], argv + 2);
      die(argv[2]);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) die("wait4");
    double wall = now(CLOCK_MONOTONIC) - w0;
    printf("RUSAGE {\"userUs\":%ld,\"sysUs\":%ld,\"wallUs\":%.1f,\"status\":%d}\n",
           (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec), (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec),
           wall, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return 0;
  }
  fprintf(stderr, "usage: unixfd_client client SOCKET WARMUP | ring FRAMES SIZE WARMUP | rusage CMD ARGS...\n");
  return 2;
}
