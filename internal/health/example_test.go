package health_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fulcrum/internal/health"
)

// A passive-only Monitor: live traffic errors take the server down, the
// operator brings it back.
func ExampleMonitor_passive() {
	m := health.NewMonitor(health.Config{Fall: 2, ErrorLimit: 3}, nil, nil, func(up bool, reason string) {
		fmt.Printf("up=%v: %s\n", up, reason)
	})
	for range 6 {
		m.Observe(errors.New("connection refused"))
	}
	fmt.Println(m.Up(), m.Status())
	m.Force(true)
	fmt.Println(m.Up(), m.Status())
	// Output:
	// up=false: 2 failed checks in a row, last: 3 consecutive errors on live traffic, last: connection refused
	// false DOWN
	// up=true: forced up by operator
	// true UP
}

// An active HTTP check with HAProxy's defaults, run until ctx is done.
func ExampleNewHTTP() {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	check := health.NewHTTP("127.0.0.1:9101", health.HTTPCheck{Method: "GET", Path: "/healthz"})
	m := health.NewMonitor(health.Config{Interval: 2 * time.Second, FastInterval: 500 * time.Millisecond}, check, health.RealClock(),
		func(up bool, reason string) { /* log it and update the balancer */ })
	m.Run(ctx)
}
