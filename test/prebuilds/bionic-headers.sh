#!/bin/sh
# Compile-only check of src/ against Android's libc (bionic) headers, as Termux's clang or the
# NDK would build it: clang with libc++'s headers (apt-get install clang libc++-14-dev) and the
# headers of a bionic checkout (AOSP platform/bionic: libc/include, libc/kernel/uapi,
# libc/kernel/android/uapi). Nothing from bionic is in this repository, and CI can't fetch it:
# this is run by hand.
#
#   test/prebuilds/bionic-headers.sh BIONIC_DIR [API]      (API default 24, Termux's minimum)
#
# -Werror=unguarded-availability and bionic's own __INTRODUCED_IN guards make any call newer
# than API make the compile fail (memfd_create at API < 30, say). Prints one line per target.
set -u
B=${1:?usage: bionic-headers.sh BIONIC_DIR [API]}/libc
API=${2:-24}
cd "$(dirname "$0")/../.."
NAPI=$(node -p "require('node-addon-api').include_dir")
NODE_INC=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
CXXINC=$(ls -d /usr/lib/llvm-*/include/c++/v1 2>/dev/null | tail -1)
[ -n "$CXXINC" ] || { echo "no libc++ headers: apt-get install libc++-dev"; exit 1; }
status=0
for t in aarch64-linux-android:asm-arm64 armv7a-linux-androideabi:asm-arm x86_64-linux-android:asm-x86; do
  triple=${t%%:*}; asm=${t#*:}; bad=0
  for f in src/*.cc; do
    clang++ --target="$triple$API" -fsyntax-only -nostdlibinc -std=c++17 -Wall -Wextra -fexceptions \
      -Werror=unguarded-availability -Werror=implicit-function-declaration \
      -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DNODE_ADDON_API_DISABLE_DEPRECATED \
      -DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS -D_FILE_OFFSET_BITS=64 \
      -isystem "$CXXINC" -isystem "$B/include" -isystem "$B/kernel/uapi" -isystem "$B/kernel/uapi/$asm" \
      -isystem "$B/kernel/android/uapi" -I"$NAPI" -Iinclude -idirafter "$NODE_INC" "$f" || bad=1
  done
  if [ $bad = 0 ]; then echo "ok   $triple$API: src/*.cc compile against bionic"; else echo "FAIL $triple$API"; status=1; fi
done
exit $status
