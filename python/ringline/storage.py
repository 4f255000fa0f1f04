"""High-level storage objects: an O_DIRECT file and an NVMe namespace.

    from ringline import storage

    with storage.open_direct("data.bin", create=True, size=1 << 20) as f:
        f.write(0, b"x" * 4096)
        data = f.read(0, 4096)
        pages = f.read_batch([0, 4096, 8192], 4096)        # list of bytes
        buf = storage.aligned_buffer(3 * 4096)
        f.read_batch([0, 4096, 8192], 4096, into=buf)      # zero-copy
        f.fsync()

    with storage.nvme_open("/dev/ng0n1") as dev:
        geo = dev.identify()          # Geometry(lba_size, nsze, ncap, nsid)
        block = dev.read(0, 1)
        dev.write(0, block)
        dev.flush(); dev.write_zeroes(0, 8)

Every call blocks until its I/O is done (like os.pread). The loop that keeps
up to ``qd`` requests in flight, refills and harvests runs in C
(``ringline_rw_run``): one crossing of the cffi boundary per call, however
many requests a batch holds. O_DIRECT needs aligned memory: Python's
bytearrays are not, so data goes through the object's own aligned bounce
buffer, or straight into an ``AlignedBuffer`` (``readinto`` / ``into=``).

Errors: ``OSError`` (errno) from the kernel; ``OSError(EINVAL)`` for
misaligned offsets/lengths/buffers; :class:`NvmeError` (an ``OSError`` with
errno EIO) for an NVMe status, with ``.status``, ``.sct`` and ``.sc``;
``ValueError``/``TypeError`` for misuse; ``OSError(EBADF)`` on a closed
object. Batch failures carry ``.index`` (0-based) of the first failed request.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct
from typing import List, NamedTuple, Optional, Sequence, Union

from ._errors import check
from ._ffi import ffi, lib
from .ring import AlignedBuffer, aligned_buffer

__all__ = ["DirectFile", "NvmeDevice", "NvmeError", "Geometry", "open_direct",
           "nvme_open", "aligned_buffer", "AlignedBuffer", "nvme_status_text"]

_RW_READ = lib.RINGLINE_RW_READ
_RW_WRITE = lib.RINGLINE_RW_WRITE
_RW_FSYNC = lib.RINGLINE_RW_FSYNC
_RW_NVME_READ = lib.RINGLINE_RW_NVME_READ
_RW_NVME_WRITE = lib.RINGLINE_RW_NVME_WRITE
_RW_NVME_FLUSH = lib.RINGLINE_RW_NVME_FLUSH
_RW_NVME_WZ = lib.RINGLINE_RW_NVME_WRITE_ZEROES
_MAX_LEN = 1 << 30
_MAX_BATCH = 1 << 20

# linux/nvme_ioctl.h: _IO('N', 0x40) and _IOWR('N', 0x41, struct
# nvme_passthru_cmd (72 bytes))
_NVME_IOCTL_ID = 0x4E40
_NVME_IOCTL_ADMIN_CMD = 0xC0484E41
_PASSTHRU = struct.Struct("<BBHIIIQQII6III")  # ..., timeout_ms, result

_GENERIC = {0x01: "invalid command opcode", 0x02: "invalid field in command",
            0x04: "data transfer error", 0x06: "internal error",
            0x07: "command abort requested", 0x0B: "invalid namespace or format",
            0x80: "LBA out of range", 0x81: "capacity exceeded",
            0x82: "namespace not ready"}
_MEDIA = {0x80: "write fault", 0x81: "unrecovered read error", 0x86: "access denied",
          0x87: "deallocated or unwritten logical block"}


def nvme_status_text(status: int) -> str:
    """'NVME: LBA out of range (sct 0x0 sc 0x80, status 0x4080)'."""
    sc, sct = status & 0xFF, (status >> 8) & 7
    if sct == 0:
        what = _GENERIC.get(sc, "generic command status")
    elif sct == 2:
        what = _MEDIA.get(sc, "media or data integrity error")
    else:
        what = {1: "command specific status", 3: "path related status"}.get(
            sct, "vendor specific status")
    return f"NVME: {what} (sct {sct:#x} sc {sc:#04x}, status {status:#06x})"


class NvmeError(OSError):
    """An NVMe completion status (not an errno): errno is EIO, .status the
    status field without its phase bit, .sct/.sc its type and code."""

    def __init__(self, status: int, index: Optional[int] = None):
        super().__init__(errno.EIO, nvme_status_text(status))
        self.status = status
        self.sct = (status >> 8) & 7
        self.sc = status & 0xFF
        self.index = index

    def __reduce__(self):  # pragma: no cover
        return type(self), (self.status, self.index)


class Geometry(NamedTuple):
    lba_size: int
    nsze: int   # namespace size in LBAs
    ncap: int   # capacity in LBAs
    nsid: int

    @property
    def bytes(self) -> int:
        return self.nsze * self.lba_size


def _einval(msg: str) -> OSError:
    return OSError(errno.EINVAL, msg)


def _int(v, name):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be int, not {type(v).__name__}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0")
    return v


def _mem(obj, writable):
    """(pointer, length, keepalive) of caller memory for I/O."""
    if isinstance(obj, AlignedBuffer):
        return obj._ptr(), len(obj), obj
    if writable and isinstance(obj, (bytes, str)):
        raise TypeError(f"expected a writable buffer, not {type(obj).__name__}")
    try:
        cd = ffi.from_buffer(obj, require_writable=writable)
    except TypeError:
        raise TypeError(f"expected a buffer (AlignedBuffer, memoryview), not "
                        f"{type(obj).__name__}") from None
    return cd, len(cd), cd


class _Storage:
    _nvme = False
    _kind = "storage object"

    def _setup(self, qd: int, big: bool):
        qd = _int(qd, "qd")
        if not 1 <= qd <= 4096:
            raise ValueError("qd must be 1..4096")
        self._qd = qd
        pc = ffi.new("ringline_config_t **")
        check(lib.ringline_config_new(pc))
        cfg = pc[0]
        try:
            check(lib.ringline_config_set_sq_entries(cfg, qd))
            check(lib.ringline_config_set_cq_entries(cfg, qd * 2))
            if big:
                check(lib.ringline_config_set_big(cfg, 1))
            pr = ffi.new("ringline_ring_t **")
            check(lib.ringline_ring_new(cfg, pr))
        finally:
            lib.ringline_config_free(cfg)
        self._ring = pr[0]
        self._bounce = None
        self._reqs = None
        self._res = None
        self._cap = 0
        self._layout = None  # what the request array already holds
        # single reads (the QD 1 hot path): their own one-request array,
        # fd/op/nsid set once, so a read only writes offset/len/nlb/buf
        self._sreq = ffi.new("ringline_rw_req_t[1]")
        self._sq = self._sreq[0]
        self._sq.op = _RW_NVME_READ if self._nvme else _RW_READ
        self._sq.nsid = self._nsid
        self._sres = ffi.new("int32_t[1]")
        self._rw_run = lib.ringline_rw_run

    # ---- lifetime ----
    def close(self) -> None:
        """Idempotent. Destroying the ring waits for anything in flight."""
        ring, self._ring = getattr(self, "_ring", ffi.NULL), ffi.NULL
        if ring != ffi.NULL:
            lib.ringline_ring_destroy(ring)
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def fileno(self) -> int:
        self._live()
        return self._fd

    def _live(self):
        if self._fd < 0:
            raise OSError(errno.EBADF, f"{self._kind} is closed")

    # ---- the request array and the bounce buffer ----
    def _need(self, n: int):
        if n > self._cap:
            c = max(64, self._cap)
            while c < n:
                c *= 2
            self._reqs = ffi.new("ringline_rw_req_t[]", c)
            self._res = ffi.new("int32_t[]", c)
            self._cap = c
            self._layout = None

    def _bounce_for(self, size: int) -> AlignedBuffer:
        b = self._bounce
        if b is None or len(b) < size:
            c = 65536
            while c < size:
                c *= 2
            b = self._bounce = AlignedBuffer(c, max(self._mem_align, 4096))
            self._layout = None
        return b

    def _fill(self, op: int, positions: Sequence[int], base, length: int, nlb: int):
        """Requests at base + i*length; only the positions change between
        calls with the same shape, so only they are rewritten then."""
        n = len(positions)
        reqs = self._reqs
        key = (op, int(ffi.cast("uintptr_t", base)), length, nlb)
        lay = self._layout
        start = lay[1] if lay is not None and lay[0] == key else 0
        if start < n:
            fd, nsid = self._fd, self._nsid
            for i in range(start, n):
                q = reqs[i]
                q.op = op
                q.fd = fd
                q.nsid = nsid
                q.buf = base + i * length
                q.len = length
                q.nlb = nlb
                q.flags = 0
            self._layout = (key, n)
        blk = self._blk
        try:
            for i, p in enumerate(positions):
                reqs[i].offset = p
        except (OverflowError, TypeError):
            raise TypeError("positions must be non-negative ints") from None
        if not self._nvme:
            for p in positions:
                if p % blk:
                    raise _einval(f"offset {p} is not a multiple of {blk} (O_DIRECT alignment)")

    def _run(self, n: int, batch: bool) -> list:
        ret = lib.ringline_rw_run(self._ring, self._reqs, n, self._qd, self._res)
        if ret < 0:
            if lib.ringline_ring_inflight(self._ring) > 0:
                self.close()  # memory may still be written: finish the object
            check(ret)
        res = ffi.unpack(self._res, n)
        if min(res) < 0 or (self._nvme and max(res) > 0):
            for i, r in enumerate(res):
                if r < 0:
                    e = OSError(-r, os.strerror(-r))
                    e.index = i if batch else None
                    raise e
                if self._nvme and r > 0:
                    raise NvmeError(r, i if batch else None)
        return res

    def _one(self, op: int, pos: int, base, length: int, nlb: int, flags: int = 0) -> int:
        self._need(1)
        self._layout = None
        q = self._reqs[0]
        q.op = op
        q.fd = self._fd
        q.nsid = self._nsid
        q.offset = pos
        q.buf = base
        q.len = length
        q.nlb = nlb
        q.flags = flags
        return self._run(1, False)[0]

    def _check_pos(self, pos: int, name: str):
        _int(pos, name)
        if not self._nvme and pos % self._blk:
            raise _einval(f"{name} {pos} is not a multiple of {self._blk} (O_DIRECT alignment)")

    def _check_len(self, length: int, name: str = "length"):
        if length % self._blk:
            raise _einval(f"{name} {length} is not a multiple of {self._blk} "
                          f"({'LBA size' if self._nvme else 'O_DIRECT alignment'})")
        if length > _MAX_LEN:
            raise ValueError("transfer too large (max 1 GiB)")

    def _check_aligned(self, cd, what="buffer"):
        if int(ffi.cast("uintptr_t", cd)) % self._mem_align:
            raise _einval(f"{what} is not aligned to {self._mem_align} bytes "
                          f"(use ringline.storage.aligned_buffer)")

    # ---- the shared data path (positions: byte offsets or LBAs) ----
    def _units(self, count: int) -> tuple:
        """(bytes, nlb) for a count: bytes for files, blocks for NVMe."""
        if self._nvme:
            if not 1 <= count <= 65536:
                raise ValueError("nblocks must be 1..65536")
            return count * self._blk, count
        self._check_len(count)
        return count, 0

    def _read(self, pos: int, count: int) -> bytes:
        # fast path: plain ints, aligned, the bounce buffer big enough;
        # anything else takes the checked path below
        b = self._bounce
        if (type(pos) is int and type(count) is int and self._fd >= 0 and b is not None
                and pos >= 0 and count > 0):
            blk = self._blk
            if self._nvme:
                length = count * blk
                ok = count <= 65536 and length <= b._len
            else:
                length = count
                ok = not (pos % blk or count % blk) and length <= b._len
            if ok:
                q = self._sq
                q.fd = self._fd
                q.offset = pos
                q.buf = b._cd
                q.len = length
                q.nlb = count if self._nvme else 0
                res = self._sres
                ret = self._rw_run(self._ring, self._sreq, 1, 1, res)
                r = res[0]
                if ret == 1 and (r >= 0 if not self._nvme else r == 0):
                    return ffi.buffer(b._cd, length if self._nvme else r)[:]
                if ret < 0:
                    if lib.ringline_ring_inflight(self._ring) > 0:
                        self.close()
                    check(ret)
                if r < 0:
                    raise OSError(-r, os.strerror(-r))
                raise NvmeError(r)
        self._live()
        self._check_pos(pos, "offset" if not self._nvme else "lba")
        _int(count, "length" if not self._nvme else "nblocks")
        if count == 0 and not self._nvme:
            return b""
        length, nlb = self._units(count)
        b = self._bounce_for(length)
        r = self._one(_RW_NVME_READ if self._nvme else _RW_READ, pos, b._cd, length, nlb)
        return ffi.buffer(b._cd, length if self._nvme else r)[:]

    def _readinto(self, buf, pos: int) -> int:
        self._live()
        self._check_pos(pos, "offset" if not self._nvme else "lba")
        cd, length, keep = _mem(buf, True)
        if length == 0:
            return 0
        self._check_len(length)
        self._check_aligned(cd)
        nlb = length // self._blk if self._nvme else 0
        if self._nvme and nlb > 65536:
            raise ValueError("buffer must be 1..65536 blocks")
        r = self._one(_RW_NVME_READ if self._nvme else _RW_READ, pos, cd, length, nlb)
        return length if self._nvme else r

    def _write(self, pos: int, data) -> int:
        self._live()
        self._check_pos(pos, "offset" if not self._nvme else "lba")
        cd, length, keep = _mem(data, False)
        if length == 0:
            if self._nvme:
                raise ValueError("data must be 1..65536 blocks")
            return 0
        self._check_len(length)
        nlb = length // self._blk if self._nvme else 0
        if self._nvme and nlb > 65536:
            raise ValueError("data must be 1..65536 blocks")
        if int(ffi.cast("uintptr_t", cd)) % self._mem_align:
            b = self._bounce_for(length)
            ffi.memmove(b._cd, cd, length)
            cd = b._cd
        r = self._one(_RW_NVME_WRITE if self._nvme else _RW_WRITE, pos, cd, length, nlb)
        return length if self._nvme else r

    def read_batch(self, positions: Sequence[int], count: int, into=None) -> Union[List[bytes], int]:
        """Read count (bytes for files, blocks for NVMe) at each position,
        up to qd in flight. Returns a list of bytes, or with ``into`` (an
        aligned buffer of at least len(positions) * size) the total number
        of bytes read into it at i * size."""
        self._live()
        n = len(positions)
        if n > _MAX_BATCH:
            raise ValueError("at most 1048576 positions")
        _int(count, "count")
        length, nlb = self._units(count)
        if length * n > _MAX_LEN:
            raise ValueError("batch too large (max 1 GiB)")
        if n == 0:
            return 0 if into is not None else []
        if into is not None:
            cd, size, keep = _mem(into, True)
            if size < length * n:
                raise ValueError("into is too small for the batch")
            self._check_aligned(cd, "into")
        else:
            cd = self._bounce_for(length * n)._cd
        self._need(n)
        self._fill(_RW_NVME_READ if self._nvme else _RW_READ, positions, cd, length, nlb)
        res = self._run(n, True)
        if into is not None:
            return length * n if self._nvme else sum(res)
        buf = ffi.buffer(cd, length * n)
        if self._nvme or min(res) == length:
            return [buf[i:i + length] for i in range(0, length * n, length)]
        return [buf[i * length:i * length + r] for i, r in enumerate(res)]

    def write_batch(self, positions: Sequence[int], data, count: Optional[int] = None) -> None:
        """Write data[i] at positions[i] (all the same length), or, with
        ``count``, slice i of one buffer ``data`` (count bytes for files,
        blocks for NVMe)."""
        self._live()
        n = len(positions)
        if n > _MAX_BATCH:
            raise ValueError("at most 1048576 positions")
        if n == 0:
            return
        if count is None:
            if len(data) != n:
                raise ValueError("as many data items as positions expected")
            length = len(data[0])
            if any(len(d) != length for d in data):
                raise ValueError("all data items must have the same length")
            if length == 0:
                raise _einval("length 0")
            self._check_len(length)
            nlb = length // self._blk if self._nvme else 0
            if self._nvme and nlb > 65536:
                raise ValueError("data items must be 1..65536 blocks")
            if length * n > _MAX_LEN:
                raise ValueError("batch too large (max 1 GiB)")
            b = self._bounce_for(length * n)
            mv = ffi.buffer(b._cd, length * n)
            for i, d in enumerate(data):
                mv[i * length:(i + 1) * length] = d
            cd = b._cd
        else:
            _int(count, "count")
            length, nlb = self._units(count)
            cd, size, keep = _mem(data, False)
            if size < length * n:
                raise ValueError("data is too small for the batch")
            self._check_aligned(cd, "data")
        self._need(n)
        self._fill(_RW_NVME_WRITE if self._nvme else _RW_WRITE, positions, cd, length, nlb)
        res = self._run(n, True)
        if not self._nvme:
            for i, r in enumerate(res):
                if r != length:
                    e = OSError(errno.EIO, f"short write ({r} of {length} bytes)")
                    e.index = i
                    raise e


class DirectFile(_Storage):
    """A file opened with O_DIRECT (see open_direct)."""

    _kind = "direct file"

    def __init__(self, path, *, create: bool = False, size: Optional[int] = None,
                 readonly: bool = False, qd: int = 32, mode: int = 0o644):
        self._fd = -1
        self._ring = ffi.NULL
        if readonly and (create or size is not None):
            raise ValueError("readonly excludes create and size")
        if size is not None:
            _int(size, "size")
        flags = os.O_DIRECT | os.O_CLOEXEC | (os.O_RDONLY if readonly else os.O_RDWR)
        if create:
            flags |= os.O_CREAT
        fd = os.open(path, flags, mode)
        try:
            m = ffi.new("unsigned[2]")
            check(lib.ringline_dio_alignment(fd, m, m + 1))
            self._mem_align = int(m[0]) or 512
            self._blk = int(m[1]) or 512
            # grow only: size means "at least this big"
            if size is not None and os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._nsid = 0
            self._setup(qd, False)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.path = os.fspath(path)

    @property
    def alignment(self) -> tuple:
        """(memory alignment, offset/length alignment)."""
        return self._mem_align, self._blk

    def size(self) -> int:
        self._live()
        return os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        """Read length bytes at offset (both aligned); short at end of file."""
        return self._read(offset, length)

    def readinto(self, buf, offset: int) -> int:
        """Read len(buf) bytes at offset straight into an aligned buffer."""
        return self._readinto(buf, offset)

    def write(self, offset: int, data) -> int:
        return self._write(offset, data)

    def fsync(self, datasync: bool = False) -> None:
        self._live()
        self._one(_RW_FSYNC, 0, ffi.NULL, 0, 0,
                  lib.RINGLINE_FSYNC_DATASYNC if datasync else 0)

    def __repr__(self):
        return (f"<DirectFile {self.path!r} closed>" if self._fd < 0 else
                f"<DirectFile {self.path!r} fd={self._fd} align={self._blk}>")


class NvmeDevice(_Storage):
    """An NVMe namespace through its generic char device /dev/ngXnY."""

    _nvme = True
    _kind = "nvme device"

    def __init__(self, path, *, qd: int = 32):
        self._fd = -1
        self._ring = ffi.NULL
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            try:
                nsid = fcntl.ioctl(fd, _NVME_IOCTL_ID)
            except OSError as e:
                if e.errno == errno.ENOTTY:
                    raise OSError(errno.ENODEV, f"{path} is not an NVMe namespace") from None
                raise
            page = AlignedBuffer(4096, 4096)
            # Identify Namespace by the admin ioctl the namespace's char
            # device accepts (io_uring admin commands only go to /dev/nvmeX)
            cmd = bytearray(_PASSTHRU.pack(lib.RINGLINE_NVME_ADMIN_IDENTIFY, 0, 0, nsid, 0, 0,
                                           0, page.address, 0, 4096,
                                           lib.RINGLINE_NVME_CNS_NAMESPACE, 0, 0, 0, 0, 0, 0, 0))
            st = fcntl.ioctl(fd, _NVME_IOCTL_ADMIN_CMD, cmd, True)
            if st > 0:
                raise NvmeError(st)
            g = ffi.new("uint32_t *")
            nsze = ffi.new("uint64_t *")
            ncap = ffi.new("uint64_t *")
            check(lib.ringline_nvme_ns_geometry(page._cd, g, nsze, ncap))
            self._geo = Geometry(int(g[0]), int(nsze[0]), int(ncap[0]), nsid)
            self._blk = int(g[0])
            self._mem_align = 4096
            self._nsid = nsid
            self._setup(qd, True)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.path = os.fspath(path)

    def identify(self) -> Geometry:
        self._live()
        return self._geo

    @property
    def lba_size(self) -> int:
        return self._geo.lba_size

    def read(self, lba: int, nblocks: int) -> bytes:
        return self._read(lba, nblocks)

    def readinto(self, buf, lba: int) -> int:
        """Read len(buf) // lba_size blocks into an aligned buffer."""
        return self._readinto(buf, lba)

    def write(self, lba: int, data) -> None:
        """Write data (a whole number of blocks) at lba."""
        self._write(lba, data)

    def flush(self) -> None:
        self._live()
        self._one(_RW_NVME_FLUSH, 0, ffi.NULL, 0, 0)

    def write_zeroes(self, lba: int, nblocks: int) -> None:
        self._live()
        _int(lba, "lba")
        _int(nblocks, "nblocks")
        if not 1 <= nblocks <= 65536:
            raise ValueError("nblocks must be 1..65536")
        self._one(_RW_NVME_WZ, lba, ffi.NULL, 0, nblocks)

    def __repr__(self):
        return (f"<NvmeDevice {self.path!r} closed>" if self._fd < 0 else
                f"<NvmeDevice {self.path!r} nsid={self._nsid} lba={self._blk}>")


def open_direct(path, **kw) -> DirectFile:
    return DirectFile(path, **kw)


def nvme_open(path, **kw) -> NvmeDevice:
    return NvmeDevice(path, **kw)
