{
  "targets": [
    {
      "target_name": "dma_heap",
      "sources": [
        "src/addon.cc",
        "src/abi.cc",
        "src/errors.cc",
        "src/heap_device.cc",
        "src/dma_buf.cc",
        "src/memfd.cc",
        "src/fd_passing.cc",
        "src/poll.cc",
        "src/glibc_compat.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "include"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "_FILE_OFFSET_BITS=64"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "variables": {
        "dma_heap_glibc": "<!(node -p \"process.report.getReport().header.glibcVersionRuntime ? 1 : 0\")",
        "dma_heap_glibc_ldflags": [
          "-static-libstdc++", "-static-libgcc", "-Wl,--exclude-libs,ALL",
          "-Wl,--wrap=__libc_single_threaded", "-Wl,--wrap=pthread_once", "-Wl,--wrap=__pthread_key_create",
          "-Wl,--wrap=_dl_find_object", "-Wl,--wrap=arc4random"
        ]
      },
      "conditions": [
        ["OS!='linux' and OS!='android'", { "type": "none" }],
        ["dma_heap_glibc==1", { "ldflags": ["<@(dma_heap_glibc_ldflags)"] }]
      ]
    }
  ]
}
