"""benchlib: what the vmherd benchmarks share (python3, stdlib only).

- cleanup: every process and folder a benchmark makes is registered here and removed at
  exit, on an exception and on SIGTERM/SIGINT/SIGHUP (bench/run-all's timeout sends TERM).
- Herd: a private vmherdd (host config, VM files, daemon, control socket client).
- BareQemu: the floor: exactly the argv vmherdd would run (from `vmherd show-cmdline`), with
  pre-bound QMP and serial sockets as fds 3 and 4, run as the same unprivileged user, then
  qmp_capabilities and cont over a minimal non-blocking QMP client.
- Libvirt: a private libvirtd + virtlogd (installed with apt when missing) and `virsh create`
  of an equivalent transient domain.
- stats and the markdown table every benchmark prints.

Nothing here sleeps for a fixed time to "let things settle" except where the benchmark
itself is a duration (CPU over 60 s, RSS after N health ticks); every wait has a timeout.
"""

import atexit
import fcntl
import grp
import json
import os
import pwd
import selectors
import shlex
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("VMHERD_BUILDDIR", os.path.join(SRC, "build"))
VMHERDD = os.path.join(BUILD, "vmherdd")
VMHERD = os.path.join(BUILD, "vmherd")
QEMU = os.environ.get("VMHERD_BENCH_QEMU", "/usr/bin/qemu-system-x86_64")
QEMU_USER = os.environ.get("VMHERD_BENCH_QEMU_USER", "nobody")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------
# logging, cleanup, waiting


def log(msg):
    sys.stderr.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), os.path.basename(sys.argv[0]), msg))
    sys.stderr.flush()


_cleanups = []


def on_cleanup(fn):
    """Registers fn to run at exit (last registered runs first)."""
    _cleanups.append(fn)
    return fn


def run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning up the rest
            log("cleanup %s failed: %r" % (getattr(fn, "__name__", fn), e))


def _on_signal(signo, frame):
    raise SystemExit(128 + signo)


atexit.register(run_cleanups)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


class BenchTimeout(Exception):
    pass


def wait_until(pred, timeout, what, interval=0.002):
    """Polls pred() until it is true; BenchTimeout(what) after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise BenchTimeout("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def tmp_root():
    return os.environ.get("VMHERD_BENCH_TMP") or tempfile.gettempdir()


def make_tmpdir(tag):
    """A fresh folder (0755: QEMU runs as another user and opens its serial log there)."""
    d = tempfile.mkdtemp(prefix="vmherd-bench-%s-" % tag, dir=tmp_root())
    os.chmod(d, 0o755)
    on_cleanup(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


# ---------------------------------------------------------------------------------------
# processes


def proc_state(pid):
    """The one-letter state of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def pid_alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def kill_and_wait(pids, timeout=10, sig=signal.SIGKILL):
    """Signals every pid that still lives, then waits until all are gone (zombies count as
    gone: they are reaped by whoever is their parent)."""
    pids = [p for p in pids if p and pid_alive(p)]
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(pid_alive(p) for p in pids), timeout, "pids %s to exit" % pids)


def stop_popen(p, timeout=10, sig=signal.SIGTERM):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(sig)
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks (None when gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError):
        return None


def cpu_ns(pid):
    """Time pid has run on a CPU, in ns (/proc/PID/schedstat); 0 when gone."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def status_kb(pid, key):
    """A kB field of /proc/PID/status (VmRSS, VmHWM, ...), or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def qemu_identity():
    """uid, gid, groups QEMU runs as: vmherd's qemu-user and that user's primary group."""
    pw = pwd.getpwnam(QEMU_USER)
    return pw.pw_uid, pw.pw_gid, os.getgrouplist(QEMU_USER, pw.pw_gid)


# ---------------------------------------------------------------------------------------
# JSON-lines sockets: vmherdd's control socket and QMP share this client, so the client side
# of the console round-trip benchmark is the same code for both.


