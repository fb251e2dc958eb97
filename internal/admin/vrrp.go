package admin

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fulcrum/internal/vrrp"
)

// VRRP is one virtual router's state as the API shows it.
type VRRP struct {
	VRID              uint8     `json:"vrid"`
	State             string    `json:"state"`
	Priority          uint8     `json:"priority"`
	EffectivePriority uint8     `json:"effective_priority"`
	Faults            []string  `json:"faults,omitempty"`
	Master            string    `json:"master,omitempty"` // address of the current master, when known
	Transitions       uint64    `json:"transitions"`
	LastChange        time.Time `json:"last_change"`
	AdvertsSent       uint64    `json:"adverts_sent"`
	AdvertsReceived   uint64    `json:"adverts_received"`
	Dropped           uint64    `json:"dropped"`
}

func vrrpView(st []vrrp.Status) []VRRP {
	out := make([]VRRP, 0, len(st))
	for _, s := range st {
		v := VRRP{VRID: s.VRID, State: s.State.String(), Priority: s.Priority, EffectivePriority: s.EffectivePriority,
			Faults: s.Faults, Transitions: s.Transitions, LastChange: s.LastChange,
			AdvertsSent: s.AdvertsSent, AdvertsReceived: s.AdvertsReceived, Dropped: s.Dropped}
		if s.Master.IsValid() {
			v.Master = s.Master.Addr().String()
		}
		out = append(out, v)
	}
	return out
}

var (
	vrrpLabels          = []string{"vrid"}
	descVRRPState       = prometheus.NewDesc("fulcrum_vrrp_state", "The virtual router's state: 1 for the one it is in (initialize, backup, master), 0 for the others.", []string{"vrid", "state"}, nil)
	descVRRPPriority    = prometheus.NewDesc("fulcrum_vrrp_priority", "Configured priority.", vrrpLabels, nil)
	descVRRPEffective   = prometheus.NewDesc("fulcrum_vrrp_effective_priority", "Advertised priority, lowered by failed tracks.", vrrpLabels, nil)
	descVRRPTransitions = prometheus.NewDesc("fulcrum_vrrp_transitions_total", "State changes.", vrrpLabels, nil)
	descVRRPLastChange  = prometheus.NewDesc("fulcrum_vrrp_last_change_timestamp_seconds", "When the state last changed, Unix time.", vrrpLabels, nil)
	descVRRPSent        = prometheus.NewDesc("fulcrum_vrrp_adverts_sent_total", "Advertisements sent.", vrrpLabels, nil)
	descVRRPReceived    = prometheus.NewDesc("fulcrum_vrrp_adverts_received_total", "Advertisements received for this virtual router.", vrrpLabels, nil)
	descVRRPDropped     = prometheus.NewDesc("fulcrum_vrrp_dropped_total", "Packets dropped: wrong TTL, malformed, bad checksum.", vrrpLabels, nil)
	descVRRPMaster      = prometheus.NewDesc("fulcrum_vrrp_master_info", "The current master's address (value 1).", []string{"vrid", "master"}, nil)

	vrrpStates = []string{"initialize", "backup", "master"}
	vrrpDescs  = []*prometheus.Desc{descVRRPState, descVRRPPriority, descVRRPEffective, descVRRPTransitions,
		descVRRPLastChange, descVRRPSent, descVRRPReceived, descVRRPDropped, descVRRPMaster}
)

func collectVRRP(ch chan<- prometheus.Metric, st []VRRP) {
	for _, v := range st {
		id := strconv.Itoa(int(v.VRID))
		for _, s := range vrrpStates {
			val := 0.0
			if v.State == s {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(descVRRPState, prometheus.GaugeValue, val, id, s)
		}
		gauge := func(d *prometheus.Desc, x float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, id)
		}
		counter := func(d *prometheus.Desc, x uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(x), id)
		}
		gauge(descVRRPPriority, float64(v.Priority))
		gauge(descVRRPEffective, float64(v.EffectivePriority))
		counter(descVRRPTransitions, v.Transitions)
		if !v.LastChange.IsZero() {
			gauge(descVRRPLastChange, float64(v.LastChange.UnixNano())/1e9)
		}
		counter(descVRRPSent, v.AdvertsSent)
		counter(descVRRPReceived, v.AdvertsReceived)
		counter(descVRRPDropped, v.Dropped)
		if v.Master != "" {
			ch <- prometheus.MustNewConstMetric(descVRRPMaster, prometheus.GaugeValue, 1, id, v.Master)
		}
	}
}
