package stack

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"fulcrum/internal/dbha"
)

// lbAPIStatus is the part of the load balancer admin API's GET /api/status
// the dashboard uses.
type lbAPIStatus struct {
	VRRP []struct {
		State string `json:"state"`
	} `json:"vrrp"`
	Backends []struct {
		Name    string `json:"name"`
		Servers []struct {
			Name  string  `json:"name"`
			State string  `json:"state"`
			Rate  float64 `json:"rate"`
		} `json:"servers"`
	} `json:"backends"`
}

// webAPIStatus is the part of a web server's GET /status the dashboard uses.
type webAPIStatus struct {
	Healthy  bool   `json:"healthy"`
	Health   string `json:"health"`
	Requests uint64 `json:"requests"`
}

// watch polls until ctx ends, writing the live status line.
func (s *Stack) watch(ctx context.Context) {
	t := time.NewTicker(s.opt.PollInterval)
	defer t.Stop()
	lastLine := time.Now()
	for {
		select {
		case <-ctx.Done():
			if s.opt.Out != nil && s.opt.Terminal {
				fmt.Fprintln(s.opt.Out)
			}
			return
		case <-t.C:
		}
		s.poll(ctx)
		if w := s.opt.Out; w != nil {
			st := s.State()
			switch {
			case s.opt.Terminal:
				line := StatusLine(&st)
				if r := []rune(line); s.opt.Width > 1 && len(r) >= s.opt.Width {
					line = string(r[:s.opt.Width-1])
				}
				fmt.Fprintf(w, "\r\033[K%s", line)
			case time.Since(lastLine) >= s.opt.StatusEvery:
				fmt.Fprintln(w, StatusLine(&st))
				lastLine = time.Now()
			}
		}
	}
}

