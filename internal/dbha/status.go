package dbha

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Observe probes every node and returns the cluster's state without
// acting on it: no fencing, rejoin or failover. `fulcrum db status --dir`
// uses it when no manager runs.
func (m *Manager) Observe(ctx context.Context) Status {
	st := m.probeAll(ctx)
	prim := m.currentPrimary()
	if prim == "" {
		for _, s := range st {
			if s.Reachable && !s.ReadOnly && s.Replica == nil {
				prim = s.Name
			}
		}
	}
	var primPos Position
	for _, s := range st {
		if s.Name == prim && s.Reachable {
			s.Role = "primary"
			primPos, _ = ParsePosition(s.GTIDBinlogPos)
		}
	}
	for _, s := range st {
		if s.Name != prim && s.Reachable && prim != "" && m.pointsTo(s, prim) {
			s.Role = "replica"
			if applied, err := ParsePosition(s.GTIDSlavePos); err == nil && primPos != nil {
				s.GTIDBehind = applied.Behind(primPos)
			}
		}
		if s.Error == "" && s.Replica != nil {
			r := s.Replica
			switch {
			case r.LastSQLErrno != 0:
				s.Error = fmt.Sprintf("SQL thread error %d: %s", r.LastSQLErrno, r.LastSQLError)
			case r.LastIOErrno != 0:
				s.Error = fmt.Sprintf("IO thread error %d: %s", r.LastIOErrno, r.LastIOError)
			case len(s.Errant) > 0:
				s.Error = "errant GTID " + strings.Join(s.Errant, ",")
			}
		}
	}
	out := Status{Primary: prim, CheckedAt: m.cfg.Now()}
	for _, s := range st {
		out.Nodes = append(out.Nodes, *s)
	}
	return out
}

// WriteText writes s as the table of `fulcrum db status`, then the
// counters and the last events.
func (s Status) WriteText(w io.Writer, events int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tROLE\tREACHABLE\tREAD_ONLY\tGTID_BINLOG_POS\tGTID_SLAVE_POS\tLAG\tBEHIND\tIO\tSQL\tSEMI_SYNC\tLAST_ERROR")
	for _, n := range s.Nodes {
		role := n.Role
		if role == "" {
			role = "-"
		}
		lag, io, sqlT := "-", "-", "-"
		if r := n.Replica; r != nil {
			io, sqlT = r.IORunning, r.SQLRunning
			if r.SecondsBehind >= 0 {
				lag = strconv.FormatInt(r.SecondsBehind, 10) + "s"
			} else {
				lag = "NULL"
			}
		}
		semi := "-"
		switch {
		case n.SemiSyncFallback():
			semi = fmt.Sprintf("ASYNC fallback (%d commits unacknowledged)", n.SemiSyncNoTx)
		case n.SemiSyncMasterEnabled:
			semi = fmt.Sprintf("on (%d replicas)", n.SemiSyncClients)
		case n.SemiSyncSlaveActive:
			semi = "replica"
		}
		ro := "-"
		if n.Reachable {
			ro = strconv.FormatBool(n.ReadOnly)
		}
		errMsg := strings.ReplaceAll(n.Error, "\n", " ")
		if len(errMsg) > 120 {
			errMsg = errMsg[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, n.Addr, role, n.Reachable, ro,
			dash(n.GTIDBinlogPos), dash(n.GTIDSlavePos), lag, n.GTIDBehind, io, sqlT, semi, dash(errMsg))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nprimary: %s  failovers: %d  switchovers: %d", dash(s.Primary), s.Failovers, s.Switchovers)
	if s.LastFailoverAt != nil {
		fmt.Fprintf(w, "  last failover: %s (%.3fs)", s.LastFailoverAt.Format(time.RFC3339), s.LastFailoverSeconds)
	}
	if s.FailoverHeldUntil != nil {
		fmt.Fprintf(w, "  automatic failover held until %s", s.FailoverHeldUntil.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
	if evs := s.Events; len(evs) > 0 && events > 0 {
		if len(evs) > events {
			evs = evs[len(evs)-events:]
		}
		fmt.Fprintln(w, "\nrecent events:")
		for _, e := range evs {
			fmt.Fprintf(w, "  %s  %-18s %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Message)
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
