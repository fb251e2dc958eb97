# fulcrum — `make demo` runs the stack, `make test` runs every test.
# Both install what they need when it is missing (Debian packages, Go modules).

GO       ?= go
BIN      := bin/fulcrum
# Debian packages the tests and benchmarks run against (the real peers).
TEST_PKGS := haproxy nginx-light libnginx-mod-stream wrk mariadb-server mariadb-client keepalived \
             iproute2 nftables nmap prometheus chromium chromium-driver curl systemd testssl.sh
DEMO_PKGS := mariadb-server mariadb-client curl

.PHONY: all build demo test unit integration lint bench deps-test deps-demo modules clean

all: build

modules:
	$(GO) mod download

build: modules
	$(GO) build -o $(BIN) ./cmd/fulcrum

# Go-built test tools, into bin/ (on PATH for the tests).
H2SPEC := github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible

deps-test: bin/h2spec
	@scripts/apt-need $(TEST_PKGS)

bin/h2spec:
	GOBIN=$(CURDIR)/bin $(GO) install $(H2SPEC)

deps-demo:
	@scripts/apt-need $(DEMO_PKGS)

demo: deps-demo build
	$(BIN) up

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Unit tests with the race detector (integration tests skip under -short),
# then every test, integration included, against real processes.
unit: modules
	$(GO) test -race -short -count=1 ./...

integration: modules build
	PATH="$(CURDIR)/bin:$$PATH" FULCRUM_BIN="$(CURDIR)/$(BIN)" $(GO) test -count=1 -timeout 25m ./...

test: deps-test lint unit integration

bench: deps-test build
	$(GO) run ./bench

clean:
	rm -rf bin