// poll reads every component's state (concurrently, each bounded by the
// HTTP client's timeout) and records the changes as events.
func (s *Stack) poll(ctx context.Context) {
	c := s.cfg
	now := time.Now()
	var wg sync.WaitGroup
	lbs := make([]LBState, len(c.LBs))
	for i, l := range c.LBs {
		ch := s.byName[l.Name]
		lbs[i] = LBState{Name: l.Name, Priority: l.Priority, Admin: l.Admin, Links: []Link{
			{"stats", "http://" + l.Admin + "/"}, {"/metrics", "http://" + l.Admin + "/metrics"}, {"API", "http://" + l.Admin + "/api/status"}}}
		if ch != nil {
			lbs[i].PID, lbs[i].Running, lbs[i].Exit = ch.pid(), ch.running(), ch.exitStatus()
		}
		if !lbs[i].Running {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var api lbAPIStatus
			if err := s.getJSON(ctx, "http://"+l.Admin+"/api/status", &api); err != nil {
				return
			}
			lbs[i].AdminUp = true
			// The election says who is active: the master holds the
			// front address (a VIP on its host, or the local address).
			for _, r := range api.VRRP {
				lbs[i].Active = lbs[i].Active || r.State == "master"
			}
			for _, b := range api.Backends {
				for _, sv := range b.Servers {
					lbs[i].Servers = append(lbs[i].Servers, ServerHealth{Backend: b.Name, Name: sv.Name, State: sv.State, Rate: sv.Rate})
				}
			}
		}()
	}
	webs := make([]WebState, len(c.Webs))
	for i, w := range c.Webs {
		ch := s.byName[w.Name]
		webs[i] = WebState{Name: w.Name, Listen: w.Listen, Admin: w.Admin, Links: []Link{
			{"site", "https://" + w.Listen + "/"}, {"status", "http://" + w.Admin + "/status"}, {"/metrics", "http://" + w.Admin + "/metrics"}}}
		if ch != nil {
			webs[i].PID, webs[i].Running, webs[i].Exit = ch.pid(), ch.running(), ch.exitStatus()
		}
		if !webs[i].Running {
			webs[i].Health = "not running"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var api webAPIStatus
			if err := s.getJSON(ctx, "http://"+w.Admin+"/status", &api); err != nil {
				webs[i].Health = "status: " + err.Error()
				return
			}
			webs[i].Healthy, webs[i].Health, webs[i].Requests = api.Healthy, api.Health, api.Requests
		}()
	}
	mgr := Manager{Addr: c.DB.Manager, Links: []Link{{"status", "http://" + c.DB.Manager + "/status"}, {"/metrics", "http://" + c.DB.Manager + "/metrics"}}}
	if ch := s.byName["manager"]; ch != nil {
		mgr.PID, mgr.Running, mgr.Exit = ch.pid(), ch.running(), ch.exitStatus()
	}
	var ms dbha.Status
	msOK := false
	if mgr.Running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msOK = s.getJSON(ctx, "http://"+c.DB.Manager+"/status", &ms) == nil
		}()
	}
	var frontUp bool
	var servedBy string
	wg.Add(1)
	go func() {
		defer wg.Done()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Front+"/healthz", nil)
		if err != nil {
			return
		}
		resp, err := s.http.Do(req)
		if err != nil {
			return
		}
		resp.Body.Close()
		frontUp, servedBy = resp.StatusCode == http.StatusOK, resp.Header.Get("X-Served-By")
	}()
	wg.Wait()

	active := ""
	for _, l := range lbs {
		if l.Active && active == "" {
			active = l.Name
		}
	}
	mgr.Reachable = msOK
	var nodes []DBNode
	if s.local != nil {
		byName := map[string]dbha.NodeStatus{}
		for _, n := range ms.Nodes {
			byName[n.Name] = n
		}
		for _, n := range s.local.Nodes() {
			d := DBNode{Name: n.Name, Addr: n.Addr, Running: s.local.Running(n.Name), LagSeconds: -1}
			if ns, ok := byName[n.Name]; ok && msOK {
				d.Role, d.Reachable, d.ReadOnly, d.GTIDBehind, d.Error = ns.Role, ns.Reachable, ns.ReadOnly, ns.GTIDBehind, ns.Error
				if ns.Replica != nil {
					d.LagSeconds = ns.Replica.SecondsBehind
				}
			}
			nodes = append(nodes, d)
		}
	}
	if msOK {
		mgr.Failovers, mgr.LastFailoverSeconds = ms.Failovers, ms.LastFailoverSeconds
	}

	s.mu.Lock()
	prev := s.state
	// Rates over at least half a second: start-up polls come faster.
	elapsed := now.Sub(s.prevAt).Seconds()
	sample := elapsed >= 0.5
	for i := range webs {
		r, ok := s.prevReqs[webs[i].Name]
		switch {
		case !webs[i].Running || webs[i].Requests == 0:
			delete(s.prevReqs, webs[i].Name)
			continue
		case !sample && i < len(prev.Webs):
			webs[i].RPS = prev.Webs[i].RPS
			continue
		case ok && webs[i].Requests >= r:
			webs[i].RPS = float64(webs[i].Requests-r) / elapsed
		}
		s.prevReqs[webs[i].Name] = webs[i].Requests
	}
	if sample {
		s.prevAt = now
	}
	primary := prev.Primary
	if msOK {
		primary = ms.Primary
	}
	s.state = State{Time: now, Dir: s.dir, Dashboard: c.Dashboard, Front: c.Front, FrontUp: frontUp, FrontServedBy: servedBy,
		ActiveLB: active, Primary: primary, LBs: lbs, Webs: webs, Manager: mgr, DB: nodes,
		DBWrites: c.DB.Writes, DBReads: c.DB.Reads}
	var mgrEvents []dbha.Event
	for _, e := range ms.Events {
		if e.Time.After(s.lastMgrEvent) {
			mgrEvents = append(mgrEvents, e)
			s.lastMgrEvent = e.Time
		}
	}
	nodeChanges := map[string]bool{}
	for _, n := range nodes {
		if was, ok := s.nodeRunning[n.Name]; ok && was != n.Running {
			nodeChanges[n.Name] = n.Running
		}
		s.nodeRunning[n.Name] = n.Running
	}
	serverChanges := map[string]string{}
	for i, l := range lbs {
		for _, sv := range l.Servers {
			if i > 0 && sv.Backend != "web" {
				continue // only the first serves the database ports
			}
			k := l.Name + " " + sv.Backend + "/" + sv.Name
			if old, ok := s.seenServer[k]; ok && old != sv.State {
				serverChanges[k] = sv.State
			}
			s.seenServer[k] = sv.State
		}
	}
	s.mu.Unlock()

	if prev.Time.IsZero() {
		return
	}
	if prev.ActiveLB != active {
		s.mu.Lock()
		last := s.lastHolder
		if active != "" {
			s.lastHolder = active
		}
		s.mu.Unlock()
		switch {
		case active == "":
			s.event("takeover", prev.ActiveLB, "no load balancer holds the front address %s", c.Front)
		case last != "" && last != active:
			s.event("takeover", active, "LB takeover: %s holds the front address %s in place of %s", active, c.Front, last)
		default:
			s.event("takeover", active, "%s holds the front address %s again", active, c.Front)
		}
	} else if active != "" {
		s.mu.Lock()
		s.lastHolder = active
		s.mu.Unlock()
	}
	if prev.FrontUp != frontUp {
		if frontUp {
			s.event("front", "", "the site answers again on %s", c.Front)
		} else {
			s.event("front", "", "the site does not answer on %s", c.Front)
		}
	}
	for i, w := range webs {
		if i < len(prev.Webs) && prev.Webs[i].Running && w.Running && prev.Webs[i].Healthy != w.Healthy {
			if w.Healthy {
				s.event("health", w.Name, "%s healthy: %s", w.Name, w.Health)
			} else {
				s.event("health", w.Name, "%s unhealthy: %s", w.Name, w.Health)
			}
		}
		if i < len(prev.Webs) && !prev.Webs[i].Running && w.Running {
			s.event("up", w.Name, "%s (web) running again, pid %d", w.Name, w.PID)
		}
	}
	for i, l := range lbs {
		if i < len(prev.LBs) && !prev.LBs[i].Running && l.Running {
			s.event("up", l.Name, "%s (lb) running again, pid %d", l.Name, l.PID)
		}
	}
	for _, k := range sortedKeys(serverChanges) {
		s.event("server", k, "%s is %s", k, serverChanges[k])
	}
	for name, up := range nodeChanges {
		if up {
			s.event("up", name, "%s (mariadbd) running again", name)
		} else {
			s.event("down", name, "%s (mariadbd) is not running", name)
		}
	}
	for _, e := range mgrEvents {
		switch e.Kind {
		case "failover", "dead-primary", "rejoined", "fenced", "switchover", "failover-held", "failover-failed",
			"rejoin-failed", "unreachable", "reachable", "primary", "refused":
			s.event("db:"+e.Kind, e.Node, "%s", e.Message)
		}
	}
	if msOK && primary != "" && prev.Primary != "" && primary != prev.Primary {
		s.event("failover", primary, "database primary is now %s (was %s)", primary, prev.Primary)
	}
	if msOK && primary != "" && s.local != nil && s.local.Addrs()[0] != nodeAddr(nodes, primary) {
		// Record it, so that the next `fulcrum up` restarts with the
		// same primary.
		_ = s.local.SetPrimary(primary)
	}
}

func nodeAddr(nodes []DBNode, name string) string {
	for _, n := range nodes {
		if n.Name == name {
			return n.Addr
		}
	}
	return ""
}
