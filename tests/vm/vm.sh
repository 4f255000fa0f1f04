#!/bin/bash
# vm.sh — boot Debian's kernel in QEMU/KVM with an emulated NVMe controller
# and run programs inside, reporting back over the serial console.
#
#   vm.sh --work DIR [options] -- COMMAND [ARGS...]
#
# Everything comes from Debian packages: qemu-system-x86, busybox-static,
# cpio, kmod (modinfo) from tools/deps-extra.txt, and the kernel itself from
# `apt-get download` of the versioned linux-image-*-amd64 package that
# linux-image-amd64 depends on, unpacked with dpkg-deb into the build tree
# (never installed into /boot) and cached there so reruns need no network.
#
# Inside, /init loads the NVMe modules (and their dependencies, resolved on
# the host with modinfo), waits for /dev/ng0n1, runs COMMAND, prints
# "RLVM-EXIT rc=N" and powers off. The VM's console is copied to stdout;
# this script exits 0 when COMMAND exited 0 (and, with --expect, printed
# that line), 1 on failure, 77 only when /dev/kvm is missing or unusable.
#
# Options:
#   --work DIR        working directory (initramfs, disk images, console log)
#   --cache DIR       where the kernel package is cached (default DIR/kernel)
#   --timeout SEC     host-side bound on the whole VM run (default 120)
#   --mem MB          guest memory (default 1024)
#   --smp N           guest CPUs (default 2)
#   --file SRC[:DST]  copy a (static) program or file into the initramfs
#                     (default DST: /rl/<basename>)
#   --dynamic SRC[:DST] copy a dynamically linked program and the shared
#                     libraries ldd names for it
#   --ns SPEC         add an NVMe namespace: MB[:LBA_SIZE] (default one
#                     namespace of 256 MiB with 512-byte LBAs); nsids are
#                     given in order from 1
#   --expect LINE     COMMAND must also print a line containing LINE
#                     (repeatable: every LINE must appear)
#   --nvme-opts STR   extra properties for -device nvme (e.g. ioeventfd=on)
#   --drive-opts STR  extra -drive options (e.g. cache=none,aio=io_uring)
#
# Accelerator: KVM when it boots the kernel. Where the host's /dev/kvm is
# PVM (the kvm_pvm module: paravirtual nested KVM, which runs only guest
# kernels built for it; Debian's hangs right after decompression), or the
# guest does not reach /init under KVM within 40 s, the same VM runs under
# TCG software emulation, with the time bound doubled. RINGLINE_VM_ACCEL=
# kvm|tcg|auto forces the choice (tcg also works without /dev/kvm).
set -u
set -o pipefail

WORK=
CACHE=
TIMEOUT=120
MEM=1024
SMP=2
FILES=()
DYNAMIC=()
NSPECS=()
EXPECT=()
NVME_OPTS=
DRIVE_OPTS=
while [ $# -gt 0 ]; do
    case "$1" in
    --work) WORK=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --smp) SMP=$2; shift 2 ;;
    --file) FILES+=("$2"); shift 2 ;;
    --dynamic) DYNAMIC+=("$2"); shift 2 ;;
    --ns) NSPECS+=("$2"); shift 2 ;;
    --expect) EXPECT+=("$2"); shift 2 ;;
    --nvme-opts) NVME_OPTS=",$2"; shift 2 ;;
    --drive-opts) DRIVE_OPTS=",$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "vm.sh: unknown option $1" >&2; exit 1 ;;
    esac
