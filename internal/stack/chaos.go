package stack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrUnknown is returned by Kill and Restore for a name that is no part of
// the stack.
var ErrUnknown = errors.New("stack: no such component")

// resolve turns db-primary into the node that is primary now.
func (s *Stack) resolve(name string) (string, error) {
	if name != "db-primary" {
		return name, nil
	}
	st := s.State()
	if st.Primary != "" {
		return st.Primary, nil
	}
	if s.local != nil {
		for _, n := range s.local.Nodes() {
			if n.Addr == s.local.Addrs()[0] {
				return n.Name, nil
			}
		}
	}
	return "", errors.New("stack: no database primary known")
}

func (s *Stack) isNode(name string) bool {
	if s.local == nil {
		return false
	}
	for _, n := range s.local.Nodes() {
		if n.Name == name {
			return true
		}
	}
	return false
}

func (s *Stack) unknown(name string) error {
	st := s.State()
	return fmt.Errorf("%w %q: want one of %s", ErrUnknown, name, strings.Join(st.Components(), ", "))
}

// Kill sends SIGKILL to a component, as a crash would: lb1, lb2, web1,
// web2, manager, a database node (db1…) or db-primary, the node that is
// primary now. It returns what was done.
func (s *Stack) Kill(ctx context.Context, name string) (string, error) {
	target, err := s.resolve(name)
	if err != nil {
		return "", err
	}
	if c, ok := s.byName[target]; ok {
		pid := c.pid()
		if err := c.kill(); err != nil {
			return "", err
		}
		return fmt.Sprintf("killed %s (pid %d) with SIGKILL", target, pid), nil
	}
	if !s.isNode(target) {
		return "", s.unknown(name)
	}
	if !s.local.Running(target) {
		return "", fmt.Errorf("%s is not running", target)
	}
	if err := s.local.Kill(target); err != nil {
		return "", err
	}
	if name == "db-primary" {
		s.mu.Lock()
		s.killedPrimary = target
		s.mu.Unlock()
	}
	s.event("chaos", target, "chaos: killed %s (mariadbd) with SIGKILL", target)
	if name == "db-primary" {
		return fmt.Sprintf("killed %s (the primary's mariadbd) with SIGKILL", target), nil
	}
	return fmt.Sprintf("killed %s (mariadbd) with SIGKILL", target), nil
}

// Restore starts a killed component again. A database node comes back
// read-only (every node starts so) and the manager makes it a replica of
// the current primary. db-primary restores the node last killed under that
// name.
func (s *Stack) Restore(ctx context.Context, name string) (string, error) {
	target := name
	if name == "db-primary" {
		s.mu.Lock()
		target = s.killedPrimary
		s.mu.Unlock()
		if target == "" {
			return "", errors.New("no primary was killed as db-primary: restore a node by its name")
		}
	}
	if c, ok := s.byName[target]; ok {
		if c.running() {
			return fmt.Sprintf("%s runs already (pid %d)", target, c.pid()), nil
		}
		if err := c.start(); err != nil {
			return "", err
		}
		s.event("chaos", target, "chaos: restored %s (pid %d)", target, c.pid())
		_ = s.writeFile()
		return fmt.Sprintf("started %s again (pid %d)", target, c.pid()), nil
	}
	if !s.isNode(target) {
		return "", s.unknown(name)
	}
	if s.local.Running(target) {
		return fmt.Sprintf("%s runs already", target), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.local.StartNode(ctx, target); err != nil {
		return "", err
	}
	s.event("chaos", target, "chaos: restored %s: it starts read-only and rejoins as a replica", target)
	return fmt.Sprintf("started %s again: read-only, the manager rejoins it as a replica of the primary", target), nil
}
