#!/usr/bin/env lua5.4
--[[
proxy.lua — a TCP proxy on the C forwarding path.

  lua5.4 examples/proxy.lua LISTEN_PORT TARGET_PORT [--target-host H] [--host H]

Each accepted connection gets a task that connects to the target and then
hands both directions to C (conn:forward): bytes go from kernel buffer to
send queue without reaching Lua, half-closes are passed on, and the pair
closes together. LISTEN_PORT 0 picks a free port; the chosen one is printed.
SIGINT/SIGTERM stop it gracefully and it exits 0.
]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local build = os.getenv("RINGLINE_BUILD") or (here .. "/../build")
package.path = here .. "/../lua/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local ringline = require "ringline"

local ports, host, thost = {}, "127.0.0.1", "127.0.0.1"
do
  local i = 1
  while i <= #arg do
    if arg[i] == "--host" then host = arg[i + 1]; i = i + 1
    elseif arg[i] == "--target-host" then thost = arg[i + 1]; i = i + 1
    else ports[#ports + 1] = tonumber(arg[i]) end
    i = i + 1
  end
end
local lport, tport = ports[1], ports[2]
if not lport or not tport then
  io.stderr:write("usage: proxy.lua LISTEN_PORT TARGET_PORT [--target-host H] [--host H]\n")
  os.exit(2)
end

local function handle(client)
  local upstream, err = ringline.connect(thost, tport, { timeout = 5 })
  if not upstream then
    io.stderr:write("proxy: connect ", thost, ":", tport, ": ", err, "\n")
    client:abort()
    return
  end
  -- bytes the client sent while we connected are passed on first
  client:forward(upstream)
  upstream:forward(client)
end

local ok, e = ringline.run(function()
  local server, lerr = ringline.listen(host, lport)
  if not server then
    io.stderr:write("proxy: listen: ", lerr, "\n")
    os.exit(1)
  end
  server:serve(handle)
  io.stdout:write(("proxy: listening on %s:%d, forwarding to %s:%d\n")
    :format(host, server:port(), thost, tport))
  io.stdout:flush()
end)
if not ok then
  io.stderr:write("proxy: ", tostring(e), "\n")
  os.exit(1)
end
os.exit(0)
