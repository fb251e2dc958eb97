package stack_test

import (
	"fmt"
	"time"

	"fulcrum/internal/stack"
)

// StatusLine is the line `fulcrum up` keeps rewriting.
func ExampleStatusLine() {
	st := stack.State{
		Time: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), FrontUp: true, ActiveLB: "lb2",
		Webs: []stack.WebState{{Name: "web1", Running: true, Healthy: true, RPS: 41}, {Name: "web2", Running: false}},
		DB: []stack.DBNode{{Name: "db1", Running: true, Reachable: true, Role: "primary"},
			{Name: "db2", Running: true, Reachable: true, Role: "replica", LagSeconds: 0}},
	}
	fmt.Println(stack.StatusLine(&st))
	// Output: 15:04:05 site UP via lb2 | web1 UP 41 r/s | web2 DEAD 0 r/s | db1 primary db2 replica(lag 0s)
}
