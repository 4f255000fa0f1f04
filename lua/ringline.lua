--[[
ringline — io_uring network services in Lua 5.4.

    local ringline = require "ringline"
    ringline.run(function()
      local server = assert(ringline.listen("127.0.0.1", 7000))
      while true do
        local conn = server:accept()
        ringline.spawn(function()
          while true do
            local data = conn:recv()
            if not data then break end
            conn:send(data)
          end
          conn:close()
        end)
      end
    end)

Two layers: ringline.core (C: rings, loops, framers; see docs/lua.md) and
this file, the coroutine scheduler over one C event loop per thread. C never
yields and never calls back into a coroutine: the scheduler polls a batch of
events into reused flat arrays, then resumes the tasks those events concern.

Errors: recoverable failures return nil, "ENAME: message", errno; misuse
(wrong types, using a connection after closing it, blocking outside a task)
raises. An error inside a task or a callback is reported with its traceback
(ringline.on_error) and the connections that task owns are closed; the
process keeps serving.
]]

local core = require "ringline.core"

local M = {}
M.core = core
M._VERSION = core._VERSION

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_status, co_running, co_close = coroutine.status, coroutine.running, coroutine.close
local traceback = debug.traceback
local tconcat, tunpack, tpack = table.concat, table.unpack, table.pack
local sfind, ssub = string.find, string.sub
local type, select, setmetatable, getmetatable, pcall, xpcall, error, next =
  type, select, setmetatable, getmetatable, pcall, xpcall, error, next
local now = core.now
local errstr = core.errstr

local EV_ACCEPTED, EV_CONNECTED, EV_DATA, EV_FRAME, EV_EOF = 1, 2, 3, 4, 5
local EV_SENT, EV_WRITABLE, EV_CLOSED, EV_TIMER, EV_DATAGRAM = 6, 7, 8, 9, 10
local EV_WAKE, EV_SIGNAL, EV_ERROR, EV_STOPPED = 11, 12, 13, 14
assert(core.EV_DATA == EV_DATA and core.EV_STOPPED == EV_STOPPED)

local ETIMEDOUT, EPIPE, ECANCELED, EBADF, ECONNRESET =
  core.ETIMEDOUT, core.EPIPE, core.ECANCELED, core.EBADF, core.ECONNRESET
local EMSGSIZE, EPROTO, ESHUTDOWN = core.EMSGSIZE, core.EPROTO, core.ESHUTDOWN

local function fail(e)
  if e < 0 then e = -e end
  return nil, errstr(e), e
end
-- End of stream: recv* return nil, "EOF: end of stream", 0.
local EOF_MSG = "EOF: end of stream"
M.EOF = EOF_MSG

local KIND_CONN, KIND_LISTENER, KIND_UDP, KIND_TIMER = 1, 2, 3, 4
local function id_kind(id) return (id >> 56) & 0xF end

-- ---------------------------------------------------------------------------
-- Error reporting
-- ---------------------------------------------------------------------------

local function default_reporter(what, err)
  io.stderr:write("ringline: error in ", what, ": ", tostring(err), "\n")
  io.stderr:flush()
end
local reporter = default_reporter

--- ringline.on_error(fn): fn(what, message_with_traceback) receives script
--- errors from tasks and callbacks (default: print to stderr). nil restores.
function M.on_error(fn)
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'on_error' (function expected)", 2)
  end
  reporter = fn or default_reporter
end

local function report(what, err)
  local ok, e = pcall(reporter, what, err)
  if not ok then default_reporter("error handler", e) end
end

-- ---------------------------------------------------------------------------
-- The scheduler (one per thread / lua_State, alive during ringline.run)
-- ---------------------------------------------------------------------------

local S = nil -- the running scheduler

local Conn, Server, Udp, Timer = {}, {}, {}, {}
Conn.__index, Server.__index, Udp.__index, Timer.__index = Conn, Server, Udp, Timer
-- Defaults of a connection's state, read through __index: a new connection
-- stores only what differs (its id and callback), so an idle one costs a
-- 2-slot table instead of 16 slots plus a receive-queue table (rq is made
-- on first use, see rq_push). Conn.s is the running scheduler (one run per
-- Lua state); when a run ends its connections get their own s (see run),
-- so they still tell that their loop has ended.
Conn.rh, Conn.rt, Conn.rlen = 1, 0, 0
Conn.eof, Conn.closed, Conn.closing = false, false, false
Conn.rmax = 4 << 20 -- set from opts.recv_max by run()

local function sched(what)
  local s = S
  if not s then
    error("ringline: " .. what .. " must be called inside ringline.run()", 3)
  end
  return s
end

-- the task currently running, or a misuse error
local function current_task(s, what)
  local co = s.current
  if not co then
    error("ringline: " .. what .. " blocks and must be called from a task "
      .. "(the function given to ringline.run or ringline.spawn), not from a callback", 3)
  end
  return co
end

-- ---- timer heap: {deadline, co, seq, obj, field} or sleep entries ----

local function heap_push(h, e)
  local n = h.n + 1
  h.n = n
  local d = e[1]
  while n > 1 do
    local p = n // 2
    local pe = h[p]
    if pe[1] <= d then break end
    h[n] = pe
    n = p
  end
  h[n] = e
end

local function heap_pop(h)
  local n = h.n
  if n == 0 then return nil end
  local top = h[1]
  local last = h[n]
  h[n] = nil
  n = n - 1
  h.n = n
  if n > 0 then
    local i, d = 1, last[1]
    while true do
      local l = i * 2
      if l > n then break end
      local r = l + 1
      local c = (r <= n and h[r][1] < h[l][1]) and r or l
      if h[c][1] >= d then break end
      h[i] = h[c]
      i = c
    end
    h[i] = last
  end
  return top
end

-- ---- tasks ----

local resume -- forward

local function task_finished(s, co)
  if s.tasks[co] then
    s.tasks[co] = nil
    s.ntasks = s.ntasks - 1
  end
end

local function close_owned(s, co)
  for _, c in pairs(s.conns) do
    if c.owner == co and not c.closed and not c.closing then
      c:close()
    end
  end
end

local function task_failed(s, co, err)
  report("task " .. tostring(co), traceback(co, tostring(err)))
  co_close(co) -- runs its pending to-be-closed variables
  task_finished(s, co)
  close_owned(s, co)
end

-- A task's body returns DONE when it ends, so finishing is told apart from
-- yielding without asking coroutine.status.
local DONE = setmetatable({}, { __name = "ringline.done" })

resume = function(s, co, ...)
  local prev = s.current
  s.current = co
  local ok, r = co_resume(co, ...)
  s.current = prev
  if r == DONE then
    task_finished(s, co)
  elseif not ok then
    task_failed(s, co, r)
  end
end

-- Wake co with values: at once from the scheduler, queued from inside a task.
local function wake(s, co, ...)
  if s.current == nil then
    return resume(s, co, ...)
  end
  local q = s.ready
  local n = q.n + 1
  q.n = n
  q[n] = co
  s.readyargs[n] = select("#", ...) > 0 and tpack(...) or false
end

