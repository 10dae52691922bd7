/*
 * dmabuf_peer: a peer of dma-heap's DmaBufChannel written in C11 and libc only, as another
 * program would speak the wire format (WIRE-FORMAT.md at the top of the repository).
 * test/peers/c-peer.test.ts builds it (cc -std=c11 -Wall -Wextra -Werror -O2) and runs it
 * against the package on both socket types.
 *
 *   dmabuf_peer recv <socket-path> <seqpacket|stream>
 *     listens at <socket-path>, prints {"ready":true}, accepts one connection, receives one
 *     frame with its fds, maps each fd read-only (a dma-buf bracketed by DMA_BUF_IOCTL_SYNC,
 *     anything else only if sealed F_SEAL_SHRINK) and prints one line: {"fds":N,"buffers":[{"size","fnv1a","seals",
 *     "dmabuf"}...],"json":"<the frame's JSON as a string>"}; then replies with a frame
 *     without fds whose payload is {"seen":[the same buffer reports],"jsonBytes":N}.
 *
 *   dmabuf_peer send <socket-path> <seqpacket|stream> <n> [fault]
 *     connects, makes n memfds of (i+1) pages filled with byte(i, j) = (31 j + 17 i + 5) mod 256,
 *     sealed F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, sends them in one frame with the payload
 *     {"from":"dmabuf_peer","n":n,"page":P,"fnv1a":[...]}, waits for a reply frame and prints it
 *     as the recv line above. A fault makes the frame one the package must refuse:
 *       fdcount       the header counts one fd more than travels
 *       unsealed      the memfds carry no seals (no F_SEAL_SHRINK)
 *       write-sealed  the memfds are also sealed F_SEAL_WRITE
 *
 *   dmabuf_peer consume <socket-path> <seqpacket|stream> <n>
 *     connects, receives n lent frames (flags 0x01, "lend": id), maps each fd as recv does,
 *     closes them and gives each frame back with a release frame (flags 0x02,
 *     {"release":[id]}, no fds): the lender's pool gets its buffers back. Prints one line per
 *     frame, as recv does (the JSON has the id).
 *
 * Exit status 0 on success, 1 on any error (reported on stderr). SIGALRM ends a run that
 * waits longer than 60 s: a test's peer never hangs CI.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- the frame (WIRE-FORMAT.md) ---- */

#define FRAME_MAGIC 0x42414d44u /* 'D' 'M' 'A' 'B' read as a little-endian u32 */
#define FRAME_VERSION 1
#define FRAME_LENT 0x01    /* flags: a lent frame, its JSON has "lend": id */
#define FRAME_RELEASE 0x02 /* flags: a release, {"release":[id...]}, no fds */
#define FRAME_HEADER 12
#define SCM_MAX_FDS 253          /* Linux's SCM_MAX_FD: no more fds in one sendmsg */
#define MAX_JSON (64 * 1024)     /* this peer's maxPayload: the package's default */

/* F_ADD_SEALS and friends: glibc defines them under _GNU_SOURCE (2.27+); older headers may not */
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif

/* DMA_BUF_IOCTL_SYNC, as <linux/dma-buf.h> defines it (kept here: libc headers only) */
struct dmabuf_sync {
  uint64_t flags;
};
#define DMABUF_SYNC_READ (1ULL << 0)
#define DMABUF_SYNC_START (0ULL << 2)
#define DMABUF_SYNC_END (1ULL << 2)
#define DMABUF_IOCTL_SYNC _IOW('b', 0, struct dmabuf_sync)

static void put_u16le(unsigned char *p, uint16_t v) {
  p[0] = (unsigned char)(v & 0xff);
  p[1] = (unsigned char)(v >> 8);
}

static void put_u32le(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
}