class JsonLines:
    def __init__(self, path, timeout=10.0):
        self.path = path
        self.buf = b""
        self.events = []
        self.sock = None
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                self.sock = s
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise BenchTimeout("cannot connect to %s within %.0f s" % (path, timeout))
                time.sleep(0.002)
        self._id = 0

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, obj):
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def send_raw(self, data):
        self.sock.sendall(data)

    def readline(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchTimeout("no line from %s within %.0f s" % (self.path, timeout))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("%s closed the connection" % self.path)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def read(self, timeout=30.0):
        return json.loads(self.readline(timeout))

    def reply(self, timeout=30.0):
        """The next answer (return or error); events met on the way are kept in .events."""
        while True:
            msg = self.read(timeout)
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def call(self, execute, arguments=None, timeout=30.0):
        self._id += 1
        req = {"execute": execute, "id": self._id}
        if arguments is not None:
            req["arguments"] = arguments
        self.send(req)
        while True:
            msg = self.reply(timeout)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (execute, msg["error"]))
                return msg.get("return")

    def next_event(self, timeout):
        if self.events:
            return self.events.pop(0)
        msg = self.read(timeout)
        if "event" not in msg:
            raise RuntimeError("expected an event, got %r" % msg)
        return msg


def event_time(ev):
    ts = ev.get("timestamp") or {}
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6


# ---------------------------------------------------------------------------------------
# vmherdd


BIOS_VM = "[vm]\nmemory = 64M\nautostart = %s\n[health]\npanic = none\n%s"
HEALTH = "qmp-interval = 2s\n"     # the [health] keys of every guest unless a bench says


