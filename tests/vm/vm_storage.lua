-- vm_storage.lua — the Lua storage objects (ringline.nvme_open /
-- ringline.open_direct) against the real Linux NVMe driver, inside the VM
-- (tests/vm/vm.sh; QEMU's NVMe controller with namespace 1 of 512-byte and
-- namespace 2 of 4096-byte LBAs, 64 MiB each). Prints "ok ..." / "FAIL ..."
-- per check and "vm_storage.lua: PASS" only if every check passed.
--
--   lua5.4 vm_storage.lua DIR /dev/ng0n1:/dev/nvme0n1:512 ...
-- DIR holds ringline.lua and ringline/core.so.
local dir = arg[1]
package.path = dir .. "/?.lua;" .. package.path
package.cpath = dir .. "/?.so;" .. package.cpath
local rl = require "ringline"
local core = rl.core

local fails, checks = 0, 0
local function check(cond, what, ...)
  checks = checks + 1
  if cond then
    print("ok   " .. what)
  else
    fails = fails + 1
    print("FAIL " .. what, ...)
  end
end

local function pattern(tag, n)
  return string.rep(string.format("%-16.16s", tag), n // 16)
end

for i = 2, #arg do
  local ng, blk, lba = arg[i]:match("^([^:]+):([^:]+):(%d+)$")
  lba = tonumber(lba)
  local t = ng .. ": "
  local dev, err = rl.nvme_open(ng, { qd = 32 })
  check(dev, t .. "nvme_open", err)
  if not dev then goto continue end
  do
    local id = dev:identify()
    check(id.lba_size == lba, t .. "identify lba_size " .. lba, id.lba_size)
    check(id.nsze == (64 << 20) // lba and id.ncap == id.nsze, t .. "identify capacity",
      id.nsze, id.ncap)
    check(id.bytes == 64 << 20, t .. "identify bytes")
    check(id.nsid == i - 1, t .. "identify nsid", id.nsid)

    -- single write / read / flush
    local a = pattern(ng .. " single", 2 * lba)
    check(dev:write(10, a) == true, t .. "write 2 blocks at LBA 10")
    check(dev:read(10, 2) == a, t .. "read them back")
    check(dev:flush() == true, t .. "flush")

    -- what passthrough wrote is on the medium: O_DIRECT on the block device
    local f, ferr = rl.open_direct(blk)
    check(f, t .. "open_direct " .. blk, ferr)
    if f then
      check(f:read(10 * lba, 2 * lba) == a, t .. "O_DIRECT sees the passthrough write")
      local b = pattern(blk .. " odirect", lba)
      check(f:write(20 * lba, b) == lba, t .. "O_DIRECT write")
      check(f:fsync() == true, t .. "O_DIRECT fsync")
      check(dev:read(20, 1) == b, t .. "passthrough sees the O_DIRECT write")
      f:close()
    end

    -- write zeroes
    check(dev:write_zeroes(10, 2) == true, t .. "write_zeroes")
    check(dev:read(10, 2) == string.rep("\0", 2 * lba), t .. "zeroes read back")

    -- batches: 256 requests, 32 in flight
    local lbas, data = {}, {}
    for k = 1, 256 do
      lbas[k] = 1000 + ((k * 37) % 512) * 2
      data[k] = pattern(ng .. " b" .. k, 2 * lba)
    end
    check(dev:write_batch(lbas, data) == true, t .. "write_batch 256 x 2 blocks at QD 32")
    local got = dev:read_batch(lbas, 2)
    local same = got and #got == 256
    for k = 1, 256 do same = same and got[k] == data[k] end
    check(same, t .. "read_batch returns what was written")
    local buf = core.buffer(256 * 2 * lba, 4096)
    check(dev:read_batch(lbas, 2, buf) == 256 * 2 * lba, t .. "read_batch into a buffer")
    check(buf:read(99 * 2 * lba, 2 * lba) == data[100], t .. "buffer holds request 100")

    -- NVMe status, not errno: LBA out of range
    local r, msg, errno, status = dev:read(id.nsze, 1)
    check(r == nil and errno == nil and status and status & 0xFF == 0x80
      and (status >> 8) & 7 == 0 and msg:match("^NVME: LBA out of range"),
      t .. "read past the end -> NVMe status 0x80", msg, errno, status)
    r, msg, errno, status = dev:write(id.nsze - 1, pattern("x", 2 * lba))
    check(r == nil and errno == nil and status and status & 0xFF == 0x80,
      t .. "write across the end -> NVMe status", msg, status)
    r, msg, errno, status = dev:write_zeroes(id.nsze + 5, 1)
    check(r == nil and status and status & 0xFF == 0x80, t .. "write_zeroes past the end", msg)
    local bad = { 0, 2, id.nsze + 100, 4 }
    local idx
    r, msg, errno, status, idx = dev:read_batch(bad, 1)
    check(r == nil and status and status & 0xFF == 0x80 and idx == 3,
      t .. "batch names the failed request", msg, status, idx)
    -- the device still works after those
    check(dev:read(10, 2) == string.rep("\0", 2 * lba), t .. "reads after errors")

    -- misuse: lengths that are not whole blocks are EINVAL, never sent
    r, msg, errno = dev:write(0, string.rep("y", lba + 1))
    check(r == nil and errno == core.EINVAL and msg:match("^EINVAL"), t .. "partial block -> EINVAL", msg)
    check(not pcall(dev.read, dev, 0, 0), t .. "0 blocks raises")
    dev:close()
    check(not pcall(dev.read, dev, 0, 1), t .. "closed device raises")
  end
  ::continue::
end

local nf = rl.nvme_open("/dev/nvme0") -- the controller is not a namespace
check(nf == nil, "controller char device refused")

print(string.format("vm_storage.lua: %d checks, %d failed", checks, fails))
if fails == 0 and checks > 10 then
  print("vm_storage.lua: PASS")
  os.exit(0)
end
print("vm_storage.lua: FAIL")
os.exit(1)
