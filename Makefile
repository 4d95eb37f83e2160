# ferroha — build, install, test, benchmark, demo.
#
#   make build     release binaries in target/x86_64-unknown-linux-gnu/release (static)
#   make install   agents into $(DESTDIR)$(OCF_ROOT)/resource.d/ferroha/<type>,
#                  <type>-agent links and hb-monitor into $(DESTDIR)$(PREFIX)/sbin
#   make deps      install what the rest needs (Debian packages; run as root)
#   make test      every test, root-only ones included (run as root)
#   make test-vm   the real-DRBD tier alone (also part of make test)
#   make bench     ferroha vs the reference agents, same machine, same run; then bench-report
#   make bench-report  charts (docs/bench) and docs/benchmarks.md's generated section from
#                  the results the benches wrote (target/bench/*.json)
#   make demo      the demo on this machine: a two-node hb-monitor cluster (as root)
#   make man       man pages and bash completion into target/man (examples/gen-docs)
#   make deb       target/ferroha_<version>_amd64.deb (packaging/deb/build)
#   make check     formatting, lints, meta-data against the OCF DTD and schema
#   make fuzz      each fuzz target for FUZZ_SECS (default 60) seconds (CI runs it too)
#   make simulate  hb-monitor's controller under deterministic simulation, STEPS steps
#                  (default 10 million); SEED=n replays one seed with its trace

PREFIX   ?= /usr
OCF_ROOT ?= /usr/lib/ocf
DESTDIR  ?=
CARGO    ?= cargo
PROVIDER := ferroha
# Heartbeat's admin commands, answered by hb-monitor under their names (links to it; none
# clashes with a file of Debian's heartbeat package, whose cl_status is /usr/bin's).
HEARTBEAT_NAMES := cl_status hb_standby hb_takeover

