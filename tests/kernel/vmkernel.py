"""Run `kptui verify` on a second real kernel, in a small VM, for what this one lacks.

This machine's kernel has only a few tc modules built in (htb, tbf, pfifo,
bfifo, pfifo_fast, ingress/clsact, u32, mirred). Debian's stock kernel has
the rest as modules (act_police, cls_fw, sch_prio, sch_sfq, sch_fq_codel...),
so the scenarios that need them (those with a NAME.vm file beside them,
saying which modules and why) are verified there instead:

- the kernel is Debian's `linux-image-amd64` (apt-get download, unpacked into
  a cache directory, depmod run on it); nothing is installed;
- qemu boots it with a tiny busybox initramfs that mounts this machine's root
  read-only over 9p under a tmpfs overlay, mounts the project directory
  read-write at the same path, and switch_roots into it: the VM runs this
  machine's own python, kptui, iproute2, iptables and nftables, only on the
  other kernel (its modules load on demand from the cache, via kmod);
- `python -m kptui verify [--record] FILES` runs there as root; its
  output and exit status come back through a third, writable 9p share.

Used by tests/test_verify_live.py (the live check of NAME.vm scenarios) and
by hand to record them:

    python tests/kernel/vmkernel.py --record tests/kernel/scenarios/tc-police-*.toml
    python tests/kernel/vmkernel.py --run sh -c 'uname -r; tc -V'   # any command

Needs qemu-system-x86, kmod and busybox-static (.ci/run installs them). qemu
emulates the CPU (TCG): KVM inside this machine's own VM hangs the guest's
early boot, and TCG boots Debian's kernel in about five seconds anyway.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KPTUI_VM_CACHE", Path.home() / ".cache" / "kptui-vm"))
# The 9p root share, the overlay that makes it writable, and what they need.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
TOOLS = ("qemu-system-x86_64", "busybox", "depmod", "modprobe", "apt-get", "dpkg")


class VmUnavailable(RuntimeError):
    """The VM cannot be started here; the message says what is missing."""


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian kernel: its image, its module tree's root, its release."""

    image: Path
    root: Path
    release: str


