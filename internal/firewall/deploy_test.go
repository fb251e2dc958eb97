package firewall_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"fulcrum/internal/cli"
	"fulcrum/internal/config"
	"fulcrum/internal/firewall"
	"fulcrum/internal/testenv"
)

// TestDeployGuide checks docs/deploy.md against the code: every YAML file
// it shows is accepted by its loader, and the firewall it configures opens
// on each machine the ports its table says.
func TestDeployGuide(t *testing.T) {
	raw, err := os.ReadFile("../../docs/deploy.md")
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	etc := t.TempDir()
	for _, f := range []string{"app.password", "db-admin.password", "repl.password", "admin.token"} {
		if err := os.WriteFile(filepath.Join(etc, f), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCert(t, filepath.Join(etc, "site.crt"), filepath.Join(etc, "site.key"))
	local := func(s string) []byte {
		s = strings.ReplaceAll(s, "/etc/fulcrum/", etc+"/")
		return []byte(strings.ReplaceAll(s, "/var/lib/fulcrum/", t.TempDir()+"/"))
	}

	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(guide, -1)
	kinds := map[string]int{}
	for i, b := range blocks {
		y := b[1]
		var err error
		var kind string
		switch {
		case strings.Contains(y, "frontends:"):
			kind = "lb"
			_, err = config.ParseLB("lb.yaml", local(y))
		case strings.Contains(y, "app: guestbook"):
			kind = "web"
			_, err = config.ParseWeb(filepath.Join(etc, "web.yaml"), local(y))
		case strings.Contains(y, "repl_user:"):
			kind = "db"
			_, err = config.ParseDB("db.yaml", local(y))
		case strings.HasPrefix(y, "replicas:"):
			kind = "stack"
			_, err = config.ParseStack("stack.yaml", local(y))
			if err == nil {
				err = os.WriteFile(filepath.Join(etc, "stack.yaml"), local(y), 0o644)
			}
		default:
			t.Errorf("yaml block %d: which file is it?\n%s", i, y)
			continue
		}
		kinds[kind]++
		if err != nil {
			t.Errorf("%s.yaml in docs/deploy.md: %v", kind, err)
		}
	}
	for _, k := range []string{"lb", "web", "db", "stack"} {
		if kinds[k] != 1 {
			t.Errorf("docs/deploy.md shows %d %s files, want 1", kinds[k], k)
		}
	}

	m := regexp.MustCompile(`(?m)^FULCRUM_FIREWALL_ARGS=(.*)$`).FindStringSubmatch(guide)
	if m == nil {
		t.Fatal("docs/deploy.md: no FULCRUM_FIREWALL_ARGS line")
	}
	args := strings.Fields(string(local(m[1])))
	outside := netip.MustParseAddr("192.0.2.200")
	admin := netip.MustParseAddr("203.0.113.9")
	for _, tc := range []struct {
		host      string
		addr      string
		outside   []uint16
		fromAdmin []uint16
	}{
		{"lb1", "198.51.100.1", []uint16{80, 443}, []uint16{22, 80, 443}},
		{"lb2", "198.51.100.2", []uint16{80, 443}, []uint16{22, 80, 443}},
		{"db3", "198.51.100.3", nil, []uint16{22}},
	} {
		t.Run(tc.host, func(t *testing.T) {
			a := slices.Clone(args)
			a[slices.Index(a, "--host")+1] = tc.host
			var out, errb bytes.Buffer
			if st := cli.Main(append([]string{"firewall", "plan"}, a...), nil, &out, &errb); st != 0 {
				t.Fatalf("firewall plan %v = %d: %s", a, st, errb.String())
			}
			// The guide's table and the plan must agree; rebuild the
			// ruleset the CLI printed to ask it.
			rs := planFromArgs(t, a)
			if out.String() != rs.String() {
				t.Fatalf("firewall plan printed a different ruleset than Plan")
			}
			dst := netip.MustParseAddr(tc.addr)
			if got := rs.Ports(outside, dst); !slices.Equal(got, tc.outside) {
				t.Errorf("%s from outside: ports %v, want %v", tc.host, got, tc.outside)
			}
			if got := rs.Ports(admin, dst); !slices.Equal(got, tc.fromAdmin) {
				t.Errorf("%s from the administrators' network: ports %v, want %v", tc.host, got, tc.fromAdmin)
			}
		})
	}
}

// planFromArgs is what `fulcrum firewall plan` does with the guide's
// arguments, through the package's API.
func planFromArgs(t *testing.T, args []string) *firewall.Ruleset {
	t.Helper()
	flag := func(name string) string {
		if i := slices.Index(args, name); i >= 0 {
			return args[i+1]
		}
		return ""
	}
	s, err := config.LoadStack(flag("-c"))
	if err != nil {
		t.Fatal(err)
	}
	topo, err := firewall.FromStack(s)
	if err != nil {
		t.Fatal(err)
	}
	as, err := firewall.ParseAssignments(flag("--hosts"))
	if err != nil {
		t.Fatal(err)
	}
	for n, a := range as {
		if err := topo.SetAddr(n, a); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Contains(args, "--monitoring") {
		if topo.Monitoring, err = firewall.ParsePrefixes(flag("--monitoring")); err != nil {
			t.Fatal(err)
		}
	}
	if topo.SSHFrom, err = firewall.ParsePrefixes(flag("--ssh-from")); err != nil {
		t.Fatal(err)
	}
	rs, err := firewall.Plan(topo, flag("--host"))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func writeCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	_, key, certPEM := testenv.CA(t, "www.example.com")
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdUnits runs systemd-analyze verify over deploy/systemd, with
// the binary's path pointed at an executable that exists here.
func TestSystemdUnits(t *testing.T) {
	testenv.Short(t)
	analyze := testenv.Program(t, "systemd-analyze")[0]
	units, err := filepath.Glob("../../deploy/systemd/*.service")
	if err != nil || len(units) < 4 {
		t.Fatalf("deploy/systemd: %d units, %v", len(units), err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, u := range units {
		raw, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(p, bytes.ReplaceAll(raw, []byte("/usr/local/bin/fulcrum"), []byte(exe)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(u), func(t *testing.T) {
			out, err := exec.Command(analyze, "verify", "--man=no", p).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
			}
		})
	}
}
