// Command tlogcheck is Evident's "Go checker": an independent verifier that
// checks artefacts produced by Evident's Rust code (signed checkpoints,
// RFC 6962 inclusion and consistency proofs, c2sp.org/tlog-proof@v1 receipts,
// witness cosignatures) with Go's reference packages golang.org/x/mod/sumdb/note
// and golang.org/x/mod/sumdb/tlog (cosignature/v1 through a note.Verifier of
// our own, cosignature.go).
//
// It is built in GOPATH mode, with no module proxy, by ../../../build.sh
// against the Debian package golang-golang-x-mod-dev.
//
// Usage:
//
//	tlogcheck [-v] MANIFEST.json
//	tlogcheck -receipt FILE.tlog-proof -entry ENTRY -vkey VKEY -origin ORIGIN
//	tlogcheck -bundle DIR|bundle.ndjson -vkey VKEY [-origin ORIGIN]
//
// The manifest names a verifier key, a checkpoint origin and a list of cases,
// each with the outcome it expects (the manifest and tcase types below are
// the schema; interop/go/vectors_manifest.py writes one). For every case tlogcheck
// prints "ok NAME" when the outcome matches, or
// "MISMATCH NAME: expected ok=B, got ERR" when it does not, then a summary
// line. Exit status: 0 all cases match, 1 some case mismatched, 2 the
// manifest is unreadable or malformed.
//
// With -bundle it checks an evident-export/v1 bundle (the format is described
// in crates/evident-client/src/bundle.rs): the checkpoint's signature, every
// event's inclusion proof, and the signed manifest's statement of the events,
// their count and the query; and everything the bundle shows a person, bound
// to the verified entries (views.go): each line's readable "event" and
// personal part, and events.jsonl and events.csv next to it. It prints
// "bundle verifies: N events" or names the failing event, exit status 0 or 1.
//
// Fields are strict on purpose: unknown fields, missing required fields,
// unknown kinds and duplicate names make the manifest malformed (exit 2), so
// that a typo cannot turn a negative case into a vacuous pass.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// manifest is the top-level JSON document given on the command line.
type manifest struct {
	VKey   string  `json:"vkey"`
	Origin string  `json:"origin"`
	Cases  []tcase `json:"cases"`
}

// tcase is one case of the manifest. Pointer fields tell "absent" from
// "zero"; which ones are required depends on Kind.
type tcase struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	ExpectOK *bool  `json:"expect_ok"`

	// kind "checkpoint"
	Note *string `json:"note"`

	// kind "inclusion"
	Size     *int64  `json:"size"`
	Index    *int64  `json:"index"`
	LeafHash *string `json:"leaf_hash"`
	Root     *string `json:"root"`

	// kind "consistency"
	OldSize *int64  `json:"old_size"`
	NewSize *int64  `json:"new_size"`
	OldRoot *string `json:"old_root"`
	NewRoot *string `json:"new_root"`

	// kinds "inclusion" and "consistency": hex hashes
	Proof *[]string `json:"proof"`

	// kind "tlog_proof"
	Receipt *string `json:"receipt"`
	// cosigned_checkpoint: the witness's cosignature/v1 vkey (cosignature.go).
	WitnessVKey *string `json:"witness_vkey"`
	LeafB64     *string `json:"leaf_b64"`
}

// checkpoint is a parsed C2SP tlog-checkpoint note body.
type checkpoint struct {
	Origin     string
	Size       int64
	Root       tlog.Hash
	Extensions []string
}

const receiptHeader = "c2sp.org/tlog-proof@v1"