static uint16_t get_u16le(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32le(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("dmabuf_peer: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return -1;
}

static void close_all(int *fds, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
}

/* ---- a growable string for JSON ---- */

struct text {
  char *p;
  size_t len, cap;
  int bad; /* out of memory: every later append is dropped, the user checks once */
};

static void text_add(struct text *t, const char *fmt, ...) {
  if (t->bad) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->cap - t->len;
    int n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->bad = 1;
      return;
    }
    if ((size_t)n < room) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap : 256;
    while (cap - t->len <= (size_t)n) cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
      t->bad = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* `bytes` as a JSON string: quotes, backslashes and control characters escaped; other bytes as they are */
static void text_json_string(struct text *t, const char *bytes, size_t len) {
  text_add(t, "\"");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)bytes[i];
    if (c == '"' || c == '\\') text_add(t, "\\%c", c);
    else if (c < 0x20) text_add(t, "\\u%04x", c);
    else text_add(t, "%c", c);
  }
  text_add(t, "\"");
}

/* ---- sockets ---- */

static int unix_address(const char *path, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof sa->sun_path) return fail("socket path too long or empty: %s", path);
  memcpy(sa->sun_path, path, len + 1);
  return 0;
}

static int socket_type(const char *name) {
  if (strcmp(name, "seqpacket") == 0) return SOCK_SEQPACKET;
  if (strcmp(name, "stream") == 0) return SOCK_STREAM;
  return -1;
}

static int connect_to(const char *path, int type) {
  struct sockaddr_un sa;
  if (unix_address(path, &sa) != 0) return -1;
  int s = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (s < 0) return fail("socket: %s", strerror(errno));
  if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
    fail("connect %s: %s", path, strerror(errno));
    close(s);
    return -1;
  }
  return s;
}

/* listen at path, say so on stdout, accept one peer; the listening socket and its file are gone after */
static int accept_one(const char *path, int type) {
  struct sockaddr_un sa;
  if (unix_address(path, &sa) != 0) return -1;
  int l = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
  if (l < 0) return fail("socket: %s", strerror(errno));
  if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 1) != 0) {
    fail("bind/listen %s: %s", path, strerror(errno));
    close(l);
    return -1;
  }
  printf("{\"ready\":true}\n");
  fflush(stdout);
  int s;
  do s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  while (s < 0 && errno == EINTR);
  if (s < 0) fail("accept: %s", strerror(errno));
  close(l);
  unlink(path);
  return s;
}

/* ---- one frame out ---- */

/*
 * header + json in as few sendmsg calls as the kernel allows; the fds ride with the first,
 * which carries the frame's first byte (on a stream the receiver takes fds only there).
 * fd_count is what the header says (a fault may make it differ from nfds).
 */
static int send_frame(int s, uint8_t flags, const char *json, size_t len, const int *fds, size_t nfds, uint16_t fd_count) {
  if (len > MAX_JSON) return fail("the frame's JSON is %zu bytes, more than %d", len, MAX_JSON);
  if (nfds > SCM_MAX_FDS) return fail("%zu fds: more than SCM_MAX_FD", nfds);
  size_t total = FRAME_HEADER + len;
  unsigned char *frame = malloc(total);
  if (!frame) return fail("out of memory");
  put_u32le(frame, FRAME_MAGIC);
  frame[4] = FRAME_VERSION;
  frame[5] = flags;
  put_u16le(frame + 6, fd_count);
  put_u32le(frame + 8, (uint32_t)len);
  memcpy(frame + FRAME_HEADER, json, len);

  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * SCM_MAX_FDS)];
  } control;
  size_t sent = 0;
  int rc = 0;
  while (sent < total) {
    struct iovec iov = {.iov_base = frame + sent, .iov_len = total - sent};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (sent == 0 && nfds > 0) {
      memset(&control, 0, sizeof control);
      msg.msg_control = control.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ssize_t n = sendmsg(s, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      rc = fail("sendmsg: %s", n < 0 ? strerror(errno) : "sent nothing");
      break;
    }
    sent += (size_t)n;
  }
  free(frame);
  return rc;
}

/* ---- one frame in ---- */

struct frame {
  char json[MAX_JSON + 1]; /* NUL-terminated for printing; the length is len */
  uint32_t len;
  uint8_t flags;
  int fds[SCM_MAX_FDS];
  size_t nfds;
};

/*
 * One recvmsg of at most `want` bytes into buf; the fds it brought are appended to f (all of
 * them, so they can be closed). -1 on an error, with the reason printed; 0 on success.
 * *got is the bytes read (0: the peer's end).
 */
