"""migrate_libvirt: `virsh migrate --live` between two libvirtd on one machine, for bench/migrate.

libvirt refuses a migration to its own host ("Attempt to migrate guest to the same host":
the two host UUIDs compare equal), and a privileged libvirtd keeps its state in fixed
folders (/run/libvirt, /var/lib/libvirt, …; its QEMU driver takes a pid-file lock in
/run/libvirt/qemu), so two cannot share a machine as they are.  Here each libvirtd runs in
its own mount namespace (`unshare --mount`), with private folders bound over those, its own
qemu.conf bound over /etc/libvirt/qemu.conf, its own `host_uuid`, its control socket in a
folder of ours (reached from here with qemu+unix:///system?socket=…), only the QEMU driver
loaded (as benchlib.Libvirt), and:

- QEMU as libvirt's own user (libvirt-qemu, in group kvm: as nobody, not in kvm, libvirt 9.0
  would probe QEMU again at every domain start, ~10 s here, see benchlib.kvm_fix; the domain
  is type 'qemu', so TCG all the same), dynamic_ownership = 0 and security_driver = "none"
  (libvirt never chowns a file: the kernel and initrd are our own copies anyway),
  cgroup_controllers = [] (both daemons would name the same machine cgroup),
  stdio_handler = "file" (no virtlogd: its socket is fixed in /run/libvirt);
- migration TLS (`--tls`) with the same certificates and DH group as bench/migrate's other
  variants (migrate_tls_x509_cert_dir), migration_host/address 127.0.0.1, each daemon its
  own port range;
- `virsh migrate --live --tls --auto-converge --bandwidth 119` (MiB/s: 124.8 MB/s, the
  nearest to 1 Gbit/s libvirt takes), after `migrate-setmaxdowntime 50`.

Everything is removed at exit (benchlib cleanup): domains destroyed, daemons stopped, QEMUs
killed by the pid files in our folders; the mounts die with the namespaces.
"""
import os
import shutil
import subprocess
import time
import uuid

import pwd

from benchlib import (SRC, BenchTimeout, DOMAIN_PREFIX, QEMU, kill_and_wait, kvm_fix, kvm_restore,
                      libvirt_install, make_tmpdir, on_cleanup, pid_alive, proc_cmdline, stop_popen, wait_until)

NAME = DOMAIN_PREFIX + "mig"
LIBVIRT_QEMU_USER = "libvirt-qemu"      # Debian's build default (qemu.conf `user`)
BANDWIDTH_MIB = 119
DRIVER = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"
STATE_DIRS = ["/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/var/log/libvirt"]

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>{dir}/vmlinuz</kernel>
    <initrd>{dir}/initrd.img</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{qemu}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='file'><source path='{dir}/serial.log'/><target port='0'/></serial>
  </devices>
