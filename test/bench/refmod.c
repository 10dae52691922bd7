/*
 * The C reference as a bench-only N-API module, so C and JS run in ONE process,
 * interleaved batch by batch (test/bench/paired.js builds and loads it; it is never
 * shipped). Each call runs a whole batch in C: crossing into it costs once per batch.
 *
 * One operation is what a program does with a buffer it uses once, with only the
 * syscalls that needs:
 *   dma-heap: DMA_HEAP_IOCTL_ALLOC (O_RDWR|O_CLOEXEC), mmap, memset, munmap, close     (4)
 *   udmabuf:  memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate, F_ADD_SEALS
 *             F_SEAL_SHRINK, UDMABUF_CREATE on a held /dev/udmabuf fd, close memfd,
 *             mmap, memset, munmap, close                                             (8)
 *   memfd:    memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate, F_ADD_SEALS
 *             F_SEAL_SHRINK (what the software framework needs so no peer can shrink a
 *             buffer under a mapping), mmap, memset, munmap, close                    (6)
 * A ring: `count` buffers allocated and mapped once; each frame memsets the next one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dma_heap_abi.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#endif
#ifndef F_SEAL_SHRINK
#define F_SEAL_SHRINK 0x0002
#endif

#define FILL 0xa5
enum { T_DMA_HEAP = 0, T_UDMABUF = 1, T_MEMFD = 2 };

static char errbuf[512];

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}
static double thread_cpu(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* returns fd, or -1 with errbuf set */
static int alloc_buf(int tier, size_t size, int dev) {
  switch (tier) {
    case T_DMA_HEAP: {
      struct dma_heap_abi_allocation_data d;
      memset(&d, 0, sizeof d);
      d.len = size;
      d.fd_flags = O_RDWR | O_CLOEXEC;
      if (ioctl(dev, DMA_HEAP_ABI_IOCTL_ALLOC, &d) < 0) goto fail;
      return (int)d.fd;
    }
    case T_UDMABUF: {
      int memfd = memfd_create("dma-heap:udmabuf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (memfd < 0) goto fail;
      if (ftruncate(memfd, (off_t)size) != 0 || fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
        close(memfd);
        goto fail;
      }
      struct dma_heap_abi_udmabuf_create c;
      memset(&c, 0, sizeof c);
      c.memfd = (uint32_t)memfd;
      c.flags = DMA_HEAP_ABI_UDMABUF_FLAGS_CLOEXEC;
      c.size = size;
      int fd = ioctl(dev, DMA_HEAP_ABI_UDMABUF_CREATE, &c);
      close(memfd);
      if (fd < 0) goto fail;
      return fd;
    }
    case T_MEMFD: {
      int fd = memfd_create("dma-heap:system", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (fd < 0) goto fail;
      if (ftruncate(fd, (off_t)size) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) {
        close(fd);
        goto fail;
      }
      return fd;
    }
  }
  errno = EINVAL;
fail:
  snprintf(errbuf, sizeof errbuf, "alloc (tier %d, size %zu): %s", tier, size, strerror(errno));
  return -1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, double *out) {
  napi_value argv[8];
  size_t argc = 8;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  for (size_t i = 0; i < want; i++) {
    if (i >= argc || napi_get_value_double(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "refmod: numeric arguments expected");
      return -1;
    }
  }
  return 0;
}

static napi_value array_of(napi_env env, const double *v, size_t n) {
  napi_value arr;
  napi_create_array_with_length(env, n, &arr);
  for (size_t i = 0; i < n; i++) {
    napi_value x;
    napi_create_double(env, v[i], &x);
    napi_set_element(env, arr, (uint32_t)i, x);
  }
  return arr;
}

/* run(tier, size, iters, dev, phases) -> [wall_ns, cpu_ns, alloc_ns, map_ns, fill_ns, close_ns] */
static napi_value run(napi_env env, napi_callback_info info) {
  double a[5];
  if (get_args(env, info, 5, a)) return NULL;
  int tier = (int)a[0], dev = (int)a[3], phases = a[4] != 0;
  size_t size = (size_t)a[1];
  long iters = (long)a[2];
  double ph[4] = {0, 0, 0, 0};
  double w0 = mono(), c0 = thread_cpu();
  for (long i = 0; i < iters; i++) {
    double t0 = phases ? mono() : 0;
    int fd = alloc_buf(tier, size, dev);
    if (fd < 0) {
      napi_throw_error(env, NULL, errbuf);
      return NULL;
    }
    double t1 = phases ? mono() : 0;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      napi_throw_error(env, NULL, "refmod: mmap failed");
      return NULL;
    }
    double t2 = phases ? mono() : 0;
    memset(p, FILL, size);
    __asm__ __volatile__("" : : "r"(p) : "memory");
    double t3 = phases ? mono() : 0;
    munmap(p, size);
    close(fd);
    if (phases) {
      double t4 = mono();
      ph[0] += t1 - t0;
      ph[1] += t2 - t1;
      ph[2] += t3 - t2;
      ph[3] += t4 - t3;
    }
  }
  double out[6] = {mono() - w0, thread_cpu() - c0, ph[0], ph[1], ph[2], ph[3]};
  return array_of(env, out, 6);
}

/* ring(tier, size, count, frames, dev, zero) -> [wall_ns, cpu_ns]: set-up and tear-down untimed.
 * Per frame: take the next buffer, fill it (and memset it to 0 on "release" when zero). */
static napi_value ring(napi_env env, napi_callback_info info) {
  double a[6];
  if (get_args(env, info, 6, a)) return NULL;
  int tier = (int)a[0], dev = (int)a[4], zero = a[5] != 0;
  size_t size = (size_t)a[1];
  long count = (long)a[2], frames = (long)a[3];
  if (count < 1 || count > 1024) {
    napi_throw_range_error(env, NULL, "refmod: ring count 1..1024");
    return NULL;
  }
  int fds[1024];
  unsigned char *maps[1024];
  for (long i = 0; i < count; i++) {
    fds[i] = alloc_buf(tier, size, dev);
    if (fds[i] < 0) {
      napi_throw_error(env, NULL, errbuf);
      return NULL;
    }
    maps[i] = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
    memset(maps[i], 0, size); /* fault in, as the pool's first use would */
  }
  double w0 = mono(), c0 = thread_cpu();
  for (long f = 0; f < frames; f++) {
    unsigned char *p = maps[f % count];
    memset(p, FILL, size);
    __asm__ __volatile__("" : : "r"(p) : "memory");
    if (zero) memset(p, 0, size);
    __asm__ __volatile__("" : : "r"(p) : "memory");
  }
  double out[2] = {mono() - w0, thread_cpu() - c0};
  for (long i = 0; i < count; i++) {
    munmap(maps[i], size);
    close(fds[i]);
  }
  return array_of(env, out, 2);
}

/* openDev(path) -> fd (O_RDONLY for a heap, O_RDWR for /dev/udmabuf), or throws */
static napi_value open_dev(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  char path[256];
  size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "refmod: path expected");
    return NULL;
  }
  int fd = open(path, (strstr(path, "udmabuf") ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    snprintf(errbuf, sizeof errbuf, "open %s: %s", path, strerror(errno));
    napi_throw_error(env, NULL, errbuf);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  double a[1];
  if (get_args(env, info, 1, a)) return NULL;
  close((int)a[0]);
  return NULL;
}

static napi_value cpu_ns(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_double(env, thread_cpu(), &r);
  return r;
}

/* mark("start/x"): an access() strace can see, to cut out one stretch of syscalls */
static napi_value mark(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  char what[200], path[256];
  size_t len;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], what, sizeof what, &len) != napi_ok) return NULL;
  snprintf(path, sizeof path, "/dma-heap-bench-mark/%s", what);
  (void)access(path, F_OK);
  return NULL;
}

