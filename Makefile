# swift-reactive-kafka: `make demo` runs the demo on an embedded cluster, `make test` runs every test.
# Both install librdkafka when it is missing (Debian/Ubuntu: apt-get; elsewhere they say what to install).

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo test bench build clean

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

clean:
	rm -rf .build