-- Block the running task on obj[field] until woken, or until deadline
-- (absolute, seconds; nil: none). Returns what the waker passed, or
-- nil, "ETIMEDOUT: ...", errno on timeout. obj.wseq numbers the waits on
-- obj, so a timeout left in the heap by an earlier wait never cuts a later
-- one.
local function block(s, co, obj, field, deadline)
  obj[field] = co
  local seq = (obj.wseq or 0) + 1
  obj.wseq = seq
  if s.ntd > 0 then -- inside ringline.with_timeout somewhere
    local tdl = s.tdeadline[co]
    if tdl and (not deadline or tdl < deadline) then deadline = tdl end
  end
  if deadline then
    heap_push(s.heap, { deadline, co, seq, obj, field })
  end
  return co_yield()
end

local function deadline_of(obj, timeout)
  local t = timeout
  if t == nil then t = obj and obj.timeout end
  if t == nil or t < 0 then return nil end
  return now() + t
end

-- ---- object registration ----

local weak_v = { __mode = "v" }

local function new_conn(s, id, owner)
  -- receive queue: rq[rh..rt] (strings, rlen bytes; rq made on first
  -- use), frames queue fq; both absent until needed
  local c = setmetatable({ id = id, owner = owner }, Conn)
  s.conns[id] = c
  return c
end

local function pin(s, obj) s.pinned[obj.id] = obj end
local function unpin(s, obj) s.pinned[obj.id] = nil end

-- ---- dispatch of one batch ----

local function callback_error(s, c, what, err)
  report(what, err)
  if c and not c.closed and not c.closing then
    c.closing = true
    s.loop:conn_close(c.id)
  end
end

local function rq_push(c, data)
  local t = c.rt + 1
  c.rt = t
  local q = c.rq
  if not q then
    q = {}
    c.rq = q
  end
  q[t] = data
  c.rlen = c.rlen + #data
end

local function on_data(s, id, data)
  local c = s.conns[id]
  if not c then
    s.loop:conn_close(id) -- nobody holds it any more
    return
  end
  if c.closing then return end -- closed by the script: late bytes are dropped
  local f = c.data_cb
  if f then
    local ok, r = xpcall(f, traceback, c, data)
    if not ok then
      callback_error(s, c, "on_data callback", r)
    elseif type(r) == "number" and r < #data and not c.closing then
      s.loop:consume(id, r) -- the rest comes again with the next bytes
    end
    return
  end
  local mode = c.mode
  if mode then
    -- handed to C while this batch was being dispatched: the batch's bytes
    -- are still ours to pass on
    local to = mode == "echo" and c or c.fwd_to
    if to and not to.closed and not to.closing then s.loop:send(to.id, data) end
    return
  end
  rq_push(c, data)
  local w = c.waiter
  if w then
    c.waiter = nil
    wake(s, w, true)
  end
  if c.rlen > c.rmax and not c.rpaused then
    c.rpaused = true
    s.loop:pause(id)
  end
end

local function on_frame(s, id, payload)
  local c = s.conns[id]
  if not c then
    s.loop:conn_close(id)
    return
  end
  local f = c.data_cb
  if f then
    local ok, err = xpcall(f, traceback, c, payload)
    if not ok then callback_error(s, c, "on_data callback", err) end
    return
  end
  local q = c.fq
  if not q then
    q = { h = 1, t = 0 }
    c.fq = q
  end
  q.t = q.t + 1
  q[q.t] = payload
  local w = c.waiter
  if w then
    c.waiter = nil
    wake(s, w, true)
  end
end

local function on_accepted(s, id, lid)
  local srv = s.listeners[lid]
  if not srv or srv.closed then
    s.loop:conn_close(id)
    return
  end
  if srv.c_mode then return end -- echo in C: no Lua object needed
  local c = new_conn(s, id, nil)
  -- callbacks are copied: a connection must not keep its server alive
  c.on_close, c.on_eof = srv.on_close, srv.on_eof
  c.framer = srv.framer
  c.timeout = srv.conn_timeout
  if srv.on_data_fn then
    c.data_cb = srv.on_data_fn
    pin(s, c)
    local f = srv.on_connect
    if f then
      local ok, err = xpcall(f, traceback, c)
      if not ok then callback_error(s, c, "on_connect callback", err) end
    end
  elseif srv.handler then
    M.spawn(srv.handler, c)
  else
    local w = srv.waiter
    if w then
      srv.waiter = nil
      c.owner = w
      wake(s, w, c)
    else
      local b = srv.backlog
      b.t = b.t + 1
      b[b.t] = c -- queued for accept(): the server holds it
    end
  end
end

local function wake_all(s, obj)
  local w = obj.waiter
  if w then
    obj.waiter = nil
    wake(s, w, true)
  end
  w = obj.wwaiter
  if w then
    obj.wwaiter = nil
    wake(s, w, true)
  end
end

local function on_closed(s, id, res)
  local kind = id_kind(id)
  if kind == KIND_CONN then
    local c = s.conns[id]
    s.conns[id] = nil
    s.pinned[id] = nil
    if not c then return end
    c.closed = true
    c.close_res = res
    wake_all(s, c)
    if c.flushers then
      for tag, w in pairs(c.flushers) do
        if type(w) == "thread" then
          c.flushers[tag] = nil
          wake(s, w, true)
        end
      end
    end
    local f = c.on_close
    if f then
      local ok, err = xpcall(f, traceback, c, res ~= 0 and errstr(res) or nil)
      if not ok then report("on_close callback", err) end
    end
  elseif kind == KIND_LISTENER then
    local srv = s.listeners[id]
    s.listeners[id] = nil
    s.pinned[id] = nil
    if srv then
      srv.closed = true
      wake_all(s, srv)
    end
  elseif kind == KIND_UDP then
    local u = s.udps[id]
    s.udps[id] = nil
    s.pinned[id] = nil
    if u then
      u.closed = true
      wake_all(s, u)
    end
  end
end

local function on_eof(s, id)
  local c = s.conns[id]
  if not c then return end
  c.eof = true
  if c.data_cb then
    local f = c.on_eof
    if f then
      local ok, err = xpcall(f, traceback, c)
      if not ok then callback_error(s, c, "on_eof callback", err) end
    elseif not c.closing then
      c:close() -- callback style: the peer is done, so are we
    end
    return
  end
  wake_all(s, c)
end

local function on_timer(s, tag)
  local t = s.timers[tag]
  if not t then return end
  if not t.every then
    s.timers[tag] = nil
    t.done = true
  end
  M.spawn(t.fn, t)
end

local function on_datagram(s, id, data, host, port)
  local u = s.udps[id]
  if not u then return end
  local f = u.dgram_cb
  if f then
    local ok, err = xpcall(f, traceback, u, data, host, port)
    if not ok then report("on_datagram callback", err) end
    return
  end
  local q = u.q
  local t = q.t + 1
  q.t = t
  q[t] = { data, host, port }
  if t - q.h >= u.qmax then -- drop the oldest: datagrams are lossy anyway
    q[q.h] = nil
    q.h = q.h + 1
  end
  local w = u.waiter
  if w then
    u.waiter = nil
    wake(s, w, true)
  end
end