static int recv_some(int s, unsigned char *buf, size_t want, struct frame *f, size_t *got, int *truncated) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * SCM_MAX_FDS)];
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = want};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  ssize_t n;
  do n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return fail("recvmsg: %s", strerror(errno));
  int foreign = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) {
      foreign = 1;
      continue;
    }
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (f->nfds < SCM_MAX_FDS) f->fds[f->nfds++] = fd;
      else close(fd);
    }
  }
  *got = (size_t)n;
  if (truncated) *truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  if (msg.msg_flags & MSG_CTRUNC) return fail("the control data was truncated (MSG_CTRUNC): fds were lost");
  if (foreign) return fail("a control message other than SCM_RIGHTS arrived");
  return 0;
}

/* the header's fields, checked as the package checks them (lib/share/frame.ts decodeHeader) */
static int decode_header(const unsigned char *h, uint8_t *flags, uint16_t *fd_count, uint32_t *len) {
  if (get_u32le(h) != FRAME_MAGIC) return fail("not a dma-heap frame (bad magic 0x%08" PRIx32 ")", get_u32le(h));
  if (h[4] != FRAME_VERSION) return fail("unknown frame version %u", h[4]);
  if (h[5] != 0 && h[5] != FRAME_LENT && h[5] != FRAME_RELEASE) return fail("unknown frame flags %u", h[5]);
  *flags = h[5];
  *fd_count = get_u16le(h + 6);
  *len = get_u32le(h + 8);
  if (*len > MAX_JSON) return fail("the frame's JSON is %" PRIu32 " bytes, more than %d", *len, MAX_JSON);
  return 0;
}

/*
 * Receive one whole frame. seqpacket: one recvmsg, one packet, the fds with it. stream: the
 * header (at most 12 bytes asked for at a time), then exactly its JSON length, so no read
 * reaches into the next frame; the frame's fds come with its first byte and nowhere else.
 * On any error every fd received is closed and f->nfds is 0.
 */
static int recv_frame(int s, int type, struct frame *f) {
  f->nfds = 0;
  f->len = 0;
  unsigned char head[FRAME_HEADER];
  uint16_t fd_count = 0;
  uint32_t len = 0;
  uint8_t flags = 0;
  int rc = 0;
  if (type == SOCK_SEQPACKET) {
    static unsigned char packet[FRAME_HEADER + MAX_JSON];
    size_t got = 0;
    int truncated = 0;
    rc = recv_some(s, packet, sizeof packet, f, &got, &truncated);
    if (rc == 0 && got == 0 && f->nfds == 0) rc = fail("the peer closed the connection");
    else if (rc == 0 && truncated) rc = fail("the packet is longer than %d bytes of JSON", MAX_JSON);
    else if (rc == 0 && got < FRAME_HEADER) rc = fail("%zu bytes are not a frame header", got);
    else if (rc == 0 && (rc = decode_header(packet, &flags, &fd_count, &len)) == 0 && got != FRAME_HEADER + (size_t)len)
      rc = fail("the frame says %" PRIu32 " bytes of JSON, the packet has %zu", len, got - FRAME_HEADER);
    if (rc == 0) memcpy(f->json, packet + FRAME_HEADER, len);
  } else {
    size_t have = 0;
    while (rc == 0 && have < FRAME_HEADER) {
      size_t before = f->nfds, got = 0;
      rc = recv_some(s, head + have, FRAME_HEADER - have, f, &got, NULL);
      if (rc == 0 && got == 0) rc = fail("the peer closed the connection%s", have ? " in the middle of a frame" : "");
      if (rc == 0 && have > 0 && f->nfds > before) rc = fail("fds arrived in the middle of a frame");
      have += got;
    }
    if (rc == 0) rc = decode_header(head, &flags, &fd_count, &len);
    size_t body = 0;
    while (rc == 0 && body < len) {
      size_t before = f->nfds, got = 0;
      rc = recv_some(s, (unsigned char *)f->json + body, len - body, f, &got, NULL);
      if (rc == 0 && got == 0) rc = fail("the peer closed the connection in the middle of a frame");
      if (rc == 0 && f->nfds > before) rc = fail("fds arrived in the middle of a frame");
      body += got;
    }
  }
  if (rc == 0 && f->nfds != fd_count) rc = fail("the frame says %u fds, %zu came with it", fd_count, f->nfds);
  if (rc != 0) {
    close_all(f->fds, f->nfds);
    f->nfds = 0;
    return -1;
  }
  f->len = len;
  f->flags = flags;
  f->json[len] = '\0';
  return 0;
}

