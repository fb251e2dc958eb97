package guestbook

import (
	"context"
	"errors"
	"time"
)

// Message is a stored guestbook entry.
type Message struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Message   string    `json:"message"`
	CreatedAt time.Time `json:"created_at"`
	// Key is the client's Idempotency-Key: a message with a key already
	// stored is not stored twice ("" for none).
	Key string `json:"-"`
}

// Receipt says where a write went: the database node that took it and the
// token a later read passes to see it ("" when the store has none).
type Receipt struct {
	Node  string
	Token string
}

// Store keeps messages. Reads take the token of an earlier write ("" for
// none) and must see that write; they return the node that answered.
type Store interface {
	// Init creates the schema if it does not exist; it is idempotent.
	Init(ctx context.Context) error
	// Add stores m (its ID is ignored) and returns it with its ID; with a
	// Key already stored it returns that message's ID and stores nothing.
	Add(ctx context.Context, m Message) (Message, Receipt, error)
	// Latest returns up to limit messages, newest first.
	Latest(ctx context.Context, after string, limit int) ([]Message, string, error)
	// Get returns one message, or ErrNotFound.
	Get(ctx context.Context, after string, id int64) (Message, string, error)
}

// Errors a Store returns.
var (
	ErrNotFound    = errors.New("guestbook: no such message")
	ErrUnavailable = errors.New("guestbook: database unavailable")
)
