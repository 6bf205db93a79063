package beamtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Example is one machine-checked example of docs/protocol.md: a fenced
// block with the info string "example",
//
//	METHOD PATH
//	[BODY...]
//	→ STATUS | → no answer within DURATION
//	[EXPECTED...]
//
// BODY lines are the request body (joined by newlines, no newline at the
// end); a single line "<N bytes>" is N bytes of 'x'. EXPECTED is a JSON
// object that the answer must contain (see MatchJSON) or, otherwise, the
// exact body. $NAME in PATH and EXPECTED is the instance's environment.
type Example struct {
	Line     int // where the block starts in the document
	Method   string
	Path     string
	Body     string
	Size     int           // for a body given as "<N bytes>": N
	Status   int           // 0 when NoAnswer is set
	NoAnswer time.Duration // the request must still be unanswered after this long
	Expected string
}

// Request is the example's request line, for messages.
func (e Example) Request() string { return fmt.Sprintf("line %d: %s %s", e.Line, e.Method, e.Path) }

// ProtocolExamples parses every example block of the document at path.
func ProtocolExamples(path string) ([]Example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read protocol examples: %w", err)
	}
	defer f.Close()
	var out []Example
	var block []string
	start, in := 0, false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !in && line == "```example":
			in, start, block = true, n, nil
		case in && line == "```":
			in = false
			e, err := parseExample(block)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: example: %w", path, start, err)
			}
			e.Line = start
			out = append(out, e)
		case in:
			block = append(block, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read protocol examples: %w", err)
	}
	if in {
		return nil, fmt.Errorf("%s:%d: example block not closed", path, start)
	}
	return out, nil
}

func parseExample(lines []string) (Example, error) {
	var e Example
	if len(lines) < 2 {
		return e, fmt.Errorf("want a request line and an answer line, got %d lines", len(lines))
	}
	var ok bool
	if e.Method, e.Path, ok = strings.Cut(lines[0], " "); !ok || !strings.HasPrefix(e.Path, "/") {
		return e, fmt.Errorf("request line %q is not METHOD /PATH", lines[0])
	}
	arrow := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "→ ") {
			arrow = i
			break
		}
	}
	if arrow < 0 {
		return e, fmt.Errorf("no answer line (→ STATUS)")
	}
	e.Body = strings.Join(lines[1:arrow], "\n")
	if n, ok := strings.CutSuffix(strings.TrimPrefix(e.Body, "<"), " bytes>"); ok && strings.HasPrefix(e.Body, "<") {
		size, err := strconv.Atoi(n)
		if err != nil {
			return e, fmt.Errorf("body size %q: %w", n, err)
		}
		e.Body, e.Size = strings.Repeat("x", size), size
	}
	answer := strings.TrimPrefix(lines[arrow], "→ ")
	if d, ok := strings.CutPrefix(answer, "no answer within "); ok {
		var err error
		if e.NoAnswer, err = time.ParseDuration(d); err != nil {
			return e, fmt.Errorf("answer line %q: %w", answer, err)
		}
	} else {
		var err error
		if e.Status, err = strconv.Atoi(answer); err != nil {
			return e, fmt.Errorf("answer line %q is not → STATUS: %w", answer, err)
		}
	}
	e.Expected = strings.Join(lines[arrow+1:], "\n")
	return e, nil
}

// MatchJSON checks got against the expected JSON object want: every field
// of want must be in got with an equal value, objects compared the same
// way field by field and arrays element by element (same length); a field
// that want sets to null must be absent or null in got. Fields of got that
// want does not name are ignored (fields are only ever added).
func MatchJSON(want, got []byte) error {
	var w, g any
	if err := json.Unmarshal(want, &w); err != nil {
		return fmt.Errorf("expected answer is not JSON: %w", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("answer %q is not JSON: %w", got, err)
	}
	return match("$", w, g)
}

func match(at string, want, got any) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %v", at, got)
		}
		for k, wv := range w {
			gv, present := g[k]
			if wv == nil {
				if present && gv != nil {
					return fmt.Errorf("%s.%s: want absent, got %v", at, k, gv)
				}
				continue
			}
			if !present {
				return fmt.Errorf("%s.%s: missing", at, k)
			}
			if err := match(at+"."+k, wv, gv); err != nil {
				return err
			}
		}
		return nil
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Errorf("%s: want %d elements, got %v", at, len(w), got)
		}
		for i := range w {
			if err := match(fmt.Sprintf("%s[%d]", at, i), w[i], g[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if !reflect.DeepEqual(want, got) {
		return fmt.Errorf("%s: want %v, got %v", at, want, got)
	}
	return nil
}