/*
 * A lent frame's id: the number after the first "lend": of its JSON. The package writes
 * "lend" at the top level before "payload", and a quote inside a JSON string is escaped, so
 * the first unescaped "lend": is the member; a peer with a JSON parser would use it instead.
 */
static int lend_id(const struct frame *f, uint32_t *id) {
  const char *at = strstr(f->json, "\"lend\":");
  if (!at) return fail("a lent frame without \"lend\"");
  char *end;
  errno = 0;
  unsigned long long v = strtoull(at + 7, &end, 10);
  if (errno || end == at + 7 || v < 1 || v > 0xffffffffULL) return fail("a lent frame's \"lend\" is not an id in [1, 2^32-1]");
  *id = (uint32_t)v;
  return 0;
}

/* ---- the buffers ---- */

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ULL

static unsigned char pattern(size_t i, size_t j) { return (unsigned char)((31 * j + 17 * i + 5) & 0xff); }

struct seen {
  uint64_t size;
  uint64_t fnv;
  int seals;  /* F_GET_SEALS, -1 where the fd has none (a dma-buf) */
  int dmabuf; /* DMA_BUF_IOCTL_SYNC answered */
};

static int dmabuf_sync(int fd, uint64_t flags) {
  struct dmabuf_sync sync = {.flags = flags};
  int r;
  do r = ioctl(fd, DMABUF_IOCTL_SYNC, &sync);
  while (r < 0 && (errno == EINTR || errno == EAGAIN));
  return r;
}

/*
 * Map fd read-only and checksum it. A dma-buf (it answers DMA_BUF_IOCTL_SYNC) is read inside a
 * SYNC start/end bracket; anything else must be sealed F_SEAL_SHRINK, as the package requires
 * of a memfd, or its sender could truncate it under the mapping (SIGBUS). The seals are read
 * before the size: once F_SEAL_SHRINK is seen the size can no longer drop below what lseek says.
 */