func main() {
	verbose := flag.Bool("v", false, "also print why each expected failure failed")
	receipt := flag.String("receipt", "", "verify one c2sp.org/tlog-proof@v1 file instead of a manifest (with -entry, -vkey, -origin)")
	bundle := flag.String("bundle", "", "verify an evident-export/v1 bundle (its directory or bundle.ndjson; with -vkey)")
	entry := flag.String("entry", "", "with -receipt: the file holding the entry's exact bytes")
	vkey := flag.String("vkey", "", "with -receipt or -bundle: the log's verifier key")
	origin := flag.String("origin", "", "with -receipt: the log's origin line; with -bundle: the expected origin (default: the bundle's)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: tlogcheck [-v] MANIFEST.json\n"+
			"       tlogcheck -receipt FILE.tlog-proof -entry ENTRY -vkey VKEY -origin ORIGIN\n"+
			"       tlogcheck -bundle DIR|bundle.ndjson -vkey VKEY [-origin ORIGIN]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *receipt != "" {
		os.Exit(verifyOneReceipt(*receipt, *entry, *vkey, *origin))
	}
	if *bundle != "" {
		os.Exit(verifyBundle(*bundle, *vkey, *origin))
	}
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}

	m, err := readManifest(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: %v\n", err)
		os.Exit(2)
	}
	verifier, err := note.NewVerifier(m.VKey)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: manifest vkey: %v\n", err)
		os.Exit(2)
	}
	verifiers := note.VerifierList(verifier)

	mismatches := 0
	for i := range m.Cases {
		c := &m.Cases[i]
		err := runCase(c, m.Origin, verifiers)
		want := *c.ExpectOK
		switch {
		case (err == nil) == want:
			if *verbose && err != nil {
				fmt.Printf("ok %s (rejected: %v)\n", c.Name, err)
			} else {
				fmt.Printf("ok %s\n", c.Name)
			}
		default:
			mismatches++
			got := "ok"
			if err != nil {
				got = err.Error()
			}
			fmt.Printf("MISMATCH %s: expected ok=%t, got %s\n", c.Name, want, got)
		}
	}
	fmt.Printf("tlogcheck: %d cases, %d mismatches\n", len(m.Cases), mismatches)
	if mismatches > 0 {
		os.Exit(1)
	}
}

// verifyOneReceipt checks a single receipt file against an entry, a vkey and
// an origin, printing the verdict; it answers the exit status.
func verifyOneReceipt(receiptPath, entryPath, vkey, origin string) int {
	fail := func(format string, args ...interface{}) int {
		fmt.Fprintf(os.Stderr, "tlogcheck: "+format+"\n", args...)
		return 1
	}
	if entryPath == "" || vkey == "" || origin == "" {
		return fail("-receipt needs -entry, -vkey and -origin")
	}
	text, err := os.ReadFile(receiptPath)
	if err != nil {
		return fail("%v", err)
	}
	leaf, err := os.ReadFile(entryPath)
	if err != nil {
		return fail("%v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fail("vkey: %v", err)
	}
	receipt, leafB64 := string(text), base64.StdEncoding.EncodeToString(leaf)
	c := &tcase{Receipt: &receipt, LeafB64: &leafB64}
	if err := checkReceipt(c, origin, note.VerifierList(verifier)); err != nil {
		return fail("receipt does NOT verify: %v", err)
	}
	fmt.Println("receipt verifies: the entry is in the log, as of a checkpoint signed by", verifier.Name())
	return 0
}

// readManifest reads and strictly validates the manifest at path.
func readManifest(path string) (*manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: malformed manifest: %v", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: malformed manifest: trailing data after the JSON object", path)
	}
	if m.VKey == "" {
		return nil, fmt.Errorf("%s: malformed manifest: missing vkey", path)
	}
	if m.Origin == "" {
		return nil, fmt.Errorf("%s: malformed manifest: missing origin", path)
	}
	if len(m.Cases) == 0 {
		return nil, fmt.Errorf("%s: malformed manifest: no cases", path)
	}
	seen := make(map[string]bool)
	for i := range m.Cases {
		c := &m.Cases[i]
		if err := validateCase(c); err != nil {
			return nil, fmt.Errorf("%s: malformed manifest: case %d (%q): %v", path, i, c.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("%s: malformed manifest: duplicate case name %q", path, c.Name)
		}
		seen[c.Name] = true
	}
	return &m, nil
}

