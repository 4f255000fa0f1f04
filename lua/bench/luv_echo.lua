-- luv (Debian lua-luv) echo server, for side-by-side measurements only.
--   lua5.4 lua/bench/luv_echo.lua PORT
local uv = require "luv"
local port = tonumber(arg[1])
local server = uv.new_tcp()
assert(server:bind("127.0.0.1", port))
assert(server:listen(1024, function(err)
  assert(not err, err)
  local client = uv.new_tcp()
  server:accept(client)
  client:nodelay(true)
  client:read_start(function(rerr, data)
    if rerr or not data then
      client:close()
      return
    end
    client:write(data)
  end)
end))
io.stdout:write("luv_echo: listening on 127.0.0.1:", port, "\n")
io.stdout:flush()
local function stop() uv.stop() end
local s1, s2 = uv.new_signal(), uv.new_signal()
s1:start("sigint", stop)
s2:start("sigterm", stop)
uv.run()
os.exit(0)