done
[ -n "$WORK" ] && [ $# -gt 0 ] || { echo "usage: vm.sh --work DIR [options] -- COMMAND..." >&2; exit 1; }
[ ${#NSPECS[@]} -gt 0 ] || NSPECS=(256:512)

say() { echo "vm.sh: $*"; }
die() { echo "vm.sh: FAIL: $*"; exit 1; }

# ---- KVM: the only reason to skip (unless TCG was asked for) ----
ACCEL=${RINGLINE_VM_ACCEL:-auto}
if [ "$ACCEL" != tcg ]; then
    if [ ! -e /dev/kvm ]; then
        echo "vm.sh: SKIP: /dev/kvm is missing (no hardware virtualisation here; RINGLINE_VM_ACCEL=tcg runs the VM under software emulation instead)"
        exit 77
    fi
    if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
        echo "vm.sh: SKIP: /dev/kvm exists but is not readable and writable by $(id -un)"
        exit 77
    fi
fi

for tool in qemu-system-x86_64 cpio modinfo dpkg-deb apt-get gzip; do
    command -v "$tool" >/dev/null ||
        die "$tool not found: run 'make deps' (tools/deps.sh installs qemu-system-x86, busybox-static, cpio, kmod from tools/deps-extra.txt)"
done
BUSYBOX=/bin/busybox
bb_ldd=$([ -x "$BUSYBOX" ] && LC_ALL=C ldd "$BUSYBOX" 2>&1)
case "$bb_ldd" in
*"not a dynamic"* | *"statically linked"*) ;;
*) die "$BUSYBOX is missing or not statically linked: install busybox-static (tools/deps-extra.txt)" ;;
esac

mkdir -p "$WORK" || die "cannot create $WORK"
WORK=$(cd "$WORK" && pwd)
[ -n "$CACHE" ] || CACHE=$WORK/kernel
mkdir -p "$CACHE" || die "cannot create $CACHE"
CACHE=$(cd "$CACHE" && pwd)

# ---- the kernel: resolve, download once, unpack into the cache ----
resolve_kpkg() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
KPKG=$(resolve_kpkg)
if [ -z "$KPKG" ] && [ "$(id -u)" = 0 ]; then
    say "apt-cache does not know linux-image-amd64 yet: apt-get update"
    apt-get update -qq >/dev/null 2>&1
    KPKG=$(resolve_kpkg)
fi
if [ -z "$KPKG" ]; then
    # Offline with an empty package list: a kernel cached by an earlier run
    # will do.
    KPKG=$(ls -1 "$CACHE" 2>/dev/null | grep '^linux-image-' | while read -r d; do
        [ -f "$CACHE/$d/.complete" ] && echo "$d"; done | sort -V | tail -1)
    [ -n "$KPKG" ] ||
        die "cannot resolve the kernel package: apt-cache depends linux-image-amd64 names no linux-image-<version>-amd64 (no package lists, and no kernel cached in $CACHE)"
    say "using cached $KPKG (package lists unavailable)"
fi
KDIR=$CACHE/$KPKG
if [ ! -f "$KDIR/.complete" ]; then
    say "downloading $KPKG (apt-get download, once; cached in $KDIR)"
    rm -rf "$KDIR" "$CACHE/dl"
    mkdir -p "$CACHE/dl"
    # apt drops to the _apt user for downloads; let it write here
    chmod 0777 "$CACHE/dl" 2>/dev/null
    if ! (cd "$CACHE/dl" && apt-get download "$KPKG" >download.log 2>&1); then
        cat "$CACHE/dl/download.log"
        die "apt-get download $KPKG failed (no network or no Debian mirror reachable?); the NVMe VM test needs the Debian kernel package once, then runs from the cache in $CACHE"
    fi
    deb=$(ls "$CACHE"/dl/*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || die "apt-get download $KPKG produced no .deb"
    rm -rf "$CACHE/dl/x"
    dpkg-deb -x "$deb" "$CACHE/dl/x" || die "dpkg-deb -x $deb failed"
    kver=$(ls "$CACHE/dl/x/lib/modules" | head -1)
    [ -n "$kver" ] && [ -f "$CACHE/dl/x/boot/vmlinuz-$kver" ] ||
        die "$deb holds no boot/vmlinuz-* and lib/modules/*"
    mkdir -p "$KDIR/modules"
    cp "$CACHE/dl/x/boot/vmlinuz-$kver" "$KDIR/vmlinuz"
    cp "$CACHE/dl/x/boot/config-$kver" "$KDIR/config" 2>/dev/null
    # keep only the module directories the NVMe stack can need
    (cd "$CACHE/dl/x/lib/modules/$kver/kernel" &&
        tar cf - drivers/nvme block lib crypto arch/x86/crypto drivers/hwmon 2>/dev/null) |
        (cd "$KDIR/modules" && tar xf -)
    echo "$kver" >"$KDIR/version"
    rm -rf "$CACHE/dl"
    touch "$KDIR/.complete"
fi
KVER=$(cat "$KDIR/version")
say "kernel $KPKG ($KVER)"

# ---- modules: nvme and what it needs, in load order ----
find_mod() { # name -> path (modules may use - or _ interchangeably)
    local n=$1 alt
    alt=$(echo "$n" | tr '_-' '-_')
    find "$KDIR/modules" \( -name "$n.ko*" -o -name "$alt.ko*" -o \
        -name "$(echo "$n" | tr '-' '_').ko*" -o -name "$(echo "$n" | tr '_' '-').ko*" \) \
        2>/dev/null | head -1
}
declare -A SEEN=()
ORDER=()
add_mod() {
    local n=$1 p deps soft d
    [ -n "${SEEN[$n]:-}" ] && return 0
    SEEN[$n]=1
    p=$(find_mod "$n")
    if [ -z "$p" ]; then
        return 1
    fi
    deps=$(modinfo -F depends "$p" 2>/dev/null | tr ',' ' ')
    soft=$(modinfo -F softdep "$p" 2>/dev/null | sed -n 's/.*pre: *//p')
    for d in $soft $deps; do
        add_mod "$d" || true # a softdep may name an alias, not a module
    done
    ORDER+=("$p")
}
# generic crypto implementations the CRC libraries look up at load time
for m in crct10dif_generic crc64_rocksoft_generic; do add_mod "$m" || true; done
add_mod nvme || die "nvme.ko not found in $KPKG"

# ---- initramfs ----
ROOT=$WORK/initramfs
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,dev,proc,sys,tmp,rl,lib/modules,etc}
cp "$BUSYBOX" "$ROOT/bin/busybox"
ln -s busybox "$ROOT/bin/sh"
: >"$ROOT/modules.order"
for p in "${ORDER[@]}"; do
    b=$(basename "$p")
    case "$b" in
    *.ko.xz) xz -dc "$p" >"$ROOT/lib/modules/${b%.xz}"; b=${b%.xz} ;;
    *.ko.zst) zstd -qdc "$p" >"$ROOT/lib/modules/${b%.zst}"; b=${b%.zst} ;;
    *.ko.gz) gzip -dc "$p" >"$ROOT/lib/modules/${b%.gz}"; b=${b%.gz} ;;
    *) cp "$p" "$ROOT/lib/modules/$b" ;;
    esac
    echo "$b" >>"$ROOT/modules.order"
