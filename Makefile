# swift-reactive-kafka: `make demo` runs the demo on an embedded cluster, `make test` runs every test.
# Both install librdkafka when it is missing (Debian/Ubuntu: apt-get; elsewhere they say what to install).
# `KAFKA_BOOTSTRAP_SERVERS=host:port make test-external` runs the group, rebalance, commit, pipeline and
# transaction suites against that Kafka cluster instead of the embedded one (README: "Testing against a real cluster").

SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps demo demo-stateful test test-external external-cluster bench build clean sanitize sanitize-thread sanitize-address format lint docs

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

# The stateful example (Examples/fraud-detection): table, pattern, windows, exactly-once outputs, kill, restart, verify.
demo-stateful: build
	.build/release/rkafka demo --stateful

# Swift Testing starts nearly every test at once, each with an embedded cluster and clients: about
# 1,450 open files at the peak, over the common default limit of 1,024, where librdkafka's mock cluster
# aborts the process (it cannot re-create a downed broker's listener), so the limit is raised first.
# (SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=16 cut the peak to ~480, but one run of the suite
# with it hung: tests shown started never ran, with no client thread left.)
test: deps lint
	@ulimit -n "$$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true; \
	  echo "open files limit for the tests: $$(ulimit -n)"; \
	  $(SWIFT) test

# The suites that exercise what a real broker does differently from librdkafka's mock cluster.
EXTERNAL_SUITES := ConsumerGroupRebalanceTests|AtLeastOncePipelineTests|MultiProcessRebalanceTests|TransactionalPipelineTests|TransactionalSourceTests|ExternalClusterTests|LagCollectorExternalTests|KafkaTableTests|PersistentTableTests|TableJoinTests|TableBadInputTests|PartitionAlignedTableTests|TransactionalTopicTableTests|EventSourcedFlowTests|EventSourcedCrashTests|ParallelRebalanceTests|ParallelProduceTests|ParallelTransactionalTests|ParallelTransactionalBrokerTests

test-external: external-cluster deps
	$(SWIFT) test --filter '$(EXTERNAL_SUITES)'

external-cluster:
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then \
	  echo "test-external needs a Kafka cluster: KAFKA_BOOTSTRAP_SERVERS=host:port make test-external"; \
	  echo "(optional: KAFKA_TEST_SESSION_TIMEOUT_MS, default 6000, at least the broker's group.min.session.timeout.ms)"; \
	  exit 2; \
	fi

# Style: the toolchain's swift-format with .swift-format (swift-nio's 4-space indentation, 120 columns, a doc
# comment on every public declaration). `make format` rewrites the tree; `make lint` fails on any finding.
SWIFT_FORMAT ?= $(SWIFT) format
FORMAT_PATHS := Package.swift Sources Tests Examples

format:
	$(SWIFT_FORMAT) format --in-place --recursive --parallel $(FORMAT_PATHS)

lint:
	@$(SWIFT_FORMAT) --version >/dev/null 2>&1 || { echo "make lint needs swift-format: it ships with Swift 6 toolchains ('swift format'); set SWIFT_FORMAT=/path/to/swift-format"; exit 1; }
	$(SWIFT_FORMAT) lint --strict --recursive --parallel $(FORMAT_PATHS)

# `make docs`: the DocC catalogues of the library targets (Sources/<target>/<target>.docc), built with
# swift-docc-plugin into .build/plugins/Swift-DocC/outputs/<target>.doccarchive. Any warning (a broken or
# ambiguous symbol link, a malformed article) fails the build. Not part of `make test` (it rebuilds the
# targets for their symbol graphs). `swift package --disable-sandbox preview-documentation --target X`
# serves one locally.
DOC_TARGETS := StreamKit ReactiveKafka ReactiveKafkaTestKit

docs: deps
	$(SWIFT) package generate-documentation $(foreach target,$(DOC_TARGETS),--target $(target)) \
	  --warnings-as-errors

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
	REACTIVE_KAFKA_TEST_TIME_SCALE=4 ASAN_OPTIONS="detect_leaks=1 suppressions=$(CURDIR)/Sanitizers/asan.supp $(ASAN_OPTIONS)" LSAN_OPTIONS="suppressions=$(CURDIR)/Sanitizers/lsan.supp $(LSAN_OPTIONS)" \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan $(SANITIZE_ARGS)

clean:
	rm -rf .build