</domain>
"""


class LibvirtHost:
    def __init__(self, name, address, common, port_min):
        self.name = name
        self.address = address
        self.dir = make_tmpdir("migrate-libvirt-" + name)
        self.sock_dir = os.path.join(self.dir, "sock")
        self.uri = "qemu+unix:///system?socket=%s/libvirt-sock" % self.sock_dir
        self.common = common
        self.port_min = port_min
        self.proc = None

    def state(self, path):
        """Where path of the namespace lies on this side."""
        return os.path.join(self.dir, "state", path.strip("/").replace("/", "_"))

    def start(self, dh_params):
        os.mkdir(self.sock_dir)
        for d in STATE_DIRS:
            os.makedirs(self.state(d))
        # The capability cache of the host's libvirt, so that this one need not probe QEMU.
        if os.path.isdir("/var/cache/libvirt/qemu"):
            shutil.copytree("/var/cache/libvirt/qemu", os.path.join(self.state("/var/cache/libvirt"), "qemu"))
        uid, gid = libvirt_qemu_identity()
        tls = os.path.join(self.dir, "tls")
        os.mkdir(tls, 0o700)
        os.chown(tls, uid, gid)
        pki = self.common["pki"]
        me = "libvirt-" + self.name
        subprocess.run([os.path.join(self.common["src"], "tools", "vmherd-pki"), "host", pki, me, self.address],
                       check=True, capture_output=True, timeout=120)
        for src, dst in (("ca-cert.pem", "ca-cert.pem"), (me + "-cert.pem", "server-cert.pem"),
                         (me + "-key.pem", "server-key.pem"), (me + "-cert.pem", "client-cert.pem"),
                         (me + "-key.pem", "client-key.pem"), (None, "dh-params.pem")):
            data = dh_params.encode()
            if src is not None:
                with open(os.path.join(pki, src), "rb") as f:
                    data = f.read()
            p = os.path.join(tls, dst)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o600)
            os.chown(p, uid, gid)
        qemu_conf = os.path.join(self.dir, "qemu.conf")
        with open(qemu_conf, "w") as f:
            f.write('dynamic_ownership = 0\nremember_owner = 0\n'
                    'security_driver = "none"\ncgroup_controllers = [ ]\nstdio_handler = "file"\n'
                    'migrate_tls_x509_cert_dir = "%s"\nmigrate_tls_x509_verify = 1\n'
                    'migration_address = "%s"\nmigration_host = "%s"\n'
                    'migration_port_min = %d\nmigration_port_max = %d\n'
                    % (tls, self.address, self.address, self.port_min, self.port_min + 40))
        conf = os.path.join(self.dir, "libvirtd.conf")
        with open(conf, "w") as f:
            f.write('unix_sock_dir = "%s"\nunix_sock_group = "root"\nauth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\nhost_uuid = "%s"\nlog_outputs = "3:file:%s/libvirtd.log"\n'
                    % (self.sock_dir, uuid.uuid4(), self.dir))
        drv = os.path.join(self.dir, "drivers")
        os.mkdir(drv)
        os.symlink(DRIVER, os.path.join(drv, "libvirt_driver_qemu.so"))
        mounts = "".join("mount --bind %s %s; " % (self.state(d), d) for d in STATE_DIRS)
        script = ("set -e; mount --make-rprivate /; %smount --bind %s /etc/libvirt/qemu.conf; "
                  "exec env LIBVIRT_DRIVER_DIR=%s libvirtd -f %s -p %s/libvirtd.pid"
                  % (mounts, qemu_conf, drv, conf, self.dir))
        out = open(os.path.join(self.dir, "daemon.out"), "ab")
        on_cleanup(self.stop)
        self.proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out)
        out.close()
        def answers():
            try:
                return self.virsh("version", check=False, timeout=20).returncode == 0
            except subprocess.TimeoutExpired:     # probing QEMU's capabilities
                return False
        try:
            wait_until(lambda: self.proc.poll() is not None or answers(), 120,
                       "libvirtd %s to answer" % self.name, interval=0.1)
        except BenchTimeout as e:
            return "libvirtd %s did not answer: %s" % (self.name, e)
        if self.proc.poll() is not None:
            with open(os.path.join(self.dir, "daemon.out")) as f:
                tail = f.read().strip().splitlines()[-1:] or ["?"]
            return "libvirtd %s exited with status %s: %s" % (self.name, self.proc.returncode, tail[0])
        return None

    def virsh(self, *args, check=True, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), capture_output=True, text=True,
                              timeout=timeout, check=check)

    def qemu_pid(self):
        try:
            with open(os.path.join(self.state("/run/libvirt"), "qemu", NAME + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def has_domain(self):
        return self.virsh("domstate", NAME, check=False, timeout=30).returncode == 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None and self.has_domain():
            self.virsh("destroy", NAME, check=False, timeout=30)
        pid = self.qemu_pid()
        if pid and pid_alive(pid) and any(NAME in a for a in proc_cmdline(pid)):
            kill_and_wait([pid])
        stop_popen(self.proc, 15)
        self.proc = None


def libvirt_qemu_identity():
    pw = pwd.getpwnam(LIBVIRT_QEMU_USER)
    return pw.pw_uid, pw.pw_gid


class LibvirtPair:
    def __init__(self, pki, guest_dir, dh_params):
        self.pki = pki
        self.guest_dir = guest_dir
        self.dh_params = dh_params
        self.note = None
        self.hosts = []
        self.where = 0

    def start(self):
        """Returns None, or why libvirt cannot do it here."""
        why = libvirt_install()
        if why:
            return why
        if shutil.which("unshare") is None:
            return "unshare (util-linux) is missing: two libvirtd need a mount namespace each"
        if os.environ.get("VMHERD_BENCH_KVM_FIXED") != "1":
            self.note = kvm_fix()
            on_cleanup(kvm_restore)
        common = {"pki": self.pki, "src": SRC}
        self.dir = make_tmpdir("migrate-libvirt")
        for f in ("vmlinuz", "initrd.img"):
            shutil.copy(os.path.join(self.guest_dir, f), os.path.join(self.dir, f))
            os.chmod(os.path.join(self.dir, f), 0o644)
        try:
            uid, gid = libvirt_qemu_identity()
        except KeyError:
            return "no user %s (libvirt's QEMU user on Debian)" % LIBVIRT_QEMU_USER
        serial = os.path.join(self.dir, "serial.log")
        open(serial, "w").close()
        os.chown(serial, uid, gid)
        # Two loopback addresses: libvirt refuses 127.0.0.1 itself as a migration address.
        self.hosts = [LibvirtHost("a", "127.0.0.2", common, 49300), LibvirtHost("b", "127.0.0.3", common, 49350)]
        for h in self.hosts:
            why = h.start(self.dh_params)
            if why:
                return why
        xml = os.path.join(self.dir, "domain.xml")
        with open(xml, "w") as f:
            f.write(DOMAIN_XML.format(name=NAME, dir=self.dir, qemu=QEMU))
        r = self.hosts[0].virsh("create", xml, check=False, timeout=180)
        if r.returncode != 0:
            return "virsh create of the 512 MB guest failed: %s" % r.stderr.strip()
        try:
            wait_until(lambda: b"vmherd-guest: ready" in open(serial, "rb").read(), 180,
                       "the libvirt guest to boot", interval=0.1)
        except BenchTimeout as e:
            return str(e)
        return None

    def migrate(self):
        src = self.hosts[self.where]
        dst = self.hosts[1 - self.where]
        src.virsh("migrate-setmaxdowntime", NAME, "50")
        cmd = ["virsh", "-q", "-c", src.uri, "migrate", "--live", "--tls", "--auto-converge",
               "--bandwidth", str(BANDWIDTH_MIB), NAME, dst.uri]
        t0 = time.monotonic()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        t = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError("virsh migrate: %s" % r.stderr.strip())
        self.where = 1 - self.where
        info = dst.virsh("domjobinfo", NAME, "--completed", check=False, timeout=30).stdout
        fields = {}
        for line in info.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()

        def ms(key):
            v = fields.get(key, "")
            return float(v.split()[0]) if v and v.split()[0].replace(".", "").isdigit() else -1

        wait_until(lambda: not src.has_domain(), 30, "the source libvirtd to drop the domain", interval=0.05)
        return {"total": t, "downtime-ev": -1, "downtime-qemu": ms("Total downtime"),
                "qemu-total": ms("Time elapsed"), "transferred": _bytes(fields.get("Memory processed", ""))}


def _bytes(text):
    units = {"B": 1, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}
    try:
        n, u = text.split()
        return float(n) * units.get(u, 1)
    except ValueError:
        return 0
