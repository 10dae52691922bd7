/*
 * The C reference for `npm run bench`: per operation, exactly the system calls the
 * dma-heap package needs for one buffer, with nothing else around them:
 *
 *   dma-heap  (the heap device is opened once, before timing)
 *             ioctl(DMA_HEAP_IOCTL_ALLOC, fd_flags O_RDWR|O_CLOEXEC), mmap(MAP_SHARED),
 *             memset, munmap, close
 *   udmabuf   memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate, fcntl(F_ADD_SEALS,
 *             F_SEAL_SHRINK), open(/dev/udmabuf), ioctl(UDMABUF_CREATE, flags CLOEXEC),
 *             close(device), close(memfd), mmap, memset, munmap, close
 *   memfd     memfd_create(MFD_CLOEXEC), ftruncate, mmap, memset, munmap, close
 *
 * Numbers and structs come from the project's include/dma_heap_abi.h (compile with
 * -I include). Each (tier, size) cell first warms up (at least --warmup operations and
 * --warmup-time seconds), then runs operations
 * until --min-time seconds have passed and at least --min-iters ran (at most --max-iters).
 * One JSON object per line on stdout; errors go to stderr and exit 1.
 *
 *   ref [--tiers dma-heap,udmabuf,memfd] [--sizes 4096,65536,...] [--min-time 0.3]
 *       [--min-iters 5] [--max-iters 1000000] [--warmup 3] [--warmup-time 0.03] [--phases]
 *       [--heap /dev/dma_heap/system]
 *
 * --phases also times each step (alloc, map, fill, unmap+close) with clock_gettime; it
 * adds four clock reads per operation, so headline numbers are taken without it.
 *
 * --extras instead times, one by one, the system calls the JS path makes on top of these
 * (what each costs on this kernel): reading /proc/meminfo, lseek(SEEK_END) and fstat on a
 * buffer, the heap-open sequence with its GET_FEATURES probe, listing /dev/dma_heap, the
 * udmabuf checks. One {"type":"extra"} line each.
 *
 * --trace-one runs, per tier, a few operations and then one between two marker calls
 * (access("/dma-heap-bench-mark/start/<tier>") and .../end/<tier>), for strace to count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "dma_heap_abi.h"

/* Old libc headers may lack these (values from memfd_create(2) and fcntl(2)). */
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

#define FILL_BYTE 0xa5

enum tier { TIER_DMA_HEAP, TIER_UDMABUF, TIER_MEMFD, NUM_TIERS };
static const char *const tier_names[NUM_TIERS] = {"dma-heap", "udmabuf", "memfd"};

enum phase { PH_ALLOC, PH_MAP, PH_FILL, PH_CLOSE, NUM_PHASES };
static const char *const phase_names[NUM_PHASES] = {"alloc", "map", "fill", "close"};

static const char *heap_path = "/dev/dma_heap/system";
static int heap_fd = -1;

static void die(const char *what, size_t size) {
  int err = errno;
  fprintf(stderr, "ref: %s (size %zu): %s\n", what, size, strerror(err));
  exit(1);
}

static inline double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Allocate one buffer of `size` bytes; returns its fd. */
static int alloc_buf(enum tier t, size_t size) {
  switch (t) {
    case TIER_DMA_HEAP: {
      struct dma_heap_abi_allocation_data data;
      memset(&data, 0, sizeof data);
      data.len = size;
      data.fd_flags = O_RDWR | O_CLOEXEC;
      if (ioctl(heap_fd, DMA_HEAP_ABI_IOCTL_ALLOC, &data) < 0) die("DMA_HEAP_IOCTL_ALLOC", size);
      return (int)data.fd;
    }
    case TIER_UDMABUF: {
      int memfd = memfd_create("dma-heap:udmabuf", MFD_CLOEXEC | MFD_ALLOW_SEALING);
      if (memfd < 0) die("memfd_create", size);
      if (ftruncate(memfd, (off_t)size) != 0) die("ftruncate", size);
      if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK) != 0) die("fcntl(F_ADD_SEALS)", size);
      int dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
      if (dev < 0) die("open /dev/udmabuf", size);
      struct dma_heap_abi_udmabuf_create create;
      memset(&create, 0, sizeof create);
      create.memfd = (uint32_t)memfd;
      create.flags = DMA_HEAP_ABI_UDMABUF_FLAGS_CLOEXEC;
      create.offset = 0;
      create.size = size;
      int fd = ioctl(dev, DMA_HEAP_ABI_UDMABUF_CREATE, &create);
      if (fd < 0) die("UDMABUF_CREATE", size);
      close(dev);
      close(memfd);
      return fd;
    }
    case TIER_MEMFD: {
      int fd = memfd_create("dma-heap:system", MFD_CLOEXEC);
      if (fd < 0) die("memfd_create", size);
      if (ftruncate(fd, (off_t)size) != 0) die("ftruncate", size);
      return fd;
    }
    default:
      abort();
  }
}

