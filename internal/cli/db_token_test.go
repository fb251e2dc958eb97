package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	adminapi "fulcrum/internal/admin"
	"fulcrum/internal/dbha"
)

// TestDBClientToken: `fulcrum db status` and `db switchover` carry
// --token-file's token to a manager that requires one, and without it are
// refused with the manager's answer.
func TestDBClientToken(t *testing.T) {
	var switched string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(dbha.Status{Primary: "db2", PrimaryAddr: "192.0.2.32:3306"})
	})
	mux.HandleFunc("POST /switchover", func(w http.ResponseWriter, r *http.Request) {
		switched = r.URL.Query().Get("to")
		json.NewEncoder(w).Encode(dbha.Status{Primary: switched, PrimaryAddr: "192.0.2.33:3306"})
	})
	srv := httptest.NewServer(adminapi.RequireToken("s3cret", mux))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"db", "status", "--admin", addr, "--json"}, exitFailure, "bearer token is required"},
		{[]string{"db", "status", "--admin", addr, "--token-file", file, "--json"}, exitOK, `"primary": "db2"`},
		{[]string{"db", "switchover", "--to", "db3", "--admin", addr}, exitFailure, "bearer token is required"},
		{[]string{"db", "switchover", "--to", "db3", "--admin", addr, "--token-file", file}, exitOK, "primary is now db3"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, nil, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("fulcrum %s = %d, %q %q; want %d and %q", strings.Join(tc.args, " "), code, out.String(), errb.String(), tc.code, tc.want)
		}
	}
	if switched != "db3" {
		t.Errorf("switchover reached the manager with to=%q, want db3", switched)
	}
}