// validateCase checks that c has a usable name, a known kind and exactly the
// fields that kind needs. It does not judge the values: that is the check.
func validateCase(c *tcase) error {
	if c.Name == "" || strings.ContainsAny(c.Name, " \t\r\n") {
		return errors.New("name must be non-empty and contain no white space")
	}
	if c.ExpectOK == nil {
		return errors.New("missing expect_ok")
	}
	fields := map[string]bool{
		"note":         c.Note != nil,
		"size":         c.Size != nil,
		"index":        c.Index != nil,
		"leaf_hash":    c.LeafHash != nil,
		"root":         c.Root != nil,
		"old_size":     c.OldSize != nil,
		"new_size":     c.NewSize != nil,
		"old_root":     c.OldRoot != nil,
		"new_root":     c.NewRoot != nil,
		"proof":        c.Proof != nil,
		"receipt":      c.Receipt != nil,
		"leaf_b64":     c.LeafB64 != nil,
		"witness_vkey": c.WitnessVKey != nil,
	}
	var want []string
	switch c.Kind {
	case "checkpoint":
		want = []string{"note"}
	case "cosigned_checkpoint":
		want = []string{"note", "witness_vkey"}
	case "inclusion":
		want = []string{"size", "index", "leaf_hash", "root", "proof"}
	case "consistency":
		want = []string{"old_size", "new_size", "old_root", "new_root", "proof"}
	case "tlog_proof":
		want = []string{"receipt", "leaf_b64"}
		// The leaf bytes are test input, not an artefact under test:
		// a bad encoding is a broken manifest.
		if c.LeafB64 != nil {
			if _, err := decodeB64(*c.LeafB64); err != nil {
				return fmt.Errorf("leaf_b64: %v", err)
			}
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	wanted := make(map[string]bool)
	for _, f := range want {
		wanted[f] = true
		if !fields[f] {
			return fmt.Errorf("kind %s: missing %s", c.Kind, f)
		}
	}
	for f, present := range fields {
		if present && !wanted[f] {
			return fmt.Errorf("kind %s: unexpected field %s", c.Kind, f)
		}
	}
	return nil
}

// runCase checks one case and returns nil if the artefact verifies.
// A panic in the checked code is reported as an error, not a crash.
func runCase(c *tcase, origin string, verifiers note.Verifiers) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	switch c.Kind {
	case "checkpoint":
		_, err = openCheckpoint([]byte(*c.Note), origin, verifiers)
		return err
	case "inclusion":
		return checkInclusion(c)
	case "consistency":
		return checkConsistency(c)
	case "tlog_proof":
		return checkReceipt(c, origin, verifiers)
	case "cosigned_checkpoint":
		return checkCosigned(c, origin, verifiers)
	}
	return fmt.Errorf("unknown kind %q", c.Kind)
}

func checkInclusion(c *tcase) error {
	leaf, err := parseHex(*c.LeafHash)
	if err != nil {
		return fmt.Errorf("leaf_hash: %v", err)
	}
	root, err := parseHex(*c.Root)
	if err != nil {
		return fmt.Errorf("root: %v", err)
	}
	proof, err := parseHexList(*c.Proof)
	if err != nil {
		return err
	}
	// CheckRecord(p, t, th, n, h): tree size t with root th has record n with hash h.
	return tlog.CheckRecord(tlog.RecordProof(proof), *c.Size, root, *c.Index, leaf)
}

func checkConsistency(c *tcase) error {
	oldRoot, err := parseHex(*c.OldRoot)
	if err != nil {
		return fmt.Errorf("old_root: %v", err)
	}
	newRoot, err := parseHex(*c.NewRoot)
	if err != nil {
		return fmt.Errorf("new_root: %v", err)
	}
	proof, err := parseHexList(*c.Proof)
	if err != nil {
		return err
	}
	// CheckTree(p, t, th, n, h): tree size t with root th has as prefix tree size n with root h.
	return tlog.CheckTree(tlog.TreeProof(proof), *c.NewSize, newRoot, *c.OldSize, oldRoot)
}

// checkReceipt verifies a c2sp.org/tlog-proof@v1 receipt for the leaf bytes.
func checkReceipt(c *tcase, origin string, verifiers note.Verifiers) error {
	leaf, err := decodeB64(*c.LeafB64)
	if err != nil {
		return fmt.Errorf("leaf_b64: %v", err)
	}
	text := *c.Receipt

	// The header runs up to the first empty line; the signed checkpoint
	// follows it verbatim to the end.
	split := strings.Index(text, "\n\n")
	if split < 0 {
		return errors.New("receipt: no empty line before the checkpoint")
	}
	lines := strings.Split(text[:split], "\n")
	msg := text[split+2:]

	if lines[0] != receiptHeader {
		return fmt.Errorf("receipt: first line is %q, want %q", lines[0], receiptHeader)
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		// Opaque and unauthenticated: only its encoding is checked.
		if _, err := decodeB64(strings.TrimPrefix(lines[0], "extra ")); err != nil {
			return fmt.Errorf("receipt: extra line: %v", err)
		}
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return errors.New("receipt: missing index line")
	}
	index, err := parseDecimal(strings.TrimPrefix(lines[0], "index "))
	if err != nil {
		return fmt.Errorf("receipt: index: %v", err)
	}
	lines = lines[1:]
	proof := make(tlog.RecordProof, 0, len(lines))
	for i, line := range lines {
		h, err := parseB64Hash(line)
		if err != nil {
			return fmt.Errorf("receipt: proof line %d: %v", i, err)
		}
		proof = append(proof, h)
	}

	cp, err := openCheckpoint([]byte(msg), origin, verifiers)
	if err != nil {
		return fmt.Errorf("receipt: %v", err)
	}
	if index >= cp.Size {
		return fmt.Errorf("receipt: index %d not below checkpoint size %d", index, cp.Size)
	}
	return tlog.CheckRecord(proof, cp.Size, cp.Root, index, tlog.RecordHash(leaf))
}

// openCheckpoint verifies the signed note msg with the known verifiers and
// parses its text as a C2SP tlog-checkpoint whose origin must be origin.
func openCheckpoint(msg []byte, origin string, verifiers note.Verifiers) (*checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return nil, fmt.Errorf("note: %v", err)
	}
	if len(n.Sigs) == 0 { // note.Open already refuses this; be explicit.
		return nil, errors.New("note: no verified signature")
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return nil, err
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("checkpoint: origin %q, want %q", cp.Origin, origin)
	}
	return cp, nil
}