-- Events i0..n of the batch. on_data callbacks run unprotected here (an
-- xpcall per event cost about 40 ns, a tenth of a pipelined message's
-- budget): dispatch() protects the whole batch, and s.dcb names the event
-- whose callback is running, so an error is still that connection's alone.
local function dispatch_from(s, i0, n)
  local ev = s.ev
  local T, I, R, D = ev.type, ev.id, ev.res, ev.data
  local conns = s.conns
  for i = i0, n do
    local t = T[i]
    if t == EV_DATA then
      -- the two hot paths inline: a callback, or a task waiting in recv()
      local c = conns[I[i]]
      local f = c and not c.closing and c.data_cb
      if f then
        local data = D[i]
        s.dcb = i
        local r = f(c, data)
        s.dcb = false
        if r and type(r) == "number" and r < #data and not c.closing then
          s.loop:consume(c.id, r) -- the rest comes again with the next bytes
        end
      elseif c and c.want_any and c.rlen == 0 and not c.closing then
        local w = c.waiter
        c.waiter, c.want_any = nil, false
        resume(s, w, D[i])
      else
        on_data(s, I[i], D[i])
      end
    elseif t == EV_FRAME then
      on_frame(s, I[i], D[i])
    elseif t == EV_WRITABLE then
      local c = s.conns[I[i]]
      if c then
        local w = c.wwaiter
        if w then
          c.wwaiter = nil
          wake(s, w, true)
        end
      end
    elseif t == EV_SENT then
      local c = s.conns[I[i]]
      if c then
        local tag = ev.tag[i]
        local w = c.flushers and c.flushers[tag]
        if w then
          c.flushers[tag] = nil
          wake(s, w, R[i])
        end
      end
    elseif t == EV_ACCEPTED then
      on_accepted(s, I[i], ev.id2[i])
    elseif t == EV_CLOSED then
      on_closed(s, I[i], R[i])
    elseif t == EV_EOF then
      on_eof(s, I[i])
    elseif t == EV_CONNECTED then
      local c = s.conns[I[i]]
      if c then
        c.connected = R[i] == 0
        c.connect_res = R[i]
        local w = c.wwaiter
        if w then
          c.wwaiter = nil
          wake(s, w, true)
        end
      end
    elseif t == EV_TIMER then
      on_timer(s, ev.tag[i])
    elseif t == EV_DATAGRAM then
      on_datagram(s, I[i], D[i], ev.host[i], ev.port[i])
    elseif t == EV_SIGNAL then
      s.signal = R[i]
      if s.on_signal then
        local ok, err = xpcall(s.on_signal, traceback, R[i])
        if not ok then report("on_signal callback", err) end
      end
      M.stop()
    elseif t == EV_WAKE then
      if s.worker_id > 0 and core.workers_stopping() then M.stop() end
    elseif t == EV_ERROR then
      s.errors = s.errors + 1
    elseif t == EV_STOPPED then
      s.stopped = true
    end
  end
end

local function dispatch(s, n)
  local i = 1
  while true do
    s.dcb = false
    local ok, err = xpcall(dispatch_from, traceback, s, i, n)
    if ok then return end
    local k = s.dcb
    if not k then error(err, 0) end -- not a callback's: a bug, it ends the run
    s.dcb = false
    callback_error(s, s.conns[s.ev.id[k]], "on_data callback", err)
    if k >= n then return end
    i = k + 1
  end
end

local function run_ready(s)
  local q, args = s.ready, s.readyargs
  local i = 1
  while i <= q.n do
    local co, a = q[i], args[i]
    q[i], args[i] = nil, nil
    if s.tasks[co] then
      if a then resume(s, co, tunpack(a, 1, a.n)) else resume(s, co) end
    end
    i = i + 1
  end
  q.n = 0
end

local function expire(s)
  local h = s.heap
  local t = now()
  while h.n > 0 and h[1][1] <= t do
    local e = heap_pop(h)
    local co, seq, obj, field = e[2], e[3], e[4], e[5]
    if obj then
      if obj[field] == co and obj.wseq == seq then
        obj[field] = nil
        wake(s, co, fail(ETIMEDOUT))
      end
    elseif s.sleeping[co] == e then
      s.sleeping[co] = nil
      wake(s, co, true)
    end
  end
end

local function alive(s)
  return s.ntasks > 0 or next(s.pinned) ~= nil or next(s.timers) ~= nil
end

local function gc_pending(s)
  local g = s.gc_close
  for i = 1, #g do
    local e = g[i]
    g[i] = nil
    local kind = id_kind(e)
    if kind == KIND_CONN then s.loop:conn_close(e)
    elseif kind == KIND_LISTENER then s.loop:listener_close(e)
    elseif kind == KIND_UDP then s.loop:udp_close(e)
    end
  end
end

local function mainloop(s)
  local loop, ev = s.loop, s.ev
  while true do
    if s.ready.n > 0 then run_ready(s) end
    if #s.gc_close > 0 then gc_pending(s) end
    if s.stopped then break end
    if not s.stopping and not alive(s) then
      M.stop()
    end
    local timeout = -1
    if s.ready.n > 0 then
      timeout = 0
    elseif s.heap.n > 0 then
      timeout = s.heap[1][1] - now()
      if timeout < 0 then timeout = 0 end
    end
    local n, err = loop:poll(timeout, ev)
    if not n then
      report("loop:poll", err)
      break
    end
    if n > 0 then dispatch(s, n) end
    if s.heap.n > 0 then expire(s) end
  end
end

-- ---------------------------------------------------------------------------
-- run / spawn / sleep / stop
-- ---------------------------------------------------------------------------

local function script_args()
  local a = {}
  if type(arg) == "table" then
    for i = 1, #arg do a[i] = tostring(arg[i]) end
  end
  return a
end

