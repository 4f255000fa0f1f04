-- spec/helper.lua — shared by the busted specs: module paths, a guarded
-- ringline.run, and subprocess helpers for the end-to-end example specs.
--
-- Paths: RINGLINE_SRC / RINGLINE_BUILD (set by ctest) or, by default, the
-- source tree this file is in and its build/ directory.
local H = {}

local src = os.getenv("RINGLINE_SRC")
if not src then
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
  src = here .. "/.."
end
local build = os.getenv("RINGLINE_BUILD") or (src .. "/build")
H.src, H.build = src, build
H.lua = os.getenv("LUA") or "lua5.4"
package.path = src .. "/lua/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local ringline = require "ringline"
H.ringline = ringline
H.core = require "ringline.core"

-- Run fn inside ringline.run without touching the test runner's signals,
-- failing (instead of hanging) after `limit` seconds. Errors in fn are
-- re-raised here so busted reports them.
function H.run(fn, opts, limit)
  opts = opts or {}
  if opts.signals == nil then opts.signals = false end
  local err, timed_out
  local ok, rerr = ringline.run(function()
    local watchdog = ringline.after(limit or 10, function()
      timed_out = true
      ringline.stop(0)
    end)
    local r = table.pack(xpcall(fn, debug.traceback))
    if not r[1] then err = r[2] end
    -- let the test's other tasks finish, then end whatever it left serving
    -- (servers, forwarded connections) with it
    while ringline.tasks() > 1 and not timed_out do ringline.sleep(0.005) end
    watchdog:cancel()
    ringline.stop(1)
  end, opts)
  if err then error(err, 0) end
  if timed_out then error("test timed out", 0) end
  assert(ok, rerr)
end

-- Capture ringline.on_error reports during fn.
function H.capture_errors(fn)
  local got = {}
  ringline.on_error(function(what, e) got[#got + 1] = what .. ": " .. tostring(e) end)
  local ok, e = pcall(fn)
  ringline.on_error(nil)
  if not ok then error(e, 0) end
  return got
end

function H.have(cmd)
  return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") == true
end

local function tmpname()
  local n = os.tmpname()
  return n
end

function H.read_file(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local d = f:read("a")
  f:close()
  return d
end

-- Start a command in the background with default SIGINT handling (shells
-- ignore SIGINT in background jobs); returns a process handle.
function H.spawn(cmd)
  local out, pidf, rcf = tmpname(), tmpname(), tmpname()
  os.remove(rcf)
  local wrapper = ("(env --default-signal=INT,TERM %s >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &")
    :format(cmd, out, pidf, rcf)
  os.execute("sh -c '" .. wrapper:gsub("'", "'\\''") .. "'")
  local pid
  for _ = 1, 200 do
    local p = H.read_file(pidf)
    pid = p and tonumber(p:match("%d+"))
    if pid then break end
    os.execute("sleep 0.02")
  end
  os.remove(pidf)
  assert(pid, "could not start: " .. cmd)
  return { pid = pid, out = out, rcf = rcf, cmd = cmd }
end

function H.output(p) return H.read_file(p.out) or "" end

-- Wait for "listening on HOST:PORT" in the process output; returns PORT.
function H.wait_port(p, limit)
  local deadline = os.time() + (limit or 10)
  repeat
    local port = H.output(p):match("listening on [%d%.]+:(%d+)")
    if port then return tonumber(port) end
    if H.read_file(p.rcf) then break end
    os.execute("sleep 0.05")
  until os.time() > deadline
  error("no port from `" .. p.cmd .. "`; output:\n" .. H.output(p))
end

function H.kill(p, sig)
  os.execute(("kill -%s %d 2>/dev/null"):format(sig or "TERM", p.pid))
end

-- Wait for exit; returns the exit code (nil on timeout).
function H.wait(p, limit)
  local deadline = os.time() + (limit or 10)
  repeat
    local rc = H.read_file(p.rcf)
    if rc and rc:match("%d") then
      os.remove(p.rcf)
      return tonumber(rc:match("%d+"))
    end
    os.execute("sleep 0.05")
  until os.time() > deadline
  return nil
end

function H.stop(p, sig)
  H.kill(p, sig)
  local rc = H.wait(p, 10)
  if rc == nil then H.kill(p, "KILL"); H.wait(p, 5) end
  os.remove(p.out)
  return rc
end

-- Run a shell command, return its stdout and exit status.
function H.sh(cmd)
  local f = io.popen(cmd .. " 2>&1", "r")
  local out = f:read("a")
  local ok, _, code = f:close()
  return out, code
end

function H.example(name)
  return ("RINGLINE_BUILD=%s %s %s/examples/%s"):format(build, H.lua, src, name)
end

return H