static int inspect(int fd, struct seen *out) {
  out->seals = fcntl(fd, F_GET_SEALS);
  if (out->seals < 0) out->seals = -1;
  out->dmabuf = dmabuf_sync(fd, DMABUF_SYNC_START | DMABUF_SYNC_READ) == 0;
  if (!out->dmabuf && errno != ENOTTY) return fail("fd %d: DMA_BUF_IOCTL_SYNC: %s", fd, strerror(errno));
  if (!out->dmabuf && (out->seals < 0 || !(out->seals & F_SEAL_SHRINK)))
    return fail("fd %d: neither a dma-buf nor sealed against shrinking (F_SEAL_SHRINK)", fd);
  int rc = 0;
  off_t size = lseek(fd, 0, SEEK_END); /* a dma-buf's size, as the kernel documents; a memfd's too */
  void *map = MAP_FAILED;
  if (size <= 0) rc = fail("fd %d: no size (lseek: %s)", fd, size < 0 ? strerror(errno) : "0 bytes");
  else if ((map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED)
    rc = fail("fd %d: mmap %lld bytes: %s", fd, (long long)size, strerror(errno));
  else {
    out->size = (uint64_t)size;
    out->fnv = fnv1a(map, (size_t)size, FNV_OFFSET);
    munmap(map, (size_t)size);
  }
  if (out->dmabuf && dmabuf_sync(fd, DMABUF_SYNC_END | DMABUF_SYNC_READ) != 0 && rc == 0)
    rc = fail("fd %d: DMA_BUF_IOCTL_SYNC end: %s", fd, strerror(errno));
  return rc;
}

static void text_seen(struct text *t, const struct seen *seen, size_t n) {
  text_add(t, "[");
  for (size_t i = 0; i < n; i++) {
    text_add(t, "%s{\"size\":%" PRIu64 ",\"fnv1a\":\"%016" PRIx64 "\",\"seals\":%d,\"dmabuf\":%s}", i ? "," : "", seen[i].size, seen[i].fnv,
             seen[i].seals, seen[i].dmabuf ? "true" : "false");
  }
  text_add(t, "]");
}

/* the one line a received frame is reported as: its buffers as seen, and its JSON as a string */
static int print_frame(const struct frame *f, const struct seen *seen) {
  struct text t = {0};
  text_add(&t, "{\"fds\":%zu,\"buffers\":", f->nfds);
  text_seen(&t, seen, seen ? f->nfds : 0);
  text_add(&t, ",\"json\":");
  text_json_string(&t, f->json, f->len);
  text_add(&t, "}\n");
  int rc = t.bad ? fail("out of memory") : 0;
  if (rc == 0) {
    fwrite(t.p, 1, t.len, stdout);
    fflush(stdout);
  }
  free(t.p);
  return rc;
}

/* ---- the two commands ---- */

static int cmd_recv(const char *path, int type) {
  int s = accept_one(path, type);
  if (s < 0) return 1;
  static struct frame f;
  if (recv_frame(s, type, &f) != 0) {
    close(s);
    return 1;
  }
  struct seen *seen = calloc(f.nfds ? f.nfds : 1, sizeof *seen);
  int rc = seen ? 0 : fail("out of memory");
  for (size_t i = 0; rc == 0 && i < f.nfds; i++) rc = inspect(f.fds[i], &seen[i]);
  close_all(f.fds, f.nfds); /* every received fd is ours to close, seen or not */
  if (rc == 0) rc = print_frame(&f, seen);
  if (rc == 0) {
    struct text reply = {0};
    text_add(&reply, "{\"buffers\":[],\"payload\":{\"seen\":");
    text_seen(&reply, seen, f.nfds);
    text_add(&reply, ",\"jsonBytes\":%" PRIu32 "}}", f.len);
    rc = reply.bad ? fail("out of memory") : send_frame(s, 0, reply.p, reply.len, NULL, 0, 0);
    free(reply.p);
  }
  free(seen);
  close(s);
  return rc == 0 ? 0 : 1;
}

/* n memfds of (i+1) pages, filled with pattern(i, j), sealed as asked; their checksums in fnv[] */
static int make_memfds(size_t n, long page, int seals, int *fds, uint64_t *fnv) {
  for (size_t i = 0; i < n; i++) fds[i] = -1;
  for (size_t i = 0; i < n; i++) {
    char name[32];
    snprintf(name, sizeof name, "c-peer-%zu", i);
    size_t size = (size_t)page * (i + 1);
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return fail("memfd_create: %s", strerror(errno));
    fds[i] = fd;
    if (ftruncate(fd, (off_t)size) != 0) return fail("ftruncate: %s", strerror(errno));
    unsigned char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return fail("mmap: %s", strerror(errno));
    for (size_t j = 0; j < size; j++) map[j] = pattern(i, j);
    fnv[i] = fnv1a(map, size, FNV_OFFSET);
    munmap(map, size); /* F_SEAL_WRITE is refused while a writable shared mapping exists */
    if (seals && fcntl(fd, F_ADD_SEALS, seals) != 0) return fail("F_ADD_SEALS: %s", strerror(errno));
  }
  return 0;
}

static int usage(void);

static int cmd_send(const char *path, int type, size_t n, const char *fault) {
  int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  int extra_fd = 0;
  if (fault && strcmp(fault, "fdcount") == 0) extra_fd = 1;
  else if (fault && strcmp(fault, "unsealed") == 0) seals = 0;
  else if (fault && strcmp(fault, "write-sealed") == 0) seals |= F_SEAL_WRITE;
  else if (fault) return usage();
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) {
    fail("no page size");
    return 1;
  }
  int fds[SCM_MAX_FDS];
  uint64_t fnv[SCM_MAX_FDS];
  int s = -1, rc = make_memfds(n, page, seals, fds, fnv);
  struct text json = {0};
  if (rc == 0) {
    text_add(&json, "{\"buffers\":[");
    for (size_t i = 0; i < n; i++)
      text_add(&json, "%s{\"size\":%zu,\"tier\":\"memfd\",\"name\":\"c-peer-%zu\"}", i ? "," : "", (size_t)page * (i + 1), i);
    text_add(&json, "],\"payload\":{\"from\":\"dmabuf_peer\",\"n\":%zu,\"page\":%ld,\"fnv1a\":[", n, page);
    for (size_t i = 0; i < n; i++) text_add(&json, "%s\"%016" PRIx64 "\"", i ? "," : "", fnv[i]);
    text_add(&json, "]}}");
    if (json.bad) rc = fail("out of memory");
  }
  if (rc == 0 && (s = connect_to(path, type)) < 0) rc = -1;
  if (rc == 0) rc = send_frame(s, 0, json.p, json.len, fds, n, (uint16_t)(n + (size_t)extra_fd));
  free(json.p);
  /* in flight, the socket holds the files: ours can go now */
  close_all(fds, n);
  if (rc == 0) {
    static struct frame reply;
    rc = recv_frame(s, type, &reply);
    if (rc == 0) {
      close_all(reply.fds, reply.nfds); /* a reply's fds are not looked at, only counted */
      rc = print_frame(&reply, NULL);
    }
  }
  if (s >= 0) close(s);
  return rc == 0 ? 0 : 1;
}

