// Portability shims: the few calls whose libc wrapper is missing on some targets or
// whose glibc symbol version would raise the prebuilds' glibc floor (2.28, see
// prebuilds/README.md). Everything else in src/ is POSIX/Linux API that glibc >= 2.28,
// musl and Android's bionic (API 24+) all export.
#ifndef DMA_HEAP_COMPAT_H
#define DMA_HEAP_COMPAT_H

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

// memfd flags and seals: uapi values (linux/memfd.h, linux/fcntl.h), for libc headers
// older than the calls (glibc < 2.27; bionic hides some before API 30)
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif

// memfd_create(2): Linux 3.17. glibc wraps it since 2.27, bionic only since API 30
// (Android 11), so an older NDK/Termux sysroot has no declaration. The raw syscall is
// the same call with every libc (and Android's seccomp policy allows it: bionic uses it).
inline int CompatMemfdCreate(const char* name, unsigned flags) {
  return static_cast<int>(::syscall(__NR_memfd_create, name, flags));
}

// fstat(2): glibc 2.33 made fstat/fstat64 exported functions (fstat64@GLIBC_2.33); older
// glibc had an inline calling __fxstat64. A binary built against glibc >= 2.33 calling
// fstat does not load on an older glibc. With _FILE_OFFSET_BITS=64 and 32-bit time_t,
// glibc's struct stat is the kernel's own layout (struct stat on 64-bit ABIs, struct
// stat64 via fstat64 on 32-bit ones), so the raw syscall fills it directly. musl (whose
// 32-bit struct stat has 64-bit time since 1.2) and bionic keep their libc's fstat.
inline int CompatFstat(int fd, struct stat* st) {
#if defined(__GLIBC__) && !defined(__USE_TIME_BITS64) && defined(__NR_fstat64)
  static_assert(sizeof(st->st_size) == 8, "needs _FILE_OFFSET_BITS=64 (binding.gyp defines it)");
  return static_cast<int>(::syscall(__NR_fstat64, fd, st));
#elif defined(__GLIBC__) && defined(__NR_fstat) && (defined(__x86_64__) || defined(__aarch64__))
  return static_cast<int>(::syscall(__NR_fstat, fd, st));
#else
  return ::fstat(fd, st);
#endif
}

#endif  // DMA_HEAP_COMPAT_H