// parseCheckpoint parses a C2SP tlog-checkpoint note text
// (https://c2sp.org/tlog-checkpoint). tlog.ParseTree is the sumdb
// format (with a "go.sum database tree" first line), not this one.
func parseCheckpoint(text string) (*checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("checkpoint: text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("checkpoint: %d lines, want at least 3", len(lines))
	}
	cp := &checkpoint{Origin: lines[0]}
	if cp.Origin == "" {
		return nil, errors.New("checkpoint: empty origin line")
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return nil, fmt.Errorf("checkpoint: size: %v", err)
	}
	cp.Size = size
	if cp.Root, err = parseB64Hash(lines[2]); err != nil {
		return nil, fmt.Errorf("checkpoint: root hash: %v", err)
	}
	for i, ext := range lines[3:] {
		if ext == "" {
			return nil, fmt.Errorf("checkpoint: extension line %d is empty", i)
		}
	}
	cp.Extensions = lines[3:]
	return cp, nil
}

// parseDecimal parses an ASCII decimal with no sign and no leading zeros
// (except "0") that fits an int64, as tlog sizes and indexes are int64.
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a plain decimal", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > math.MaxInt64 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int64(v), nil
}

// decodeB64 decodes canonical standard base64 (RFC 4648 §4, padded):
// the input must be exactly the encoding of what it decodes to, which
// rejects stray characters, line breaks and non-zero trailing bits.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not canonical base64", s)
	}
	return b, nil
}

