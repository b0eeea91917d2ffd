# swift-reactive-kafka: `make demo` runs the demo on an embedded cluster, `make test` runs every test.
# Both install librdkafka when it is missing (Debian/Ubuntu: apt-get; elsewhere they say what to install).
# `KAFKA_BOOTSTRAP_SERVERS=host:port make test-external` runs the group, rebalance, commit, pipeline and
# transaction suites against that Kafka cluster instead of the embedded one (README: "Testing against a real cluster").

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo test test-external external-cluster bench build clean sanitize sanitize-thread sanitize-address

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

# The suites that exercise what a real broker does differently from librdkafka's mock cluster.
EXTERNAL_SUITES := ConsumerGroupRebalanceTests|AtLeastOncePipelineTests|MultiProcessRebalanceTests|TransactionalPipelineTests|TransactionalSourceTests|ExternalClusterTests|LagCollectorExternalTests|ParallelRebalanceTests

test-external: external-cluster deps
	$(SWIFT) test --filter '$(EXTERNAL_SUITES)'

external-cluster:
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then \
	  echo "test-external needs a Kafka cluster: KAFKA_BOOTSTRAP_SERVERS=host:port make test-external"; \
	  echo "(optional: KAFKA_TEST_SESSION_TIMEOUT_MS, default 6000, at least the broker's group.min.session.timeout.ms)"; \
	  exit 2; \
	fi

bench: build
	.build/release/rkafka bench

# `make sanitize`: the test suite under ThreadSanitizer, then under AddressSanitizer with
# LeakSanitizer, each in its own build directory (.build-tsan, .build-asan). Any report fails
# the run. Suppressions, each with its reason: Sanitizers/tsan.supp, Sanitizers/lsan.supp.
# SANITIZE_FILTER=<regex> narrows both runs to matching tests (e.g. SANITIZE_FILTER=Transactional).
# Instrumented code runs several times slower: the tests' hang guards are 4 times longer there.
SANITIZE_FILTER ?=
SANITIZE_ARGS = $(if $(SANITIZE_FILTER),--filter '$(SANITIZE_FILTER)')

sanitize: sanitize-thread sanitize-address

sanitize-thread: deps
	REACTIVE_KAFKA_TEST_TIME_SCALE=4 TSAN_OPTIONS="suppressions=$(CURDIR)/Sanitizers/tsan.supp halt_on_error=0 history_size=4 $(TSAN_OPTIONS)" \
	  $(SWIFT) test --sanitize=thread --scratch-path .build-tsan $(SANITIZE_ARGS)

sanitize-address: deps
	REACTIVE_KAFKA_TEST_TIME_SCALE=4 ASAN_OPTIONS="detect_leaks=1 $(ASAN_OPTIONS)" LSAN_OPTIONS="suppressions=$(CURDIR)/Sanitizers/lsan.supp $(LSAN_OPTIONS)" \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan $(SANITIZE_ARGS)

clean:
	rm -rf .build
