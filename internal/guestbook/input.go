package guestbook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what a visitor may post.
const (
	MaxName    = 64    // runes, after trimming surrounding space
	MaxMessage = 1000  // runes, after trimming surrounding space
	MaxBody    = 16384 // bytes of a request body, JSON or form
)

// Input is a message as a visitor posts it, before it is stored.
type Input struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// inputError is a problem with what the client sent: answered with 400 and
// its text.
type inputError string

func (e inputError) Error() string { return string(e) }

func badInput(format string, args ...any) error { return inputError(fmt.Sprintf(format, args...)) }

// ParseJSON decodes a JSON body of exactly one object with the string fields
// name and message, and validates it. Unknown fields, trailing data and
// invalid UTF-8 are errors, never silently repaired.
func ParseJSON(body []byte) (Input, error) {
	var in Input
	// encoding/json replaces invalid UTF-8 with U+FFFD; refuse it first.
	if !utf8.Valid(body) {
		return in, badInput("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return Input{}, jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return Input{}, badInput("body must hold a single JSON object")
	}
	// A lone surrogate escape ("\ud800") also decodes to U+FFFD.
	if hasRuneError(in.Name, in.Message) && !bytes.Contains(body, []byte("\uFFFD")) &&
		!bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
		return Input{}, badInput("body holds an invalid \\u escape (a lone surrogate)")
	}
	return in.Validate()
}

func hasRuneError(ss ...string) bool {
	for _, s := range ss {
		if strings.ContainsRune(s, utf8.RuneError) {
			return true
		}
	}
	return false
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return badInput("body is empty: want a JSON object with name and message")
	case errors.As(err, &se):
		return badInput("body is not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return badInput("%s: want a string, not a JSON %s", te.Field, te.Value)
		}
		return badInput("body must be a JSON object, not a JSON %s", te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badInput("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badInput("body is not valid JSON (it ends too early)")
	}
	return badInput("body is not valid JSON")
}

// Validate trims surrounding space, normalizes line ends to \n and checks
// every rule: both fields required, at most MaxName and MaxMessage runes,
// valid UTF-8, no control characters (the message may hold newlines and
// tabs).
func (in Input) Validate() (Input, error) {
	if !utf8.ValidString(in.Name) {
		return Input{}, badInput("name is not valid UTF-8")
	}
	if !utf8.ValidString(in.Message) {
		return Input{}, badInput("message is not valid UTF-8")
	}
	in.Name = strings.TrimSpace(in.Name)
	in.Message = strings.TrimSpace(strings.ReplaceAll(strings.ReplaceAll(in.Message, "\r\n", "\n"), "\r", "\n"))
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		return Input{}, badInput("name is required")
	case n > MaxName:
		return Input{}, badInput("name is %d characters long: at most %d", n, MaxName)
	}
	switch n := utf8.RuneCountInString(in.Message); {
	case n == 0:
		return Input{}, badInput("message is required")
	case n > MaxMessage:
		return Input{}, badInput("message is %d characters long: at most %d", n, MaxMessage)
	}
	for _, r := range in.Name {
		if unicode.IsControl(r) {
			return Input{}, badInput("name holds a control character (%U)", r)
		}
	}
	for _, r := range in.Message {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return Input{}, badInput("message holds a control character (%U)", r)
		}
	}
	return in, nil
}
