package main

// Witness cosignatures (https://c2sp.org/tlog-cosignature, cosignature/v1,
// signature type 0x04), written from the spec as a note.Verifier: Go's note
// package verifies only Ed25519 note signatures (type 0x01), but opens notes
// with any Verifier, so the cosignatures Evident collects are judged here by
// Go's note.Open and an Ed25519 implementation that is not ours.

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

const algCosignatureV1 = 0x04

type cosignatureVerifier struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

// newCosignatureVerifier parses a vkey <name>+<hex key hash>+<base64(0x04 || key)>.
func newCosignatureVerifier(vkey string) (*cosignatureVerifier, error) {
	name, rest, ok := strings.Cut(vkey, "+")
	if !ok {
		return nil, errors.New("witness vkey: no key hash")
	}
	hashText, keyText, ok := strings.Cut(rest, "+")
	if !ok || len(hashText) != 8 {
		return nil, errors.New("witness vkey: malformed key hash")
	}
	hash, err := strconv.ParseUint(hashText, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("witness vkey: key hash: %v", err)
	}
	key, err := base64.StdEncoding.DecodeString(keyText)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, errors.New("witness vkey: not a cosignature/v1 Ed25519 key")
	}
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write(key)
	if binary.BigEndian.Uint32(h.Sum(nil)) != uint32(hash) {
		return nil, errors.New("witness vkey: key hash does not match the key")
	}
	return &cosignatureVerifier{name: name, hash: uint32(hash), key: ed25519.PublicKey(key[1:])}, nil
}

func (v *cosignatureVerifier) Name() string    { return v.name }
func (v *cosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify checks a timestamped_signature (u64 time || Ed25519 signature) over
// "cosignature/v1\ntime <time>\n" || the note text.
func (v *cosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > math.MaxInt64 {
		return false
	}
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(v.key, signed, sig[8:])
}

// withWitness adds one witness's verifier to the log's.
type withWitness struct {
	log     note.Verifiers
	witness *cosignatureVerifier
}

func (w withWitness) Verifier(name string, hash uint32) (note.Verifier, error) {
	if name == w.witness.name && hash == w.witness.hash {
		return w.witness, nil
	}
	return w.log.Verifier(name, hash)
}

// checkCosigned opens a checkpoint that the log signed and the witness must
// have cosigned: any bad signature by either fails, and so does a missing
// cosignature.
func checkCosigned(c *tcase, origin string, verifiers note.Verifiers) error {
	witness, err := newCosignatureVerifier(*c.WitnessVKey)
	if err != nil {
		return err
	}
	n, err := note.Open([]byte(*c.Note), withWitness{verifiers, witness})
	if err != nil {
		return fmt.Errorf("note: %v", err)
	}
	cosigned, logSigned := false, false
	for _, sig := range n.Sigs {
		if sig.Name == witness.name && sig.Hash == witness.hash {
			cosigned = true
		} else {
			logSigned = true
		}
	}
	if !cosigned || !logSigned {
		return fmt.Errorf("cosigned by the witness: %t, signed by the log: %t", cosigned, logSigned)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return err
	}
	if cp.Origin != origin {
		return fmt.Errorf("checkpoint: origin %q, want %q", cp.Origin, origin)
	}
	return nil
}
