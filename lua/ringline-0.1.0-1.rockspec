-- LuaRocks package for the Lua binding, built from this source tree (there
-- is no published release to fetch): ringline.core is compiled against an
-- installed libringline (the C library of this repository), and
-- ringline.lua is installed next to it. From the repository root:
--
--   cmake -S . -B build && cmake --build build && sudo cmake --install build
--   luarocks make lua/ringline-0.1.0-1.rockspec      # add --local or --tree DIR
--
-- With the C library under another prefix, say where:
--   luarocks make lua/ringline-0.1.0-1.rockspec RINGLINE_DIR=/prefix
-- (or RINGLINE_INCDIR=... RINGLINE_LIBDIR=...). `luarocks make` compiles the
-- files of the current directory, which source.url below names. LuaRocks
-- defaults to Lua 5.1 on Debian: add --lua-version 5.4 there. `luarocks
-- build`/`pack` would need a release archive, which is not published.
rockspec_format = "3.0"
package = "ringline"
version = "0.1.0-1"
source = {
  url = "file://.", -- this checkout: run luarocks make from the repository root
}
description = {
  summary = "io_uring made usable from Lua: raw rings and coroutine servers",
  detailed = [[
    ringline gives Lua 5.4 the whole of Linux io_uring through the ringline C
    library: ring objects with every submit helper, batched harvest, provided
    buffer groups, fixed files, O_DIRECT and NVMe passthrough; and a
    coroutine API over a C event loop (listen/accept/connect, recv_line,
    recv_exact, C framers, UDP, timers, C echo/forward hot paths, graceful
    stop on signals, thread-per-core workers).
  ]],
  homepage = "https://github.com/ringline/ringline",
  license = "MIT",
  labels = { "io_uring", "networking", "event-loop", "coroutines" },
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  RINGLINE = {
    header = "ringline.h",
    library = "ringline",
  },
}
build = {
  type = "builtin",
  modules = {
    ["ringline"] = "lua/ringline.lua",
    ["ringline.core"] = {
      sources = {
        "lua/src/module.c", "lua/src/buffer.c", "lua/src/ring.c",
        "lua/src/bufgroup.c", "lua/src/nvme.c", "lua/src/frame.c",
        "lua/src/loop.c", "lua/src/worker.c", "lua/src/storage.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "$(RINGLINE_INCDIR)" },
      libdirs = { "$(RINGLINE_LIBDIR)" },
      libraries = { "ringline", "pthread" },
    },
  },
  copy_directories = { "docs" },
}
test = {
  type = "busted",
}