class Herd:
    """A private vmherdd: its own host config, VM folder, run/state/log folders."""

    def __init__(self, tag, names, autostart=True, parallel_starts=None, tmpfs=None, health=HEALTH):
        """tmpfs: a tmpfs folder (/dev/shm) for run-dir and state-dir instead of our folder;
        health: the [health] keys of the guests (one per line)."""
        self.dir = make_tmpdir(tag)
        self.names = list(names)
        self.conf = os.path.join(self.dir, "vmherd.conf")
        base = self.dir
        if tmpfs:
            base = tempfile.mkdtemp(prefix="vmherd-bench-%s-" % tag, dir=tmpfs)
            on_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))
        self.run_dir = os.path.join(base, "run")
        self.control_path = os.path.join(self.run_dir, "control")
        os.mkdir(os.path.join(self.dir, "vms.d"))
        with open(self.conf, "w") as f:
            f.write("[daemon]\nvm-dir = vms.d\nrun-dir = %s\nstate-dir = %s\nlog-dir = log\n"
                    "qemu-user = %s\n" % (self.run_dir, os.path.join(base, "state"), QEMU_USER))
            if parallel_starts is not None:
                f.write("parallel-starts = %d\n" % parallel_starts)
        for n in self.names:
            with open(os.path.join(self.dir, "vms.d", n + ".conf"), "w") as f:
                f.write(BIOS_VM % ("yes" if autostart else "no", health))
        self.proc = None
        self.daemon_log = os.path.join(self.dir, "vmherdd.log")
        on_cleanup(self.teardown)

    def cli(self, *args, timeout=60, check=True):
        return subprocess.run([VMHERD, "--config", self.conf] + list(args), capture_output=True,
                              text=True, timeout=timeout, check=check)

    def show_cmdline(self, name):
        out = self.cli("show-cmdline", name).stdout
        return shlex.split(out.replace("\\\n", " "))

    def spawn(self):
        """Execs vmherdd -f; returns the monotonic time just before the exec."""
        logf = open(self.daemon_log, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([VMHERDD, "-f", "--config", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf)
        logf.close()
        return t0

    def control(self, timeout=10.0):
        return JsonLines(self.control_path, timeout)

    def guest_pids(self):
        pids = []
        vmdir = os.path.join(self.run_dir, "vm")
        for n in os.listdir(vmdir) if os.path.isdir(vmdir) else []:
            try:
                with open(os.path.join(vmdir, n, "pid")) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            # Only a QEMU of this herd (its serial log lives in our folder).
            if any(self.dir in a for a in proc_cmdline(pid)):
                pids.append(pid)
        return pids

    def teardown(self):
        """Stops the daemon (guests outlive it), then kills this herd's QEMUs."""
        stop_popen(self.proc)
        kill_and_wait(self.guest_pids())

    def wait_running(self, ctl, names, timeout, t_fail_states=("failed", "backoff", "stopped")):
        """With ctl subscribed to events: waits until every name is running; returns
        {name: monotonic time the event was read}."""
        want = set(names)
        done = {}
        for vm in ctl.call("list"):
            if vm["name"] in want and vm["state"] == "running":
                done[vm["name"]] = time.monotonic()
        deadline = time.monotonic() + timeout
        while len(done) < len(want):
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchTimeout("%d of %d guests running after %.0f s"
                                   % (len(done), len(want), timeout))
            ev = ctl.next_event(left)
            if ev.get("event") != "STATE":
                continue
            d = ev["data"]
            if d["vm"] in want and d["state"] == "running" and d["vm"] not in done:
                done[d["vm"]] = time.monotonic()
            elif d["vm"] in want and d["state"] in t_fail_states and d.get("old-state") == "starting":
                raise RuntimeError("vm %s: %s (%s)" % (d["vm"], d["state"], d.get("reason")))
        return done


# ---------------------------------------------------------------------------------------
# bare QEMU: the floor


# QEMU gets its sockets as fds 3 and 4.  They are dup'ed onto 3 and 4 here, in the parent,
# just for the spawn (pass_fds keeps them in the child): a preexec_fn doing it in the child
# would make every spawn slower (and noisier) than vmherdd's.  Between spawns 3 and 4 hold
# /dev/null, so that no other file (subprocess's exec-error pipe) lands there.
_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
_DEVNULL = fcntl.fcntl(_fd, fcntl.F_DUPFD_CLOEXEC, 10)
os.close(_fd)
for _fd in (3, 4):
    try:
        os.fstat(_fd)
    except OSError:
        os.dup2(_DEVNULL, _fd, inheritable=False)


def listen_unix(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s


class BareQemu:
    """One QEMU run as vmherdd would run it, without vmherdd."""

    def __init__(self, argv, workdir):
        self.argv = argv
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.serial_path = os.path.join(workdir, "serial.sock")
        self.log_path = os.path.join(workdir, "qemu.log")
        self.proc = None
        self.qmp = None
        self.uid, self.gid, self.groups = qemu_identity()
        # QEMU opens its serial log itself, as its own user: prepare it as vmherdd does.
        for a in argv:
            for part in a.split(","):
                if part.startswith("logfile="):
                    p = part[len("logfile="):]
                    os.makedirs(os.path.dirname(p), exist_ok=True)
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                    os.fchown(fd, self.uid, self.gid)
                    os.close(fd)
        on_cleanup(self.kill)

    def spawn(self):
        """Binds the sockets and execs QEMU; returns the monotonic time just before."""
        t0 = time.monotonic()
        qs = listen_unix(self.qmp_path)
        ss = listen_unix(self.serial_path)
        logf = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        os.dup2(qs.fileno(), 3, inheritable=False)
        os.dup2(ss.fileno(), 4, inheritable=False)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         user=self.uid, group=self.gid, extra_groups=self.groups,
                                         start_new_session=True, pass_fds=(3, 4))
        finally:
            os.dup2(_DEVNULL, 3, inheritable=False)
            os.dup2(_DEVNULL, 4, inheritable=False)
            os.close(logf)
        qs.close()
        ss.close()
        return t0

    def kill(self):
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class QmpStart:
    """Non-blocking QMP: greeting -> qmp_capabilities -> cont -> answered."""

    def __init__(self, bare):
        self.bare = bare
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(bare.qmp_path)   # pre-bound and listening: never waits
        self.sock.setblocking(False)
        self.buf = b""
        self.step = "greeting"
        self.t_done = None

    def on_readable(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("QEMU closed QMP (see %s)" % self.bare.log_path)
        self.buf += chunk
        while b"\n" in self.buf and self.step != "done":
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" in msg:
                continue
            if "error" in msg:
                raise RuntimeError("QMP error in %s: %s" % (self.step, msg["error"]))
            if self.step == "greeting":
                self.sock.sendall(b'{"execute":"qmp_capabilities"}\n')
                self.step = "caps"
            elif self.step == "caps":
                self.sock.sendall(b'{"execute":"cont"}\n')
                self.step = "cont"
            elif self.step == "cont":
                self.t_done = time.monotonic()
                self.step = "done"


def qmp_start_all(bares, timeout=60.0):
    """Connects QMP to every spawned BareQemu and runs it; returns the monotonic time at
    which each `cont` was answered.  Leaves each connection open as bare.qmp (blocking)."""
    sel = selectors.DefaultSelector()
    sessions = []
    for b in bares:
        s = QmpStart(b)
        sessions.append(s)
        sel.register(s.sock, selectors.EVENT_READ, s)
    deadline = time.monotonic() + timeout
    pending = len(sessions)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchTimeout("%d of %d bare QEMUs not running after %.0f s"
                               % (pending, len(sessions), timeout))
        for key, _ in sel.select(left):
            s = key.data
            s.on_readable()
            if s.step == "done":
                sel.unregister(s.sock)
                pending -= 1
    sel.close()
    for s in sessions:
        s.sock.setblocking(True)
        s.bare.qmp = _adopt_socket(s)
    return [s.t_done for s in sessions]


def _adopt_socket(session):
    j = JsonLines.__new__(JsonLines)
    j.path, j.buf, j.events, j.sock, j._id = session.bare.qmp_path, session.buf, [], session.sock, 0
    return j


def bare_argvs(names, tag):
    """The exact argv vmherdd would run for each name, its log paths in a folder of ours."""
    h = Herd(tag, names, autostart=False)
    return h, {n: h.show_cmdline(n) for n in names}


def query_kvm():
    """Starts one bare QEMU as the QEMU user and asks it query-kvm; returns the answer."""
    h, argvs = bare_argvs(["probe"], "kvm")
    b = BareQemu(argvs["probe"], os.path.join(h.dir, "bare-probe"))
    b.spawn()
    qmp_start_all([b], 30)
    r = b.qmp.call("query-kvm")
    b.kill()
    return r


# ---------------------------------------------------------------------------------------
# libvirt


LIBVIRT_PKGS = ["libvirt-daemon-system", "libvirt-daemon-system-sysv", "libvirt-clients"]
DOMAIN_PREFIX = "vmherdbench-"
KVM_STATE = os.path.join(tmp_root(), "vmherd-bench-kvm-perms")

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='{machine}'>hvm</type></os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{qemu}</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
  </devices>
</domain>
"""


def libvirt_install():
    """Installs libvirt with apt when missing; returns None or why it cannot be used."""
    need = [b for b in ("libvirtd", "virtlogd", "virsh") if shutil.which(b) is None
            and not os.path.exists("/usr/sbin/" + b)]
    if not need:
        return None
    if os.environ.get("VMHERD_BENCH_LIBVIRT_WHY"):     # bench/run-all tried already
        return os.environ["VMHERD_BENCH_LIBVIRT_WHY"]
    if os.environ.get("VMHERD_BENCH_NO_INSTALL") == "1":
        return "libvirt is not installed (%s missing) and VMHERD_BENCH_NO_INSTALL=1" % ", ".join(need)
    log("installing %s with apt-get (sysv flavour: no systemd here)" % " ".join(LIBVIRT_PKGS))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            "-o", "DPkg::Lock::Timeout=120"] + LIBVIRT_PKGS, env=env,
                           capture_output=True, text=True, timeout=420)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "apt-get install %s failed: %s" % (" ".join(LIBVIRT_PKGS), e)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        return "apt-get install %s failed: %s" % (" ".join(LIBVIRT_PKGS), tail[0])
    return None


def kvm_fix():
    """libvirt (9.0) re-probes QEMU's capabilities on *every* domain start (about 4 s each,
    ~48 s per `virsh create` here) when /dev/kvm is usable by root but not by its QEMU user
    ("KVM was enabled when probing, but it is not available now").  This machine has no
    udev, so /dev/kvm is root:root 0600 instead of Debian's root:kvm 0660.  Give it udev's
    permissions while libvirt runs; kvm_restore() puts the original back.  QEMU under
    vmherd runs as nobody (not in group kvm), so its accelerator does not change: TCG."""
    try:
        st = os.stat("/dev/kvm")
    except FileNotFoundError:
        return None
    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return None
    note = ("/dev/kvm was %s:%s %04o (no udev here); set to root:kvm 0660 (Debian's udev default) "
            "while libvirt ran, then restored")
    if os.path.exists(KVM_STATE):   # changed earlier in this run
        with open(KVM_STATE) as f:
            uid, gid, mode = f.read().split()
        return note % (_user(int(uid)), _group(int(gid)), int(mode, 8))
    if st.st_gid == kvm_gid and stat.S_IMODE(st.st_mode) & 0o060 == 0o060:
        return None
    if not os.path.exists(KVM_STATE):
        with open(KVM_STATE, "w") as f:
            f.write("%d %d %o\n" % (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)))
    os.chown("/dev/kvm", st.st_uid, kvm_gid)
    os.chmod("/dev/kvm", 0o660)
    return note % (_user(st.st_uid), _group(st.st_gid), stat.S_IMODE(st.st_mode))


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def kvm_restore():
    try:
        with open(KVM_STATE) as f:
            uid, gid, mode = f.read().split()
    except FileNotFoundError:
        return
    os.chown("/dev/kvm", int(uid), int(gid))
    os.chmod("/dev/kvm", int(mode, 8))
    os.unlink(KVM_STATE)


class Libvirt:
    """A privately configured libvirtd (QEMU driver only) and virtlogd, started by hand."""

    def __init__(self, tag):
        self.dir = make_tmpdir(tag)
        self.sock_dir = os.path.join(self.dir, "sock")
        os.mkdir(self.sock_dir)
        self.uri = "qemu:///system?socket=%s/libvirt-sock" % self.sock_dir
        self.libvirtd = self.virtlogd = None
        self.note = None
        self.version = None
        self.machine = "pc-q35-7.2"
        self.created = set()
        self.cgroups_before = set(self._machine_cgroups())

    @staticmethod
    def _machine_cgroups():
        base = "/sys/fs/cgroup"
        try:
            return [os.path.join(base, c, "machine") for c in os.listdir(base)
                    if os.path.isdir(os.path.join(base, c, "machine"))]
        except OSError:
            return []

    def start(self, machine=None):
        """Returns None, or why libvirt cannot run here."""
        if os.environ.get("VMHERD_BENCH_NO_LIBVIRT") == "1":
            return "not measured in this run (VMHERD_BENCH_NO_LIBVIRT=1)"
        why = libvirt_install()
        if why:
            return why
        if machine:
            self.machine = machine
        if os.environ.get("VMHERD_BENCH_KVM_FIXED") != "1":
            self.note = kvm_fix()
            on_cleanup(kvm_restore)
        # else: bench/run-all did it for the whole run and says so once, in its header.
        # Only the QEMU driver: the network driver would autostart libvirt's default network
        # (a virbr0 bridge and firewall rules) on this shared host.
        drv = os.path.join(self.dir, "drivers")
        os.mkdir(drv)
        os.symlink("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so",
                   os.path.join(drv, "libvirt_driver_qemu.so"))
        with open(os.path.join(self.dir, "libvirtd.conf"), "w") as f:
            f.write('unix_sock_dir = "%s"\nunix_sock_group = "root"\nauth_unix_rw = "none"\n'
                    'auth_unix_ro = "none"\nlog_outputs = "3:file:%s/libvirtd.log"\n'
                    % (self.sock_dir, self.dir))
        with open(os.path.join(self.dir, "virtlogd.conf"), "w") as f:
            f.write('log_outputs = "3:file:%s/virtlogd.log"\n' % self.dir)
        out = open(os.path.join(self.dir, "daemons.out"), "ab")
        on_cleanup(self.stop)
        # virtlogd's socket is fixed for a privileged libvirtd: /run/libvirt/virtlogd-sock.
        self.virtlogd = subprocess.Popen(
            ["virtlogd", "-f", os.path.join(self.dir, "virtlogd.conf"), "-p",
             os.path.join(self.dir, "virtlogd.pid")], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            wait_until(lambda: os.path.exists("/run/libvirt/virtlogd-sock") or self.virtlogd.poll() is not None,
                       10, "virtlogd's socket")
        except BenchTimeout as e:
            return "virtlogd did not start: %s" % e
        if self.virtlogd.poll() is not None:
            return "virtlogd exited with status %s (see %s)" % (self.virtlogd.returncode, out.name)
        env = dict(os.environ, LIBVIRT_DRIVER_DIR=drv)
        self.libvirtd = subprocess.Popen(
            ["libvirtd", "-f", os.path.join(self.dir, "libvirtd.conf"), "-p",
             os.path.join(self.dir, "libvirtd.pid")], stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, env=env)
        out.close()
        def answers():
            try:
                return self.virsh("version", check=False, timeout=10).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        try:
            wait_until(lambda: self.libvirtd.poll() is not None or answers(), 30,
                       "libvirtd to answer", interval=0.05)
        except BenchTimeout as e:
            return "libvirtd did not answer: %s" % e
        if self.libvirtd.poll() is not None:
            return "libvirtd exited with status %s" % self.libvirtd.returncode
        self.version = self.virsh("version", timeout=10).stdout
        # Warm-up (not timed): loads the capability cache (probing QEMU when it is stale).
        try:
            self.create(DOMAIN_PREFIX + "warmup", timeout=180)
            self.destroy([DOMAIN_PREFIX + "warmup"])
        except Exception as e:
            return "virsh create of a BIOS-only TCG domain failed: %s" % e
        return None

    def virsh(self, *args, check=True, timeout=60):
        return subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), capture_output=True,
                              text=True, timeout=timeout, check=check)

    def xml_path(self, name):
        p = os.path.join(self.dir, name + ".xml")
        if not os.path.exists(p):
            with open(p, "w") as f:
                f.write(DOMAIN_XML.format(name=name, machine=self.machine, qemu=QEMU,
                                          serial=os.path.join(self.dir, name + ".serial.log")))
        return p

    def create_cmd(self, name):
        self.created.add(name)
        return ["virsh", "-q", "-c", self.uri, "create", self.xml_path(name)]

    def create(self, name, timeout=60):
        r = subprocess.run(self.create_cmd(name), capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("virsh create %s: %s" % (name, r.stderr.strip()))

    def create_parallel(self, names, timeout=120):
        """Runs one `virsh create` per name at once; returns when all exited."""
        procs = [subprocess.Popen(self.create_cmd(n), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for n in names]
        deadline = time.monotonic() + timeout
        errors = []
        for p in procs:
            try:
                _, err = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                errors.append("timed out")
                continue
            if p.returncode != 0:
                errors.append(err.strip())
        if errors:
            raise RuntimeError("%d virsh create failed: %s" % (len(errors), errors[0]))

    def qemu_pid(self, name):
        try:
            with open("/run/libvirt/qemu/%s.pid" % name) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def destroy(self, names, timeout=60):
        """`virsh destroy` of each name, in parallel; then waits for the QEMUs to be gone."""
        pids = [self.qemu_pid(n) for n in names]
        procs = [subprocess.Popen(["virsh", "-q", "-c", self.uri, "destroy", n],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in names]
        for p in procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        kill_and_wait([p for p in pids if p], 10)
        for n in names:
            self.created.discard(n)
        self.settle()

    def settle(self, window=0.05, limit=3.0):
        """Waits until libvirtd and virtlogd use under 2 % of a core over a window: their
        cleanup runs on after `virsh destroy` returns and would slow whatever the benchmark
        times next (in start-one, the variant after virsh was 1.15x bare with it, 1.07x
        without libvirt).  At most limit seconds."""
        pids = [p.pid for p in (self.libvirtd, self.virtlogd) if p is not None and p.poll() is None]
        deadline = time.monotonic() + limit
        before = sum(cpu_ns(p) for p in pids)
        while time.monotonic() < deadline:
            time.sleep(window)
            now = sum(cpu_ns(p) for p in pids)
            if now - before < window * 1e9 * 0.02:
                return
            before = now

    def stop(self):
        if self.libvirtd is not None and self.libvirtd.poll() is None and self.created:
            try:
                self.destroy(sorted(self.created), timeout=30)
            except Exception as e:
                log("libvirt: destroy at cleanup: %r" % e)
        # Whatever libvirtd could not take down: its QEMUs carry our domain names.
        for n in list(self.created):
            pid = self.qemu_pid(n)
            if pid and any(DOMAIN_PREFIX in a for a in proc_cmdline(pid)):
                kill_and_wait([pid])
        stop_popen(self.libvirtd, 15)
        stop_popen(self.virtlogd, 15)
        self.libvirtd = self.virtlogd = None
        for n in os.listdir("/var/log/libvirt/qemu") if os.path.isdir("/var/log/libvirt/qemu") else []:
            if n.startswith(DOMAIN_PREFIX):
                try:
                    os.unlink(os.path.join("/var/log/libvirt/qemu", n))
                except OSError:
                    pass
        # libvirt made /sys/fs/cgroup/*/machine (no systemd-machined here): remove the empty
        # ones it made during this run.
        for d in self._machine_cgroups():
            if d not in self.cgroups_before:
                try:
                    os.rmdir(d)
                except OSError:
                    pass

    def daemon_pids(self):
        return [p.pid for p in (self.libvirtd, self.virtlogd) if p is not None]


# ---------------------------------------------------------------------------------------
# numbers and tables


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def spread(xs, fmt):
    if not xs:
        return "—"
    return "%s–%s" % (fmt % min(xs), fmt % max(xs))


def ratio_cell(rs):
    """Median of the per-round ratios, with their min–max."""
    if not rs:
        return "—"
    return "%.2f× (%.2f–%.2f)" % (median(rs), min(rs), max(rs))


def verdict(ok):
    return "met" if ok else "**MISSED**"


def table(title, header, rows, notes=()):
    out = ["### " + title, "", "| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    out.append("")
    for n in notes:
        out.append(n)
    if notes:
        out.append("")
    sys.stdout.write("\n".join(out) + "\n")
    sys.stdout.flush()


def summary(what, measured, baseline, target, ok):
    """One line for the summary table at the top of docs/PERFORMANCE.md (bench/run-all)."""
    path = os.environ.get("VMHERD_BENCH_SUMMARY")
    if not path:
        return
    with open(path, "a") as f:
        f.write("\t".join([what, measured, baseline, target, verdict(ok) if ok is not None else ""]) + "\n")


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def run_phases(phases, n, warmup, unit):
    """Runs each phase, a list of (key, function returning seconds), for n rounds (after one
    warm-up round, not counted, when warmup), its variants in a rotated order each round; the
    phases one after the other.  libvirt gets a phase of its own ([("bare-virsh", bare),
    ("virsh", virsh)]): its cleanup after a domain slowed whatever variant ran next, and a
    rotation keeps the cyclic order, so that was always the same one (bench/FINDINGS.md, 1.).
    A "virsh" that raises RuntimeError or TimeoutExpired is left out from then on, and
    "bare-virsh" with it.  unit: "ms" or "s", for the log.  Returns ({key: [seconds]}, why
    libvirt was left out or None)."""
    res = {k: [] for phase in phases for k, _ in phase}
    dropped = None
    scale, fmt = (1e3, "%s %.1f ms") if unit == "ms" else (1.0, "%s %.2f s")
    for phase in phases:
        for r in range(-1 if warmup else 0, n):
            for k, f in rotate(phase, max(r, 0)):
                if dropped and k in ("virsh", "bare-virsh"):
                    continue
                try:
                    t = f()
                except (subprocess.TimeoutExpired, RuntimeError) as e:
                    if k != "virsh":
                        raise
                    dropped = "left out from round %d on: %s" % (r + 1, e)
                    log("libvirt " + dropped)
                    res["bare-virsh"] = res["bare-virsh"][:len(res["virsh"])]
                    continue
                if r >= 0:
                    res[k].append(t)
            if r >= 0:
                log("round %d/%d: %s" % (r + 1, n, ", ".join(fmt % (k, res[k][-1] * scale)
                                                             for k, _ in phase if res[k])))
    return res, dropped


def rounds(default):
    return int(os.environ.get("VMHERD_BENCH_ROUNDS", default))


if __name__ == "__main__":
    # Helpers for bench/run-all.
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "kvm-fix":
        print(kvm_fix() or "")
    elif cmd == "kvm-restore":
        kvm_restore()
    elif cmd == "query-kvm":
        print(json.dumps(query_kvm()))
    else:
        sys.exit("usage: benchlib.py kvm-fix|kvm-restore|query-kvm")