@dataclass(frozen=True)
class VmRun:
    status: int
    stdout: str
    stderr: str
    console: str


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def debian_kernel() -> Kernel:
    """Debian's current stock kernel, downloaded and unpacked once into CACHE."""
    found = sorted(CACHE.glob("root/boot/vmlinuz-*"))
    if not found:
        deps = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout
        package = next((line.split(":", 1)[1].strip() for line in deps.splitlines()
                        if line.strip().startswith("Depends: linux-image-")), None)
        if package is None:
            raise VmUnavailable("apt-cache knows no linux-image-amd64 kernel package")
        download = CACHE / "download"
        download.mkdir(parents=True, exist_ok=True)
        _run(["apt-get", "download", package], cwd=download)
        deb = next(download.glob(f"{package}_*.deb"))
        _run(["dpkg", "-x", str(deb), str(CACHE / "root")])
        deb.unlink()
        found = sorted(CACHE.glob("root/boot/vmlinuz-*"))
    image = found[-1]
    release = image.name.removeprefix("vmlinuz-")
    root = CACHE / "root"
    if not (root / "lib" / "modules" / release / "modules.dep").exists():
        _run(["depmod", "-b", str(root), release])
    return Kernel(image=image, root=root, release=release)


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do insmod "$m" || echo "kptui-vm: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower
mount -t tmpfs -o size=512m tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot
mkdir -p "/newroot$PROJECT" /newroot/kptui-vm-out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 project "/newroot$PROJECT"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /newroot/kptui-vm-out
exec switch_root /newroot /bin/sh /kptui-vm-out/run.sh
"""

RUN = """set +e
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmpfs /run
mkdir -p /run/netns /lib/modules
ln -sfn "$MODULES" "/lib/modules/$RELEASE"
echo /sbin/modprobe > /proc/sys/kernel/modprobe
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$PROJECT"
cd "$PROJECT"
"$@" >/kptui-vm-out/stdout 2>/kptui-vm-out/stderr
echo $? > /kptui-vm-out/status
sync
echo o > /proc/sysrq-trigger
"""


def _initramfs(kernel: Kernel, work: Path) -> Path:
    tree = work / "initramfs"
    for d in ("bin", "proc", "sys", "dev", "modules.d"):
        (tree / d).mkdir(parents=True)
    shutil.copy(shutil.which("busybox"), tree / "bin" / "busybox")
    order = [line for name in BOOT_MODULES  # each with what it needs first
             for line in _run(["modprobe", "-d", str(kernel.root), "-S", kernel.release,
                               "--show-depends", name]).stdout.splitlines()]
    inside = []
    for line in order:
        words = line.split()
        if not words or words[0] != "insmod":
            continue
        source = Path(words[1])
        target = f"/modules.d/{source.name}"
        if target not in inside:
            shutil.copy(source, tree / target.lstrip("/"))
            inside.append(target)
    (tree / "modules").write_text("\n".join(inside) + "\n")
    init = tree / "init"
    init.write_text(INIT.replace("$PROJECT", str(PROJECT)))
    init.chmod(0o755)
    archive = work / "initramfs.cpio"
    files = subprocess.run(["find", "."], cwd=tree, check=True, capture_output=True).stdout
    with archive.open("wb") as out:
        subprocess.run(["busybox", "cpio", "-o", "-H", "newc"], cwd=tree, input=files,
                       stdout=out, stderr=subprocess.DEVNULL, check=True)
    return archive


def verify_in_vm(args: list[str], *, timeout: float = 900) -> VmRun:
    """`kptui verify ARGS` as root on Debian's kernel; raises VmUnavailable when it can't."""
    return run_in_vm([sys.executable, "-m", "kptui", "verify", *args], timeout=timeout)


def run_in_vm(argv: list[str], *, timeout: float = 900) -> VmRun:
    """Run ARGV as root in the project directory on Debian's kernel."""
    missing = missing_tools()
    if missing:
        raise VmUnavailable(f"missing {', '.join(missing)}")
    kernel = debian_kernel()
    with tempfile.TemporaryDirectory(prefix="kptui-vm-") as tmp:
        work = Path(tmp)
        out = work / "out"
        out.mkdir()
        quoted = " ".join(_sh_quote(a) for a in argv)
        (out / "run.sh").write_text(
            f"PROJECT={_sh_quote(str(PROJECT))}\nMODULES={_sh_quote(str(kernel.root))}"
            f"/lib/modules/{kernel.release}\nRELEASE={kernel.release}\n"
            f"set -- {quoted}\n" + RUN)
        share = "local,security_model=none,multidevs=remap,mount_tag={tag},path={path}"
        cmd = ["qemu-system-x86_64", "-cpu", "max", "-m", "1024", "-smp", "2", "-nographic",
               "-no-reboot", "-kernel", str(kernel.image),
               "-initrd", str(_initramfs(kernel, work)),
               "-append", "console=ttyS0 panic=-1 quiet",
               "-virtfs", share.format(tag="hostroot", path="/") + ",readonly=on",
               "-virtfs", share.format(tag="project", path=PROJECT),
               "-virtfs", share.format(tag="out", path=out)]
        try:
            booted = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise VmUnavailable(f"the VM did not finish within {timeout:.0f} s") from exc
        console = booted.stdout + booted.stderr
        status = out / "status"
        if not status.exists():
            raise VmUnavailable("the VM stopped before verify finished; its console:\n"
                                + console[-4000:])
        return VmRun(status=int(status.read_text().strip()),
                     stdout=(out / "stdout").read_text(), stderr=(out / "stderr").read_text(),
                     console=console)


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main(argv: list[str]) -> int:
    try:
        run = run_in_vm(argv[1:]) if argv[:1] == ["--run"] else verify_in_vm(argv)
    except (VmUnavailable, subprocess.CalledProcessError) as exc:
        print(f"kptui-vm: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    return run.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
