# vmherd: build, test, install.  See README.md.
#
#   make                 build vmherdd and vmherd into $(B)/
#   make check           build and run every test with prove (TAP)
#   make SANITIZE=1      the same under ASan + UBSan (objects in build-san/)
#   make install         PREFIX=/usr/local DESTDIR=
#   make bench           run the benchmarks in bench/ (never part of check)

PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/vmherd
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= /lib/systemd/system
DESTDIR    ?=

CC         ?= cc
PKG_CONFIG ?= pkg-config
PKGS       := glib-2.0 gio-2.0 gio-unix-2.0 json-glib-1.0 libnl-3.0 libnl-route-3.0 inih libsoup-3.0 gnutls
CLI_PKGS   := libedit
# vmherd links only what it uses (no libnl, libsoup; libedit is dlopen'ed by the QMP console):
# each library costs every command's exec time (bench/FINDINGS.md).
# (gnutls, for the [peer] certificate checks, is dlopen'ed too: host-peer-check.c.)
CLI_LINK_PKGS := glib-2.0 gio-2.0 gio-unix-2.0 json-glib-1.0 inih
# The `vmherd` operators type is a front (launcher/front-main.c) that links GLib and libinih
# alone and answers start, stop, restart, reset, pause and resume; it execs vmherd-full
# (LIBEXECDIR) for everything else.
FRONT_LINK_PKGS := glib-2.0 inih
# vmherdd links no libsoup either: the metrics endpoint dlopens it (daemon-metrics-soup.c).
DAEMON_LINK_PKGS := glib-2.0 gio-2.0 gio-unix-2.0 json-glib-1.0 libnl-3.0 libnl-route-3.0 inih

ifeq ($(SANITIZE),1)
B          ?= build-san
SAN        := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B          ?= build
SAN        :=
endif

VERSION    ?= 0.1.0
CFLAGS     ?= -O2 -g
WARN       := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ALL_CFLAGS := -std=gnu11 $(WARN) $(SAN) -I. $(shell $(PKG_CONFIG) --cflags $(PKGS) $(CLI_PKGS)) \
              -DVMHERD_VERSION='"$(VERSION)"' -DVMHERD_SYSCONFDIR='"$(SYSCONFDIR)"' \
              -DVMHERD_LIBEXECDIR='"$(LIBEXECDIR)"' $(CFLAGS)
LIBS       := $(shell $(PKG_CONFIG) --libs $(PKGS))
CLI_LIBS   := $(shell $(PKG_CONFIG) --libs $(CLI_LINK_PKGS))
DAEMON_LIBS := $(shell $(PKG_CONFIG) --libs $(DAEMON_LINK_PKGS))
FRONT_LIBS := $(shell $(PKG_CONFIG) --libs $(FRONT_LINK_PKGS))
ALL_LDFLAGS:= $(SAN) $(LDFLAGS)