# Where `install` takes the binaries from (tests install debug builds with BIN_DIR=...).
# .cargo/config.toml names the target (static executables), so cargo builds into
# target/<triple>/<profile>.
BIN_DIR  ?= target/x86_64-unknown-linux-gnu/release
# agents/ lists the OCF type names: one entry per agent, pointing at its binary.
AGENTS   := $(notdir $(wildcard agents/*))
RA_DTD   ?= /usr/share/resource-agents/ra-api-1.dtd
RA_RNG   ?= /usr/share/resource-agents/metadata.rng

# cargo from rustup, when install-deps had to fetch it.
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: all deps build man deb install uninstall test test-vm test-unit bench bench-report soak fuzz simulate demo demo-hb demo-vip check clean

all: build

# Debian packages (and rustup's cargo when missing): idempotent, quiet, root.
deps:
	scripts/install-deps --vm

build:
	$(CARGO) build --release --locked --bins

# hb-monitor(8) from its clap command and ocf_ferroha_<type>(7) from ocf-meta/<type>.xml, the
# same sources as --help and meta-data (tests/man_pages.rs keeps them from drifting).
MAN_DIR := target/man
man:
	$(CARGO) run --release --locked --example gen-docs -- $(MAN_DIR)

# The Debian package, from a tree staged with `make install` (packaging/deb/build): lintian
# must report no error and no warning that packaging/deb/lintian-overrides does not justify.
# tests/deb.rs builds it the same way and installs it into a Debian 12 chroot.
deb: build man
	packaging/deb/build $(BIN_DIR) $(MAN_DIR) target

install: build
	install -d $(DESTDIR)$(OCF_ROOT)/resource.d/$(PROVIDER) $(DESTDIR)$(PREFIX)/sbin
	@for type in $(AGENTS); do \
	  echo "install $(BIN_DIR)/$$type-agent -> $(OCF_ROOT)/resource.d/$(PROVIDER)/$$type"; \
	  install -m 0755 $(BIN_DIR)/$$type-agent $(DESTDIR)$(OCF_ROOT)/resource.d/$(PROVIDER)/$$type || exit 1; \
	  ln -sfn $(OCF_ROOT)/resource.d/$(PROVIDER)/$$type $(DESTDIR)$(PREFIX)/sbin/$$type-agent || exit 1; \
	done
	@if [ -x $(BIN_DIR)/hb-monitor ]; then \
	  install -m 0755 $(BIN_DIR)/hb-monitor $(DESTDIR)$(PREFIX)/sbin/hb-monitor; \
	  for name in $(HEARTBEAT_NAMES); do ln -sfn hb-monitor $(DESTDIR)$(PREFIX)/sbin/$$name || exit 1; done; \
	fi

uninstall:
	@for type in $(AGENTS); do \
	  rm -f $(DESTDIR)$(OCF_ROOT)/resource.d/$(PROVIDER)/$$type $(DESTDIR)$(PREFIX)/sbin/$$type-agent; \
	done
	rm -f $(DESTDIR)$(PREFIX)/sbin/hb-monitor
	for name in $(HEARTBEAT_NAMES); do rm -f $(DESTDIR)$(PREFIX)/sbin/$$name; done
	-rmdir $(DESTDIR)$(OCF_ROOT)/resource.d/$(PROVIDER)

# Everything, root-only tests included: they build network namespaces, run Pacemaker's and
# resource-agents' tools, and boot two QEMU guests for real DRBD (the vm-tests feature; the
# guest is built once into target/vm). Plain `cargo test` (no root) runs the unprivileged
# tests and lists the rest as ignored.
# hb_stalls takes a CPU away from the whole machine (a SCHED_FIFO spinner, up to 800 ms):
# it runs after the rest, alone, so that no other test's daemons lose that CPU with it; so
# does hb_flood, whose flood at line rate takes a CPU too.
test: deps
	$(CARGO) test --locked --features vm-tests -- --include-ignored --skip hb_stalls:: --skip hb_flood::
	$(CARGO) test --locked --features vm-tests --test integration -- hb_stalls:: hb_flood:: --include-ignored --test-threads=1

# Only the real-DRBD tier: two QEMU guests from Debian's kernel (tests/vm/build-guest.sh
# builds and caches the guest in target/vm; as root): DRBD and drbd-agent (drbd_vm), then the
# whole stack's durability test on it (stack_vm).
test-vm:
	scripts/install-deps --vm
	$(CARGO) test --locked --features vm-tests --test integration -- drbd_vm stack_vm --include-ignored --test-threads=1

test-unit:
	$(CARGO) test --locked

# hb-monitor at its fastest setting for SOAK_SECS (default 600) with both cores busy: no
# false failover allowed; then keepalived at its fastest under the same load, for comparison
# (one after the other; as root).
# SOAK_TESTS narrows it (CI: hb-monitor's part alone, for a few minutes).
SOAK_SECS  ?= 600
SOAK_TESTS ?= hb_soak
soak: deps
	SOAK_SECS=$(SOAK_SECS) $(CARGO) test --locked --features soak --release --test integration $(SOAK_TESTS) -- --include-ignored --nocapture --test-threads=1

# Each bench writes target/bench/<bench>.json (BENCH_RESULTS_DIR overrides the directory),
# which bench-report turns into docs/bench/*.svg and docs/benchmarks.md's generated section.
bench: deps
	$(CARGO) bench --locked --bench vip --bench fs --bench mysql --bench hb --bench pacemaker --bench stack --bench startup
	$(MAKE) bench-report

bench-report:
	$(CARGO) run --release --locked --example bench-report

# The main job: MySQL on DRBD failing over under load on this machine (examples/demo.rs,
# built on the test harness), with a readable timeline; leaves nothing behind.
demo: deps build
	FERROHA_BIN_DIR=$(abspath $(BIN_DIR)) $(CARGO) run --profile demo --locked --example demo

# hb-monitor moving a VIP between two namespaces (shell only).
demo-hb: deps build
	./demo/cluster.sh $(BIN_DIR)

# The first demo: vip-agent alone moving a VIP between two namespaces.
demo-vip: deps build
	./demo/vip-failover.sh $(BIN_DIR)/vip-agent

check: build
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	@for type in $(AGENTS); do \
	  $(BIN_DIR)/$$type-agent meta-data > target/$$type.xml || exit 1; \
	  xmllint --noout --path $(dir $(RA_DTD)) --dtdvalid $(RA_DTD) target/$$type.xml || exit 1; \
	  xmllint --noout --path $(dir $(RA_DTD)) --relaxng $(RA_RNG) target/$$type.xml || exit 1; \
	done

clean:
	$(CARGO) clean

# The parsers under libFuzzer (fuzz/run: cargo-fuzz on stable, no sanitizer, installed on
# first use): every target at once for FUZZ_SECS (default 60), new inputs kept in
# target/fuzz-corpus. CI runs this after `make test`. A crash fails it with the input in
# base64 and the path of its artifact in fuzz/artifacts; add the input to
# fuzz/corpus/<target>/ so that `make test` and every fuzz run replay it.
FUZZ_SECS ?= 60
fuzz:
	FUZZ_SECS=$(FUZZ_SECS) CARGO=$(CARGO) fuzz/run

# The controller of hb-monitor, 2 to 4 nodes at a time, against a simulated clock, network,
# fence device and agents, with faults drawn from each seed and the cluster's rules checked
# after every event (tests/simulate). Seeds from FIRST_SEED until STEPS controller steps are
# done; then each deliberately broken controller must be caught. A failing seed prints its
# shrunk trace and how to replay it: make simulate SEED=n. make test runs a million steps.
STEPS      ?= 10000000
FIRST_SEED ?= 0
SEED       ?=
simulate:
	SEED=$(SEED) $(CARGO) test --locked --release --test simulate -- --steps $(STEPS) --first-seed $(FIRST_SEED)
