-- The examples, end to end, as separate processes driven by real clients:
-- ringline's own client for the echo server, redis-cli and
-- redis-benchmark (Debian redis-tools) for the KV server and the proxy.
-- Without redis-tools this spec file exits 77, which ctest reports as
-- skipped rather than passed.
local H = require "spec.helper"
local ringline = H.ringline

for _, tool in ipairs { "redis-cli", "redis-benchmark" } do
  if not H.have(tool) then
    io.stderr:write("examples_spec: SKIP: ", tool, " not installed (Debian package redis-tools)\n")
    os.exit(77)
  end
end

local function start(example, args)
  local p = H.spawn(H.example(example) .. " " .. (args or "0"))
  local port = H.wait_port(p)
  return p, port
end

local function cli(port, ...)
  local args = {}
  for i = 1, select("#", ...) do args[i] = ("%q"):format(select(i, ...)) end
  local out = H.sh(("redis-cli -p %d %s"):format(port, table.concat(args, " ")))
  return (out:gsub("\n+$", ""))
end

-- talk to a server with ringline's client
local function client(port, fn)
  H.run(function()
    local c = assert(ringline.connect("127.0.0.1", port, { timeout = 5 }))
    fn(c)
    c:close()
  end, nil, 60)
end

describe("examples/echo_server.lua", function()
  for _, mode in ipairs { "callback", "coro", "c" } do
    it("echoes in " .. mode .. " mode and exits 0 on SIGINT", function()
      local p, port = start("echo_server.lua", "0 --mode " .. mode)
      client(port, function(c)
        c:send("hello\n")
        assert.equal("hello", c:recv_line(5))
        local big = ("0123456789abcdef"):rep(65536) -- 1 MiB
        ringline.spawn(function() c:send(big) end)
        assert.equal(big, c:recv_exact(#big, 20))
      end)
      -- many connections at once
      H.run(function()
        local done = 0
        for i = 1, 20 do
          ringline.spawn(function()
            local c = assert(ringline.connect("127.0.0.1", port))
            for k = 1, 10 do
              c:send(i .. ":" .. k .. "\n")
              assert.equal(i .. ":" .. k, c:recv_line(5))
            end
            c:close()
            done = done + 1
          end)
        end
        while done < 20 do ringline.sleep(0.01) end
      end, nil, 60)
      assert.equal(0, H.stop(p, "INT"))
    end)
  end

  it("exits 0 on SIGTERM with clients connected", function()
    local p, port = start("echo_server.lua", "0")
    H.run(function()
      local c = assert(ringline.connect("127.0.0.1", port))
      c:send("x")
      assert.equal("x", c:recv(nil, 5))
      H.kill(p, "TERM")
      -- the server closes us as it stops
      local ok, err = c:recv(nil, 10)
      assert.is_nil(ok)
      assert.is_string(err)
    end)
    assert.equal(0, H.wait(p, 10))
  end)

  it("serves from several worker threads", function()
    local port
    H.run(function()
      local probe = ringline.listen("127.0.0.1", 0)
      port = probe:port()
      probe:close()
    end)
    local p = start("echo_server.lua", port .. " --workers 2")
    client(port, function(c)
      c:send("threads\n")
      assert.equal("threads", c:recv_line(5))
    end)
    assert.equal(0, H.stop(p, "INT"))
  end)

  it("rejects bad usage", function()
    local out, code = H.sh(H.example("echo_server.lua"))
    assert.equal(2, code)
    assert.matches("usage", out)
  end)
end)

describe("examples/kv_server.lua", function()
  local p, port
  setup(function() p, port = start("kv_server.lua") end)
  teardown(function() assert.equal(0, H.stop(p, "INT")) end)

  it("answers redis-cli like Redis", function()
    assert.equal("PONG", cli(port, "PING"))
    assert.equal("hi there", cli(port, "PING", "hi there"))
    assert.equal("hello", cli(port, "ECHO", "hello"))
    assert.equal("OK", cli(port, "SET", "k", "v"))
    assert.equal("v", cli(port, "GET", "k"))
    assert.equal("", cli(port, "GET", "missing"))
    assert.equal("1", cli(port, "EXISTS", "k"))
    assert.equal("2", cli(port, "EXISTS", "k", "k"))
    assert.equal("OK", cli(port, "SET", "n", "41"))
    assert.equal("42", cli(port, "INCR", "n"))
    assert.equal("41", cli(port, "DECR", "n"))
    assert.equal("1", cli(port, "INCR", "fresh"))
    assert.equal("ERR value is not an integer or out of range", cli(port, "INCR", "k"))
    assert.equal("OK", cli(port, "SET", "big", "9223372036854775807"))
    assert.equal("ERR increment or decrement would overflow", cli(port, "INCR", "big"))
    assert.equal("OK", cli(port, "MSET", "a", "1", "b", "2"))
    assert.equal("1\n2", cli(port, "MGET", "a", "b", "nope"))
    assert.equal("2", cli(port, "DEL", "a", "b", "nope"))
    assert.equal("ERR wrong number of arguments for 'mset' command", cli(port, "MSET", "a", "1", "b"))
    assert.equal("ERR wrong number of arguments for 'get' command", cli(port, "GET"))
    assert.equal("ERR wrong number of arguments for 'set' command", cli(port, "SET", "x"))
    assert.equal("ERR unknown command 'FOO', with args beginning with: 'bar' ", cli(port, "FOO", "bar"))
    assert.equal("ERR syntax error", cli(port, "SET", "x", "y", "EX"))
    assert.equal("ERR invalid expire time in 'set' command", cli(port, "SET", "x", "y", "EX", "0"))
    assert.equal("ERR value is not an integer or out of range", cli(port, "SET", "x", "y", "PX", "abc"))
  end)

  it("expires keys (SET EX/PX, EXPIRE, TTL)", function()
    assert.equal("OK", cli(port, "SET", "t", "v", "EX", "100"))
    local ttl = tonumber(cli(port, "TTL", "t"))
    assert.is_true(ttl >= 99 and ttl <= 100)
    assert.equal("-1", cli(port, "TTL", "k"))
    assert.equal("-2", cli(port, "TTL", "nope"))
    assert.equal("OK", cli(port, "SET", "p", "v", "PX", "100"))
    assert.equal("v", cli(port, "GET", "p"))
    assert.equal("1", cli(port, "EXPIRE", "k", "1"))
    assert.equal("0", cli(port, "EXPIRE", "nope", "1"))
    os.execute("sleep 1.2")
    assert.equal("", cli(port, "GET", "p"))
    assert.equal("", cli(port, "GET", "k"))
    assert.equal("-2", cli(port, "TTL", "k"))
  end)

  it("counts, flushes and quits", function()
    cli(port, "FLUSHALL")
    assert.equal("0", cli(port, "DBSIZE"))
    cli(port, "MSET", "a", "1", "b", "2", "c", "3")
    assert.equal("3", cli(port, "DBSIZE"))
    assert.equal("OK", cli(port, "FLUSHALL"))
    assert.equal("0", cli(port, "DBSIZE"))
    assert.equal("OK", cli(port, "QUIT"))
  end)

  it("answers pipelined and split commands, and closes on protocol errors", function()
    client(port, function(c)
      c:send("*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$3\r\nabc\r\n*2\r\n$3\r\nGET\r\n$1")
      assert.equal("+PONG", c:recv_line(5))
      assert.equal("+OK", c:recv_line(5))
      ringline.sleep(0.05)
      c:send("\r\nq\r\n")
      assert.equal("$3", c:recv_line(5))
      assert.equal("abc", c:recv_line(5))
      c:send("PING inline\r\n")
      assert.equal("$6", c:recv_line(5))
      assert.equal("inline", c:recv_line(5))
      c:send("*1\r\n$x\r\n")
      assert.matches("^%-ERR Protocol error", c:recv_line(5))
      assert.equal(ringline.EOF, select(2, c:recv(nil, 5)))
    end)
  end)

  it("answers exactly like a real redis-server (when one is installed)", function()
    if not H.have("redis-server") then
      pending("redis-server not installed: the side-by-side comparison is skipped")
      return
    end
    local rport
    H.run(function()
      local probe = ringline.listen("127.0.0.1", 0)
      rport = probe:port()
      probe:close()
    end)
    local rs = H.spawn(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no"):format(rport))
    for _ = 1, 100 do
      if cli(rport, "PING") == "PONG" then break end
      os.execute("sleep 0.05")
    end
    cli(port, "FLUSHALL")
    local cases = {
      { "PING" }, { "PING", "hi" }, { "PING", "a", "b" }, { "ECHO", "x" }, { "ECHO" },
      { "SET", "k", "v" }, { "GET", "k" }, { "GET", "nope" }, { "GET" }, { "GET", "a", "b" },
      { "SET", "k" }, { "SET", "k", "v", "EX", "10" }, { "TTL", "k" }, { "SET", "k", "v", "EX", "0" },
      { "SET", "k", "v", "EX", "-1" }, { "SET", "k", "v", "EX", "abc" }, { "SET", "k", "v", "EX" },
      { "SET", "k", "v", "BOGUS" }, { "SET", "k", "v", "NX" }, { "SET", "k2", "v", "XX" },
      { "SET", "k3", "v", "NX" }, { "DEL", "k", "k2", "k3", "nope" }, { "DEL" },
      { "EXISTS", "k", "k", "k" }, { "EXISTS" }, { "SET", "n", "5" }, { "INCR", "n" }, { "DECR", "n" },
      { "INCR" }, { "INCR", "k", "k" }, { "SET", "s", "abc" }, { "INCR", "s" },
      { "SET", "m", "9223372036854775807" }, { "INCR", "m" }, { "SET", "m2", "-9223372036854775808" },
      { "DECR", "m2" }, { "INCR", "nnew" }, { "DECR", "dnew" }, { "MSET", "a", "1", "b", "2" },
      { "MSET", "a" }, { "MSET", "a", "1", "b" }, { "MGET", "a", "b", "nope" }, { "MGET" },
      { "EXPIRE", "a", "100" }, { "EXPIRE", "nope", "1" }, { "EXPIRE", "a", "abc" }, { "EXPIRE", "a" },
      { "TTL", "a" }, { "TTL", "nope" }, { "TTL" }, { "TTL", "b" }, { "DBSIZE" }, { "DBSIZE", "x" },
      { "FLUSHALL" }, { "DBSIZE" }, { "FOO" }, { "FOO", "bar", "baz" }, { "foo", "Bar" },
      { "SET", "n", "010" }, { "INCR", "n" }, { "SET", "n", "+5" }, { "INCR", "n" },
      { "SET", "n", " 5" }, { "INCR", "n" }, { "QUIT" },
    }
    local diffs = {}
    for _, c in ipairs(cases) do
      local want, got = cli(rport, table.unpack(c)), cli(port, table.unpack(c))
      if want ~= got then
        diffs[#diffs + 1] = ("%s: redis %q, ours %q"):format(table.concat(c, " "), want, got)
      end
    end
    H.stop(rs, "TERM")
    assert.same({}, diffs)
  end)

  it("completes redis-benchmark without errors", function()
    local out, code = H.sh(("redis-benchmark -p %d -t ping,set,get,incr,mset -n 200000 -c 50 -P 16 -q")
      :format(port))
    out = out:gsub("[^\n]*\r", "") -- progress lines
    assert.equal(0, code, out)
    assert.not_matches("[Ee]rror", out)
    for _, t in ipairs { "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "MSET" } do
      assert.matches(t .. "[^\n]*: [%d.]+ requests per second", out)
    end
    -- the counter INCR benchmarked is exact
    assert.equal("200000", cli(port, "GET", "counter:__rand_int__"))
  end)
end)

describe("examples/proxy.lua", function()
  it("forwards redis traffic in both directions and exits 0 on SIGTERM", function()
    local kv, kport = start("kv_server.lua")
    local px, pport = start("proxy.lua", "0 " .. kport)
    assert.equal("OK", cli(pport, "SET", "via", "proxy"))
    assert.equal("proxy", cli(kport, "GET", "via"))
    local out, code = H.sh(("redis-benchmark -p %d -t ping,set,get -n 50000 -c 20 -P 8 -q"):format(pport))
    out = out:gsub("[^\n]*\r", "")
    assert.equal(0, code, out)
    assert.matches("GET[^\n]*requests per second", out)
    -- a large value through the proxy
    client(pport, function(c)
      local v = ("v"):rep(1 << 20)
      c:send(ringline.resp({ "SET", "large", v }))
      assert.equal("+OK", c:recv_line(10))
      c:send(ringline.resp({ "GET", "large" }))
      assert.equal("$" .. #v, c:recv_line(10))
      assert.equal(v, c:recv_exact(#v, 20))
    end)
    assert.equal(0, H.stop(px, "TERM"))
    -- the target gone: clients are closed, the proxy keeps running
    local px2, pport2 = start("proxy.lua", "0 " .. kport)
    assert.equal(0, H.stop(kv, "INT"))
    client(pport2, function(c)
      c:send("PING\r\n")
      assert.is_nil((c:recv(nil, 10)))
    end)
    assert.equal(0, H.stop(px2, "INT"))
  end)

  it("rejects bad usage", function()
    local out, code = H.sh(H.example("proxy.lua") .. " 1")
    assert.equal(2, code)
    assert.matches("usage", out)
  end)
end)
