package firewall_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"crypto/rand"
	"encoding/hex"

	"fulcrum/internal/cli"
	"fulcrum/internal/testenv"
)

// TestCLIPlan checks that `fulcrum firewall plan` prints the golden
// ruleset.
func TestCLIPlan(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		golden string
	}{
		{[]string{"--host", "web2"}, "web.nft"},
		{[]string{"--host", "db-manager"}, "db-manager.nft"},
		{[]string{"--host", "db3", "--ssh-port", "2222", "--ssh-from", "203.0.113.0/24,2001:db8::/32",
			"--hosts", "lb1=198.51.100.1,web1=198.51.100.1,db1=198.51.100.1,lb2=198.51.100.2,web2=198.51.100.2,db2=198.51.100.2,db3=198.51.100.3,db-manager=198.51.100.3",
			"-c", "testdata/three-machines.yaml"}, "three-machines-3.nft"},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out, errb bytes.Buffer
			if st := cli.Main(append([]string{"firewall", "plan"}, tc.args...), nil, &out, &errb); st != 0 {
				t.Fatalf("firewall plan %v = %d: %s", tc.args, st, errb.String())
			}
			want, err := os.ReadFile(filepath.Join("testdata", tc.golden))
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != string(want) {
				t.Errorf("firewall plan %v =\n%s\nwant\n%s", tc.args, out.String(), want)
			}
		})
	}
}

func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"firewall"},
		{"firewall", "frobnicate"},
		{"firewall", "plan"},
		{"firewall", "plan", "--host", "web9"},
		{"firewall", "plan", "--host", "web1", "--ssh-port", "0"},
		{"firewall", "plan", "--host", "web1", "--ssh-from", "203.0.113.0/33"},
		{"firewall", "plan", "--host", "web1", "--hosts", "web9=192.0.2.99"},
		{"firewall", "plan", "--host", "web1", "extra"},
		{"firewall", "remove", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if st := cli.Main(args, nil, &out, &errb); st != 2 {
				t.Errorf("fulcrum %v = %d, want 2 (usage); stderr %s", args, st, errb.String())
			}
		})
	}
}

// cliHelperEnv makes TestCLIHelper run fulcrum with the arguments in it
// (separated by newlines) and exit with its status; TestCLIApply starts
// the test binary that way inside a network namespace.
const cliHelperEnv = "FULCRUM_FIREWALL_CLI_ARGS"

func TestCLIHelper(t *testing.T) {
	args := os.Getenv(cliHelperEnv)
	if args == "" {
		t.Skip("helper process of TestCLIApply")
	}
	os.Exit(cli.Main(strings.Split(args, "\n"), os.Stdin, os.Stdout, os.Stderr))
}

// TestCLIApply runs `fulcrum firewall apply` and `remove` inside a network
// namespace of its own (the whole process in it, through ip netns exec),
// with $SSH_CONNECTION inside and outside the allowed SSH networks.
func TestCLIApply(t *testing.T) {
	testenv.Short(t)
	testenv.Root(t)
	testenv.Program(t, "ip", "nft")
	b := make([]byte, 4)
	rand.Read(b)
	ns := "fulcrum-fwcli-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	fulcrum := func(ssh string, args ...string) (int, string) {
		cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestCLIHelper$")
		cmd.Env = append(os.Environ(), cliHelperEnv+"="+strings.Join(args, "\n"), "SSH_CONNECTION="+ssh)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return 0, string(out)
	}
	installed := func() bool {
		out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "tables").CombinedOutput()
		if err != nil {
			t.Fatalf("nft list tables: %v: %s", err, out)
		}
		return strings.Contains(string(out), "inet fulcrum")
	}
	apply := []string{"firewall", "apply", "--host", "web1", "--ssh-from", "203.0.113.0/24"}
	outside := "198.51.100.7 50000 192.0.2.21 22"
	inside := "203.0.113.9 50000 192.0.2.21 22"

	if st, out := fulcrum(outside, apply...); st != 1 || !strings.Contains(out, "refusing") || !strings.Contains(out, "198.51.100.7") {
		t.Errorf("apply from outside --ssh-from = %d %q, want 1 and a refusal naming the client", st, out)
	}
	if installed() {
		t.Fatal("a refused apply installed the table")
	}
	if st, out := fulcrum(inside, apply...); st != 0 || !installed() {
		t.Errorf("apply from inside --ssh-from = %d %q, installed %v; want 0 and the table", st, out, installed())
	}
	if st, out := fulcrum("", "firewall", "remove"); st != 0 || installed() {
		t.Errorf("remove = %d %q, installed %v; want 0 and no table", st, out, installed())
	}
	if st, out := fulcrum(outside, append(apply, "--force")...); st != 0 || !installed() {
		t.Errorf("apply --force from outside = %d %q, installed %v; want 0 and the table", st, out, installed())
	}
	if st, out := fulcrum("not a session", apply...); st != 1 || !strings.Contains(out, "SSH_CONNECTION") {
		t.Errorf("apply with a malformed SSH_CONNECTION = %d %q, want 1 naming it", st, out)
	}
	if st, out := fulcrum("", "firewall", "remove"); st != 0 || installed() {
		t.Errorf("remove = %d %q, installed %v; want 0 and no table", st, out, installed())
	}
}
