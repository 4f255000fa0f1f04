"""vm_storage.py — ringline.storage's NvmeDevice / DirectFile against the real
Linux NVMe driver, inside the VM (tests/vm/vm.sh; namespace 1 of 512-byte and
namespace 2 of 4096-byte LBAs, 64 MiB each). Prints "ok ..." / "FAIL ..." per
check and "vm_storage.py: PASS" only if every check passed.

    python3 -S vm_storage.py /dev/ng0n1:/dev/nvme0n1:512 ...
"""
import errno
import sys

from ringline import storage

fails = 0
checks = 0


def check(cond, what, *info):
    global fails, checks
    checks += 1
    if cond:
        print("ok   " + what)
    else:
        fails += 1
        print("FAIL " + what, *info)


def pattern(tag, n):
    return (tag.encode().ljust(16, b" ") * (n // 16))[:n]


def expect_status(fn, what, sc=0x80):
    try:
        fn()
    except storage.NvmeError as e:
        check(e.sc == sc and e.sct == 0 and e.errno == errno.EIO and "LBA out of range" in str(e),
              what, e, e.status)
        return e
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        check(False, what, "raised", repr(e))
        return None
    check(False, what, "no error")
    return None


def run(ng, blk, lba, nsid):
    t = ng + ": "
    try:
        dev = storage.nvme_open(ng, qd=32)
    except OSError as e:
        check(False, t + "nvme_open", e)
        return
    with dev:
        g = dev.identify()
        check(g.lba_size == lba, t + f"identify lba_size {lba}", g)
        check(g.nsze == (64 << 20) // lba and g.ncap == g.nsze, t + "identify capacity", g)
        check(g.bytes == 64 << 20 and g.nsid == nsid, t + "identify bytes/nsid", g)

        a = pattern(ng + " single", 2 * lba)
        dev.write(10, a)
        check(dev.read(10, 2) == a, t + "write/read 2 blocks at LBA 10")
        buf = storage.aligned_buffer(2 * lba, 4096)
        check(dev.readinto(buf, 10) == 2 * lba and bytes(buf) == a, t + "readinto an aligned buffer")
        dev.flush()
        check(True, t + "flush")

        with storage.open_direct(blk) as f:
            check(f.read(10 * lba, 2 * lba) == a, t + "O_DIRECT sees the passthrough write")
            b = pattern(blk + " odirect", lba)
            check(f.write(20 * lba, b) == lba, t + "O_DIRECT write")
            f.fsync()
            check(dev.read(20, 1) == b, t + "passthrough sees the O_DIRECT write")

        dev.write_zeroes(10, 2)
        check(dev.read(10, 2) == bytes(2 * lba), t + "write_zeroes reads back zeroes")

        lbas = [1000 + ((k * 37) % 512) * 2 for k in range(256)]
        data = [pattern(f"{ng} b{k}", 2 * lba) for k in range(256)]
        dev.write_batch(lbas, data)
        check(dev.read_batch(lbas, 2) == data, t + "write_batch/read_batch 256 x 2 blocks at QD 32")
        big = storage.aligned_buffer(256 * 2 * lba, 4096)
        check(dev.read_batch(lbas, 2, into=big) == 256 * 2 * lba
              and bytes(big.view[99 * 2 * lba:100 * 2 * lba]) == data[99], t + "read_batch into")

        expect_status(lambda: dev.read(g.nsze, 1), t + "read past the end -> NvmeError 0x80")
        expect_status(lambda: dev.write(g.nsze - 1, pattern("x", 2 * lba)), t + "write across the end")
        expect_status(lambda: dev.write_zeroes(g.nsze + 5, 1), t + "write_zeroes past the end")
        e = expect_status(lambda: dev.read_batch([0, 2, g.nsze + 100, 4], 1), t + "batch past the end")
        check(e is not None and e.index == 2, t + "batch names the failed request",
              getattr(e, "index", None))
        check(dev.read(10, 2) == bytes(2 * lba), t + "reads after errors")

        try:
            dev.write(0, b"y" * (lba + 1))
            check(False, t + "partial block -> EINVAL")
        except OSError as e:
            check(e.errno == errno.EINVAL and not isinstance(e, storage.NvmeError),
                  t + "partial block -> EINVAL", e)
    try:
        dev.read(0, 1)
        check(False, t + "closed device raises")
    except OSError as e:
        check(e.errno == errno.EBADF, t + "closed device raises EBADF", e)


for i, spec in enumerate(sys.argv[1:]):
    ng, blk, lba = spec.split(":")
    run(ng, blk, int(lba), i + 1)

try:
    storage.nvme_open("/dev/nvme0")
    check(False, "controller char device refused")
except OSError as e:
    check(e.errno == errno.ENODEV, "controller char device refused", e)

print(f"vm_storage.py: {checks} checks, {fails} failed")
if fails == 0 and checks > 10:
    print("vm_storage.py: PASS")
    sys.exit(0)
print("vm_storage.py: FAIL")
sys.exit(1)
