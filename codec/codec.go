// Package codec encrypts the payloads Drover's workers and CLI exchange
// through Temporal — workflow and activity inputs and results, heartbeat
// details, signals, queries, updates, memos and, through FailureConverter,
// failure messages and stack traces — with AES-256-GCM, so the Temporal
// server and its database only ever store ciphertext.
//
// Keys come from a secret reference (recipe.SecretRef: "env:NAME" or
// "file:/path") whose content is a key ring: one or more 32-byte keys, each
// written as standard or URL-safe base64 (with or without padding) or as 64
// hex digits, separated by newlines, commas or spaces; text after '#' on a
// line is a comment. The first key is the current one: Encode always uses
// it. Every key of the ring decodes, so keys are rotated by putting a new
// key first and keeping the old ones until no history needs them. Each key
// has an ID derived from the key itself (KeyID), recorded in the metadata of
// every payload it encrypts.
//
// Guarantees: a payload Encode produced decodes only with the same key and
// only if neither its data nor its key ID were changed; anything else is an
// error that names the payload and the key ID, never a key. Payloads not
// marked as encrypted pass through Decode unchanged, so histories written
// before encryption was switched on stay readable.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"

	"github.com/drover-sre/drover/recipe"
)

// EnvKey is the environment variable that holds the secret reference of the
// key ring for the CLI (and the default of drover-worker's --codec-key and
// drover codec-server's --codec-key). Unset or empty: no encryption.
const EnvKey = "DROVER_CODEC_KEY"

// Metadata of an encrypted payload.
const (
	// MetadataEncoding is the value of the "encoding" metadata key of every
	// payload Encode produces (the convention of Temporal's samples, which
	// the Web UI shows as such).
	MetadataEncoding = "binary/encrypted"
	// MetadataKeyID is the metadata key holding the ID of the key that
	// encrypted the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher is the metadata key naming the cipher and format.
	MetadataCipher = "encryption-cipher"
	// Cipher is the value of MetadataCipher: AES-256-GCM, a 12-byte random
	// nonce before the ciphertext, the key ID as additional data.
	Cipher = "AES256-GCM/v1"
)

// KeySize is the length of every key, in bytes (AES-256).
const KeySize = 32

// maxKeys bounds the keys of one ring.
const maxKeys = 64

// Codec is a converter.PayloadCodec that encrypts with the current key of
// its ring and decrypts with any key of it. It is safe for concurrent use
// and immutable once built.
type Codec struct {
	current string                 // key ID Encode uses
	keys    map[string]cipher.AEAD // key ID → cipher
	ids     []string               // key IDs in ring order, current first
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New builds a Codec whose current key is current and which also decodes
// with old. Every key must be KeySize bytes; a key given twice is an error.
func New(current []byte, old ...[]byte) (*Codec, error) {
	c := &Codec{keys: map[string]cipher.AEAD{}}
	for i, k := range append([][]byte{current}, old...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("key %d: must be %d bytes, not %d", i+1, KeySize, len(k))
		}
		id := KeyID(k)
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("key %d: same key as an earlier one (key id %s)", i+1, id)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		c.keys[id] = aead
		c.ids = append(c.ids, id)
	}
	c.current = c.ids[0]
	return c, nil
}

// Parse builds a Codec from the text of a key ring (see the package
// comment). Errors say which key (by position) is wrong and why, never
// what it holds.
func Parse(text string) (*Codec, error) {
	var keys [][]byte
	for line := range strings.SplitSeq(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			k, err := decodeKey(f)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
			}
			keys = append(keys, k)
		}
	}
	switch {
	case len(keys) == 0:
		return nil, errors.New("no key: want at least one 32-byte key in base64 or hex")
	case len(keys) > maxKeys:
		return nil, fmt.Errorf("%d keys: at most %d", len(keys), maxKeys)
	}
	return New(keys[0], keys[1:]...)
}