/* One operation: alloc, map, fill, unmap, close. `ph` (optional) accumulates step times. */
static void one_op(enum tier t, size_t size, double *ph) {
  double t0 = ph ? now() : 0;
  int fd = alloc_buf(t, size);
  double t1 = ph ? now() : 0;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) die("mmap", size);
  double t2 = ph ? now() : 0;
  memset(p, FILL_BYTE, size);
  /* keep the stores: the compiler may not drop a memset into memory it then unmaps,
   * but say so explicitly */
  __asm__ __volatile__("" : : "r"(p) : "memory");
  double t3 = ph ? now() : 0;
  if (munmap(p, size) != 0) die("munmap", size);
  if (close(fd) != 0) die("close", size);
  if (ph) {
    double t4 = now();
    ph[PH_ALLOC] += t1 - t0;
    ph[PH_MAP] += t2 - t1;
    ph[PH_FILL] += t3 - t2;
    ph[PH_CLOSE] += t4 - t3;
  }
}

/* ---- --extras: the JS path's additional calls, one at a time ---- */

static char scratch[8192];

static void read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(path, 0);
  while (read(fd, scratch, sizeof scratch) > 0) {
  }
  close(fd);
}

static int extra_fd = -1;

static void x_meminfo(void) {
  /* libuv's uv_get_total_memory (os.totalmem()): one 4095-byte read */
  int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("/proc/meminfo", 0);
  if (read(fd, scratch, 4095) <= 0) die("read /proc/meminfo", 0);
  close(fd);
}
static void x_lseek(void) {
  if (lseek(extra_fd, 0, SEEK_END) < 0) die("lseek", 0);
}
static void x_fstat(void) {
  struct stat st;
  if (fstat(extra_fd, &st) != 0) die("fstat", 0);
}
static void x_fdinfo(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", extra_fd);
  read_file(path);
}
static void x_readdir(void) {
  DIR *d = opendir("/dev/dma_heap");
  if (!d) die("opendir /dev/dma_heap", 0);
  while (readdir(d)) {
  }
  closedir(d);
}
static void x_sysfs_dev(void) { read_file("/sys/class/dma_heap/system/dev"); }
static void x_get_features(void) {
  uint64_t features = 0;
  (void)ioctl(heap_fd, DMA_HEAP_ABI_V14_IOCTL_GET_FEATURES, &features); /* mainline: EINVAL */
}
static void x_heap_open(void) {
  /* what openHeap does per heap: lstat, the sysfs device number, open, fstat, GET_FEATURES,
   * and the close */
  struct stat st;
  if (lstat(heap_path, &st) != 0) die("lstat", 0);
  read_file("/sys/class/dma_heap/system/dev");
  int fd = open(heap_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) die(heap_path, 0);
  if (fstat(fd, &st) != 0) die("fstat", 0);
  uint64_t features = 0;
  (void)ioctl(fd, DMA_HEAP_ABI_V14_IOCTL_GET_FEATURES, &features);
  close(fd);
}
static void x_udmabuf_checks(void) {
  /* hasUdmabuf (existsSync) and udmabufSizeLimit (the module parameter) */
  if (access("/dev/udmabuf", F_OK) != 0) die("access /dev/udmabuf", 0);
  read_file("/sys/module/udmabuf/parameters/size_limit_mb");
}
static void x_devnull(void) {
  /* the software framework's heap-device reservation */
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("/dev/null", 0);
  close(fd);
}

