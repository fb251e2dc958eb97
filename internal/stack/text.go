package stack

import (
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// StatusLine is the one-line summary `fulcrum up` keeps rewriting.
func StatusLine(st *State) string {
	var b strings.Builder
	b.WriteString(st.Time.Format("15:04:05"))
	if st.FrontUp {
		fmt.Fprintf(&b, " site UP")
	} else {
		fmt.Fprintf(&b, " site DOWN")
	}
	if st.ActiveLB != "" {
		fmt.Fprintf(&b, " via %s", st.ActiveLB)
	} else {
		b.WriteString(" (no LB holds the front)")
	}
	for _, w := range st.Webs {
		fmt.Fprintf(&b, " | %s %s %.0f r/s", w.Name, webWord(w), w.RPS)
	}
	b.WriteString(" |")
	for _, n := range st.DB {
		fmt.Fprintf(&b, " %s %s", n.Name, nodeWord(n))
	}
	if k := len(st.Events); k > 0 {
		e := st.Events[k-1]
		msg := e.Message
		if len(msg) > 60 {
			msg = msg[:57] + "..."
		}
		fmt.Fprintf(&b, " | last: %s", msg)
	}
	return b.String()
}

func webWord(w WebState) string {
	switch {
	case !w.Running:
		return "DEAD"
	case w.Healthy:
		return "UP"
	default:
		return "UNHEALTHY"
	}
}

func lbWord(l LBState) string {
	switch {
	case !l.Running:
		return "DEAD"
	case l.Active:
		return "ACTIVE"
	default:
		return "standby"
	}
}

func nodeWord(n DBNode) string {
	switch {
	case !n.Running:
		return "DEAD"
	case !n.Reachable:
		return "unreachable"
	case n.Role == "replica" && n.LagSeconds >= 0:
		return "replica(lag " + strconv.FormatInt(n.LagSeconds, 10) + "s)"
	case n.Role != "":
		return n.Role
	case n.ReadOnly:
		return "read-only"
	default:
		return "writable"
	}
}

// WriteStatus writes the topology and health as `fulcrum status` prints
// it, with the last events.
func WriteStatus(w io.Writer, st *State, events int) error {
	front := "DOWN"
	if st.FrontUp {
		front = "UP (answered by " + st.FrontServedBy + ")"
	}
	active := st.ActiveLB
	if active == "" {
		active = "none"
	}
	primary := st.Primary
	if primary == "" {
		primary = "unknown"
	}
	fmt.Fprintf(w, "site http://%s  %s\nactive load balancer: %s   database primary: %s   dashboard: http://%s\n\n",
		st.Front, front, active, primary, st.Dashboard)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tKIND\tSTATE\tPID\tADDRESS\tDETAIL")
	for _, l := range st.LBs {
		detail := "admin API not answering"
		if l.AdminUp {
			var parts []string
			for _, s := range l.Servers {
				parts = append(parts, s.Backend+"/"+s.Name+" "+s.State)
			}
			detail = strings.Join(parts, ", ")
		}
		if !l.Running {
			detail = l.Exit
		}
		fmt.Fprintf(tw, "%s\tlb\t%s\t%s\t%s (admin %s)\tpriority %d; %s\n", l.Name, lbWord(l), pidText(l.PID), st.Front, l.Admin, l.Priority, detail)
	}
	for _, x := range st.Webs {
		detail := fmt.Sprintf("%.1f req/s; %s", x.RPS, x.Health)
		if !x.Running {
			detail = x.Exit
		}
		fmt.Fprintf(tw, "%s\tweb\t%s\t%s\t%s (status %s)\t%s\n", x.Name, webWord(x), pidText(x.PID), x.Listen, x.Admin, detail)
	}
	m := st.Manager
	mstate := "UP"
	switch {
	case !m.Running:
		mstate = "DEAD"
	case !m.Reachable:
		mstate = "not answering"
	}
	fmt.Fprintf(tw, "manager\tdb manager\t%s\t%s\t%s\tfailovers %d\n", mstate, pidText(m.PID), m.Addr, m.Failovers)
	for _, n := range st.DB {
		detail := n.Error
		if detail == "" {
			detail = "-"
		}
		fmt.Fprintf(tw, "%s\tmariadb\t%s\t-\t%s\t%s\n", n.Name, nodeWord(n), n.Addr, detail)
	}
	if st.DBWrites != "" {
		fmt.Fprintf(tw, "db ports\tlb\t-\t-\twrites %s, reads %s\theld by the active load balancer\n", st.DBWrites, st.DBReads)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	evs := st.Events
	if events > 0 && len(evs) > 0 {
		if len(evs) > events {
			evs = evs[len(evs)-events:]
		}
		fmt.Fprintln(w, "\nrecent events:")
		for _, e := range evs {
			fmt.Fprintf(w, "  %s  %-12s %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Message)
		}
	}
	return nil
}

func pidText(pid int) string {
	if pid == 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

// printIntro writes the URLs and the status table once the stack is up.
func (s *Stack) printIntro(w io.Writer) {
	c := s.cfg
	fmt.Fprintf(w, "\nfulcrum stack running from %s\n\n", s.dir)
	fmt.Fprintf(w, "  site (guestbook)   http://%s\n", c.Front)
	fmt.Fprintf(w, "                     https://%s  (local CA: %s)\n", c.FrontTLS, s.caPath)
	fmt.Fprintf(w, "  dashboard          http://%s\n", c.Dashboard)
	for _, l := range c.LBs {
		fmt.Fprintf(w, "  %-18s http://%s  (stats, /metrics)\n", l.Name+" admin", l.Admin)
	}
	for _, x := range c.Webs {
		fmt.Fprintf(w, "  %-18s https://%s  (status http://%s/status)\n", x.Name, x.Listen, x.Admin)
	}
	fmt.Fprintf(w, "  db manager         http://%s/status\n", c.DB.Manager)
	if c.DB.Writes != "" {
		fmt.Fprintf(w, "  database ports     writes %s, reads %s  (credentials: %s/db/cluster.env)\n", c.DB.Writes, c.DB.Reads, s.dir)
	}
	if s.net != nil {
		fmt.Fprintf(w, "\n  hosts: network namespaces on %s, each firewalled\n", c.Network)
		for _, h := range c.Hosts {
			fmt.Fprintf(w, "    %-12s %-15s %-24s ip netns exec %s …\n", h.Name, h.Address, strings.Join(h.Roles, " "), s.net.NS(h.Name))
		}
		fmt.Fprintf(w, "    %-12s %-15s %-24s ip netns exec %s curl http://%s/\n", clientHost, c.Client, "the outside world", s.net.NS(clientHost), c.VIP)
		fmt.Fprintf(w, "    %-12s %-15s %-24s ip netns exec %s curl -H \"Authorization: Bearer $(cat TOKEN)\" http://%s/\n",
			monitorHost, c.Monitor, "monitoring, the polls", s.net.NS(monitorHost), c.LBs[0].Admin)
		fmt.Fprintf(w, "  admin APIs need the bearer token in %s\n", filepath.Join(s.dir, "secrets", "admin.token"))
	}
	fmt.Fprintln(w)
	st := s.State()
	_ = WriteStatus(w, &st, 0)
	fmt.Fprintf(w, "\nbreak it: fulcrum chaos kill lb1|web1|db-primary --dir %s; see it: fulcrum status --dir %s; stop: Ctrl-C\n\n", s.dir, s.dir)
}
