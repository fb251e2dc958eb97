package stack

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// listenerOwner returns which of pids holds a listening TCP socket on addr
// (IPv4 or IPv6 host:port), or 0. In VRRP local mode only the master binds
// the front address, so its owner is the active load balancer: the
// election itself is the source of truth, read from /proc.
func listenerOwner(addr string, pids []int) int {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || len(pids) == 0 {
		return 0
	}
	inode := listeningInode(ap)
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		dir := "/proc/" + strconv.Itoa(pid) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
				return pid
			}
		}
	}
	return 0
}

// listeningInode finds the inode of the socket listening on ap in
// /proc/net/tcp (or tcp6), "" when none does.
func listeningInode(ap netip.AddrPort) string {
	file, want := "/proc/net/tcp", ""
	a := ap.Addr().Unmap()
	if a.Is4() {
		b := a.As4()
		// The kernel prints the address as a little-endian 32-bit word.
		want = fmt.Sprintf("%02X%02X%02X%02X:%04X", b[3], b[2], b[1], b[0], ap.Port())
	} else {
		file = "/proc/net/tcp6"
		b := a.As16()
		var sb strings.Builder
		for i := 0; i < 16; i += 4 {
			fmt.Fprintf(&sb, "%02X%02X%02X%02X", b[i+3], b[i+2], b[i+1], b[i])
		}
		want = fmt.Sprintf("%s:%04X", sb.String(), ap.Port())
	}
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(fields) < 10 || fields[1] != want || fields[3] != "0A" {
			continue
		}
		return fields[9]
	}
	return ""
}
