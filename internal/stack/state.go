package stack

import (
	"time"
)

// State is the stack as the last poll saw it: the answer of GET /api/state,
// what the dashboard draws and `fulcrum status` prints.
type State struct {
	Time      time.Time `json:"time"`
	Dir       string    `json:"dir"`
	Dashboard string    `json:"dashboard"`
	// Front is the shared front address; FrontUp reports whether a request
	// to it (GET /healthz) was answered by a web server at the last poll,
	// and FrontServedBy which one.
	Front         string `json:"front"`
	FrontUp       bool   `json:"front_up"`
	FrontServedBy string `json:"front_served_by,omitempty"`
	// ActiveLB is the load balancer holding the front address ("" when
	// none does).
	ActiveLB string `json:"active_lb"`
	// Primary is the database primary as the manager sees it.
	Primary string     `json:"primary"`
	LBs     []LBState  `json:"lbs"`
	Webs    []WebState `json:"webs"`
	Manager Manager    `json:"manager"`
	DB      []DBNode   `json:"db"`
	// DBWrites and DBReads are the load balancers' database ports.
	DBWrites string  `json:"db_writes"`
	DBReads  string  `json:"db_reads"`
	Events   []Event `json:"events"`
}

// Link is a page of a component: its stats, status JSON or /metrics.
type Link struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// LBState is one load balancer.
type LBState struct {
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	Running  bool   `json:"running"`
	Exit     string `json:"exit,omitempty"`
	Active   bool   `json:"active"`
	Priority int    `json:"priority"`
	Admin    string `json:"admin"`
	// AdminUp reports whether its admin API answered; Servers is then its
	// view of every server's health, by backend.
	AdminUp bool           `json:"admin_up"`
	Servers []ServerHealth `json:"servers,omitempty"`
	Links   []Link         `json:"links"`
}

// ServerHealth is a backend server's state in one load balancer.
type ServerHealth struct {
	Backend string  `json:"backend"`
	Name    string  `json:"name"`
	State   string  `json:"state"` // UP, DOWN, DRAIN, MAINT
	Rate    float64 `json:"rate"`
}

// WebState is one web/app server.
type WebState struct {
	Name    string `json:"name"`
	Listen  string `json:"listen"`
	Admin   string `json:"admin"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	Exit    string `json:"exit,omitempty"`
	// Healthy and Health are its /healthz answer, read from its status.
	Healthy  bool    `json:"healthy"`
	Health   string  `json:"health"`
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"`
	Links    []Link  `json:"links"`
}

// Manager is the DB manager.
type Manager struct {
	Addr      string `json:"addr"`
	PID       int    `json:"pid"`
	Running   bool   `json:"running"`
	Exit      string `json:"exit,omitempty"`
	Reachable bool   `json:"reachable"`
	Failovers int    `json:"failovers"`
	// LastFailoverSeconds is how long the last failover took, from the
	// decision to a writable new primary.
	LastFailoverSeconds float64 `json:"last_failover_seconds"`
	Links               []Link  `json:"links"`
}

// DBNode is one MariaDB node.
type DBNode struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	// Role is primary, replica or "" (unknown), from the manager.
	Role      string `json:"role"`
	Reachable bool   `json:"reachable"`
	ReadOnly  bool   `json:"read_only"`
	// LagSeconds is Seconds_Behind_Master, -1 when unknown or NULL.
	LagSeconds int64  `json:"lag_seconds"`
	GTIDBehind uint64 `json:"gtid_behind"`
	Error      string `json:"error,omitempty"`
}

// Event is something that happened to the stack: a component died or came
// back, a server changed health, the front address moved, the database
// failed over.
type Event struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Component string    `json:"component,omitempty"`
	Message   string    `json:"message"`
}

// Components returns the names chaos accepts, in topology order.
func (s *State) Components() []string {
	var out []string
	for _, l := range s.LBs {
		out = append(out, l.Name)
	}
	for _, w := range s.Webs {
		out = append(out, w.Name)
	}
	out = append(out, "manager")
	for _, n := range s.DB {
		out = append(out, n.Name)
	}
	return append(out, "db-primary")
}
