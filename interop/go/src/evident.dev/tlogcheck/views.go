// What a bundle shows a person, bound to the verified entries: each event
// line's readable "event" (the entry, with the personal part merged in when
// one is included, after checking the part against the entry's
// pii_commitment), and the derived views events.jsonl and events.csv next to
// bundle.ndjson. Every readable value the bundle holds is checked here, so
// that what the Go checker accepts is what the entries say (the Rust verifier,
// crates/evident-client/src/bundle.rs, checks the same).

package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// personalPart is an event line's {"salt", "part"}.
type personalPart struct {
	Salt string          `json:"salt"`
	Part json.RawMessage `json:"part"`
}

// shownEvent is what the checker keeps of a verified event line for the views.
type shownEvent struct {
	index     int64
	eventID   string
	canonical string      // JCS of the event
	value     interface{} // the event
	personal  bool
}

// csvColumns are the columns of events.csv (CSV_COLUMNS in evident-wire).
var csvColumns = []string{"index", "event_id", "time", "recorded_at", "tenant", "source", "type",
	"action", "outcome", "actor", "subject", "targets", "reason", "personal_included"}

// decodeJSON decodes one JSON value, keeping numbers as written.
func decodeJSON(data []byte) (interface{}, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// checkShown binds an event line's readable "event" (and personal part) to
// its verified entry; it answers the event as shown.
func checkShown(entry []byte, event json.RawMessage, personal *personalPart) (interface{}, string, error) {
	skeleton, err := decodeJSON(entry)
	if err != nil {
		return nil, "", fmt.Errorf("entry is not JSON: %v", err)
	}
	expected, ok := skeleton.(map[string]interface{})
	if !ok {
		return nil, "", errors.New("entry is not a JSON object")
	}
	if personal != nil {
		if err := mergePersonal(expected, personal); err != nil {
			return nil, "", err
		}
	}
	if len(event) == 0 {
		return nil, "", errors.New(`the line has no "event"`)
	}
	shown, err := decodeJSON(event)
	if err != nil {
		return nil, "", fmt.Errorf(`"event" is not JSON: %v`, err)
	}
	want, err := jcs(expected)
	if err != nil {
		return nil, "", fmt.Errorf("entry: %v", err)
	}
	got, err := jcs(shown)
	if err != nil {
		return nil, "", fmt.Errorf(`"event": %v`, err)
	}
	if got != want {
		what := "its entry (no personal part is included)"
		if personal != nil {
			what = "its entry with the personal part merged in"
		}
		return nil, "", fmt.Errorf(`its "event" differs from %s`, what)
	}
	return shown, got, nil
}

// mergePersonal checks the personal part against the entry's pii_commitment,
// SHA-256(salt || JCS(part)), and puts its values at their JSON pointers.
func mergePersonal(event map[string]interface{}, personal *personalPart) error {
	salt, err := base64.StdEncoding.DecodeString(personal.Salt)
	if err != nil || len(salt) != 32 {
		return errors.New("personal part: the salt is not base64 of 32 bytes")
	}
	part, err := decodeJSON(personal.Part)
	if err != nil {
		return fmt.Errorf("personal part is not JSON: %v", err)
	}
	values, ok := part.(map[string]interface{})
	if !ok {
		return errors.New("personal part is not a JSON object")
	}
	canonical, err := jcs(values)
	if err != nil {
		return fmt.Errorf("personal part: %v", err)
	}
	sum := sha256.Sum256(append(salt, canonical...))
	claimed, _ := event["pii_commitment"].(string)
	if claimed == "" {
		return errors.New("has a personal part but its entry commits to none (no pii_commitment)")
	}
	if base64.StdEncoding.EncodeToString(sum[:]) != claimed {
		return errors.New("its personal part does not match the entry's pii_commitment: the personal values or the salt were changed")
	}
	for pointer, value := range values {
		cut := strings.LastIndex(pointer, "/")
		if cut < 0 {
			return fmt.Errorf("personal part names %q, which is not a JSON pointer", pointer)
		}
		parent, ok := lookup(event, pointer[:cut]).(map[string]interface{})
		if !ok {
			return fmt.Errorf("personal part names %q, which the entry has no place for", pointer)
		}
		parent[unescapeToken(pointer[cut+1:])] = value
	}
	return nil
}

func unescapeToken(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~1", "/"), "~0", "~")
}

// lookup answers the value at an RFC 6901 pointer ("" is the root), or nil.
func lookup(root interface{}, pointer string) interface{} {
	if pointer == "" {
		return root
	}
	if !strings.HasPrefix(pointer, "/") {
		return nil
	}
	v := root
	for _, token := range strings.Split(pointer[1:], "/") {
		token = unescapeToken(token)
		switch x := v.(type) {
		case map[string]interface{}:
			v = x[token]
		case []interface{}:
			i, err := strconv.Atoi(token)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// jcs is RFC 8785 canonical JSON of a decoded value (numbers as json.Number).
func jcs(v interface{}) (string, error) {
	var b strings.Builder
	if err := writeJCS(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

func writeJCS(b *strings.Builder, v interface{}) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		jcsString(b, x)
	case json.Number:
		s, err := jcsNumber(x)
		if err != nil {
			return err
		}
		b.WriteString(s)
	case []interface{}:
		b.WriteByte('[')
		for i, item := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJCS(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]interface{}:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return utf16Less(keys[i], keys[j]) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			jcsString(b, k)
			b.WriteByte(':')
			if err := writeJCS(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected JSON value %T", v)
	}
	return nil
}

// jcsNumber writes a number as ECMAScript's Number.prototype.toString does
// (RFC 8785 §3.2.2.3): the shortest digits that round-trip, in fixed notation
// for exponents from -6 to 20, otherwise with an exponent.
func jcsNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("the number %s is not an IEEE 754 double", n)
	}
	if f == 0 {
		return "0", nil
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mantissa, exp := e[:strings.IndexByte(e, 'e')], e[strings.IndexByte(e, 'e')+1:]
	digits := strings.Replace(mantissa, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, point := len(digits), x+1
	switch {
	case k <= point && point <= 21:
		return sign + digits + strings.Repeat("0", point-k), nil
	case 0 < point && point <= 21:
		return sign + digits[:point] + "." + digits[point:], nil
	case -6 < point && point <= 0:
		return sign + "0." + strings.Repeat("0", -point) + digits, nil
	}
	out := digits[:1]
	if k > 1 {
		out += "." + digits[1:]
	}
	if point-1 >= 0 {
		return sign + out + "e+" + strconv.Itoa(point-1), nil
	}
	return sign + out + "e-" + strconv.Itoa(1-point), nil
}

// checkViews checks events.jsonl and events.csv next to the bundle, when
// present, against the verified events; it answers which ones it checked.
func checkViews(dir string, events []shownEvent) ([]string, error) {
	var checked []string
	for _, view := range []struct {
		name  string
		check func(io.Reader, []shownEvent) error
	}{{"events.jsonl", checkJSONL}, {"events.csv", checkCSV}} {
		file, err := os.Open(filepath.Join(dir, view.name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		err = view.check(file, events)
		file.Close()
		if err != nil {
			return nil, err
		}
		checked = append(checked, view.name)
	}
	return checked, nil
}

func checkJSONL(file io.Reader, events []shownEvent) error {
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 0, 1<<20), 64<<20)
	n := 0
	for scanner.Scan() {
		if n >= len(events) {
			return fmt.Errorf("events.jsonl line %d: the bundle holds only %d events", n+1, len(events))
		}
		value, err := decodeJSON(scanner.Bytes())
		if err != nil {
			return fmt.Errorf("events.jsonl line %d (%s): not JSON: %v", n+1, events[n].short(), err)
		}
		got, err := jcs(value)
		if err != nil || got != events[n].canonical {
			return fmt.Errorf("events.jsonl line %d (%s): differs from the bundle's event at this position", n+1, events[n].short())
		}
		n++
	}
	if err := scanner.Err(); err != nil {
		return fmt.Errorf("events.jsonl: %v", err)
	}
	if n < len(events) {
		return fmt.Errorf("events.jsonl line %d (%s): missing: the file has %d lines, the bundle %d events", n+1, events[n].short(), n, len(events))
	}
	return nil
}

func (e shownEvent) short() string {
	return fmt.Sprintf("index %d, event_id %s", e.index, e.eventID)
}

// csvRow is an event's row of events.csv (csv_record in evident-client).
func csvRow(e shownEvent) []string {
	text := func(pointer string) string {
		s, _ := lookup(e.value, pointer).(string)
		return s
	}
	var targets []string
	if list, ok := lookup(e.value, "/targets").([]interface{}); ok {
		for _, target := range list {
			t, _ := lookup(target, "/type").(string)
			id, _ := lookup(target, "/id").(string)
			targets = append(targets, t+"/"+id)
		}
	}
	return []string{strconv.FormatInt(e.index, 10), e.eventID, text("/time"), text("/recorded_at"),
		text("/tenant"), text("/source"), text("/type"), text("/action"), text("/outcome"),
		text("/actor/id"), text("/subject"), strings.Join(targets, ";"), text("/reason"),
		strconv.FormatBool(e.personal)}
}

func checkCSV(file io.Reader, events []shownEvent) error {
	reader := csv.NewReader(file)
	reader.FieldsPerRecord = -1
	header, err := reader.Read()
	if err != nil || strings.Join(header, ",") != strings.Join(csvColumns, ",") {
		return fmt.Errorf("events.csv header: the columns are not %s", strings.Join(csvColumns, ","))
	}
	n := 0
	for {
		record, err := reader.Read()
		if err == io.EOF {
			break
		}
		if n >= len(events) {
			return fmt.Errorf("events.csv row %d: the bundle holds only %d events", n+1, len(events))
		}
		if err != nil {
			return fmt.Errorf("events.csv row %d (%s): %v", n+1, events[n].short(), err)
		}
		want := csvRow(events[n])
		for c, name := range csvColumns {
			if c >= len(record) || record[c] != want[c] || len(record) != len(want) {
				return fmt.Errorf("events.csv row %d (%s): column %s differs from the bundle's event at this position", n+1, events[n].short(), name)
			}
		}
		n++
	}
	if n < len(events) {
		return fmt.Errorf("events.csv row %d (%s): missing: the file has %d rows, the bundle %d events", n+1, events[n].short(), n, len(events))
	}
	return nil
}

// link is a "previous" or "last" link: the event line before a line.
type link struct {
	Index   int64  `json:"index"`
	EventID string `json:"event_id"`
}

// links follows the links of a bundle's lines: in a genuine bundle each names
// the line before it; after a drop, the link after the gap names the dropped
// event.
type links struct {
	before *link
	claims []link   // links that do not name the line before them
	broken []string // the same, as failures
}

func (l *links) follow(lineNo int, claimed *link, this *link) {
	// Bundles written before the links existed have none.
	if claimed != nil && (l.before == nil || *l.before != *claimed) {
		l.claims = append(l.claims, *claimed)
		l.broken = append(l.broken, fmt.Sprintf("line %d: its link names index %d (event_id %s), which is not the event line before it", lineNo, claimed.Index, claimed.EventID))
	}
	l.before = this
}

// missing names the events the links name that the bundle does not hold.
func (l *links) missing(held map[int64]bool) string {
	var named []string
	for _, c := range l.claims {
		if !held[c.Index] {
			named = append(named, fmt.Sprintf("index %d (event_id %s)", c.Index, c.EventID))
		}
	}
	if len(named) == 0 {
		return "events were dropped or added"
	}
	return "missing: " + strings.Join(named, ", ")
}
