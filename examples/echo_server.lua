#!/usr/bin/env lua5.4
--[[
echo_server.lua — every byte received goes back.

  lua5.4 examples/echo_server.lua PORT [--mode callback|coro|c] [--workers N] [--host H]

  --mode callback  server:on_data(function(conn, data) conn:send(data) end):
                   the leanest Lua path (default)
  --mode coro      a coroutine per connection: conn:recv() / conn:send()
  --mode c         the loop's C echo path (server:echo()): no Lua per byte
  --workers N      N threads, each with its own Lua state and loop, pinned
                   one per CPU, sharing the port (SO_REUSEPORT)

PORT 0 picks a free port; the chosen one is printed. SIGINT/SIGTERM stop it
gracefully (queued bytes are still written) and it exits 0.
]]

-- find lua/ringline.lua and the built module relative to this file
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local build = os.getenv("RINGLINE_BUILD") or (here .. "/../build")
package.path = here .. "/../lua/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local ringline = require "ringline"

local port, mode, workers, host = nil, "callback", 1, "127.0.0.1"
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--mode" then mode = arg[i + 1]; i = i + 1
  elseif a == "--workers" then workers = tonumber(arg[i + 1]); i = i + 1
  elseif a == "--host" then host = arg[i + 1]; i = i + 1
  else port = tonumber(a) end
  i = i + 1
end
if not port or not ({ callback = 1, coro = 1, c = 1 })[mode] or not workers then
  io.stderr:write("usage: echo_server.lua PORT [--mode callback|coro|c] [--workers N] [--host H]\n")
  os.exit(2)
end

local function serve_coro(conn)
  while true do
    local data = conn:recv()
    if not data then break end
    conn:send(data)
  end
  conn:close()
end

local ok, err = ringline.run(function()
  local server, e = ringline.listen(host, port)
  if not server then
    io.stderr:write("echo_server: listen: ", e, "\n")
    os.exit(1)
  end
  if mode == "callback" then
    server:on_data(function(conn, data) conn:send(data) end)
  elseif mode == "coro" then
    server:serve(serve_coro)
  else
    server:echo()
  end
  if ringline.worker_id() == 0 then
    io.stdout:write(("echo_server: listening on %s:%d (mode %s, %d worker%s)\n")
      :format(host, server:port(), mode, workers, workers > 1 and "s" or ""))
    io.stdout:flush()
  end
end, { workers = workers })

if not ok then
  io.stderr:write("echo_server: ", tostring(err), "\n")
  os.exit(1)
end
os.exit(0)
