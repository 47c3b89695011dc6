# bulkhead: build, test, fuzz and benchmark entry points (GNU make, Debian 12, as root).
# Every target installs the Debian packages it needs itself (only the missing ones), so that a fresh
# machine with just a compiler can run `make test` (CI: .ci/run).
#
#   make deps        install the build, test and fuzz packages that are missing
#   make build       configure and build in build/
#   make test        build, ctest (one test at a time), then every fuzz target for FUZZ_SMOKE_SECONDS
#   make demo        build, then the main job for real: a broker, work, a disposable (scripts/demo.sh)
#   make bench       benchmarks against their peers (bwrap); writes bench/RESULTS.md
#   make fuzz        every fuzz target for FUZZ_SECONDS from its seed corpus (build-fuzz/, clang)
#   make sanitize    the whole ctest suite built with ASan + UBSan (build-asan/)
#   make format      clang-format -i over src/ and tests/;  make tidy: clang-tidy over src/
#   make install     build with PREFIX (default /usr/local), install into DESTDIR$(PREFIX)
#   make deb         a .deb (prefix /usr) in build-deb/, built with CPack
#   make clean       remove every build directory
SHELL := /bin/bash
MAKEFLAGS += --no-print-directory
.SHELLFLAGS := -eu -o pipefail -c

BUILD ?= build
DEB_BUILD ?= build-deb
PREFIX ?= /usr/local
FUZZ_BUILD ?= build-fuzz
ASAN_BUILD ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
# Debian 12 ships clang 14; its libFuzzer and sanitizer runtimes are in libclang-rt-14-dev, which
# clang-14 only recommends (so --no-install-recommends would leave -fsanitize=fuzzer unable to link).
LLVM_VERSION ?= 14
FUZZ_CC ?= clang-$(LLVM_VERSION)
FUZZ_CXX ?= clang++-$(LLVM_VERSION)

# less: terminal_test.sh drives a full-screen program through the session filter.
# libmnl, libnftables: bulkhead-net; nftables, iproute2: net_test.sh builds its test "internet" and looks at rules;
# libxcb-*: the GUI agent and daemon; xvfb (compartments' X servers and the tests' host display), x11-apps
# (xwd), x11-utils (xprop), imagemagick, xdotool, xclip, xterm: gui_test.sh looks at pixels and types.
# e2fsprogs: persistent homes are ext4 images (mkfs.ext4, e2fsck, resize2fs). dpkg-dev (dpkg-shlibdeps) and
# man-db: make deb and install_test.sh (the package, its man pages).
BUILD_PACKAGES := cmake g++ make pkg-config dpkg-dev man-db libseccomp-dev libgtest-dev libgmock-dev libbenchmark-dev \
	libtomlplusplus-dev nlohmann-json3-dev libsodium-dev libsqlite3-dev libzstd-dev procps python3 less \
	libmnl-dev libnftables-dev nftables iproute2 e2fsprogs \
	libxcb1-dev libxcb-shm0-dev libxcb-damage0-dev libxcb-composite0-dev libxcb-xtest0-dev \
	xvfb x11-apps x11-utils imagemagick xdotool xclip xterm
# llvm-N brings llvm-symbolizer, so that fuzzer and sanitizer reports name functions and lines.
FUZZ_PACKAGES := clang-$(LLVM_VERSION) libclang-rt-$(LLVM_VERSION)-dev llvm-$(LLVM_VERSION)
BENCH_PACKAGES := bubblewrap hyperfine python3 iperf3 iproute2
TOOL_PACKAGES := clang-format-$(LLVM_VERSION) clang-tidy-$(LLVM_VERSION)

# apt-get update at most once per make run, and only when a package is missing.
APT_STAMP := /tmp/bulkhead-apt-updated.$(shell echo $$PPID.$$(date +%s))
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps fuzz-deps bench-deps tool-deps build install deb test demo bench fuzz-build fuzz sanitize format tidy clean

all: build

# $(call apt_install,PACKAGES): installs those of PACKAGES that dpkg does not report as installed.
# Under a lock, so that targets run in parallel (make -j) take turns instead of failing on apt's own lock.
define apt_install
	@exec 9>/tmp/bulkhead-apt.lock; flock 9; \
	missing=""; \
	for package in $(1); do \
	  status=$$(dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null || true); \
	  [ "$$status" = "install ok installed" ] || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then echo "apt-get: nothing to install ($(words $(1)) packages present)"; exit 0; fi; \
	echo "apt-get: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	if [ ! -e $(APT_STAMP) ]; then $(SUDO) apt-get update -qq && touch $(APT_STAMP); fi; \
	$(SUDO) apt-get install -y -qq --no-install-recommends $$missing
endef

deps:
	$(call apt_install,$(BUILD_PACKAGES) $(FUZZ_PACKAGES))

# Kept for callers that only want the fuzzing toolchain; `deps` already includes it.
fuzz-deps:
	$(call apt_install,$(FUZZ_PACKAGES))

bench-deps:
	$(call apt_install,$(BENCH_PACKAGES))

tool-deps:
	$(call apt_install,$(TOOL_PACKAGES))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j$(JOBS)

install: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j$(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# The package is built apart from the test build: prefix /usr, no tests. dpkg-shlibdeps (dpkg-dev)
# computes the shared libraries bulkhead-net needs.
deb: deps
	cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DBULKHEAD_TESTS=OFF
	cmake --build $(DEB_BUILD) -j$(JOBS) --target bulkhead bulkhead-agent bulkhead-net bulkhead-guid bulkhead-gui-agent
	cd $(DEB_BUILD) && rm -f bulkhead_*.deb && cpack -G DEB >/dev/null && ls bulkhead_*.deb

# -j1: the privileged tests share the host's cgroups. Then every fuzz target briefly; the fuzz smoke
# runs even when a test failed, and either failure fails the target.
test: build fuzz-build deb
	status=0; \
	ctest --test-dir $(BUILD) --output-on-failure -j1 || status=1; \
	tests/integration/install_test.sh $(DEB_BUILD)/bulkhead_*.deb || status=1; \
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) || status=1; \
	if [ $$status -ne 0 ]; then echo "make test: FAILED (see above)" >&2; fi; \
	exit $$status

# Only what the demonstration runs: the bulkhead binary and its helpers (no test binaries).
demo: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)
	cmake --build $(BUILD) -j$(JOBS) --target bulkhead bulkhead-agent bulkhead-net bulkhead-guid bulkhead-gui-agent
	scripts/demo.sh $(BUILD)/bulkhead

bench: bench-deps build
	bench/run $(BUILD)

fuzz-build: deps
	CC=$(FUZZ_CC) CXX=$(FUZZ_CXX) cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBULKHEAD_FUZZ=ON -DBULKHEAD_TESTS=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

sanitize: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DBULKHEAD_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j1

format: tool-deps
	find src tests -name '*.cpp' -o -name '*.hpp' | xargs clang-format-$(LLVM_VERSION) -i

tidy: tool-deps build
	find src -name '*.cpp' | xargs clang-tidy-$(LLVM_VERSION) -p $(BUILD) --quiet

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) $(DEB_BUILD) bench/*.json
