-- The loop object (ringline.core.loop): ids, events, modes, UDP, timers.
local H = require "spec.helper"
local core = H.core

-- Poll until pred(ev_table, n) says done; returns the collected events as a
-- list of {type=, id=, res=, data=, tag=, id2=, host=, port=}.
local function pump(loop, until_fn, limit)
  local ev, all = {}, {}
  local deadline = core.now() + (limit or 5)
  while true do
    local n = assert(loop:poll(0.05, ev))
    for i = 1, n do
      all[#all + 1] = { type = ev.type[i], id = ev.id[i], res = ev.res[i], data = ev.data[i],
        tag = ev.tag[i], id2 = ev.id2[i], host = ev.host[i], port = ev.port[i] }
    end
    if until_fn(all) then return all end
    if core.now() >= deadline then
      local t = {}
      for _, e in ipairs(all) do t[#t + 1] = ("%s:%s:%s"):format(e.type, e.id, e.type <= 4 and tostring(e.data) or tostring(e.res)) end
      error("timed out; events: " .. table.concat(t, " "), 2)
    end
  end
end

local function find(all, ty, id)
  for _, e in ipairs(all) do
    if e.type == ty and (id == nil or e.id == id) then return e end
  end
end

local function data_of(all, id)
  local t = {}
  for _, e in ipairs(all) do
    if (e.type == core.EV_DATA or e.type == core.EV_FRAME) and e.id == id then t[#t + 1] = e.data end
  end
  return table.concat(t)
end

-- a listener, a client and the accepted server side
local function pair(loop)
  local lid = assert(loop:listen("127.0.0.1", 0))
  local port = loop:listener_port(lid)
  local cid = assert(loop:connect("127.0.0.1", port, 2))
  local all = pump(loop, function(a) return find(a, core.EV_ACCEPTED) and find(a, core.EV_CONNECTED) end)
  local acc = find(all, core.EV_ACCEPTED)
  assert.equal(lid, acc.id2)
  assert.equal(0, find(all, core.EV_CONNECTED, cid).res)
  return lid, cid, acc.id, port
end

describe("loop objects", function()
  it("are created, described and closed", function()
    local loop = assert(core.loop())
    assert.matches("ringline.loop", tostring(loop))
    assert.is_false(loop:closed())
    local ring = loop:ring()
    assert.equal(ring, loop:ring())
    assert.matches("loop's", tostring(ring))
    assert.is_true(ring:fd() >= 0)
    assert.has_error(function() ring:close() end)
    local st = loop:stats()
    assert.equal(0, st.conns_open)
    assert.is_true(loop:close())
    assert.is_true(loop:closed())
    assert.is_true(loop:close())
    assert.has_error(function() loop:poll(0, {}) end)
    assert.has_error(function() ring:fd() end)
    assert.matches("closed", tostring(loop))
  end)

  it("accepts options and refuses bad ones", function()
    local loop = assert(core.loop { max_conns = 64, recv_buffers = 64, recv_buffer_size = 4096,
      send_high = 1 << 16, send_low = 1 << 12, zc_threshold = 0, idle_timeout = 30, batch = 64 })
    loop:close()
    assert.has_error(function() core.loop { batch = 2 } end)
    assert.has_error(function() core.loop { max_conns = "x" } end)
    assert.has_error(function() core.loop { idle_timeout = -1 } end)
    local ok, err = core.loop { recv_buffers = 3 }
    assert.is_nil(ok)
    assert.matches("^EINVAL", err)
  end)

  it("connects, exchanges data and closes (array events)", function()
    local loop = core.loop()
    local lid, cid, sid = pair(loop)
    assert.is_true(loop:send(cid, "hello") >= 0)
    local all = pump(loop, function(a) return data_of(a, sid) == "hello" end)
    assert.is_true(loop:sendv(sid, { "wor", "ld" }) >= 0)
    all = pump(loop, function(a) return data_of(a, cid) == "world" end)
    local host, port = loop:peer(sid)
    assert.equal("127.0.0.1", host)
    assert.is_number(port)
    assert.equal(0, loop:queued(sid))
    assert.is_true(loop:conn_close(cid))
    all = pump(loop, function(a) return find(a, core.EV_EOF, sid) and find(a, core.EV_CLOSED, cid) end)
    assert.equal(0, find(all, core.EV_CLOSED, cid).res)
    loop:conn_close(sid)
    pump(loop, function(a) return find(a, core.EV_CLOSED, sid) end)
    -- stale ids: the triple, never another object
    local ok, err, no = loop:send(cid, "x")
    assert.is_nil(ok)
    assert.matches("^EBADF", err)
    assert.equal(core.EBADF, no)
    ok, err = loop:conn_close(sid)
    assert.is_nil(ok)
    assert.matches("^EBADF", err)
    loop:listener_close(lid)
    pump(loop, function(a) return find(a, core.EV_CLOSED, lid) end)
    loop:close()
  end)

  it("delivers events to a callback, raising a callback error after the batch", function()
    local loop = core.loop()
    local lid, cid, sid = pair(loop)
    loop:send(cid, "abc")
    local seen
    local deadline = core.now() + 5
    while not seen do
      loop:poll(0.05, function(ty, id, res, data)
        if ty == core.EV_DATA and id == sid then seen = data end
      end)
      assert(core.now() < deadline)
    end
    assert.equal("abc", seen)
    loop:send(cid, "boom")
    loop:conn_close(cid)
    local raised, later
    deadline = core.now() + 5
    while not raised do
      local ok, err = pcall(loop.poll, loop, 0.05, function(ty, id)
        if ty == core.EV_DATA then error("callback failed") end
        if ty == core.EV_CLOSED then later = true end
      end)
      if not ok then raised = err end
      assert(core.now() < deadline)
    end
    assert.matches("callback failed", raised)
    assert.matches("traceback", raised)
    -- no reentrancy, no closing from inside a poll callback
    loop:send(sid, "x")
    local inner
    deadline = core.now() + 5
    while not inner do
      loop:poll(0.05, function(ty)
        if ty == core.EV_DATA or ty == core.EV_CLOSED or ty == core.EV_EOF then
          inner = { pcall(loop.poll, loop, 0, {}) }
          inner[3] = pcall(loop.close, loop)
        end
      end)
      assert(core.now() < deadline)
    end
    assert.is_false(inner[1])
    assert.matches("reentrant", inner[2])
    assert.is_false(inner[3])
    loop:close()
  end)

  it("keeps unconsumed bytes for the next DATA event", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    loop:send(cid, "12345")
    local ev = {}
    local got
    local deadline = core.now() + 5
    while not got do
      local n = loop:poll(0.05, ev)
      for i = 1, n do
        if ev.type[i] == core.EV_DATA and ev.id[i] == sid then
          got = ev.data[i]
          assert.is_true(loop:consume(sid, 2)) -- used "12": "345" comes again
          local ok, err = loop:consume(sid, 99)
          assert.is_nil(ok)
          assert.matches("^EINVAL", err)
        end
      end
      assert(core.now() < deadline)
    end
    assert.equal("12345", got)
    loop:send(cid, "67")
    local all = pump(loop, function(a) return data_of(a, sid):find("67") end)
    assert.equal("34567", data_of(all, sid))
    loop:poll(0, {})
    local ok = loop:consume(sid, 0) -- no DATA event in this batch
    assert.is_nil(ok)
    loop:close()
  end)

  it("pauses, resumes and shuts down", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    assert.is_true(loop:pause(sid))
    loop:send(cid, "held")
    local all = pump(loop, function() return true end)
    pump(loop, function(a) return #a > 0 or true end)
    assert.equal("", data_of(all, sid))
    assert.is_true(loop:resume(sid))
    all = pump(loop, function(a) return data_of(a, sid) == "held" end)
    assert.is_true(loop:shutdown(cid))
    all = pump(loop, function(a) return find(a, core.EV_EOF, sid) end)
    local ok, err = loop:send(cid, "after shutdown")
    assert.is_nil(ok)
    assert.matches("^EPIPE", err)
    loop:close()
  end)

  it("echoes, forwards and frames in C", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    assert.is_true(loop:set_mode(sid, "echo"))
    loop:send(cid, "mirror")
    pump(loop, function(a) return data_of(a, cid) == "mirror" end)
    -- framed: lines
    assert.is_true(loop:set_mode(sid, "framed", "line"))
    loop:send(cid, "one\ntwo\r\nthr")
    local all = pump(loop, function(a) return data_of(a, sid) == "onetwo" end)
    local f = find(all, core.EV_FRAME, sid)
    assert.equal("one", f.data)
    assert.equal(4, f.tag)
    -- forward: a second pair; bytes its server side receives are written
    -- to sid, so they come out at our client cid
    local _, cid2, sid2 = pair(loop)
    assert.is_true(loop:set_mode(sid2, "forward", sid))
    loop:send(cid2, "relay")
    pump(loop, function(a) return data_of(a, cid) == "relay" end)
    local ok, err = loop:set_mode(sid2, "forward", sid2)
    assert.is_nil(ok)
    assert.matches("^EINVAL", err)
    assert.has_error(function() loop:set_mode(sid, "bogus") end)
    assert.has_error(function() loop:set_mode(sid, "framed", "nope") end)
    assert.has_error(function() loop:listener_set_mode(1, "forward", 2) end)
    loop:close()
  end)

  it("frames accepted connections by listener mode (RESP)", function()
    local loop = core.loop()
    local lid = loop:listen("127.0.0.1", 0)
    assert.is_true(loop:listener_set_mode(lid, "framed", "resp", 1024))
    local cid = loop:connect("127.0.0.1", loop:listener_port(lid))
    loop:send(cid, "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
    local all = pump(loop, function(a)
      local k = 0
      for _, e in ipairs(a) do if e.type == core.EV_FRAME then k = k + 1 end end
      return k == 2
    end)
    local frames = {}
    for _, e in ipairs(all) do if e.type == core.EV_FRAME then frames[#frames + 1] = e.data end end
    assert.equal("*1\r\n$4\r\nPING\r\n", frames[1])
    assert.same({ "GET", "k", n = 2 }, core.resp_parse(frames[2]))
    loop:close()
  end)

  it("sends from pinned memory (send_ref) and reports SENT", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    local b = core.buffer(4)
    b:write("bufr")
    assert.is_true(loop:send_ref(cid, "refd", 7))
    assert.is_true(loop:send_ref(cid, b, 8))
    assert.equal(1, b:inflight())
    assert.has_error(function() loop:send_ref(cid, "x", 7) end) -- tag in use
    assert.has_error(function() loop:send_ref(cid, "x", 0) end)
    local all = pump(loop, function(a) return find(a, core.EV_SENT, cid) and data_of(a, sid) == "refdbufr" end)
    assert.equal(0, b:inflight())
    assert.is_true(loop:send(cid, "", 9) >= 0) -- empty + tag: a flush marker
    all = pump(loop, function(a) return find(a, core.EV_SENT) end)
    assert.equal(9, find(all, core.EV_SENT).tag)
    loop:close()
  end)

  it("sends long strings by reference, in order, without SENT events", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    assert.has_error(function() loop:send(cid, "x", -1) end) -- tags are >= 0
    assert.has_error(function() loop:sendv(cid, { "x" }, 1, -1) end)
    local want = {}
    do
      -- made here and dropped: only the pins keep them alive in flight
      for i = 1, 40 do
        local big = string.rep(string.char(64 + i % 26), 1000 + i * 997)
        local small = "<" .. i .. ">"
        assert.is_true(loop:send(cid, big) > 0)
        assert.is_true(loop:send(cid, small) > 0)
        want[#want + 1] = big
        want[#want + 1] = small
      end
    end
    assert.is_true(loop:pinned() > 0)
    local expect = table.concat(want)
    want = nil
    collectgarbage(); collectgarbage()
    local all = pump(loop, function(a) return #data_of(a, sid) >= #expect and loop:pinned() == 0 end)
    assert.equal(expect, data_of(all, sid))
    assert.is_nil(find(all, core.EV_SENT)) -- the binding's own SENTs stay inside
    assert.equal(0, loop:pinned())
    assert.equal(0, loop:stats().sends_zc) -- zero-copy is off unless asked for
    -- a tagged long send still reports its own SENT
    assert.is_true(loop:send(cid, string.rep("t", 5000), 5) > 0)
    all = pump(loop, function(a) return find(a, core.EV_SENT) end)
    assert.equal(5, find(all, core.EV_SENT).tag)
    loop:close()
  end)

  it("lets go of by-reference strings when a connection is aborted or the loop closed", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    loop:pause(sid) -- the peer reads nothing: sends pile up in the queue
    local chunk = string.rep("z", 65536)
    for _ = 1, 128 do assert.is_true(loop:send(cid, chunk .. "") > 0) end
    assert.is_true(loop:pinned() > 0)
    assert.is_true(loop:conn_abort(cid))
    pump(loop, function(a) return find(a, core.EV_CLOSED, cid) and loop:pinned() == 0 end)
    assert.equal(0, loop:pinned())
    -- closing the loop with sends still pinned
    local loop2 = core.loop()
    local _, c2, s2 = pair(loop2)
    loop2:pause(s2)
    for _ = 1, 64 do loop2:send(c2, chunk) end
    assert.is_true(loop2:pinned() > 0)
    loop2:close()
    loop:close()
  end)

  it("speaks UDP", function()
    local loop = core.loop()
    local a = assert(loop:udp_bind("127.0.0.1", 0))
    local b = assert(loop:udp_bind("127.0.0.1", 0))
    local pb = loop:udp_port(b)
    assert.is_true(loop:udp_sendto(a, "dgram", "127.0.0.1", pb))
    local all = pump(loop, function(x) return find(x, core.EV_DATAGRAM, b) end)
    local e = find(all, core.EV_DATAGRAM, b)
    assert.equal("dgram", e.data)
    assert.equal("127.0.0.1", e.host)
    assert.equal(loop:udp_port(a), e.port)
    assert.has_error(function() loop:udp_sendto(a, "x", "nohost", 1) end)
    assert.has_error(function() loop:udp_sendto(a, "x", "127.0.0.1", 70000) end)
    assert.is_true(loop:udp_close(a))
    pump(loop, function(x) return find(x, core.EV_CLOSED, a) end)
    local ok, err = loop:udp_sendto(a, "x", "127.0.0.1", pb)
    assert.is_nil(ok)
    assert.matches("^EBADF", err)
    loop:close()
  end)

  it("runs timers", function()
    local loop = core.loop()
    local t1 = loop:timer_after(0.01, 11)
    local t2 = loop:timer_every(0.01, 22)
    local t3 = loop:timer_at(core.now() + 0.01, 33)
    local t4 = loop:timer_after(10, 44)
    assert.is_true(loop:timer_cancel(t4))
    local all = pump(loop, function(a)
      local k = 0
      for _, e in ipairs(a) do if e.type == core.EV_TIMER and e.tag == 22 then k = k + 1 end end
      return k >= 3 and find(a, core.EV_TIMER, t1) and find(a, core.EV_TIMER, t3)
    end)
    assert.equal(11, find(all, core.EV_TIMER, t1).tag)
    assert.is_nil(find(all, core.EV_TIMER, t4))
    assert.is_true(loop:timer_cancel(t2))
    local ok, err = loop:timer_cancel(t1) -- fired already
    assert.is_nil(ok)
    assert.matches("^EBADF", err)
    assert.has_error(function() loop:timer_after(-1, 1) end)
    loop:close()
  end)

  it("stops gracefully, wakes, and reports stats", function()
    local loop = core.loop()
    local _, cid, sid = pair(loop)
    loop:send(sid, "bye")
    pump(loop, function(a) return data_of(a, cid) == "bye" end)
    assert.is_true(loop:wake())
    local all = pump(loop, function(a) return find(a, core.EV_WAKE) end)
    assert.is_false(loop:stopped())
    assert.is_true(loop:stop(1))
    all = pump(loop, function(a) return find(a, core.EV_STOPPED) end)
    assert.is_true(loop:stopped())
    local st = loop:stats()
    assert.equal(1, st.accepted)
    assert.equal(1, st.connected)
    assert.equal(0, st.conns_open)
    local ok, err = loop:connect("127.0.0.1", 1)
    assert.is_nil(ok)
    assert.matches("^ESHUTDOWN", err)
    loop:close()
  end)

  it("runs C-only loops to the end", function()
    local loop = core.loop()
    local lid = loop:listen("127.0.0.1", 0)
    loop:listener_set_mode(lid, "echo")
    loop:stop(0)
    assert.is_true(loop:run())
    loop:close()
  end)

  it("reports connection failures as events and bad input as errors", function()
    local loop = core.loop()
    -- a port nobody listens on
    local lid = loop:listen("127.0.0.1", 0)
    local port = loop:listener_port(lid)
    loop:listener_close(lid)
    pump(loop, function(a) return find(a, core.EV_CLOSED, lid) end)
    local cid = loop:connect("127.0.0.1", port, 1)
    local all = pump(loop, function(a) return find(a, core.EV_CLOSED, cid) end)
    assert.equal(-core.ECONNREFUSED, find(all, core.EV_CONNECTED, cid).res)
    local ok, err = loop:listen("not-an-address", 0)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.has_error(function() loop:listen("127.0.0.1", -1) end)
    assert.has_error(function() loop:listen("127.0.0.1", 0, 0) end)
    assert.has_error(function() loop:connect("127.0.0.1", "x") end)
    assert.has_error(function() loop:send(1) end)
    assert.has_error(function() loop:sendv(1, { 1, {} }) end)
    assert.has_error(function() loop:poll(0, 5) end)
    assert.has_error(function() loop:poll(0, {}, 4) end)
    assert.has_error(function() core.loop().send({}, 1, "x") end)
    loop:close()
  end)

  it("lets go of pinned sends when the loop is collected", function()
    local b = core.buffer(8)
    do
      local loop = core.loop()
      local _, cid = pair(loop)
      loop:send_ref(cid, b, 1)
      assert.equal(1, b:inflight())
    end
    collectgarbage(); collectgarbage()
    assert.equal(0, b:inflight())
  end)
end)