func parseB64Hash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := decodeB64(s)
	if err != nil {
		return h, err
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash is %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func parseHex(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := hex.DecodeString(s)
	if err != nil {
		return h, err
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash is %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func parseHexList(list []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(list))
	for i, s := range list {
		h, err := parseHex(s)
		if err != nil {
			return nil, fmt.Errorf("proof[%d]: %v", i, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// exportFormat is the first line of an export bundle's header and manifest.
const exportFormat = "evident-export/v1"

// bundleHeader is the first line of an export bundle.
type bundleHeader struct {
	Format     string            `json:"format"`
	Origin     string            `json:"origin"`
	TreeSize   *int64            `json:"tree_size"`
	Checkpoint string            `json:"checkpoint"`
	VKey       string            `json:"vkey"`
	Query      map[string]string `json:"query"`
}

// bundleLine is an event line or, with Manifest set, the trailer.
type bundleLine struct {
	Index    *int64          `json:"index"`
	EventID  string          `json:"event_id"`
	Entry    *string         `json:"entry"`
	Proof    *[]string       `json:"proof"`
	Event    json.RawMessage `json:"event"`
	Personal *personalPart   `json:"personal"`
	Previous *link           `json:"previous"`
	Manifest *string         `json:"manifest"`
	Last     *link           `json:"last"`
}

// verifyBundle checks an evident-export/v1 bundle against a verifier key,
// printing the verdict; it answers the exit status.
func verifyBundle(path, vkey, wantOrigin string) int {
	fail := func(format string, args ...interface{}) int {
		fmt.Fprintf(os.Stderr, "tlogcheck: bundle does NOT verify: "+format+"\n", args...)
		return 1
	}
	if vkey == "" {
		fmt.Fprintln(os.Stderr, "tlogcheck: -bundle needs -vkey")
		return 1
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: vkey: %v\n", err)
		return 1
	}
	verifiers := note.VerifierList(verifier)
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		path = filepath.Join(path, "bundle.ndjson")
	}
	var shown []shownEvent
	var links links
	file, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: %v\n", err)
		return 1
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 0, 1<<20), 64<<20)

	if !scanner.Scan() {
		return fail("line 1: no header")
	}
	var header bundleHeader
	if err := json.Unmarshal(scanner.Bytes(), &header); err != nil {
		return fail("line 1: header: %v", err)
	}
	if header.Format != exportFormat {
		return fail("line 1: format %q, want %q", header.Format, exportFormat)
	}
	if header.TreeSize == nil || header.Query == nil {
		return fail("line 1: header lacks tree_size or query")
	}
	origin := header.Origin
	if wantOrigin != "" && wantOrigin != origin {
		return fail("the bundle is from %q, want %q", origin, wantOrigin)
	}
	cp, err := openCheckpoint([]byte(header.Checkpoint), origin, verifiers)
	if err != nil {
		return fail("checkpoint: %v", err)
	}
	if cp.Size != *header.TreeSize {
		return fail("header tree_size %d is not the checkpoint's size %d", *header.TreeSize, cp.Size)
	}

	digest := sha256.New()
	count := 0
	seen := make(map[int64]bool)
	var manifest *string
	lineNo := 1
	for scanner.Scan() {
		lineNo++
		if manifest != nil {
			return fail("line %d: data after the trailer", lineNo)
		}
		var line bundleLine
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return fail("line %d: %v", lineNo, err)
		}
		if line.Manifest != nil {
			manifest = line.Manifest
			links.follow(lineNo, line.Last, nil)
			continue
		}
		if line.Index == nil || *line.Index < 0 || line.Entry == nil || line.Proof == nil {
			return fail("line %d: neither an event (index, entry, proof) nor the trailer", lineNo)
		}
		index := *line.Index
		links.follow(lineNo, line.Previous, &link{Index: index, EventID: line.EventID})
		event := fmt.Sprintf("line %d (index %d, event_id %s)", lineNo, index, line.EventID)
		entry, err := decodeB64(*line.Entry)
		if err != nil {
			return fail("%s: entry: %v", event, err)
		}
		proof := make(tlog.RecordProof, 0, len(*line.Proof))
		for i, text := range *line.Proof {
			h, err := parseB64Hash(text)
			if err != nil {
				return fail("%s: proof hash %d: %v", event, i, err)
			}
			proof = append(proof, h)
		}
		if index >= cp.Size {
			return fail("%s: index not below the checkpoint's tree size %d", event, cp.Size)
		}
		if seen[index] {
			return fail("%s: appears twice", event)
		}
		seen[index] = true
		leaf := tlog.RecordHash(entry)
		if err := tlog.CheckRecord(proof, cp.Size, cp.Root, index, leaf); err != nil {
			return fail("%s: the entry is not the log's leaf at this index: %v", event, err)
		}
		var fields struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(entry, &fields); err != nil || fields.EventID != line.EventID {
			return fail("%s: the line's event_id is not the entry's", event)
		}
		value, canonical, err := checkShown(entry, line.Event, line.Personal)
		if err != nil {
			return fail("%s: %v", event, err)
		}
		shown = append(shown, shownEvent{index: index, eventID: line.EventID,
			canonical: canonical, value: value, personal: line.Personal != nil})
		var be [8]byte
		for i := 0; i < 8; i++ {
			be[i] = byte(uint64(index) >> (56 - 8*i))
		}
		digest.Write(be[:])
		digest.Write(leaf[:])
		count++
	}
	if err := scanner.Err(); err != nil {
		return fail("line %d: %v", lineNo+1, err)
	}
	if manifest == nil {
		return fail("the bundle is truncated: no signed manifest after %d events", count)
	}
	n, err := note.Open([]byte(*manifest), verifiers)
	if err != nil {
		return fail("manifest: %v", err)
	}
	want := fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n%s\n", exportFormat, origin, cp.Size, count,
		base64.StdEncoding.EncodeToString(digest.Sum(nil)), jcsStringMap(header.Query))
	if n.Text != want {
		signed := strings.Split(n.Text, "\n")
		if len(signed) == 7 && signed[3] != strconv.Itoa(count) {
			return fail("manifest: it lists %s events, the bundle holds %d: %s", signed[3], count, links.missing(seen))
		}
		if len(signed) == 7 && signed[5] != jcsStringMap(header.Query) {
			return fail("manifest: it was signed for the query %s, the header states %s", signed[5], jcsStringMap(header.Query))
		}
		if len(signed) == 7 && signed[0] == exportFormat && signed[1] == origin && signed[2] == strconv.FormatInt(cp.Size, 10) {
			return fail("manifest: the bundle's events (their indices, entries or order) are not those it lists")
		}
		return fail("manifest: the signed text does not state this bundle (%q, want %q)", n.Text, want)
	}
	if len(links.broken) > 0 {
		return fail("%s", links.broken[0])
	}
	views, err := checkViews(filepath.Dir(path), shown)
	if err != nil {
		return fail("%v", err)
	}
	if len(views) > 0 {
		fmt.Printf("bundle verifies: %d events (%s agree)\n", count, strings.Join(views, " and "))
	} else {
		fmt.Printf("bundle verifies: %d events\n", count)
	}
	return 0
}

// jcsStringMap is RFC 8785 canonical JSON of an object whose values are all
// strings: members sorted by the UTF-16 code units of their names.
func jcsStringMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return utf16Less(keys[i], keys[j]) })
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		jcsString(&b, k)
		b.WriteByte(':')
		jcsString(&b, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

func utf16Less(a, b string) bool {
	x, y := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			return x[i] < y[i]
		}
	}
	return len(x) < len(y)
}

// jcsString writes s as ECMAScript's JSON.stringify does (RFC 8785
// §3.2.2.2): only the quote, the backslash and control characters are
// escaped; unlike encoding/json, <, >, & and U+2028/U+2029 stay as they are.
func jcsString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