--- ringline.run(fn [, opts]) -> true [, signal] | nil, err
--- Runs fn as the first task on a new event loop and serves until every task
--- has finished and nothing is left to serve, or until ringline.stop() /
--- SIGINT / SIGTERM (graceful: listeners close, send queues drain).
function M.run(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'run' (function expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'run' (table expected)", 2)
  end
  if S then error("ringline.run: already running", 2) end
  opts = opts or {}
  local loop, err, no = core.loop(opts)
  if not loop then return nil, err, no end
  local wid = core.worker_id()
  local workers = opts.workers or 1
  if workers == "auto" then workers = core.cpu_count() end
  if type(workers) ~= "number" or workers < 1 or workers > 256 then
    loop:close()
    error("ringline.run: option 'workers' must be 1..256 or \"auto\"", 2)
  end
  local s = {
    loop = loop,
    ev = {},
    conns = setmetatable({}, weak_v),
    listeners = setmetatable({}, weak_v),
    udps = setmetatable({}, weak_v),
    pinned = {},
    timers = {},
    tasks = {},
    ntasks = 0,
    ready = { n = 0 },
    readyargs = {},
    heap = { n = 0 },
    sleeping = setmetatable({}, { __mode = "k" }),
    tdeadline = setmetatable({}, { __mode = "k" }),
    ntd = 0,
    gc_close = {},
    current = nil,
    stopping = false,
    stopped = false,
    errors = 0,
    next_tag = 0,
    dcb = false, -- index of the event whose on_data callback runs (dispatch)
    worker_id = wid,
    reuseport = workers > 1 or wid > 0 or opts.reuseport == true,
    stop_deadline = opts.stop_deadline or 5,
    high = opts.send_high or (1 << 20),
    rmax = opts.recv_max or (4 << 20),
    on_signal = opts.on_signal,
  }
  Conn.rmax = s.rmax -- every connection's default (one run per Lua state)
  Conn.s = s
  if wid == 0 and opts.signals ~= false then
    local ok, e2 = loop:handle_signals(s.stop_deadline)
    if not ok then
      loop:close()
      return nil, e2
    end
  end
  local started = 0
  if wid == 0 and workers > 1 then
    local script = opts.script or (type(arg) == "table" and arg[0])
    if not script then
      loop:close()
      error("ringline.run: workers need the script path (arg[0] or opts.script)", 2)
    end
    local n, e3 = core.workers_start(workers - 1, script, opts.args or script_args(),
      package.path, package.cpath, opts.pin ~= false)
    if not n then
      loop:close()
      return nil, e3
    end
    started = n
    if opts.pin ~= false then core.thread_pin(0) end
  end
  if wid > 0 then
    if core.worker_attach(loop) then loop:stop(s.stop_deadline) ; s.stopping = true end
  end
  S = s
  M.spawn(fn)
  local ok, e4 = xpcall(mainloop, traceback, s)
  S = nil
  -- connections still referenced keep this (ended) scheduler, not the next
  -- run's through the Conn.s default
  for _, c in pairs(s.conns) do rawset(c, "s", s) end
  Conn.s = nil
  if started > 0 or (wid == 0 and workers > 1) then
    core.workers_stop()
    core.workers_join()
  end
  -- tasks still suspended (sleeping, or blocked when the stop came) are
  -- dropped; objects become unusable
  loop:close()
  if not ok then
    report("ringline.run", e4)
    return nil, e4
  end
  return true, s.signal
end

--- ringline.spawn(fn, ...) -> co: run fn(...) as a new task. Connections
--- among the arguments become owned by it (closed if it fails).
function M.spawn(fn, ...)
  local s = sched("ringline.spawn")
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected)", 2)
  end
  local co = co_create(function(...)
    fn(...)
    return DONE
  end)
  s.tasks[co] = true
  s.ntasks = s.ntasks + 1
  for i = 1, select("#", ...) do
    local a = select(i, ...)
    if getmetatable(a) == Conn then a.owner = co end
  end
  local q = s.ready
  local n = q.n + 1
  q.n = n
  q[n] = co
  s.readyargs[n] = select("#", ...) > 0 and tpack(...) or false
  return co
end

--- ringline.sleep(seconds)
function M.sleep(sec)
  local s = sched("ringline.sleep")
  local co = current_task(s, "ringline.sleep")
  if type(sec) ~= "number" or sec ~= sec then
    error("bad argument #1 to 'sleep' (number expected)", 2)
  end
  if sec < 0 then sec = 0 end
  local e = { now() + sec, co }
  s.sleeping[co] = e
  heap_push(s.heap, e)
  co_yield()
  return true
end

--- ringline.yield(): let other ready tasks run.
function M.yield()
  local s = sched("ringline.yield")
  local co = current_task(s, "ringline.yield")
  return M.sleep(0)
end

--- ringline.with_timeout(seconds, fn, ...) -> fn's results. Any blocking
--- call inside fn (this task only) that would pass the deadline returns
--- nil, "ETIMEDOUT: ...", errno instead.
function M.with_timeout(sec, fn, ...)
  local s = sched("ringline.with_timeout")
  local co = current_task(s, "ringline.with_timeout")
  if type(sec) ~= "number" then error("bad argument #1 to 'with_timeout' (number expected)", 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'with_timeout' (function expected)", 2) end
  local prev = s.tdeadline[co]
  local dl = now() + sec
  if prev and prev < dl then dl = prev end
  s.tdeadline[co] = dl
  s.ntd = s.ntd + 1
  local r = tpack(pcall(fn, ...))
  s.ntd = s.ntd - 1
  s.tdeadline[co] = prev
  if not r[1] then error(r[2], 0) end
  return tunpack(r, 2, r.n)
end

--- ringline.stop([deadline_seconds]): graceful stop of this thread's loop
--- (and of the worker threads, from the main thread).
function M.stop(deadline)
  local s = S
  if not s then return false end
  if s.stopping then return true end
  s.stopping = true
  if s.worker_id == 0 then core.workers_stop() end
  s.loop:stop(deadline or s.stop_deadline)
  -- wake accept/recv waiters now: their objects are closing
  return true
end

function M.now() return now() end
--- the number of live tasks
function M.tasks() return S and S.ntasks or 0 end
function M.running() return S ~= nil end
function M.worker_id() return core.worker_id() end
function M.cpu_count() return core.cpu_count() end
function M.loop() return sched("ringline.loop").loop end
function M.stats() return sched("ringline.stats").loop:stats() end
--- the signal number that stopped the loop, if any
function M.signal() return S and S.signal end

local function norm_host(host)
  if host == nil or host == "*" then return "0.0.0.0" end
  if host == "localhost" then return "127.0.0.1" end
  if type(host) ~= "string" then return nil end
  return host
end

-- host/port arguments of listen/connect/udp: a normalised host, or a Lua
-- error blaming the caller of fname (level 3)
local function check_endpoint(host, port, fname, min_port)
  local h = norm_host(host)
  if not h then error(("bad argument #1 to '%s' (string expected)"):format(fname), 3) end
  if type(port) ~= "number" or port < min_port or port > 65535 or port % 1 ~= 0 then
    error(("bad argument #2 to '%s' (port %d..65535 expected)"):format(fname, min_port), 3)
  end
  return h
end

local framer_names = { line = true, u16 = true, u32 = true, resp = true, http = true }
local function check_framer(f, argn, fname)
  if f == nil then return nil end
  if not framer_names[f] then
    error(("bad argument #%d to '%s' (framer must be one of line, u16, u32, resp, http)")
      :format(argn, fname), 3)
  end
  return f
end

-- ---------------------------------------------------------------------------
-- Servers
-- ---------------------------------------------------------------------------

--- ringline.listen(host, port [, opts]) -> server | nil, err, errno
--- opts: backlog, reuseport, framer ("line"|"u16"|"u32"|"resp"), max_frame,
---   handler = function(conn) (a task per connection),
---   on_data = function(conn, data) (callback style), echo = true (C echo),
---   timeout (default for the connections' blocking calls)
function M.listen(host, port, opts)
  local s = sched("ringline.listen")
  local h = check_endpoint(host, port, "listen", 0)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'listen' (table expected)", 2)
  end
  opts = opts or {}
  local framer = check_framer(opts.framer, 3, "listen")
  if framer == "http" then
    error("bad argument #3 to 'listen' (framer 'http' is read with conn:recv_frame('http'))", 2)
  end
  local reuse = opts.reuseport
  if reuse == nil then reuse = s.reuseport end
  local id, err, no = s.loop:listen(h, port, opts.backlog or 1024, reuse)
  if not id then return nil, err, no end
  local srv = setmetatable({
    s = s, id = id, closed = false,
    backlog = { h = 1, t = 0 },
    framer = framer, conn_timeout = opts.timeout,
  }, Server)
  s.listeners[id] = srv
  if framer then
    s.loop:listener_set_mode(id, "framed", framer, opts.max_frame or 0)
  end
  if opts.echo then srv:echo() end
  if opts.handler then srv:serve(opts.handler) end
  if opts.on_data then srv:on_data(opts.on_data) end
  return srv
end

local function check_server(self, fname)
  if getmetatable(self) ~= Server then
    error("bad argument #1 to '" .. fname .. "' (server expected)", 3)
  end
  if self.closed or self.closing then error("ringline: server is closed", 3) end
  return self.s
end

--- server:accept([timeout]) -> conn | nil, err, errno
function Server:accept(timeout)
  local s = check_server(self, "accept")
  local co = current_task(s, "server:accept()")
  local dl = deadline_of(nil, timeout)
  while true do
    local b = self.backlog
    if b.h <= b.t then
      local c = b[b.h]
      b[b.h] = nil
      b.h = b.h + 1
      if b.h > b.t then b.h, b.t = 1, 0 end
      if not c.closed then
        c.owner = co
        return c
      end
    else
      if self.closed or s.stopping then return fail(ECANCELED) end
      if self.waiter then error("ringline: another task is already in server:accept()", 2) end
      local r, err, no = block(s, co, self, "waiter", dl)
      if r == nil then return nil, err, no end
      if r ~= true then return r end -- handed over directly by on_accepted
    end
  end
end

--- server:serve(handler): handler(conn) runs as a task per connection.
function Server:serve(handler)
  local s = check_server(self, "serve")
  if type(handler) ~= "function" then error("bad argument #1 to 'serve' (function expected)", 2) end
  self.handler = handler
  pin(s, self)
  return self
end

--- server:on_data(fn): callback style, the leanest path. fn(conn, data) is
--- called for every chunk (or frame, with a framer) of every connection;
--- returning a number n < #data keeps the rest for the next call. Optional
--- fields server.on_connect(conn), server.on_eof(conn) (default: close),
--- server.on_close(conn, err).
function Server:on_data(fn)
  local s = check_server(self, "on_data")
  if type(fn) ~= "function" then error("bad argument #1 to 'on_data' (function expected)", 2) end
  self.on_data_fn = fn
  pin(s, self)
  return self
end

--- server:echo(): accepted connections echo in C (no Lua per byte).
function Server:echo()
  local s = check_server(self, "echo")
  local ok, err, no = s.loop:listener_set_mode(self.id, "echo")
  if not ok then return nil, err, no end
  self.c_mode = "echo"
  pin(s, self)
  return self
end

function Server:port()
  local s = check_server(self, "port")
  return s.loop:listener_port(self.id)
end

--- server:close(): stop listening. Accepted connections live on; queued,
--- not yet accepted ones are closed.
function Server:close()
  if self.closed or self.closing then return true end
  self.closing = true
  local s = self.s
  if s.loop:closed() then self.closed = true return true end
  s.loop:listener_close(self.id)
  s.pinned[self.id] = nil
  local b = self.backlog
  for i = b.h, b.t do
    local c = b[i]
    b[i] = nil
    if c then c:close() end
  end
  b.h, b.t = 1, 0
  local w = self.waiter
  if w then
    self.waiter = nil
    wake(s, w, fail(ECANCELED))
  end
  return true
end

Server.__close = Server.close
function Server.__gc(self)
  if not self.closed and not self.closing and self.s and not self.s.loop:closed() then
    local g = self.s.gc_close -- closing is deferred out of the finalizer
    g[#g + 1] = self.id
    local b = self.backlog
    for i = b.h, b.t do
      if b[i] then g[#g + 1] = b[i].id end
    end
  end
end
function Server.__tostring(self)
  return ("ringline.server: %s%s"):format(self.id, self.closed and " (closed)" or "")
end

-- ---------------------------------------------------------------------------
-- Connections
-- ---------------------------------------------------------------------------

--- ringline.connect(host, port [, opts]) -> conn | nil, err, errno
--- opts: timeout (connect timeout, seconds), framer, max_frame
function M.connect(host, port, opts)
  local s = sched("ringline.connect")
  local co = current_task(s, "ringline.connect()")
  local h = check_endpoint(host, port, "connect", 1)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #3 to 'connect' (table expected)", 2)
  end
  opts = opts or {}
  local framer = check_framer(opts.framer, 3, "connect")
  if h == "0.0.0.0" then h = "127.0.0.1" end
  local t = opts.timeout
  local id, err, no = s.loop:connect(h, port, t and t > 0 and t or 0)
  if not id then return nil, err, no end
  local c = new_conn(s, id, co)
  if framer and framer ~= "http" then
    s.loop:set_mode(id, "framed", framer, opts.max_frame or 0)
    c.framer = framer
  end
  while c.connected == nil and not c.closed do
    local r, e2, n2 = block(s, co, c, "wwaiter", nil)
    if r == nil then return nil, e2, n2 end
  end
  if not c.connected then
    local res = c.connect_res or c.close_res or ECONNRESET
    return fail(res ~= 0 and res or ECONNRESET)
  end
  c.timeout = opts.io_timeout
  return c
end

local function check_conn(self, fname)
  if getmetatable(self) ~= Conn then
    error("bad argument #1 to '" .. fname .. "' (connection expected)", 3)
  end
  if self.closing then
    error("ringline: " .. fname .. " on a closed connection", 3)
  end
  local s = self.s
  if s ~= S then -- S is cleared when run() ends and its loop closes
    error("ringline: " .. fname .. " on a connection whose loop has ended", 3)
  end
  return s
end

local function rq_take_all(c)
  local h, t = c.rh, c.rt
  if t < h then return "" end -- empty (maybe never used: no rq)
  local rq = c.rq
  local data
  if h == t then
    data = rq[h]
    rq[h] = nil
  else
    data = tconcat(rq, "", h, t)
    for i = h, t do rq[i] = nil end
  end
  c.rh, c.rt, c.rlen = 1, 0, 0
  return data
end

-- take exactly n bytes (n <= rlen)
local function rq_take(c, n)
  if n == c.rlen then return rq_take_all(c) end
  local rq = c.rq
  local h = c.rh
  local first = rq[h]
  local data
  if #first == n then
    data = first
    rq[h] = nil
    c.rh = h + 1
  elseif #first > n then
    data = ssub(first, 1, n)
    rq[h] = ssub(first, n + 1)
  else
    local parts, got = {}, 0
    while got < n do
      local p = rq[h]
      local need = n - got
      if #p <= need then
        parts[#parts + 1] = p
        got = got + #p
        rq[h] = nil
        h = h + 1
      else
        parts[#parts + 1] = ssub(p, 1, need)
        rq[h] = ssub(p, need + 1)
        got = n
      end
    end
    c.rh = h
    data = tconcat(parts)
  end
  c.rlen = c.rlen - n
  return data
end

local function after_take(c)
  if c.rpaused and c.rlen < c.rmax // 2 and not c.closed then
    c.rpaused = false
    c.s.loop:resume(c.id)
  end
end

-- the end-of-stream / closed result for a read that found nothing
local function read_end(c)
  if c.closed and c.close_res and c.close_res < 0 then return fail(-c.close_res) end
  return nil, EOF_MSG, 0
end

local function wait_readable(s, c, co, dl)
  if c.waiter then
    error("ringline: another task is already reading this connection", 3)
  end
  return block(s, co, c, "waiter", dl)
end

local function leave_framed(s, c)
  if c.framer and not c.framer_lua then
    if c.fq and c.fq.h <= c.fq.t then
      error("ringline: frames are queued; read them with conn:recv_frame() first", 3)
    end
    s.loop:set_mode(c.id, "events")
    c.framer = nil
  end
end

--- conn:recv([max [, timeout]]) -> data | nil, err, errno
--- The bytes available now (waiting for some if there are none), at most
--- max. At end of stream: nil, "EOF: end of stream", 0.
function Conn:recv(max, timeout)
  local s = self.s
  if s ~= S or self.closing or getmetatable(self) ~= Conn then check_conn(self, "conn:recv()") end
  local co = s.current
  if not co then current_task(s, "conn:recv()") end
  if max ~= nil and (type(max) ~= "number" or max < 1) then
    error("bad argument #1 to 'recv' (positive number expected)", 2)
  end
  if self.mode then error("ringline: conn:recv() on a connection in " .. self.mode .. " mode", 2) end
  if self.framer then leave_framed(s, self) end
  if self.rlen == 0 then
    if self.eof or self.closed then return read_end(self) end
    if self.waiter then error("ringline: another task is already reading this connection", 2) end
    local dl
    if timeout or self.timeout then dl = deadline_of(self, timeout) end
    self.want_any = max == nil -- the next chunk may come straight to us
    local r, err, no = block(s, co, self, "waiter", dl)
    self.want_any = false
    if r == nil then return nil, err, no end
    if r ~= true then return r end -- handed over by the dispatcher
    while self.rlen == 0 do
      if self.eof or self.closed then return read_end(self) end
      r, err, no = wait_readable(s, self, co, dl)
      if r == nil then return nil, err, no end
      if r ~= true then return r end
    end
  end
  local data
  if max and max < self.rlen then data = rq_take(self, max) else data = rq_take_all(self) end
  if self.rpaused then after_take(self) end
  return data
end

--- conn:recv_exact(n [, timeout]) -> exactly n bytes | nil, err, errno
function Conn:recv_exact(n, timeout)
  local s = check_conn(self, "conn:recv_exact()")
  local co = current_task(s, "conn:recv_exact()")
  if self.mode then error("ringline: conn:recv_exact() on a connection in " .. self.mode .. " mode", 2) end
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error("bad argument #1 to 'recv_exact' (non-negative integer expected)", 2)
  end
  if n == 0 then return "" end
  leave_framed(s, self)
  local dl
  while self.rlen < n do
    if self.eof or self.closed then return read_end(self) end
    if n > self.rmax and self.rpaused then -- a large read: let bytes in
      self.rpaused = false
      s.loop:resume(self.id)
    end
    dl = dl or deadline_of(self, timeout)
    local r, err, no = wait_readable(s, self, co, dl)
    if r == nil then return nil, err, no end
  end
  local data = rq_take(self, n)
  after_take(self)
  return data
end

--- conn:recv_line([timeout [, max]]) -> line without "\n"/"\r\n"
--- At end of stream, a last line without newline is returned; then EOF.
function Conn:recv_line(timeout, max)
  local s = check_conn(self, "conn:recv_line()")
  local co = current_task(s, "conn:recv_line()")
  if self.mode then error("ringline: conn:recv_line() on a connection in " .. self.mode .. " mode", 2) end
  leave_framed(s, self)
  max = max or self.max_line or (1 << 20)
  local dl
  local scanned = 0 -- bytes of the queue known to hold no newline
  local k = self.rh
  while true do
    local rq = self.rq
    while k <= self.rt do
      local chunk = rq[k]
      local p = sfind(chunk, "\n", 1, true)
      if p then
        local line = rq_take(self, scanned + p)
        after_take(self)
        local e = #line - 1
        if e > 0 and line:byte(e) == 13 then e = e - 1 end
        return ssub(line, 1, e)
      end
      scanned = scanned + #chunk
      k = k + 1
    end
    if scanned > max then return fail(EMSGSIZE) end
    if self.eof or self.closed then
      if self.rlen > 0 then
        local line = rq_take_all(self)
        after_take(self)
        return line
      end
      return read_end(self)
    end
    dl = dl or deadline_of(self, timeout)
    local r, err, no = wait_readable(s, self, co, dl)
    if r == nil then return nil, err, no end
    -- the queue may have been compacted by a take: rescan from its head
    if k < self.rh then k, scanned = self.rh, 0 end
  end
end

--- conn:set_framer(kind [, max_frame]): frames are cut in C from now on
--- (FRAMED mode; "line", "u16", "u32", "resp"); nil returns to raw bytes.
function Conn:set_framer(kind, max)
  local s = check_conn(self, "conn:set_framer()")
  if kind == nil then
    leave_framed(s, self)
    return true
  end
  check_framer(kind, 1, "set_framer")
  if kind == "http" then
    self.framer, self.framer_lua = "http", true
    return true
  end
  if self.rlen > 0 then
    -- bytes already here must be framed first: frame them in Lua until
    -- the queue is empty, then switch
    self.framer, self.framer_lua, self.max_frame = kind, true, max
    return true
  end
  local ok, err, no = s.loop:set_mode(self.id, "framed", kind, max or 0)
  if not ok then return nil, err, no end
  self.framer, self.framer_lua, self.max_frame = kind, false, max
  return true
end

--- conn:recv_frame([kind [, timeout]]) -> payload [, body] | nil, err, errno
--- The next frame. With a framer set (listen/connect opts.framer or
--- conn:set_framer) frames are cut in C; kind may then be omitted. For
--- "http" the payload is the request head and the body is returned too.
function Conn:recv_frame(kind, timeout)
  local s = check_conn(self, "conn:recv_frame()")
  local co = current_task(s, "conn:recv_frame()")
  if self.mode then error("ringline: conn:recv_frame() on a connection in " .. self.mode .. " mode", 2) end
  if kind ~= nil then
    check_framer(kind, 1, "recv_frame")
    if self.framer ~= kind then
      if self.framer and not self.framer_lua then leave_framed(s, self) end
      self:set_framer(kind)
    end
  elseif not self.framer then
    error("bad argument #1 to 'recv_frame' (no framer set: give the kind)", 2)
  end
  local dl
  while true do
    if self.framer_lua or not self.framer then
      -- frames cut here from queued bytes, by the same C framers
      if self.rlen > 0 then
        local buf = rq_take_all(self)
        local payload, flen, body = core.frame(self.framer, buf, 1, self.max_frame or 0)
        if payload then
          if flen < #buf then rq_push(self, ssub(buf, flen + 1)) end
          after_take(self)
          if self.rlen == 0 and self.framer ~= "http" then
            -- the queue is empty: the C framer takes over
            local ok = s.loop:set_mode(self.id, "framed", self.framer, self.max_frame or 0)
            if ok then self.framer_lua = false end
          end
          if body then return payload, body end
          return payload
        end
        rq_push(self, buf)
        if payload == nil then
          -- not this framing, or too large: the stream is unusable
          local err, errno = flen, body
          self:abort()
          return nil, err, errno
        end
      end
    else
      local q = self.fq
      if q and q.h <= q.t then
        local p = q[q.h]
        q[q.h] = nil
        q.h = q.h + 1
        if q.h > q.t then q.h, q.t = 1, 0 end
        return p
      end
    end
    if self.eof or self.closed then return read_end(self) end
    dl = dl or deadline_of(self, timeout)
    local r, err, no = wait_readable(s, self, co, dl)
    if r == nil then return nil, err, no end
  end
end

--- conn:recv_command([timeout]) -> argv (argv.n, argv[1..n]) | nil, err
--- One RESP command (Redis protocol), framed and split in C.
function Conn:recv_command(timeout)
  local frame, err, no = self:recv_frame("resp", timeout)
  if not frame then return nil, err, no end
  local argv, e2, n2 = core.resp_parse(frame)
  if not argv then return nil, e2, n2 end
  return argv
end

--- conn:send(data, ...) -> bytes queued | nil, err, errno
--- Queues a copy (several arguments go out as one write). Inside a task,
--- waits while the send queue is above the high-water mark.
function Conn:send(data, more, ...)
  local s = self.s
  local q, err, no, n
  if more == nil and s == S and not self.closing and type(data) == "string" then
    -- the common case, checked cheaply (getmetatable: self.s == S only
    -- holds for ringline objects)
    -- (closed needs no check here: a closed connection's id is stale,
    -- and EBADF becomes EPIPE below)
    q, err, no = s.loop:send(self.id, data)
    n = #data
  else
    if s ~= S or self.closing or getmetatable(self) ~= Conn then
      check_conn(self, "conn:send()") -- raises the right error
    end
    local parts = { data, more, ... }
    n = 0
    for i = 1, select("#", data, more, ...) do
      local p = parts[i]
      if type(p) ~= "string" then
        error("bad argument #" .. i .. " to 'send' (string expected, got " .. type(p) .. ")", 2)
      end
      n = n + #p
    end
    if self.closed then return fail(EPIPE) end
    if more == nil then
      q, err, no = s.loop:send(self.id, data)
    else
      q, err, no = s.loop:sendv(self.id, parts)
    end
  end
  if not q then
    if no == EBADF then return fail(EPIPE) end
    return nil, err, no
  end
  if q > s.high then
    local co = s.current
    if co then -- in a task: wait for the queue to drain (backpressure)
      local dl = deadline_of(self, nil)
      while not self.closed do
        local r, e2, n2 = block(s, co, self, "wwaiter", dl)
        if r == nil then return nil, e2, n2 end
        local qq = s.loop:queued(self.id)
        if not qq or qq <= s.high then break end
      end
    end
  end
  return n
end

--- conn:flush([timeout]) -> true | nil, err: wait until everything queued
--- so far has been written to the socket.
function Conn:flush(timeout)
  local s = check_conn(self, "conn:flush()")
  local co = current_task(s, "conn:flush()")
  if self.closed then return fail(EPIPE) end
  s.next_tag = s.next_tag + 1
  local tag = s.next_tag
  local q, err, no = s.loop:send(self.id, "", tag)
  if not q then return nil, err, no end
  self.flushers = self.flushers or {}
  local r, e2, n2 = block(s, co, self.flushers, tag, deadline_of(self, timeout))
  if r == nil then return nil, e2, n2 end
  if r == true then return fail(EPIPE) end -- closed meanwhile
  if r < 0 then return fail(-r) end
  return true
end

--- conn:close(): graceful (queued bytes are still written). Idempotent.
function Conn:close()
  if getmetatable(self) ~= Conn then error("bad argument #1 to 'close' (connection expected)", 2) end
  if self.closing then return true end
  self.closing = true
  local s = self.s
  if not self.closed and not s.loop:closed() then
    s.loop:conn_close(self.id)
  end
  -- another task blocked on it learns at once
  if s == S then wake_all(s, self) end
  return true
end

--- conn:abort(): close now, dropping queued bytes (RST).
function Conn:abort()
  if getmetatable(self) ~= Conn then error("bad argument #1 to 'abort' (connection expected)", 2) end
  local s = self.s
  if not self.closed and not s.loop:closed() then
    s.loop:conn_abort(self.id)
  end
  self.closing = true
  if s == S then wake_all(s, self) end
  return true
end

--- conn:shutdown(): no more sending (FIN after the queue drains).
function Conn:shutdown()
  local s = check_conn(self, "conn:shutdown()")
  if self.closed then return fail(EPIPE) end
  return s.loop:shutdown(self.id)
end

--- conn:echo(): hand the connection to the C echo path (and any bytes
--- already received are echoed first). Returns immediately.
function Conn:echo()
  local s = check_conn(self, "conn:echo()")
  if self.rlen > 0 then s.loop:send(self.id, rq_take_all(self)) end
  local ok, err, no = s.loop:set_mode(self.id, "echo")
  if not ok then return nil, err, no end
  self.mode = "echo"
  pin(s, self)
  return true
end

--- conn:forward(other): bytes received on conn go to other, in C. Use it
--- both ways for a proxy; the pair closes together.
function Conn:forward(other)
  local s = check_conn(self, "conn:forward()")
  if getmetatable(other) ~= Conn or other.closing then
    error("bad argument #1 to 'forward' (open connection expected)", 2)
  end
  if other == self then error("bad argument #1 to 'forward' (cannot forward to itself)", 2) end
  if self.rlen > 0 then s.loop:send(other.id, rq_take_all(self)) end
  local ok, err, no = s.loop:set_mode(self.id, "forward", other.id)
  if not ok then return nil, err, no end
  self.mode = "forward"
  self.fwd_to = other
  pin(s, self)
  return true
end

--- conn:events(): back from echo/forward to Lua-driven reading.
function Conn:events()
  local s = check_conn(self, "conn:events()")
  local ok, err, no = s.loop:set_mode(self.id, "events")
  if not ok then return nil, err, no end
  self.mode = nil
  self.fwd_to = nil
  if not self.data_cb then unpin(s, self) end
  return true
end

--- conn:on_data(fn): callback style for this connection (see server:on_data).
function Conn:on_data(fn)
  local s = check_conn(self, "conn:on_data()")
  if fn ~= nil and type(fn) ~= "function" then
    error("bad argument #1 to 'on_data' (function expected)", 2)
  end
  self.data_cb = fn
  if fn then
    pin(s, self)
    if self.rlen > 0 then
      local data = rq_take_all(self)
      local ok, err = xpcall(fn, traceback, self, data)
      if not ok then callback_error(s, self, "on_data callback", err) end
    end
  elseif not self.mode then
    unpin(s, self)
  end
  return true
end

--- conn:wait_closed([timeout]): block until the connection is closed (for a
--- task that handed it to echo/forward).
function Conn:wait_closed(timeout)
  if getmetatable(self) ~= Conn then error("bad argument #1 to 'wait_closed' (connection expected)", 2) end
  local s = sched("conn:wait_closed()")
  local co = current_task(s, "conn:wait_closed()")
  local dl = deadline_of(nil, timeout)
  while not self.closed do
    local r, err, no = block(s, co, self, "wwaiter", dl)
    if r == nil then return nil, err, no end
  end
  return true
end

function Conn:pause()
  local s = check_conn(self, "conn:pause()")
  return s.loop:pause(self.id)
end

function Conn:resume()
  local s = check_conn(self, "conn:resume()")
  self.rpaused = false
  return s.loop:resume(self.id)
end

function Conn:queued()
  local s = check_conn(self, "conn:queued()")
  return s.loop:queued(self.id)
end

function Conn:peer()
  local s = check_conn(self, "conn:peer()")
  return s.loop:peer(self.id)
end

--- conn:settimeout(seconds | nil): default timeout of this connection's
--- blocking calls.
function Conn:settimeout(t)
  if t ~= nil and type(t) ~= "number" then
    error("bad argument #1 to 'settimeout' (number or nil expected)", 2)
  end
  self.timeout = t
  return true
end

function Conn:is_closed() return self.closed or self.closing end
function Conn:getid() return self.id end

Conn.__close = Conn.close
function Conn.__gc(self)
  -- unreachable and still open: close it (deferred out of the finalizer)
  local s = self.s
  if not self.closed and not self.closing and s and not s.loop:closed() then
    s.gc_close[#s.gc_close + 1] = self.id
  end
end
function Conn.__tostring(self)
  return ("ringline.conn: %s%s"):format(self.id,
    (self.closed or self.closing) and " (closed)" or "")
end

-- ---------------------------------------------------------------------------
-- UDP
-- ---------------------------------------------------------------------------

--- ringline.udp(host, port [, opts]) -> udp | nil, err, errno
--- opts: on_datagram = function(udp, data, host, port), queue (datagrams
--- kept for recvfrom, default 1024).
function M.udp(host, port, opts)
  local s = sched("ringline.udp")
  local h = check_endpoint(host, port, "udp", 0)
  opts = opts or {}
  local id, err, no = s.loop:udp_bind(h, port)
  if not id then return nil, err, no end
  local u = setmetatable({ s = s, id = id, closed = false, q = { h = 1, t = 0 },
    qmax = opts.queue or 1024 }, Udp)
  s.udps[id] = u
  if opts.on_datagram then u:on_datagram(opts.on_datagram) end
  return u
end

local function check_udp(self, fname)
  if getmetatable(self) ~= Udp then
    error("bad argument #1 to '" .. fname .. "' (udp socket expected)", 3)
  end
  if self.closed or self.closing then error("ringline: " .. fname .. " on a closed udp socket", 3) end
  return self.s
end

--- udp:recvfrom([timeout]) -> data, host, port | nil, err, errno
function Udp:recvfrom(timeout)
  local s = check_udp(self, "udp:recvfrom()")
  local co = current_task(s, "udp:recvfrom()")
  local dl
  while true do
    local q = self.q
    if q.h <= q.t then
      local d = q[q.h]
      q[q.h] = nil
      q.h = q.h + 1
      if q.h > q.t then q.h, q.t = 1, 0 end
      return d[1], d[2], d[3]
    end
    if self.closed then return fail(ECANCELED) end
    if self.waiter then error("ringline: another task is already in udp:recvfrom()", 2) end
    dl = dl or deadline_of(self, timeout)
    local r, err, no = block(s, co, self, "waiter", dl)
    if r == nil then return nil, err, no end
  end
end

--- udp:sendto(data, host, port) -> true | nil, err, errno
function Udp:sendto(data, host, port)
  local s = check_udp(self, "udp:sendto()")
  if type(data) ~= "string" then error("bad argument #1 to 'sendto' (string expected)", 2) end
  local h = norm_host(host)
  if not h then error("bad argument #2 to 'sendto' (string expected)", 2) end
  if h == "0.0.0.0" then h = "127.0.0.1" end
  if type(port) ~= "number" then error("bad argument #3 to 'sendto' (number expected)", 2) end
  return s.loop:udp_sendto(self.id, data, h, port)
end

function Udp:on_datagram(fn)
  local s = check_udp(self, "udp:on_datagram()")
  if type(fn) ~= "function" then error("bad argument #1 to 'on_datagram' (function expected)", 2) end
  self.dgram_cb = fn
  pin(s, self)
  return self
end

function Udp:port()
  local s = check_udp(self, "udp:port()")
  return s.loop:udp_port(self.id)
end

function Udp:settimeout(t) self.timeout = t return true end

function Udp:close()
  if self.closed or self.closing then return true end
  self.closing = true
  local s = self.s
  if not s.loop:closed() then s.loop:udp_close(self.id) end
  s.pinned[self.id] = nil
  local w = self.waiter
  if w and s == S then
    self.waiter = nil
    wake(s, w, fail(ECANCELED))
  end
  return true
end

Udp.__close = Udp.close
function Udp.__gc(self)
  local s = self.s
  if not self.closed and not self.closing and s and not s.loop:closed() then
    s.gc_close[#s.gc_close + 1] = self.id
  end
end
function Udp.__tostring(self)
  return ("ringline.udp: %s%s"):format(self.id, self.closed and " (closed)" or "")
end

-- ---------------------------------------------------------------------------
-- Timers (C timers of the loop; the callback runs as a new task)
-- ---------------------------------------------------------------------------

local function new_timer(s, sec, fn, every, fname)
  if type(sec) ~= "number" or sec < 0 then
    error("bad argument #1 to '" .. fname .. "' (seconds >= 0 expected)", 3)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to '" .. fname .. "' (function expected)", 3)
  end
  s.next_tag = s.next_tag + 1
  local tag = s.next_tag
  local id, err, no
  if every then id, err, no = s.loop:timer_every(sec, tag)
  else id, err, no = s.loop:timer_after(sec, tag) end
  if not id then return nil, err, no end
  local t = setmetatable({ s = s, id = id, tag = tag, fn = fn, every = every }, Timer)
  s.timers[tag] = t
  return t
end

--- ringline.after(seconds, fn) -> timer: fn(timer) runs once, as a task.
function M.after(sec, fn) return new_timer(sched("ringline.after"), sec, fn, false, "after") end
--- ringline.every(seconds, fn) -> timer: fn(timer) runs every period.
function M.every(sec, fn) return new_timer(sched("ringline.every"), sec, fn, true, "every") end

function Timer:cancel()
  if self.done then return true end
  self.done = true
  local s = self.s
  s.timers[self.tag] = nil
  if not s.loop:closed() then s.loop:timer_cancel(self.id) end
  return true
end
Timer.__close = Timer.cancel
function Timer.__tostring(self)
  return ("ringline.timer: %s%s"):format(self.id, self.done and " (done)" or "")
end

-- ---------------------------------------------------------------------------
-- Pure helpers from C
-- ---------------------------------------------------------------------------

M.frame = core.frame           -- payload, frame_len [, body] | false | nil, err
M.resp_parse = core.resp_parse -- argv, frame_len | false | nil, err
M.errstr = core.errstr
M.strerror = core.strerror
M.err_name = core.err_name

--- ringline.resp(value) -> RESP encoding of a Lua value: string -> bulk
--- string, integer -> integer, nil -> null bulk, table -> array;
--- {ok="OK"} -> simple string, {err="ERR ..."} -> error.
local function resp(v)
  local t = type(v)
  if t == "string" then
    return "$" .. #v .. "\r\n" .. v .. "\r\n"
  elseif t == "number" then
    return ":" .. math.tointeger(v) .. "\r\n"
  elseif v == nil or v == false then
    return "$-1\r\n"
  elseif t == "table" then
    if v.ok then return "+" .. v.ok .. "\r\n" end
    if v.err then return "-" .. v.err .. "\r\n" end
    local n = v.n or #v
    local out = { "*" .. n .. "\r\n" }
    for i = 1, n do out[#out + 1] = resp(v[i]) end
    return tconcat(out)
  end
  error("ringline.resp: cannot encode a " .. t)
end
M.resp = resp

-- Storage objects (lua/src/storage.c, docs/storage.md): blocking O_DIRECT
-- files and NVMe namespaces, each call's I/O loop run in C.
M.open_direct = core.open_direct -- (path [, {create=, size=, qd=}]) -> file
M.nvme_open = core.nvme_open     -- ("/dev/ngXnY" [, {qd=}]) -> device

return M
