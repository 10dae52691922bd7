// Keeps the addon loadable on glibc >= 2.28 when it is built against a newer glibc
// (Debian 12: 2.36) with libstdc++ and libgcc linked in statically (binding.gyp,
// dma_heap_glibc_ldflags). Those static archives were compiled against the new glibc
// and reference five symbols whose only (or default) version is newer than 2.28:
//
//   __libc_single_threaded  GLIBC_2.32  libstdc++ (and inlined shared_ptr code)
//   pthread_once            GLIBC_2.34  libgcc_eh (unwinder), moved into libc in 2.34
//   __pthread_key_create    GLIBC_2.34  libgcc_eh
//   _dl_find_object         GLIBC_2.35  libgcc_eh (finds a pc's unwind tables)
//   arc4random              GLIBC_2.36  libstdc++ random.o (std::random_device, unused)
//
// The linker's --wrap=<sym> sends every reference to __wrap_<sym>, defined here (hidden)
// with what glibc 2.28 offers. test/prebuilds/check.js fails the build if any GLIBC_
// version above 2.28, or any GLIBCXX_/CXXABI_ reference, is left.
#include <unistd.h>  // first: it defines __GLIBC__ (or not)

#if defined(__GLIBC__) && !defined(__ANDROID__)

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#define DMA_HEAP_HIDDEN extern "C" __attribute__((visibility("hidden")))

// "Maybe multi-threaded": libstdc++ then always uses atomic reference counts, as it did
// before glibc 2.32 told it otherwise. Always correct, never faster. (An extern "C" block,
// so this is a definition rather than an initialized extern declaration.)
extern "C" {
__attribute__((visibility("hidden"))) char __wrap___libc_single_threaded = 0;
}

// The versions pthread_once and __pthread_key_create had before 2.34, when they lived in
// libpthread.so.0 (which every Node binary loads); glibc >= 2.34 keeps them as compat
// aliases in libc.so.6. The dynamic linker matches a version by name in any loaded object.
#if defined(__x86_64__)
#define DMA_HEAP_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define DMA_HEAP_GLIBC_BASE "GLIBC_2.17"
#elif defined(__arm__)
#define DMA_HEAP_GLIBC_BASE "GLIBC_2.4"
#elif defined(__i386__)
#define DMA_HEAP_GLIBC_BASE "GLIBC_2.0"
#endif

#ifdef DMA_HEAP_GLIBC_BASE
extern "C" int dma_heap_pthread_once(pthread_once_t*, void (*)(void));
extern "C" int dma_heap_pthread_key_create(pthread_key_t*, void (*)(void*));
__asm__(".symver dma_heap_pthread_once, pthread_once@" DMA_HEAP_GLIBC_BASE);
__asm__(".symver dma_heap_pthread_key_create, __pthread_key_create@" DMA_HEAP_GLIBC_BASE);
#else  // another architecture: the default versions (its floor is then whatever they need)
extern "C" int __real_pthread_once(pthread_once_t*, void (*)(void));
extern "C" int __real___pthread_key_create(pthread_key_t*, void (*)(void*));
#define dma_heap_pthread_once __real_pthread_once
#define dma_heap_pthread_key_create __real___pthread_key_create
#endif

DMA_HEAP_HIDDEN int __wrap_pthread_once(pthread_once_t* once, void (*fn)(void)) {
  return dma_heap_pthread_once(once, fn);
}

DMA_HEAP_HIDDEN int __wrap___pthread_key_create(pthread_key_t* key, void (*dtor)(void*)) {
  return dma_heap_pthread_key_create(key, dtor);
}

// std::random_device's "arc4random" token; the addon never makes one. getentropy: 2.25.
DMA_HEAP_HIDDEN uint32_t __wrap_arc4random(void) {
  uint32_t v;
  if (getentropy(&v, sizeof v) != 0) abort();
  return v;
}

// _dl_find_object (glibc 2.35) rebuilt on dl_iterate_phdr, which is what libgcc used
// before: the loaded object whose PT_LOAD segments contain pc, and its unwind tables
// (PT_GNU_EH_FRAME; on 32-bit ARM, PT_ARM_EXIDX and its entry count).
#if defined(DLFO_STRUCT_HAS_EH_DBASE)
namespace {
struct FindPc {
  uintptr_t pc;
  dl_find_object* out;
};

int VisitObject(dl_phdr_info* info, size_t, void* data) {
  FindPc* f = static_cast<FindPc*>(data);
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  bool inside = false;
  const ElfW(Phdr)* eh = nullptr;
  for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)* ph = &info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + ph->p_vaddr;
    if (ph->p_type == PT_LOAD) {
      if (start < lo) lo = start;
      if (start + ph->p_memsz > hi) hi = start + ph->p_memsz;
      if (f->pc >= start && f->pc < start + ph->p_memsz) inside = true;
    }
    if (ph->p_type == DLFO_EH_SEGMENT_TYPE) eh = ph;
  }
  if (!inside) return 0;
  std::memset(f->out, 0, sizeof *f->out);
  f->out->dlfo_map_start = reinterpret_cast<void*>(lo);
  f->out->dlfo_map_end = reinterpret_cast<void*>(hi);
  f->out->dlfo_eh_frame = eh ? reinterpret_cast<void*>(info->dlpi_addr + eh->p_vaddr) : nullptr;
#if DLFO_STRUCT_HAS_EH_COUNT
  f->out->dlfo_eh_count = eh ? static_cast<int>(eh->p_memsz / 8) : 0;
#endif
#if DLFO_STRUCT_HAS_EH_DBASE
  f->out->dlfo_eh_dbase = nullptr;  // only i386 and nios2 have one; not built here
#endif
  return 1;
}
}  // namespace

DMA_HEAP_HIDDEN int __wrap__dl_find_object(void* pc, dl_find_object* out) {
  FindPc f{reinterpret_cast<uintptr_t>(pc), out};
  return dl_iterate_phdr(VisitObject, &f) ? 0 : -1;
}
#endif  // DLFO_STRUCT_HAS_EH_DBASE

#endif  // __GLIBC__
