// Package config defines fulcrum's file formats and loads them strictly: an
// unknown key, a wrong type or an invalid value is an error that names the file,
// the line, the key and the value.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a problem found in a configuration file. Its message reads
// "FILE:LINE: KEY: PROBLEM" so that editors and people can jump to it.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted path, e.g. backends[0].servers[1].weight
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is a list of configuration problems, reported together.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// fieldError is a validation problem at a key path; the loader turns it into
// an *Error with the line that path was written on.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string { return e.path + ": " + e.msg }

func errorf(path, format string, args ...any) *fieldError {
	return &fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}

// validator is implemented by every top-level file format.
type validator interface {
	// setDefaults fills in every default, in one place.
	setDefaults()
	// validate returns every problem found, each naming its key path.
	validate() []*fieldError
}

// decodeFile reads a YAML document from path into v strictly, fills in its
// defaults and validates it.
func decodeFile(path string, v validator) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return decode(path, data, v)
}

var (
	reLine    = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknown = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

func decode(name string, data []byte, v validator) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return yamlErrors(name, err)
	}
	if len(root.Content) == 0 {
		return Errors{{File: name, Msg: "empty file"}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return yamlErrors(name, err)
	}
	v.setDefaults()
	lines := map[string]int{}
	indexLines(root.Content[0], "", lines)
	var es Errors
	for _, fe := range v.validate() {
		es = append(es, &Error{File: name, Line: lineOf(lines, fe.path), Key: fe.path, Msg: fe.msg})
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// yamlErrors rewrites the YAML library's messages into file:line: key: problem.
func yamlErrors(name string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	var es Errors
	for _, m := range msgs {
		e := &Error{File: name, Msg: m}
		if sm := reLine.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		if sm := reUnknown.FindStringSubmatch(e.Msg); sm != nil {
			e.Key = sm[1]
			e.Msg = "unknown key"
		}
		e.Msg = strings.ReplaceAll(e.Msg, "cannot unmarshal ", "wrong type: cannot use ")
		es = append(es, e)
	}
	return es
}

// indexLines records the line of every key path in the document.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(val, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

// lineOf finds the line of path, or of its nearest written ancestor (a
// defaulted key has no line of its own).
func lineOf(lines map[string]int, path string) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// Duration is a time.Duration written as a Go duration string ("2s", "100ms").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: wrong type: want a duration such as 2s", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q: want a number with a unit, such as 500ms or 2s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
