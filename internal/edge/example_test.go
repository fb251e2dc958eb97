package edge_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"fulcrum/internal/config"
	"fulcrum/internal/edge"
)

func ExampleACL_Allow() {
	acl, err := edge.NewACL([]config.ACLRule{
		{Action: "deny", CIDR: []string{"203.0.113.0/24", "2001:db8::/32"}},
		{Action: "allow", Host: []string{"api.example.com"}, PathPrefix: []string{"/v1"}},
		{Action: "deny", Host: []string{"api.example.com"}},
	})
	if err != nil {
		panic(err)
	}
	client := netip.MustParseAddr("198.51.100.7")
	fmt.Println(acl.Allow(client, []byte("API.example.com:443"), []byte("/v1/users")))
	fmt.Println(acl.Allow(client, []byte("api.example.com"), []byte("/v2/users")))
	fmt.Println(acl.AllowConn(netip.MustParseAddr("2001:db8::1")))
	// Output:
	// true
	// false
	// false
}

func ExampleLimiter_Allow() {
	l := edge.NewLimiter(config.RateLimit{Rate: 1, Burst: 2, TableSize: 10000})
	client := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 3; i++ {
		ok, retry := l.Allow(client, now)
		fmt.Println(ok, retry)
	}
	ok, _ := l.Allow(client, now.Add(time.Second))
	fmt.Println(ok)
	// Output:
	// true 0s
	// true 0s
	// false 1s
	// true
}

func ExampleReadProxyHeader() {
	br := bufio.NewReader(strings.NewReader("PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n"))
	src, dst, err := edge.ReadProxyHeader(br)
	fmt.Println(src, dst, err)
	fmt.Printf("%q\n", edge.AppendProxyV1(nil, src, dst))
	// Output:
	// 192.0.2.1:56324 198.51.100.1:443 <nil>
	// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"
}

func ExampleTrusted_ClientIP() {
	t, _ := edge.NewTrusted([]string{"10.0.0.0/8"})
	xff := []byte("198.51.100.9, 10.0.0.7")
	fmt.Println(t.ClientIP(netip.MustParseAddr("10.0.0.1"), xff))
	fmt.Println(t.ClientIP(netip.MustParseAddr("192.0.2.66"), xff))
	// Output:
	// 198.51.100.9
	// 192.0.2.66
}