// decodeKey reads one key: 64 hex digits, or base64 (standard or URL-safe,
// padded or not) of exactly KeySize bytes.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (AES-256)", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("neither %d hex digits nor base64 of %d bytes", 2*KeySize, KeySize)
}

// Load resolves ref (recipe.SecretRef syntax) and parses the key ring it
// holds. Errors name the reference, never the secret.
func Load(ref string) (*Codec, error) {
	r := recipe.SecretRef(ref)
	text, err := r.Resolve()
	if err != nil {
		return nil, err
	}
	c, err := Parse(text)
	if err != nil {
		return nil, fmt.Errorf("key ring %s: %w", r, err)
	}
	return c, nil
}

// KeyID is the ID of key recorded in the payloads it encrypts: 16 hex
// digits of a SHA-256 of the key, which identify the key without revealing
// it.
func KeyID(key []byte) string {
	h := sha256.Sum256(append([]byte("drover codec key id\x00"), key...))
	return hex.EncodeToString(h[:8])
}

// KeyID returns the ID of the current key (the one Encode uses).
func (c *Codec) KeyID() string { return c.current }

// KeyIDs returns the IDs of every key of the ring, current first.
func (c *Codec) KeyIDs() []string { return append([]string(nil), c.ids...) }

// additionalData binds a ciphertext to its key ID and format.
func additionalData(keyID string) []byte { return []byte(Cipher + "\x00" + keyID) }

// Encode encrypts every payload with the current key. The result has the
// same length and order as payloads.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.keys[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("encrypt payload %d: %w", i, err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return payloads, fmt.Errorf("encrypt payload %d: nonce: %w", i, err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncoding),
				MetadataKeyID:              []byte(c.current),
				MetadataCipher:             []byte(Cipher),
			},
			Data: aead.Seal(nonce, nonce, plain, additionalData(c.current)),
		}
	}
	return out, nil
}

// Decode decrypts every payload marked as encrypted, with the key its
// metadata names, and returns the others unchanged. A payload whose key is
// not in the ring, whose cipher is unknown or that fails authentication
// (tampered data or key ID, or another key) is an error.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
			out[i] = p
			continue
		}
		d, err := c.decodeOne(p)
		if err != nil {
			return payloads, fmt.Errorf("decrypt payload %d: %w", i, err)
		}
		out[i] = d
	}
	return out, nil
}

func (c *Codec) decodeOne(p *commonpb.Payload) (*commonpb.Payload, error) {
	md := p.GetMetadata()
	if ci := string(md[MetadataCipher]); ci != Cipher {
		return nil, fmt.Errorf("cipher %q is not %q", ci, Cipher)
	}
	id := string(md[MetadataKeyID])
	aead, ok := c.keys[id]
	if !ok {
		return nil, fmt.Errorf("encrypted with key id %q, which is not in the key ring (key ids %s): add that key to the ring", id, strings.Join(c.ids, ", "))
	}
	data := p.GetData()
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("key id %s: ciphertext of %d bytes is too short: truncated or not Drover's", id, len(data))
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], additionalData(id))
	if err != nil {
		return nil, fmt.Errorf("key id %s: authentication failed: the payload was altered, or encrypted with another key", id)
	}
	var d commonpb.Payload
	if err := proto.Unmarshal(plain, &d); err != nil {
		return nil, fmt.Errorf("key id %s: decrypted data is not a payload: %w", id, err)
	}
	return &d, nil
}

// DataConverter is the SDK's default data converter with every payload
// passed through c.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter converts failures with c's data converter and encodes
// their messages and stack traces, so those are encrypted too (a client
// without the codec sees "Encoded failure").
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter: c.DataConverter(), EncodeCommonAttributes: true})
}

// Apply makes a client built from opts encrypt with c: it sets the data
// converter and the failure converter. Every worker and client of a
// namespace must use the same key ring.
func (c *Codec) Apply(opts *client.Options) {
	opts.DataConverter = c.DataConverter()
	opts.FailureConverter = c.FailureConverter()
}
