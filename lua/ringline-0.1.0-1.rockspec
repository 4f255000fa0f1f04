-- LuaRocks package for the Lua binding. It builds ringline.core against an
-- installed libringline (from this repository: `make install`, which puts
-- ringline.h and libringline.so under /usr/local), then installs
-- ringline.lua next to it:
--
--   make install                       # the C library
--   luarocks make lua/ringline-0.1.0-1.rockspec
--
-- (or RINGLINE_DIR=/prefix to point at another installation.)
rockspec_format = "3.0"
package = "ringline"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/ringline/ringline.git",
  tag = "v0.1.0",
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
        "lua/src/loop.c", "lua/src/worker.c",
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
