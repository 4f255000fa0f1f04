#!/usr/bin/env lua5.4
--[[
kv_server.lua — a small Redis-protocol key-value server.

  lua5.4 examples/kv_server.lua PORT [--host H]

Commands: PING, ECHO, SET key value [EX s|PX ms] [NX|XX], GET, DEL, EXISTS,
INCR, DECR, INCRBY, DECRBY, MSET, MGET, EXPIRE, PEXPIRE, TTL, PTTL, DBSIZE,
FLUSHALL, QUIT (plus the handshakes redis-cli and redis-benchmark send:
COMMAND, CONFIG GET, SELECT, CLIENT). Errors are in Redis's format.

Callback style, the leanest path: each batch of received bytes goes to one
Lua call; the C RESP parser (ringline.resp_parse, over
ringline_resp_parse_command) splits every complete command in it, replies
for the whole batch leave in one write, and an incomplete command's bytes
are handed back to the loop (returning the consumed count) to come again
with the rest. PORT 0 picks a free port; the chosen one is printed.
SIGINT/SIGTERM stop it gracefully and it exits 0.
]]

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local build = os.getenv("RINGLINE_BUILD") or (here .. "/../build")
package.path = here .. "/../lua/?.lua;" .. package.path
package.cpath = build .. "/lua/?.so;" .. package.cpath

local ringline = require "ringline"

local port, host = nil, "127.0.0.1"
do
  local i = 1
  while i <= #arg do
    if arg[i] == "--host" then host = arg[i + 1]; i = i + 1
    else port = tonumber(arg[i]) end
    i = i + 1
  end
end
if not port then
  io.stderr:write("usage: kv_server.lua PORT [--host H]\n")
  os.exit(2)
end

local resp_parse = ringline.resp_parse
local now = ringline.now
local tointeger, tonumber, upper, lower, concat = math.tointeger, tonumber, string.upper, string.lower, table.concat
local MAXINT, MININT = math.maxinteger, math.mininteger

-- ---- the data ----
local db = {}       -- key -> value (string)
local expires = {}  -- key -> absolute deadline (seconds, monotonic)
local nkeys = 0

local function alive(key)
  local v = db[key]
  if v == nil then return nil end
  local e = expires[key]
  if e and e <= now() then
    db[key], expires[key] = nil, nil
    nkeys = nkeys - 1
    return nil
  end
  return v
end

local function put(key, v)
  if db[key] == nil then nkeys = nkeys + 1 end
  db[key] = v
end

local function del(key)
  if alive(key) == nil then return 0 end
  db[key], expires[key] = nil, nil
  nkeys = nkeys - 1
  return 1
end

