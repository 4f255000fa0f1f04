"""ringline.storage: O_DIRECT file objects on a real ext4 file in the build
tree (ctest runs pytest with the build's python/ directory as cwd). The NVMe
device objects run against the real kernel driver in the VM test
(tests/vm/vm_storage.py); here only what needs no NVMe device."""
import errno
import os

import pytest

import ringline
from ringline import storage


@pytest.fixture
def path():
    d = os.path.join(os.getcwd(), "storage-pytest")
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, f"f{os.getpid()}-{os.urandom(4).hex()}.dat")
    yield p
    if os.path.exists(p):
        os.unlink(p)


def pattern(tag, n):
    return (tag.encode().ljust(16, b".") * (n // 16))[:n]


def test_exports():
    assert ringline.open_direct is storage.open_direct
    assert issubclass(ringline.NvmeError, OSError)


def test_create_size_alignment(path):
    with storage.open_direct(path, create=True, size=1 << 20) as f:
        assert f.size() == 1 << 20
        mem, off = f.alignment
        assert mem >= 1 and off >= 512
        assert "DirectFile" in repr(f)
    assert f.closed


def test_missing_file(path):
    with pytest.raises(FileNotFoundError):
        storage.open_direct(path)


def test_round_trip(path):
    with storage.open_direct(path, create=True, size=1 << 20) as f:
        a, b = pattern("alpha", 4096), pattern("beta", 8192)
        assert f.write(0, a) == 4096
        assert f.write(65536, bytearray(b)) == 8192  # unaligned source: bounced
        f.fsync()
        f.fsync(datasync=True)
        assert f.read(0, 4096) == a
        assert f.read(65536, 8192) == b
        assert f.read(8192, 4096) == bytes(4096)
        assert len(f.read((1 << 20) - 4096, 8192)) == 4096  # short at EOF
        assert f.read(1 << 20, 4096) == b""
        assert f.read(0, 0) == b""
        buf = storage.aligned_buffer(8192)
        assert f.readinto(buf, 65536) == 8192
        assert bytes(buf) == b
        # a memoryview of an aligned buffer works too
        assert f.readinto(buf.view[:4096], 0) == 4096
        assert bytes(buf.view[:4096]) == a
    with storage.open_direct(path, readonly=True) as g:
        assert g.read(0, 4096) == a
        with pytest.raises(OSError) as ei:
            g.write(0, a)
        assert ei.value.errno == errno.EBADF
    with open(path, "rb") as fh:
        fh.seek(65536)
        assert fh.read(8192) == b


def test_batch_qd32(path):
    with storage.open_direct(path, create=True, size=4 << 20, qd=32) as f:
        offs = [((i * 37) % 1024) * 4096 for i in range(256)]
        data = [pattern(f"blk{i}", 4096) for i in range(256)]
        f.write_batch(offs, data)
        got = f.read_batch(offs, 4096)
        assert got == data
        # a second batch of the same shape reuses the request array
        assert f.read_batch(offs[:100], 4096) == data[:100]
        buf = storage.aligned_buffer(256 * 4096)
        assert f.read_batch(offs, 4096, into=buf) == 256 * 4096
        assert bytes(buf.view[199 * 4096:200 * 4096]) == data[199]
        offs2 = [(2 << 20) + i * 4096 for i in range(256)]
        f.write_batch(offs2, buf, count=4096)
        assert f.read((2 << 20) + 16 * 4096, 4096) == data[16]
        assert f.read_batch([], 4096) == []


def test_misaligned_is_einval(path):
    with storage.open_direct(path, create=True, size=1 << 20) as f:
        mem, off = f.alignment
        calls = [
            lambda: f.read(1, 4096),
            lambda: f.read(0, 100),
            lambda: f.write(100, pattern("x", 4096)),
            lambda: f.write(0, b"short"),
            lambda: f.read_batch([0, 4096, 7], 4096),
            lambda: f.read_batch([0], 1000),
            lambda: f.write_batch([0, 4096], [b"ab", b"cd"]),
        ]
        for call in calls:
            with pytest.raises(OSError) as ei:
                call()
            assert ei.value.errno == errno.EINVAL
            assert f"multiple of {off}" in str(ei.value)
        if mem > 1:
            buf = storage.aligned_buffer(8192 + 4096)
            with pytest.raises(OSError) as ei:
                f.readinto(buf.view[1:4097], 0)
            assert ei.value.errno == errno.EINVAL and "aligned" in str(ei.value)
        with pytest.raises(TypeError):
            f.read("x", 4096)
        with pytest.raises(ValueError):
            f.read(-4096, 4096)
        with pytest.raises(TypeError):
            f.read_batch(["a"], 4096)
        with pytest.raises(TypeError):
            f.readinto(b"immutable", 0)
        with pytest.raises(ValueError):
            f.write_batch([0, 4096], [pattern("a", 4096)])
        with pytest.raises(ValueError):
            f.write_batch([0, 4096], [pattern("a", 4096), pattern("a", 8192)])
        with pytest.raises(ValueError):
            f.read_batch([0, 4096], 4096, into=storage.aligned_buffer(4096))
        assert f.read(0, 4096) == bytes(4096)


def test_closed(path):
    f = storage.open_direct(path, create=True, size=65536)
    f.close()
    f.close()
    for call in (lambda: f.read(0, 4096), lambda: f.write(0, pattern("x", 4096)),
                 f.fsync, lambda: f.read_batch([0], 4096), f.size, f.fileno):
        with pytest.raises(OSError) as ei:
            call()
        assert ei.value.errno == errno.EBADF
        assert "closed" in str(ei.value)


def test_options(path):
    with pytest.raises(ValueError):
        storage.open_direct(path, create=True, qd=0)
    with pytest.raises(ValueError):
        storage.open_direct(path, readonly=True, create=True)
    with pytest.raises(TypeError):
        storage.open_direct(path, create=True, size="big")


def test_nvme_open_refuses_non_nvme(path):
    open(path, "wb").close()
    with pytest.raises(OSError) as ei:
        storage.nvme_open(path)
    assert ei.value.errno == errno.ENODEV
    with pytest.raises(FileNotFoundError):
        storage.nvme_open(path + ".missing")


def test_nvme_status_text():
    e = storage.NvmeError(0x4080, 3)
    assert isinstance(e, OSError) and e.errno == errno.EIO
    assert (e.status, e.sct, e.sc, e.index) == (0x4080, 0, 0x80, 3)
    assert "LBA out of range" in str(e)
    assert "unrecovered read error" in storage.nvme_status_text(0x281)