done
say "modules: $(tr '\n' ' ' <"$ROOT/modules.order")"

copy_in() { # src dst
    mkdir -p "$ROOT$(dirname "$2")"
    cp -L "$1" "$ROOT$2" || die "cannot copy $1"
}
for f in "${FILES[@]}"; do
    src=${f%%:*}
    dst=${f#*:}
    [ "$dst" = "$f" ] && dst=/rl/$(basename "$src")
    [ -e "$src" ] || die "$src does not exist"
    copy_in "$src" "$dst"
done
for f in "${DYNAMIC[@]}"; do
    src=${f%%:*}
    dst=${f#*:}
    [ "$dst" = "$f" ] && dst=/rl/$(basename "$src")
    [ -e "$src" ] || die "$src does not exist"
    copy_in "$src" "$dst"
    for lib in $(ldd "$src" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'); do
        [ -e "$ROOT$lib" ] || copy_in "$lib" "$lib"
    done
done

# COMMAND, quoted for the init script
CMD=
for a in "$@"; do CMD="$CMD '${a//\'/\'\\\'\'}'"; done

cat >"$ROOT/init" <<EOF
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# no tmpfs over /tmp: the initramfs root is already writable memory, and
# files copied in under their host paths (a build tree in /tmp, say) must
# stay visible
mkdir -p /tmp
echo "RLVM-BOOTED \$(uname -r) cpus=\$(grep -c ^processor /proc/cpuinfo)"
for m in \$(cat /modules.order); do
    insmod /lib/modules/\$m 2>/tmp/insmod.err || {
        grep -q "File exists" /tmp/insmod.err || echo "RLVM: insmod \$m: \$(cat /tmp/insmod.err)"; }
done
i=0
while [ ! -c /dev/ng0n1 ] && [ \$i -lt 100 ]; do sleep 0.1; i=\$((i+1)); done
ls -l /dev/nvme* /dev/ng* 2>&1 | sed 's/^/RLVM: /'
cd /tmp
echo "RLVM-RUN$CMD"
$CMD
rc=\$?
echo "RLVM-EXIT rc=\$rc"
sync
poweroff -f
EOF
chmod +x "$ROOT/init"
INITRD=$WORK/initramfs.cpio.gz
(cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 >"$INITRD") ||
    die "building the initramfs failed"
rm -rf "$ROOT"

# ---- namespaces: sparse backing files in the work dir ----
QARGS=()
nsid=0
for spec in "${NSPECS[@]}"; do
    nsid=$((nsid + 1))
    mb=${spec%%:*}
    lba=${spec#*:}
    [ "$lba" = "$spec" ] && lba=512
    img=$WORK/ns$nsid.img
    rm -f "$img"
    truncate -s "${mb}M" "$img" || die "cannot create $img"
    QARGS+=(-drive "file=$img,if=none,id=d$nsid,format=raw$DRIVE_OPTS"
        -device "nvme-ns,drive=d$nsid,bus=nvme0,nsid=$nsid,logical_block_size=$lba,physical_block_size=$lba")
done

LOG=$WORK/console.log

# Run the VM with accelerator $1 ("kvm" or "tcg"), bounded by $2 seconds.
# With $3 > 0, give up (status 200) if the guest has not reached /init
# after $3 seconds.
run_qemu() {
    local accel=$1 limit=$2 watch=$3 cpu pid t=0
    if [ "$accel" = kvm ]; then
        # arch-capabilities: QEMU 7.2 aborts on hosts whose KVM refuses
        # that MSR (nested set-ups); the guest does not need it
        cpu=host,-arch-capabilities
    else
        cpu=max
    fi
    rm -f "$LOG"
    timeout -k 5 "$limit" qemu-system-x86_64 \
        -nodefaults -no-user-config -display none -no-reboot \
        -machine q35 -accel "$accel" -cpu "$cpu" -smp "$SMP" -m "$MEM" \
        -kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
        -append "console=ttyS0 panic=-1 oops=panic loglevel=4 rdinit=/init" \
        -serial "file:$LOG" \
        -device "nvme,id=nvme0,serial=ringline-vm$NVME_OPTS" \
        "${QARGS[@]}" </dev/null &
    pid=$!
    if [ "$watch" -gt 0 ]; then
        while kill -0 $pid 2>/dev/null; do
            grep -q RLVM-BOOTED "$LOG" 2>/dev/null && break
            if [ $t -ge $((watch * 10)) ]; then
                kill $pid 2>/dev/null
                wait $pid 2>/dev/null
                return 200
            fi
            sleep 0.1
            t=$((t + 1))
        done
    fi
    wait $pid
}

# KVM when it can boot a stock kernel; otherwise software emulation (TCG),
# which runs the same kernel and driver, only slower. RINGLINE_VM_ACCEL
# (kvm, tcg, auto) overrides the choice.
if [ "$ACCEL" = auto ] && [ -d /sys/module/kvm_pvm ]; then
    say "this host's /dev/kvm is PVM (kvm_pvm module: paravirtual nested KVM), which boots only PVM-enabled guest kernels; Debian's stock kernel hangs there, so the VM runs under TCG software emulation"
    ACCEL=tcg
fi
# emulation is slower: the bound doubles
[ "$ACCEL" = tcg ] && TIMEOUT=$((TIMEOUT * 2))
say "booting (${ACCEL}, timeout ${TIMEOUT}s): ${#NSPECS[@]} namespace(s) ${NSPECS[*]}"
start=$(date +%s)
case "$ACCEL" in
auto)
    run_qemu kvm "$TIMEOUT" 40
    qrc=$?
    if [ $qrc = 200 ]; then
        [ -f "$LOG" ] && tr -d '\r' <"$LOG" | tail -5
        say "the guest did not reach /init under KVM in 40 s: retrying under TCG software emulation"
        ACCEL=tcg
        start=$(date +%s)
        run_qemu tcg $((TIMEOUT * 2)) 0
        qrc=$?
    fi
    ;;
kvm) run_qemu kvm "$TIMEOUT" 0; qrc=$? ;;
tcg)
    run_qemu tcg "$TIMEOUT" 0
    qrc=$?
    ;;
*) die "RINGLINE_VM_ACCEL=$ACCEL: want kvm, tcg or auto" ;;
esac
end=$(date +%s)
rm -f "$WORK"/ns*.img # scratch disks: nothing on them is kept
# the console, minus carriage returns
[ -f "$LOG" ] && tr -d '\r' <"$LOG"
say "qemu ($ACCEL) exited $qrc after $((end - start)) s"
echo "RLVM-ACCEL $ACCEL"
if [ $qrc = 124 ] || [ $qrc = 137 ]; then
    die "the VM did not power off within ${TIMEOUT}s (hung guest or test)"
fi
[ $qrc = 0 ] || die "qemu-system-x86_64 exited $qrc"
[ -f "$LOG" ] || die "no console output"
grep -q "RLVM-BOOTED" "$LOG" || die "the guest never reached /init"
rc=$(tr -d '\r' <"$LOG" | sed -n 's/^RLVM-EXIT rc=\([0-9]*\)$/\1/p' | tail -1)
[ -n "$rc" ] || die "the guest command did not finish (no RLVM-EXIT line: crash or panic?)"
[ "$rc" = 0 ] || die "the guest command exited $rc"
for e in "${EXPECT[@]}"; do
    tr -d '\r' <"$LOG" | grep -qF -- "$e" || die "the guest command printed no '$e' line"
done
say "PASS"
exit 0