/*
 * The prototype shape, for a floor row: allocate+map in one call, unmap+close in
 * another, the mapping an external ArrayBuffer (what any N-API addon must make to expose it),
 * and none of the addon's safety: no fd ownership for a worker's teardown, no registry of
 * mappings, no type tag, nothing unmapped when the ArrayBuffer is forgotten.
 * allocMap(size, fdOut: Int32Array(1)) -> ArrayBuffer; unmapClose(fd, arrayBuffer).
 */
static void no_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)data, (void)hint;
}

static napi_value alloc_map(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double size;
  void *slot = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_double(env, argv[0], &size) != napi_ok ||
      napi_get_typedarray_info(env, argv[1], NULL, NULL, &slot, NULL, NULL) != napi_ok || !slot) {
    napi_throw_type_error(env, NULL, "refmod: allocMap(size, Int32Array)");
    return NULL;
  }
  int fd = alloc_buf(T_MEMFD, (size_t)size, -1);
  if (fd < 0) {
    napi_throw_error(env, NULL, errbuf);
    return NULL;
  }
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  napi_value ab;
  if (p == MAP_FAILED || napi_create_external_arraybuffer(env, p, (size_t)size, no_finalize, NULL, &ab) != napi_ok) {
    if (p != MAP_FAILED) munmap(p, (size_t)size);
    close(fd);
    napi_throw_error(env, NULL, "refmod: allocMap failed");
    return NULL;
  }
  *(int32_t *)slot = fd;
  return ab;
}

static napi_value unmap_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  void *p = NULL;
  size_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_arraybuffer_info(env, argv[1], &p, &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "refmod: unmapClose(fd, ArrayBuffer)");
    return NULL;
  }
  napi_detach_arraybuffer(env, argv[1]);
  if (p) munmap(p, n);
  close(fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"run", NULL, run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ring", NULL, ring, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openDev", NULL, open_dev, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cpuNs", NULL, cpu_ns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mark", NULL, mark, NULL, NULL, NULL, napi_enumerable, NULL},
      {"allocMap", NULL, alloc_map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmapClose", NULL, unmap_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
