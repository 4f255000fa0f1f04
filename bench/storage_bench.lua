-- storage_bench.lua — 4 KiB random reads through the Lua storage object
-- (ringline.open_direct), for bench/storage.sh next to storage_bench.c and
-- fio. Prints the same key=value line as storage_bench.c.
--
--   lua5.4 storage_bench.lua FILE QD SECONDS WARMUP [BS [SPAN_BYTES]]
-- FILE /dev/ngXnY: NVMe passthrough (ringline.nvme_open) instead.
-- QD 1: one f:read(off, bs) per I/O (a Lua string back; per-call latency
-- recorded). QD > 1: f:read_batch(offsets, bs, buf) with 1024 random offsets
-- per call into one aligned buffer, the object's C loop keeping QD in
-- flight; latency is reported as QD / IOPS (Little's law), p50/p99 as nan.
local file, qd, secs, warm, bs = arg[1], tonumber(arg[2]), tonumber(arg[3]),
  tonumber(arg[4]), tonumber(arg[5] or 4096)
local rl = require "ringline"
local core = rl.core
local now = core.now
-- a namespace's generic char device (/dev/ngXnY): NVMe passthrough, the
-- same reads addressed in LBAs (bs / lba_size blocks each)
local nvme = file:match("^/dev/ng%d") ~= nil
local f, nblk, unit, cnt
if nvme then
  f = assert(rl.nvme_open(file, { qd = qd }))
  local id = f:identify()
  unit, cnt = bs // id.lba_size, bs // id.lba_size
  nblk = id.nsze * id.lba_size // bs
else
  f = assert(rl.open_direct(file, { readonly = true, qd = qd }))
  unit, cnt = bs, bs
  nblk = f:size() // bs
end
-- optional: only the first SPAN bytes (what the other tools read)
if arg[6] then nblk = math.min(nblk, tonumber(arg[6]) // bs) end
local random = math.random
math.randomseed(os.time())

local ios, lats = 0, {}
local t_end
if qd == 1 then
  local read = f.read
  local function run(limit, record)
    local n = 0
    while true do
      local t0 = now()
      if t0 >= limit then break end
      local s = read(f, random(0, nblk - 1) * unit, cnt)
      if not s or #s ~= bs then error("read failed") end
      if record then lats[#lats + 1] = now() - t0 end
      n = n + 1
    end
    return n
  end
  run(now() + warm, false)
  local c0, t0 = os.clock(), now()
  ios = run(t0 + secs, true)
  t_end = now()
  local cpu = os.clock() - c0
  table.sort(lats)
  local sum = 0
  for i = 1, #lats do sum = sum + lats[i] end
  local el = t_end - t0
  print(string.format("storage_bench: iops=%.0f lat_mean_us=%.1f lat_p50_us=%.0f lat_p99_us=%.0f cpu_us_per_io=%.3f",
    ios / el, sum / #lats * 1e6, lats[#lats // 2 + 1] * 1e6,
    lats[math.floor(#lats * 0.99) + 1] * 1e6, cpu * 1e6 / ios))
else
  local per = 1024
  local buf = core.buffer(per * bs, 4096)
  local offs = {}
  local rb = f.read_batch
  local function run(limit)
    local n = 0
    while now() < limit do
      for i = 1, per do offs[i] = random(0, nblk - 1) * unit end
      assert(rb(f, offs, cnt, buf))
      n = n + per
    end
    return n
  end
  run(now() + warm)
  local c0, t0 = os.clock(), now()
  ios = run(t0 + secs)
  t_end = now()
  local cpu = os.clock() - c0
  local el = t_end - t0
  print(string.format("storage_bench: iops=%.0f lat_mean_us=%.1f lat_p50_us=nan lat_p99_us=nan cpu_us_per_io=%.3f",
    ios / el, qd / (ios / el) * 1e6, cpu * 1e6 / ios))
end
f:close()