static void time_extra(const char *name, const char *on, void (*fn)(void), double min_time) {
  for (int w = 0; w < 100; w++) fn();
  long iters = 0;
  double start = now(), elapsed;
  do {
    for (int k = 0; k < 16; k++) fn();
    iters += 16;
    elapsed = now() - start;
  } while (elapsed < min_time);
  printf("{\"type\":\"extra\",\"impl\":\"c\",\"name\":\"%s\",\"on\":\"%s\",\"iters\":%ld,\"us_per_call\":%.3f}\n", name,
         on, iters, elapsed * 1e6 / (double)iters);
  fflush(stdout);
}

static void run_extras(const int *want, double min_time) {
  time_extra("read /proc/meminfo", "-", x_meminfo, min_time);
  time_extra("open+close /dev/null", "-", x_devnull, min_time);
  for (int t = 0; t < NUM_TIERS; t++) {
    if (!want[t]) continue;
    if (t == TIER_DMA_HEAP) {
      heap_fd = open(heap_path, O_RDONLY | O_CLOEXEC);
      if (heap_fd < 0) die(heap_path, 0);
    }
    extra_fd = alloc_buf((enum tier)t, 4096);
    time_extra("lseek SEEK_END", tier_names[t], x_lseek, min_time);
    time_extra("fstat", tier_names[t], x_fstat, min_time);
    time_extra("read /proc/self/fdinfo/N", tier_names[t], x_fdinfo, min_time);
    close(extra_fd);
    if (t == TIER_DMA_HEAP) {
      time_extra("GET_FEATURES ioctl", "dma-heap", x_get_features, min_time);
      time_extra("readdir /dev/dma_heap", "dma-heap", x_readdir, min_time);
      time_extra("read sysfs dev", "dma-heap", x_sysfs_dev, min_time);
      time_extra("heap open sequence", "dma-heap", x_heap_open, min_time);
      close(heap_fd);
      heap_fd = -1;
    }
    if (t == TIER_UDMABUF) time_extra("udmabuf checks", "udmabuf", x_udmabuf_checks, min_time);
  }
}

static void mark(const char *what, const char *tier) {
  char path[128];
  snprintf(path, sizeof path, "/dma-heap-bench-mark/%s/%s", what, tier);
  (void)access(path, F_OK);
}

static int parse_tiers(const char *s, int *want) {
  char *copy = strdup(s), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    int found = 0;
    for (int t = 0; t < NUM_TIERS; t++) {
      if (strcmp(tok, tier_names[t]) == 0) want[t] = found = 1;
    }
    if (!found) {
      fprintf(stderr, "ref: unknown tier %s (tiers: dma-heap, udmabuf, memfd)\n", tok);
      return -1;
    }
  }
  free(copy);
  return 0;
}

static size_t parse_sizes(const char *s, size_t *sizes, size_t max) {
  size_t n = 0;
  char *copy = strdup(s), *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
    sizes[n++] = (size_t)strtoull(tok, NULL, 0);
  }
  free(copy);
  return n;
}