-- ---- replies ----
local OK, PONG, NULL = "+OK\r\n", "+PONG\r\n", "$-1\r\n"
local ZERO, ONE = ":0\r\n", ":1\r\n"
-- "$<len>\r\n" per length, made once: a number in a concatenation costs a
-- snprintf, a table lookup does not (lengths past 64 KiB are not kept)
local lenhdr = setmetatable({}, { __index = function(t, n)
  local h = "$" .. n .. "\r\n"
  if n < 65536 then t[n] = h end
  return h
end })
local function bulk(s) return lenhdr[#s] .. s .. "\r\n" end
local function int(n) return ":" .. n .. "\r\n" end
local function err(msg) return "-" .. msg .. "\r\n" end
local E_INT = err("ERR value is not an integer or out of range")
local E_SYNTAX = err("ERR syntax error")
local E_OVERFLOW = err("ERR increment or decrement would overflow")

local function arity(name) return err("ERR wrong number of arguments for '" .. name .. "' command") end

-- a Redis integer: optional '-', digits, no leading zeros or '+', 64-bit
-- Redis accepts only the canonical decimal form ("12", "-3"; not "+1",
-- " 1", "01", "-0", "0x10", "1e3"): one pattern match, then the number
-- (nil past the integer range).
local find = string.find
local function toint(s)
  local len = #s
  if len > 20 or not (find(s, "^%-?[1-9]%d*$") or s == "0") then return nil end
  local n = tointeger(tonumber(s))
  -- near the limits a float can round back into range: check the text
  if len >= 19 and n and tostring(n) ~= s then return nil end
  return n
end

-- The integers INCR wrote, by their string (a pure mapping, so never
-- stale): the next INCR of the key skips the parse. Bounded: cleared at
-- 4096 entries. Numbers to text cost a snprintf each (tostring, ..), so
-- INCR makes one string and uses it for both the value and the reply.
local numcache, nnum = {}, 0

local function incrby(key, by)
  local v = alive(key)
  local n = 0
  if v ~= nil then
    n = numcache[v] or toint(v)
    if not n then return E_INT end
  end
  if (by > 0 and n > MAXINT - by) or (by < 0 and n < MININT - by) then return E_OVERFLOW end
  n = n + by
  local sv = tostring(n)
  if nnum >= 4096 then numcache, nnum = {}, 0 end
  numcache[sv] = n
  nnum = nnum + 1
  put(key, sv)
  return ":" .. sv .. "\r\n"
end

-- ---- commands: fn(argv, n) -> reply [, quit]; arity as Redis: -k = at least k ----
local commands = {}
local arities = {}
local function def(name, ar, fn) commands[name] = fn; arities[name] = ar end

def("PING", -1, function(a, n)
  if n > 2 then return arity("ping") end
  if n == 2 then return bulk(a[2]) end
  return PONG
end)
def("ECHO", 2, function(a) return bulk(a[2]) end)
def("GET", 2, function(a)
  local v = alive(a[2])
  if v == nil then return NULL end
  return bulk(v)
end)
def("SET", -3, function(a, n)
  local key, val = a[2], a[3]
  local ttl, nx, xx
  local i = 4
  while i <= n do
    local o = upper(a[i])
    if (o == "EX" or o == "PX") and i < n and not ttl then
      local t = toint(a[i + 1])
      if not t then return E_INT end
      if t <= 0 then return err("ERR invalid expire time in 'set' command") end
      ttl = o == "EX" and t or t / 1000
      i = i + 2
    elseif o == "NX" and not xx then nx = true; i = i + 1
    elseif o == "XX" and not nx then xx = true; i = i + 1
    else return E_SYNTAX end
  end
  local exists = alive(key) ~= nil
  if (nx and exists) or (xx and not exists) then return NULL end
  put(key, val)
  expires[key] = ttl and now() + ttl or nil
  return OK
end)
def("DEL", -2, function(a, n)
  local c = 0
  for i = 2, n do c = c + del(a[i]) end
  return int(c)
end)
def("EXISTS", -2, function(a, n)
  local c = 0
  for i = 2, n do if alive(a[i]) ~= nil then c = c + 1 end end
  return int(c)
end)
def("INCR", 2, function(a) return incrby(a[2], 1) end)
def("DECR", 2, function(a) return incrby(a[2], -1) end)
def("INCRBY", 3, function(a)
  local by = toint(a[3])
  if not by then return E_INT end
  return incrby(a[2], by)
end)
def("DECRBY", 3, function(a)
  local by = toint(a[3])
  if not by or by == MININT then return E_INT end
  return incrby(a[2], -by)
end)
def("MSET", -3, function(a, n)
  if n % 2 == 0 then return arity("mset") end
  for i = 2, n, 2 do
    put(a[i], a[i + 1])
    expires[a[i]] = nil
  end
  return OK
end)
def("MGET", -2, function(a, n)
  local out = { "*" .. (n - 1) .. "\r\n" }
  for i = 2, n do
    local v = alive(a[i])
    out[i] = v == nil and NULL or bulk(v)
  end
  return concat(out)
end)
local function expire_cmd(a, scale)
  local t = toint(a[3])
  if not t then return E_INT end
  if alive(a[2]) == nil then return ZERO end
  if t <= 0 then
    del(a[2])
  else
    expires[a[2]] = now() + t * scale
  end
  return ONE
end
def("EXPIRE", 3, function(a) return expire_cmd(a, 1) end)
def("PEXPIRE", 3, function(a) return expire_cmd(a, 0.001) end)
local function ttl_cmd(a, ms)
  if alive(a[2]) == nil then return int(-2) end
  local e = expires[a[2]]
  if not e then return int(-1) end
  local left = (e - now()) * 1000
  if ms then return int(math.floor(left + 0.5)) end
  return int(math.floor((left + 500) / 1000))
end
def("TTL", 2, function(a) return ttl_cmd(a, false) end)
def("PTTL", 2, function(a) return ttl_cmd(a, true) end)
def("DBSIZE", 1, function() return int(nkeys) end)
def("FLUSHALL", -1, function()
  db, expires, nkeys = {}, {}, 0
  return OK
end)
def("FLUSHDB", -1, commands.FLUSHALL)
def("QUIT", -1, function() return OK, true end)
-- what clients send on connect
def("COMMAND", -1, function() return "*0\r\n" end)
def("SELECT", 2, function(a)
  if a[2] == "0" then return OK end
  return err("ERR DB index is out of range")
end)
def("CLIENT", -2, function() return OK end)
def("CONFIG", -2, function(a, n)
  if upper(a[2]) ~= "GET" or n ~= 3 then return "*0\r\n" end
  local known = { save = "", appendonly = "no" }
  local v = known[lower(a[3])]
  if not v then return "*0\r\n" end
  return "*2\r\n" .. bulk(lower(a[3])) .. bulk(v)
end)

local function unknown(a, n)
  local args = {}
  for i = 2, n do args[#args + 1] = "'" .. a[i]:sub(1, 128) .. "' " end
  return err(("ERR unknown command '%s', with args beginning with: %s")
    :format(a[1]:sub(1, 128), concat(args)))
end

local function execute(a, n)
  -- clients mostly send names in capitals: try the name as it came before
  -- paying for string.upper (a new string per command)
  local name = a[1]
  local fn = commands[name]
  if not fn then
    name = upper(name)
    fn = commands[name]
  end
  if not fn then return unknown(a, n) end
  local ar = arities[name]
  if (ar > 0 and n ~= ar) or (ar < 0 and n < -ar) then return arity(lower(name)) end
  return fn(a, n)
end

-- ---- the server ----
local argv = { n = 0 }
local out = {}

local function on_data(conn, data)
  local pos, no, len = 1, 0, #data
  while pos <= len do
    local a, used = resp_parse(data, pos, argv)
    if not a then
      if a == nil then -- malformed: Redis answers and closes
        no = no + 1
        out[no] = err("ERR Protocol error: " .. tostring(used))
        conn:send(concat(out, "", 1, no))
        conn:close()
        return len
      end
      break -- incomplete: the rest comes again with more bytes
    end
    pos = pos + used
    local n = a.n
    if n > 0 then
      local reply, quit = execute(a, n)
      no = no + 1
      out[no] = reply
      if quit then
        conn:send(concat(out, "", 1, no))
        conn:close()
        return len
      end
    end
  end
  if no == 1 then
    conn:send(out[1])
  elseif no > 1 then
    conn:send(concat(out, "", 1, no))
  end
  return pos - 1
end

local ok, e = ringline.run(function()
  local server, lerr = ringline.listen(host, port)
  if not server then
    io.stderr:write("kv_server: listen: ", lerr, "\n")
    os.exit(1)
  end
  server:on_data(on_data)
  -- active expiry: look at up to 200 keys with a deadline ten times a
  -- second, resuming where the last sweep stopped
  local cursor
  ringline.every(0.1, function()
    local t = now()
    local k = cursor
    if k ~= nil and expires[k] == nil then k = nil end
    local last
    for _ = 1, 200 do
      local key, d = next(expires, k) -- clearing fields while walking is allowed
      if key == nil then break end
      if d <= t then
        if db[key] ~= nil then nkeys = nkeys - 1 end
        db[key], expires[key] = nil, nil
      else
        last = key
      end
      k = key
    end
    cursor = last
  end)
  io.stdout:write(("kv_server: listening on %s:%d\n"):format(host, server:port()))
  io.stdout:flush()
end)
if not ok then
  io.stderr:write("kv_server: ", tostring(e), "\n")
  os.exit(1)
end
os.exit(0)
