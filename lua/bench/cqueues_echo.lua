-- cqueues (Debian lua-cqueues) echo server, for side-by-side measurements
-- only: one coroutine per connection.
--   lua5.4 lua/bench/cqueues_echo.lua PORT
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local signal = require "cqueues.signal"
local port = tonumber(arg[1])
local cq = cqueues.new()
local srv = socket.listen { host = "127.0.0.1", port = port, reuseaddr = true }
assert(srv:listen())
cq:wrap(function()
  for con in srv:clients() do
    cq:wrap(function()
      con:setmode("b", "bn") -- binary; no output buffering
      con:setvbuf("no")
      while true do
        local data = con:read(-65536) -- whatever is available, up to 64 KiB
        if not data then break end
        con:write(data)
      end
      con:close()
    end)
  end
end)
signal.block(signal.SIGINT, signal.SIGTERM)
local sl = signal.listen(signal.SIGINT, signal.SIGTERM)
cq:wrap(function()
  sl:wait()
  os.exit(0)
end)
io.stdout:write("cqueues_echo: listening on 127.0.0.1:", port, "\n")
io.stdout:flush()
assert(cq:loop())
