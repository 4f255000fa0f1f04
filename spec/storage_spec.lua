-- The storage objects (lua/src/storage.c): O_DIRECT files on a real ext4
-- file in the build tree. The NVMe device objects run against the real
-- kernel driver inside the VM test (tests/vm/vm_storage.lua); here only
-- what needs no NVMe device (opening something that is not one).
local H = require "spec.helper"
local ringline = H.ringline
local core = H.core

local dir = H.build .. "/storage-spec"
os.execute("mkdir -p '" .. dir .. "'")
local seq = 0
local function path()
  seq = seq + 1
  local p = dir .. "/f" .. seq .. ".dat"
  os.remove(p)
  return p
end

local function pattern(tag, n)
  local s = string.format("%-16s", tag)
  return string.rep(s, n // 16)
end

describe("ringline.open_direct", function()
  it("creates, sizes and reports alignment", function()
    local f = assert(ringline.open_direct(path(), { create = true, size = 1 << 20 }))
    assert.equal(1 << 20, f:size())
    local mem, off = f:alignment()
    assert.is_true(mem >= 1 and off >= 512)
    assert.matches("direct_file", tostring(f))
    f:close()
    assert.matches("closed", tostring(f))
  end)

  it("fails cleanly on a missing file without create", function()
    local f, err, errno = ringline.open_direct(dir .. "/does-not-exist")
    assert.is_nil(f)
    assert.matches("^ENOENT", err)
    assert.equal(core.ENOENT, errno)
  end)

  it("round-trips single reads and writes", function()
    local f = assert(ringline.open_direct(path(), { create = true, size = 1 << 20 }))
    local a, b = pattern("alpha", 4096), pattern("beta", 8192)
    assert.equal(4096, f:write(0, a))
    assert.equal(8192, f:write(65536, b))
    assert.is_true(f:fsync())
    assert.is_true(f:fsync(true))
    assert.equal(a, f:read(0, 4096))
    assert.equal(b, f:read(65536, 8192))
    -- unwritten space reads as zeroes
    assert.equal(string.rep("\0", 4096), f:read(8192, 4096))
    -- short at end of file, empty past it
    assert.equal(4096, #f:read((1 << 20) - 4096, 8192))
    assert.equal("", f:read(1 << 20, 4096))
    assert.equal("", f:read(0, 0))
    -- a ringline.buffer as the data
    local buf = core.buffer(4096)
    buf:write(pattern("buffered", 4096))
    assert.equal(4096, f:write(4096, buf))
    assert.equal(pattern("buffered", 4096), f:read(4096, 4096))
    f:close()
  end)

  it("keeps data across reopen (O_DIRECT reached the file)", function()
    local p = path()
    local f = assert(ringline.open_direct(p, { create = true, size = 65536 }))
    f:write(4096, pattern("persist", 4096))
    f:close()
    local g = assert(ringline.open_direct(p, { readonly = true }))
    assert.equal(pattern("persist", 4096), g:read(4096, 4096))
    -- a readonly file refuses writes with the kernel's errno
    local ok, err, errno = g:write(0, pattern("x", 4096))
    assert.is_nil(ok)
    assert.matches("^EBADF", err)
    assert.equal(core.EBADF, errno)
    g:close()
    local fh = assert(io.open(p, "rb"))
    fh:seek("set", 4096)
    assert.equal(pattern("persist", 4096), fh:read(4096))
    fh:close()
  end)

  it("runs batches at QD 32 (256 requests, strings and a buffer)", function()
    local f = assert(ringline.open_direct(path(), { create = true, size = 4 << 20, qd = 32 }))
    local offs, data = {}, {}
    for i = 1, 256 do
      offs[i] = ((i * 37) % 1024) * 4096 -- spread, non-sequential order
      data[i] = pattern("blk" .. i, 4096)
    end
    assert.is_true(f:write_batch(offs, data))
    local got = assert(f:read_batch(offs, 4096))
    assert.equal(256, #got)
    for i = 1, 256 do assert.equal(data[i], got[i]) end
    -- straight into an aligned buffer
    local buf = core.buffer(256 * 4096)
    assert.equal(256 * 4096, f:read_batch(offs, 4096, buf))
    assert.equal(data[200], buf:read(199 * 4096, 4096))
    -- and back out of it, to other places
    local offs2 = {}
    for i = 1, 256 do offs2[i] = (i - 1) * 4096 + (2 << 20) end
    assert.is_true(f:write_batch(offs2, 4096, buf))
    assert.equal(data[17], f:read((2 << 20) + 16 * 4096, 4096))
    -- empty batches
    assert.same({}, f:read_batch({}, 4096))
    f:close()
  end)

  it("refuses misaligned offsets, lengths and buffers with EINVAL", function()
    local f = assert(ringline.open_direct(path(), { create = true, size = 1 << 20 }))
    local _, off = f:alignment()
    local function einval(ok, err, errno)
      assert.is_nil(ok)
      assert.matches("^EINVAL: .*multiple of " .. off, err)
      assert.equal(core.EINVAL, errno)
    end
    einval(f:read(1, 4096))
    einval(f:read(0, 100))
    einval(f:write(100, pattern("x", 4096)))
    einval(f:write(0, "short"))
    einval(f:read_batch({ 0, 4096, 7 }, 4096))
    einval(f:read_batch({ 0 }, 1000))
    einval(f:write_batch({ 0, 4096 }, { "ab", "cd" }))
    -- a buffer too small for the batch is misuse of the buffer argument
    assert.has_error(function() f:read_batch({ 0, 4096 }, 4096, core.buffer(4096)) end)
    -- wrong types raise
    assert.has_error(function() f:read("x", 4096) end)
    assert.has_error(function() f:read(-4096, 4096) end)
    assert.has_error(function() f:read_batch({ "a" }, 4096) end)
    assert.has_error(function() f:write_batch({ 0, 4096 }, { pattern("a", 4096) }) end)
    assert.has_error(function() f:write_batch({ 0, 4096 }, { pattern("a", 4096), pattern("a", 8192) }) end)
    -- nothing was written by the refused calls
    assert.equal(string.rep("\0", 4096), f:read(0, 4096))
    f:close()
  end)

  it("raises on a closed file, and closes idempotently (also via <close>)", function()
    local f = assert(ringline.open_direct(path(), { create = true, size = 65536 }))
    f:close()
    f:close()
    for _, call in ipairs {
      function() f:read(0, 4096) end,
      function() f:write(0, pattern("x", 4096)) end,
      function() f:fsync() end,
      function() f:read_batch({ 0 }, 4096) end,
      function() f:size() end,
    } do
      assert.has_error(call, "attempt to use a closed direct file")
    end
    local p = path()
    do
      local g <close> = assert(ringline.open_direct(p, { create = true, size = 4096 }))
      g:write(0, pattern("scoped", 4096))
    end
    local g = assert(ringline.open_direct(p))
    assert.equal(pattern("scoped", 4096), g:read(0, 4096))
    g:close()
  end)

  it("checks its options", function()
    assert.has_error(function() ringline.open_direct(path(), { qd = 0 }) end)
    assert.has_error(function() ringline.open_direct(path(), { readonly = true, create = true }) end)
    assert.has_error(function() ringline.open_direct(path(), 5) end)
  end)
end)

describe("ringline.nvme_open", function()
  it("refuses what is not an NVMe namespace", function()
    local p = path()
    local f = assert(io.open(p, "wb"))
    f:close()
    local d, err, errno = ringline.nvme_open(p)
    assert.is_nil(d)
    assert.matches("^ENODEV", err)
    assert.equal(19, errno)
    d, err = ringline.nvme_open(dir .. "/missing")
    assert.is_nil(d)
    assert.matches("^ENOENT", err)
  end)
end)