/* receive n lent frames, look at their buffers, give each back: the lender's ring turns */
static int cmd_consume(const char *path, int type, size_t n) {
  int s = connect_to(path, type);
  if (s < 0) return 1;
  static struct frame f;
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < n; k++) {
    if (recv_frame(s, type, &f) != 0) {
      rc = -1;
      break;
    }
    uint32_t id = 0;
    if (f.flags != FRAME_LENT) rc = fail("frame %zu is not lent (flags %u)", k, f.flags);
    else rc = lend_id(&f, &id);
    struct seen *seen = calloc(f.nfds ? f.nfds : 1, sizeof *seen);
    if (rc == 0 && !seen) rc = fail("out of memory");
    for (size_t i = 0; rc == 0 && i < f.nfds; i++) rc = inspect(f.fds[i], &seen[i]);
    /* done with the buffers (CPU access over: inspect ended its DMA_BUF_IOCTL_SYNC): close, then release */
    close_all(f.fds, f.nfds);
    if (rc == 0) {
      char release[64];
      int len = snprintf(release, sizeof release, "{\"release\":[%" PRIu32 "]}", id);
      rc = send_frame(s, FRAME_RELEASE, release, (size_t)len, NULL, 0, 0);
    }
    if (rc == 0) rc = print_frame(&f, seen);
    free(seen);
  }
  close(s);
  return rc == 0 ? 0 : 1;
}

static int usage(void) {
  fputs("usage: dmabuf_peer recv <socket-path> <seqpacket|stream>\n"
        "       dmabuf_peer send <socket-path> <seqpacket|stream> <n> [fdcount|unsealed|write-sealed]\n"
        "       dmabuf_peer consume <socket-path> <seqpacket|stream> <n>\n",
        stderr);
  return 2;
}

int main(int argc, char **argv) {
  alarm(60);
  if (argc < 4) return usage();
  int type = socket_type(argv[3]);
  if (type < 0) return usage();
  if (strcmp(argv[1], "recv") == 0 && argc == 4) return cmd_recv(argv[2], type);
  if (strcmp(argv[1], "send") == 0 && (argc == 5 || argc == 6)) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(argv[4], &end, 10);
    if (errno || *end || end == argv[4] || n > SCM_MAX_FDS) return usage();
    return cmd_send(argv[2], type, (size_t)n, argc == 6 ? argv[5] : NULL);
  }
  if (strcmp(argv[1], "consume") == 0 && argc == 5) {
    char *end;
    errno = 0;
    unsigned long n = strtoul(argv[4], &end, 10);
    if (errno || *end || end == argv[4]) return usage();
    return cmd_consume(argv[2], type, (size_t)n);
  }
  return usage();
}
