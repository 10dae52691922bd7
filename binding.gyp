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
        "src/poll.cc"
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
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