int main(int argc, char **argv) {
  int want[NUM_TIERS] = {0, 0, 0};
  int any_tier = 0;
  size_t sizes[16] = {4096, 65536, 1 << 20, 16 << 20};
  size_t nsizes = 4;
  double min_time = 0.3;
  long min_iters = 5, max_iters = 1000000, warmup = 3;
  double warmup_time = 0.03;
  int phases = 0, extras = 0, trace_one = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--phases") == 0) {
      phases = 1;
      continue;
    }
    if (strcmp(a, "--extras") == 0) {
      extras = 1;
      continue;
    }
    if (strcmp(a, "--trace-one") == 0) {
      trace_one = 1;
      continue;
    }
    if (!v) {
      fprintf(stderr, "ref: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (strcmp(a, "--tiers") == 0) {
      if (parse_tiers(v, want) != 0) return 2;
      any_tier = 1;
    } else if (strcmp(a, "--sizes") == 0) {
      nsizes = parse_sizes(v, sizes, sizeof sizes / sizeof sizes[0]);
    } else if (strcmp(a, "--min-time") == 0) {
      min_time = atof(v);
    } else if (strcmp(a, "--min-iters") == 0) {
      min_iters = atol(v);
    } else if (strcmp(a, "--max-iters") == 0) {
      max_iters = atol(v);
    } else if (strcmp(a, "--warmup") == 0) {
      warmup = atol(v);
    } else if (strcmp(a, "--warmup-time") == 0) {
      warmup_time = atof(v);
    } else if (strcmp(a, "--heap") == 0) {
      heap_path = v;
    } else {
      fprintf(stderr, "ref: unknown option %s\n", a);
      return 2;
    }
  }
  if (!any_tier) {
    /* every tier this machine offers */
    want[TIER_DMA_HEAP] = access(heap_path, R_OK) == 0;
    want[TIER_UDMABUF] = access("/dev/udmabuf", R_OK | W_OK) == 0;
    want[TIER_MEMFD] = 1;
  }
  if (max_iters < min_iters) max_iters = min_iters;

  struct utsname u;
  uname(&u);
  printf("{\"type\":\"meta\",\"impl\":\"c\",\"kernel\":\"%s\",\"page_size\":%ld,\"min_time\":%g,"
         "\"min_iters\":%ld,\"phases\":%s}\n",
         u.release, sysconf(_SC_PAGESIZE), min_time, min_iters, phases ? "true" : "false");
  fflush(stdout);

  if (extras) {
    run_extras(want, min_time);
    return 0;
  }

  for (int t = 0; t < NUM_TIERS; t++) {
    if (!want[t] || !trace_one) continue;
    if (t == TIER_DMA_HEAP) heap_fd = open(heap_path, O_RDONLY | O_CLOEXEC);
    if (t == TIER_DMA_HEAP && heap_fd < 0) die(heap_path, 0);
    for (int w = 0; w < 3; w++) one_op((enum tier)t, sizes[0], NULL);
    mark("start", tier_names[t]);
    one_op((enum tier)t, sizes[0], NULL);
    mark("end", tier_names[t]);
    if (t == TIER_DMA_HEAP) close(heap_fd);
    heap_fd = -1;
  }
  if (trace_one) return 0;

  for (int t = 0; t < NUM_TIERS; t++) {
    if (!want[t]) continue;
    if (t == TIER_DMA_HEAP) {
      /* O_RDONLY is enough to allocate (shared/kernel-abi.md); opened once, as openHeap does */
      heap_fd = open(heap_path, O_RDONLY | O_CLOEXEC);
      if (heap_fd < 0) die(heap_path, 0);
    }
    for (size_t s = 0; s < nsizes; s++) {
      size_t size = sizes[s];
      double ph[NUM_PHASES] = {0, 0, 0, 0};
      double warm_start = now();
      for (long w = 0; w < warmup || now() - warm_start < warmup_time; w++) one_op((enum tier)t, size, NULL);
      long iters = 0;
      double start = now(), elapsed;
      do {
        one_op((enum tier)t, size, phases ? ph : NULL);
        iters++;
        elapsed = now() - start;
      } while (iters < max_iters && (iters < min_iters || elapsed < min_time));
      printf("{\"type\":\"cell\",\"impl\":\"c\",\"tier\":\"%s\",\"size\":%zu,\"iters\":%ld,"
             "\"seconds\":%.9f,\"us_per_op\":%.3f",
             tier_names[t], size, iters, elapsed, elapsed * 1e6 / (double)iters);
      if (phases) {
        printf(",\"phases_us\":{");
        for (int p = 0; p < NUM_PHASES; p++) {
          printf("%s\"%s\":%.3f", p ? "," : "", phase_names[p], ph[p] * 1e6 / (double)iters);
        }
        printf("}");
      }
      printf("}\n");
      fflush(stdout);
    }
    if (t == TIER_DMA_HEAP) {
      close(heap_fd);
      heap_fd = -1;
    }
  }
  return 0;
}
