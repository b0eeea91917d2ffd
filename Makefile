# swift-reactive-kafka: `make demo` runs the demo on an embedded cluster, `make test` runs every test.
# Both install librdkafka when it is missing (Debian/Ubuntu: apt-get; elsewhere they say what to install).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo test bench build clean sanitize sanitize-thread sanitize-address

deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists rdkafka; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "librdkafka not found: installing librdkafka-dev and pkg-config with apt-get"; \
	    $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq librdkafka-dev pkg-config; \
	  else \
	    echo "librdkafka not found. Install it and pkg-config, then retry:"; \
	    echo "  macOS: brew install librdkafka pkg-config"; \
	    echo "  Fedora/RHEL: dnf install librdkafka-devel pkgconf-pkg-config"; \
	    echo "  Alpine: apk add librdkafka-dev pkgconf"; \
	    exit 1; \
	  fi; \
	fi

build: deps
	$(SWIFT) build -c release --product rkafka

demo: build
	.build/release/rkafka demo

test: deps
	$(SWIFT) test

bench: build
	.build/release/rkafka bench

# `make sanitize`: the test suite under ThreadSanitizer, then under AddressSanitizer with
# LeakSanitizer, each in its own build directory (.build-tsan, .build-asan). Any report fails
# the run. Suppressions, each with its reason: Sanitizers/tsan.supp, Sanitizers/lsan.supp.
# SANITIZE_FILTER=<regex> narrows both runs to matching tests (e.g. SANITIZE_FILTER=Transactional).
SANITIZE_FILTER ?=
SANITIZE_ARGS = $(if $(SANITIZE_FILTER),--filter '$(SANITIZE_FILTER)')

sanitize: sanitize-thread sanitize-address

sanitize-thread: deps
	TSAN_OPTIONS="suppressions=$(CURDIR)/Sanitizers/tsan.supp halt_on_error=0 history_size=4 $(TSAN_OPTIONS)" \
	  $(SWIFT) test --sanitize=thread --scratch-path .build-tsan $(SANITIZE_ARGS)

sanitize-address: deps
	ASAN_OPTIONS="detect_leaks=1 $(ASAN_OPTIONS)" LSAN_OPTIONS="suppressions=$(CURDIR)/Sanitizers/lsan.supp $(LSAN_OPTIONS)" \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan $(SANITIZE_ARGS)

clean:
	rm -rf .build
