package lb

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// InheritEnv names the environment variable through which a process that
// upgrades itself hands its listening sockets to its successor:
// "ADDR=FD;ADDR=FD…", the descriptors already open in the new process.
const InheritEnv = "FULCRUM_INHERIT_FDS"

// Inherited parses InheritEnv and returns a Listen that uses an inherited
// socket for an address listed there and binds anew otherwise (with next).
// Without the variable it returns next unchanged.
func Inherited(next Listen) (Listen, error) {
	v := os.Getenv(InheritEnv)
	if v == "" {
		return next, nil
	}
	os.Unsetenv(InheritEnv)
	lns := map[string]net.Listener{}
	for _, kv := range strings.Split(v, ";") {
		addr, fdStr, ok := strings.Cut(kv, "=")
		fd, err := strconv.Atoi(fdStr)
		if !ok || err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: bad entry %q", InheritEnv, kv)
		}
		f := os.NewFile(uintptr(fd), addr)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %s (fd %d): %w", InheritEnv, addr, fd, err)
		}
		lns[addr] = ln
	}
	return func(network, addr string) (net.Listener, error) {
		if ln, ok := lns[addr]; ok {
			delete(lns, addr)
			return ln, nil
		}
		return next(network, addr)
	}, nil
}

// ListenerFiles returns a duplicate of every bound listening socket, by
// configured address, for handing to a successor process. The caller closes
// the files.
func (l *LB) ListenerFiles() (map[string]*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]*os.File{}
	for _, f := range l.frontends {
		for addr, ln := range f.listeners {
			fl, ok := ln.(interface{ File() (*os.File, error) })
			if !ok {
				return nil, errors.New("listener of " + addr + " cannot be handed over")
			}
			file, err := fl.File()
			if err != nil {
				return nil, err
			}
			out[addr] = file
		}
	}
	return out, nil
}
