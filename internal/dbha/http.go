package dbha

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the manager's admin API:
//
//	GET  /status                 the Status as JSON (also GET /)
//	GET  /metrics                Prometheus metrics, prefixed fulcrum_db_
//	POST /switchover?to=NODE     a planned switchover; 200 with the new
//	                             Status, 409 when refused
func (m *Manager) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{m: m})
	mux := http.NewServeMux()
	status := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(m.Status())
	}
	mux.HandleFunc("GET /{$}", status)
	mux.HandleFunc("GET /status", status)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /switchover", func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		if to == "" {
			http.Error(w, "switchover: the query parameter to=NODE is required", http.StatusBadRequest)
			return
		}
		if err := m.Switchover(r.Context(), to); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, ErrSwitchover) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
		status(w, r)
	})
	return mux
}

// collector turns the last Status into metrics at scrape time.
type collector struct{ m *Manager }

var _ prometheus.Collector = (*collector)(nil)

var (
	descUp        = prometheus.NewDesc("fulcrum_db_node_up", "Whether the manager reached the node at its last check.", []string{"node"}, nil)
	descRole      = prometheus.NewDesc("fulcrum_db_node_role", "The node's role (1 for the role it has).", []string{"node", "role"}, nil)
	descRO        = prometheus.NewDesc("fulcrum_db_node_read_only", "The node's @@read_only.", []string{"node"}, nil)
	descLag       = prometheus.NewDesc("fulcrum_db_replication_lag_seconds", "Seconds_Behind_Master of a replica (absent when NULL).", []string{"node"}, nil)
	descBehind    = prometheus.NewDesc("fulcrum_db_replication_lag_transactions", "GTID distance: transactions the node has not applied yet from the primary's binlog.", []string{"node"}, nil)
	descIO        = prometheus.NewDesc("fulcrum_db_replication_io_running", "Replica IO thread state (1 for the state it is in: Yes, No, Connecting).", []string{"node", "state"}, nil)
	descSQL       = prometheus.NewDesc("fulcrum_db_replication_sql_running", "Whether the replica SQL thread runs.", []string{"node"}, nil)
	descErrant    = prometheus.NewDesc("fulcrum_db_replication_errant_gtids", "Errant GTIDs found on the node (written on a replica itself).", []string{"node"}, nil)
	descSemiOn    = prometheus.NewDesc("fulcrum_db_semisync_master_enabled", "rpl_semi_sync_master_enabled on the node.", []string{"node"}, nil)
	descSemiAct   = prometheus.NewDesc("fulcrum_db_semisync_master_active", "Rpl_semi_sync_master_status (0 also before the first acknowledged commit).", []string{"node"}, nil)
	descSemiFB    = prometheus.NewDesc("fulcrum_db_semisync_master_fallback", "1 when semi-sync is enabled but fell back to asynchronous: commits are acknowledged without a replica.", []string{"node"}, nil)
	descSemiCl    = prometheus.NewDesc("fulcrum_db_semisync_master_clients", "Semi-sync replicas attached to the node.", []string{"node"}, nil)
	descSemiNoTx  = prometheus.NewDesc("fulcrum_db_semisync_master_no_tx", "Commits the node acknowledged without a replica (Rpl_semi_sync_master_no_tx).", []string{"node"}, nil)
	descFailovers = prometheus.NewDesc("fulcrum_db_failovers_total", "Failovers performed by this manager.", nil, nil)
	descSwitch    = prometheus.NewDesc("fulcrum_db_switchovers_total", "Switchovers performed by this manager.", nil, nil)
	descLastFO    = prometheus.NewDesc("fulcrum_db_last_failover_duration_seconds", "Duration of the last failover, from decision to writable new primary.", nil, nil)
	descHeld      = prometheus.NewDesc("fulcrum_db_failover_held", "1 while anti-flapping holds automatic failover.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRole, descRO, descLag, descBehind, descIO, descSQL, descErrant,
		descSemiOn, descSemiAct, descSemiFB, descSemiCl, descSemiNoTx, descFailovers, descSwitch, descLastFO, descHeld} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, n := range s.Nodes {
		g(descUp, b2f(n.Reachable), n.Name)
		for _, role := range []string{"primary", "replica", "unknown"} {
			have := n.Role
			if have == "" {
				have = "unknown"
			}
			g(descRole, b2f(have == role), n.Name, role)
		}
		if !n.Reachable {
			continue
		}
		g(descRO, b2f(n.ReadOnly), n.Name)
		g(descErrant, float64(len(n.Errant)), n.Name)
		g(descSemiOn, b2f(n.SemiSyncMasterEnabled), n.Name)
		g(descSemiAct, b2f(n.SemiSyncMasterActive), n.Name)
		g(descSemiFB, b2f(n.SemiSyncFallback()), n.Name)
		g(descSemiCl, float64(n.SemiSyncClients), n.Name)
		g(descSemiNoTx, float64(n.SemiSyncNoTx), n.Name)
		if r := n.Replica; r != nil {
			g(descBehind, float64(n.GTIDBehind), n.Name)
			if r.SecondsBehind >= 0 {
				g(descLag, float64(r.SecondsBehind), n.Name)
			}
			for _, st := range []string{"Yes", "No", "Connecting"} {
				g(descIO, b2f(strings.EqualFold(r.IORunning, st)), n.Name, strings.ToLower(st))
			}
			g(descSQL, b2f(r.SQLRunning == "Yes"), n.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(descFailovers, prometheus.CounterValue, float64(s.Failovers))
	ch <- prometheus.MustNewConstMetric(descSwitch, prometheus.CounterValue, float64(s.Switchovers))
	g(descLastFO, s.LastFailoverSeconds)
	g(descHeld, b2f(s.FailoverHeldUntil != nil))
}