# Each module is a static library; launcher/ may use the other three, never the reverse.
QMP_SRC      := $(wildcard qmp/*.c)
NET_SRC      := $(wildcard net/*.c)
IMAGES_SRC   := $(wildcard images/*.c)
LAUNCHER_SRC := $(filter-out %-main.c,$(wildcard launcher/*.c))
TESTUTIL_SRC := tests/test-util.c tests/harness.c

obj = $(patsubst %.c,$(B)/%.o,$(1))
LIB_QMP      := $(B)/libvmherd-qmp.a
LIB_NET      := $(B)/libvmherd-net.a
LIB_IMAGES   := $(B)/libvmherd-images.a
LIB_LAUNCHER := $(B)/libvmherd-launcher.a
LIB_TESTUTIL := $(B)/libvmherd-testutil.a
ALL_LIBS     := $(LIB_LAUNCHER) $(LIB_IMAGES) $(LIB_NET) $(LIB_QMP)

BINS := $(B)/vmherdd $(B)/vmherd $(B)/vmherd-full

TEST_SRC   := $(filter-out $(TESTUTIL_SRC),$(wildcard tests/test-*.c))
TESTS      := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))

all: $(BINS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB_QMP): $(call obj,$(QMP_SRC))
$(LIB_NET): $(call obj,$(NET_SRC))
$(LIB_IMAGES): $(call obj,$(IMAGES_SRC))
$(LIB_LAUNCHER): $(call obj,$(LAUNCHER_SRC))
$(LIB_TESTUTIL): $(call obj,$(TESTUTIL_SRC))
$(B)/lib%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/vmherdd: $(B)/launcher/daemon-main.o $(ALL_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DAEMON_LIBS)

$(B)/vmherd-full: $(B)/launcher/ctl-main.o $(ALL_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CLI_LIBS)

$(B)/vmherd: $(B)/launcher/front-main.o $(LIB_LAUNCHER)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(FRONT_LIBS)

# A module's tests link that module alone, so a call back into launcher/ fails to link.
$(B)/tests/test-qmp-%: $(B)/tests/test-qmp-%.o $(LIB_TESTUTIL) $(LIB_QMP)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(B)/tests/test-net-%: $(B)/tests/test-net-%.o $(LIB_TESTUTIL) $(LIB_NET)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(B)/tests/test-images-%: $(B)/tests/test-images-%.o $(LIB_TESTUTIL) $(LIB_IMAGES)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)
$(B)/tests/test-%: $(B)/tests/test-%.o $(LIB_TESTUTIL) $(ALL_LIBS)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(CLI_LIBS)

# Tests find the build and the sources through these; CI sets VMHERD_TEST_REQUIRE_*=1.
# The test guest lives outside git, readable by the unprivileged user QEMU runs as.
VMHERD_GUEST_DIR ?= /var/tmp/vmherd-guest
export VMHERD_GUEST_DIR
TEST_ENV := VMHERD_BUILDDIR=$(abspath $(B)) VMHERD_SRCDIR=$(abspath .) G_DEBUG=fatal-warnings \
            ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0
PROVE    ?= prove
PROVE_FLAGS ?=

check: $(BINS) $(TESTS) guest
	$(TEST_ENV) $(PROVE) $(PROVE_FLAGS) --exec '' $(TESTS)

# test-guest-vlan runs its inner half under User-mode Linux, where ASan cannot run (its
# shadow memory is above UML's address space): a sanitizer build runs the plain build's there.
ifeq ($(SANITIZE),1)
UML_B    := build
TEST_ENV += VMHERD_UML_BUILDDIR=$(abspath $(UML_B))
check: uml-plain
uml-plain:
	$(MAKE) SANITIZE= B=$(UML_B) $(UML_B)/vmherdd $(UML_B)/vmherd $(UML_B)/vmherd-full \
	  $(UML_B)/tests/test-guest-vlan
.PHONY: uml-plain
endif

tests: $(TESTS)

guest:
	@tests/guest/build-guest

bench: $(BINS)
	bench/run-all

# The init files name /usr/sbin/vmherdd and /usr/bin/vmherd; installed, they name where the
# binaries went.  SysV scripts and systemd units are installed; the OpenRC scripts
# (init/vmherdd.openrc, init/vmherd-guests.openrc) are not: copy them to /etc/init.d/vmherdd
# and /etc/init.d/vmherd-guests on an OpenRC host.
INIT_SED := sed -e 's|/usr/sbin/vmherdd|$(SBINDIR)/vmherdd|g' -e 's|/usr/bin/vmherd|$(BINDIR)/vmherd|g'

install: $(BINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	           $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/vmherd/vms.d
	install -m 755 $(B)/vmherdd $(DESTDIR)$(SBINDIR)/vmherdd
	install -m 755 $(B)/vmherd $(DESTDIR)$(BINDIR)/vmherd
	install -d $(DESTDIR)$(LIBEXECDIR)
	install -m 755 $(B)/vmherd-full $(DESTDIR)$(LIBEXECDIR)/vmherd-full
	install -m 755 tools/vmherd-pki $(DESTDIR)$(SBINDIR)/vmherd-pki
	install -m 644 docs/vmherd.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/vmherd.conf.5 docs/vmherd-vm.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 docs/vmherdd.8 $(DESTDIR)$(MANDIR)/man8/
	test -e $(DESTDIR)$(SYSCONFDIR)/vmherd/vmherd.conf || \
	  install -m 644 docs/vmherd.conf.example $(DESTDIR)$(SYSCONFDIR)/vmherd/vmherd.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/init.d $(DESTDIR)$(SYSTEMDUNITDIR)
	$(INIT_SED) init/vmherdd >$(DESTDIR)$(SYSCONFDIR)/init.d/vmherdd
	$(INIT_SED) init/vmherd-guests >$(DESTDIR)$(SYSCONFDIR)/init.d/vmherd-guests
	chmod 755 $(DESTDIR)$(SYSCONFDIR)/init.d/vmherdd $(DESTDIR)$(SYSCONFDIR)/init.d/vmherd-guests
	$(INIT_SED) init/vmherdd.service >$(DESTDIR)$(SYSTEMDUNITDIR)/vmherdd.service
	$(INIT_SED) init/vmherd-guests.service >$(DESTDIR)$(SYSTEMDUNITDIR)/vmherd-guests.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/vmherdd.service $(DESTDIR)$(SYSTEMDUNITDIR)/vmherd-guests.service

clean:
	rm -rf build build-san

.PHONY: all check tests guest bench install clean
.SECONDARY:
-include $(shell find $(B) -name '*.d' 2>/dev/null)
