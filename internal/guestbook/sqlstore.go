package guestbook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"fulcrum/internal/dbrouter"
)

// DB is the part of the read/write router the guestbook uses: writes on the
// primary, reads on a replica that has applied a given write.
type DB interface {
	Exec(ctx context.Context, query string, args ...any) (dbrouter.Result, error)
	Query(ctx context.Context, after dbrouter.Token, query string, args ...any) (*dbrouter.Rows, error)
}

var (
	_ DB    = (*dbrouter.Router)(nil)
	_ Store = (*SQLStore)(nil)
)

// SQLStore keeps messages in MariaDB through a DB.
type SQLStore struct{ db DB }

// NewSQLStore returns a Store over db.
func NewSQLStore(db DB) *SQLStore { return &SQLStore{db: db} }

// schema is the guestbook's one table. Lengths are in characters (utf8mb4),
// the same limits Validate applies.
const schema = `CREATE TABLE IF NOT EXISTS messages (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL,
  message VARCHAR(1000) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  idem_key VARCHAR(64) NULL,
  UNIQUE KEY idem (idem_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`

// upgrade brings a table created before idempotency keys up to date.
const upgrade = `ALTER TABLE messages ADD COLUMN IF NOT EXISTS idem_key VARCHAR(64) NULL,
  ADD UNIQUE KEY IF NOT EXISTS idem (idem_key)`

// dbTimeLayout is how created_at is sent: UTC, microseconds, a literal the
// server takes whatever the session's time zone.
const dbTimeLayout = "2006-01-02 15:04:05.000000"

// Init creates the table if it does not exist (a write: on the primary).
func (s *SQLStore) Init(ctx context.Context) error {
	if _, err := s.db.Exec(ctx, schema); err != nil {
		return err
	}
	_, err := s.db.Exec(ctx, upgrade)
	return err
}

// Add inserts m on the primary. A message whose Key was stored before is
// not stored again: its id comes back (ON DUPLICATE KEY UPDATE sets
// LAST_INSERT_ID to the existing row's), so a repeated request is harmless.
func (s *SQLStore) Add(ctx context.Context, m Message) (Message, Receipt, error) {
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Microsecond)
	res, err := s.db.Exec(ctx, "INSERT INTO messages (name, message, created_at, idem_key) VALUES (?, ?, ?, NULLIF(?, '')) "+
		"ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)",
		m.Name, m.Message, m.CreatedAt.Format(dbTimeLayout), m.Key)
	if err != nil {
		return Message{}, Receipt{Node: res.Node}, fmt.Errorf("%w: insert on %s: %w", ErrUnavailable, res.Node, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return Message{}, Receipt{Node: res.Node}, fmt.Errorf("insert on %s: no id: %w", res.Node, err)
	}
	m.ID = id
	return m, Receipt{Node: res.Node, Token: res.Token.GTID}, nil
}

// Latest reads the newest messages on a replica that has applied after.
func (s *SQLStore) Latest(ctx context.Context, after string, limit int) ([]Message, string, error) {
	rows, err := s.db.Query(ctx, dbrouter.Token{GTID: after},
		"SELECT id, name, message, created_at FROM messages ORDER BY id DESC LIMIT ?", limit)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		m, err := scanMessage(rows.Rows)
		if err != nil {
			return nil, rows.Node, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, rows.Node, fmt.Errorf("%w: read on %s: %w", ErrUnavailable, rows.Node, err)
	}
	return out, rows.Node, nil
}

// Get reads one message on a replica that has applied after.
func (s *SQLStore) Get(ctx context.Context, after string, id int64) (Message, string, error) {
	rows, err := s.db.Query(ctx, dbrouter.Token{GTID: after},
		"SELECT id, name, message, created_at FROM messages WHERE id = ?", id)
	if err != nil {
		return Message{}, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return Message{}, rows.Node, fmt.Errorf("%w: read on %s: %w", ErrUnavailable, rows.Node, err)
		}
		return Message{}, rows.Node, ErrNotFound
	}
	m, err := scanMessage(rows.Rows)
	return m, rows.Node, err
}

func scanMessage(rows *sql.Rows) (Message, error) {
	var m Message
	var t dbTime
	if err := rows.Scan(&m.ID, &m.Name, &m.Message, &t); err != nil {
		return Message{}, fmt.Errorf("scan message: %w", err)
	}
	m.CreatedAt = time.Time(t)
	return m, nil
}

// dbTime scans a DATETIME whether the driver parses times (parseTime=true)
// or hands over the text.
type dbTime time.Time

func (t *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case time.Time:
		*t = dbTime(v.UTC())
		return nil
	case []byte:
		return t.parse(string(v))
	case string:
		return t.parse(v)
	}
	return fmt.Errorf("created_at: unexpected %T", v)
}

func (t *dbTime) parse(s string) error {
	v, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		return errors.New("created_at: " + err.Error())
	}
	*t = dbTime(v)
	return nil
}
