package guestbook

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParseJSON checks that any body is either refused or yields a message
// within every limit, and that an accepted message survives
// marshal → parse unchanged.
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`{"name":"Ada","message":"Hello"}`,       // the common case
		`{"name":" Ada ","message":"a\r\nb"}`,    // trimmed, line ends normalized
		`{"name":"a","message":"b","x":1}`,       // unknown field
		`{"name":"a\ud800","message":"b"}`,       // lone surrogate escape
		"{\"name\":\"a\xff\",\"message\":\"b\"}", // invalid UTF-8
		`{"name":"\ufffd","message":"\u0000"}`,   // replacement char, NUL
		`{"name":1,"message":null}`,              // wrong types
		`{"name":"a","message":"b"} {}`,          // trailing value
		`[]`, `null`, ``, `{`,                    // not an object
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseJSON(body)
		if err != nil {
			if _, ok := err.(inputError); !ok {
				t.Fatalf("ParseJSON(%q) error %T %v, want an inputError", body, err, err)
			}
			return
		}
		if n := utf8.RuneCountInString(in.Name); n < 1 || n > MaxName {
			t.Fatalf("ParseJSON(%q) name of %d runes", body, n)
		}
		if n := utf8.RuneCountInString(in.Message); n < 1 || n > MaxMessage {
			t.Fatalf("ParseJSON(%q) message of %d runes", body, n)
		}
		if !utf8.ValidString(in.Name) || !utf8.ValidString(in.Message) {
			t.Fatalf("ParseJSON(%q) returned invalid UTF-8", body)
		}
		again, err := in.Validate()
		if err != nil || again != in {
			t.Fatalf("Validate(ParseJSON(%q)) = %+v, %v, want it unchanged", body, again, err)
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := ParseJSON(b)
		if err != nil || rt != in {
			t.Fatalf("ParseJSON(Marshal(%+v)) = %+v, %v, want a round trip", in, rt, err)
		}
	})
}

// FuzzParseToken checks that an accepted token holds only digits, '-' and
// ',' and is short: nothing else reaches the database.
func FuzzParseToken(f *testing.F) {
	for _, seed := range []string{"0-1-42", "0-1-42,1-2-7", "0-1", "a-b-c", "0-1-2'; --", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := ParseToken(s)
		if !ok {
			return
		}
		if tok != s || len(tok) > maxToken {
			t.Fatalf("ParseToken(%q) = %q", s, tok)
		}
		for _, r := range tok {
			if !(r >= '0' && r <= '9' || r == '-' || r == ',') {
				t.Fatalf("ParseToken(%q) accepted %q", s, r)
			}
		}
	})
}
