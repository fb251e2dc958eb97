package dbrouter_test

import (
	"context"
	"fmt"
	"time"

	"fulcrum/internal/dbrouter"
)

// A write, then a read that must see it: the read waits on a replica for
// the write's GTID, or goes to the primary.
func ExampleRouter_Query() {
	ctx := context.Background()
	r, err := dbrouter.Open(ctx, dbrouter.Config{
		Nodes: []string{"127.0.0.1:13306", "127.0.0.1:13307", "127.0.0.1:13308"},
		User:  "fulcrum_app", Password: "…", Database: "fulcrum",
		MaxLag: 5 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	res, err := r.Exec(ctx, "INSERT INTO guestbook (name, message) VALUES (?, ?)", "ada", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	var n int
	if err := r.QueryRow(ctx, res.Token, "SELECT COUNT(*) FROM guestbook").Scan(&n); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(n, "messages")
}
