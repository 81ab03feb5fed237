package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func mustNew(t *testing.T, current []byte, old ...[]byte) *Codec {
	t.Helper()
	c, err := New(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// plainPayloads are what the SDK's default converter makes of a few values.
func plainPayloads(t *testing.T, values ...any) []*commonpb.Payload {
	t.Helper()
	ps, err := converter.GetDefaultDataConverter().ToPayloads(values...)
	if err != nil {
		t.Fatal(err)
	}
	return ps.Payloads
}

// Round trip: Encode hides the plaintext, records the key ID and cipher, and
// Decode gives back exactly the original payloads (metadata included); two
// encryptions of the same payload differ (random nonce).
func TestRoundTrip(t *testing.T) {
	c := mustNew(t, newKey(t))
	in := plainPayloads(t, "secret-canary-1", map[string]int{"n": 7}, nil, []byte{0, 1, 2})
	enc, err := c.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != len(in) {
		t.Fatalf("Encode returned %d payloads, want %d", len(enc), len(in))
	}
	for i, p := range enc {
		if bytes.Contains(p.Data, []byte("secret-canary-1")) || bytes.Contains(p.Data, []byte("json/plain")) {
			t.Errorf("payload %d: ciphertext contains plaintext", i)
		}
		if got := string(p.Metadata[converter.MetadataEncoding]); got != MetadataEncoding {
			t.Errorf("payload %d: encoding %q, want %q", i, got, MetadataEncoding)
		}
		if got := string(p.Metadata[MetadataKeyID]); got != c.KeyID() {
			t.Errorf("payload %d: key id %q, want %q", i, got, c.KeyID())
		}
	}
	again, _ := c.Encode(in[:1])
	if bytes.Equal(again[0].Data, enc[0].Data) {
		t.Error("two encryptions of one payload are identical: nonce reused")
	}
	dec, err := c.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !proto.Equal(dec[i], in[i]) {
			t.Errorf("payload %d: decoded %v, want %v", i, dec[i], in[i])
		}
	}
	var s string
	if err := c.DataConverter().FromPayload(mustEncodeOne(t, c, "through the data converter"), &s); err != nil || s != "through the data converter" {
		t.Errorf("data converter: %q, %v", s, err)
	}
}

func mustEncodeOne(t *testing.T, c *Codec, v any) *commonpb.Payload {
	t.Helper()
	p, err := c.DataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Metadata[converter.MetadataEncoding]) != MetadataEncoding {
		t.Fatalf("data converter did not encrypt: %v", p.Metadata)
	}
	return p
}

// Payloads written without the codec (no encryption marker) pass through.
func TestDecodePassesPlainPayloadsThrough(t *testing.T) {
	c := mustNew(t, newKey(t))
	in := plainPayloads(t, "written before encryption was on")
	out, err := c.Decode(in)
	if err != nil || !proto.Equal(out[0], in[0]) {
		t.Fatalf("Decode(plain) = %v, %v; want it unchanged", out, err)
	}
}

// Tamper detection: a flipped bit anywhere in the ciphertext, a truncated
// ciphertext, a key ID swapped for another key of the ring and a changed
// cipher name are all refused with an error naming the problem.
func TestTamperDetection(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	c := mustNew(t, k1, k2)
	other := mustNew(t, k2)
	enc, err := c.Encode(plainPayloads(t, "do not alter"))
	if err != nil {
		t.Fatal(err)
	}
	good := enc[0]
	tamper := func(f func(p *commonpb.Payload)) *commonpb.Payload {
		p := proto.Clone(good).(*commonpb.Payload)
		f(p)
		return p
	}
	type tc struct {
		p    *commonpb.Payload
		want string
	}
	cases := map[string]tc{
		"truncated":      {tamper(func(p *commonpb.Payload) { p.Data = p.Data[:20] }), "too short"},
		"key id swapped": {tamper(func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte(other.KeyID()) }), "authentication failed"},
		"cipher changed": {tamper(func(p *commonpb.Payload) { p.Metadata[MetadataCipher] = []byte("AES128-CBC") }), `cipher "AES128-CBC"`},
	}
	for _, at := range []int{0, 11, 12, len(good.Data) / 2, len(good.Data) - 1} {
		cases[fmt.Sprintf("byte %d flipped", at)] = tc{tamper(func(p *commonpb.Payload) { p.Data[at] ^= 0x01 }), "authentication failed"}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.Decode([]*commonpb.Payload{good, tc.p})
			if err == nil {
				t.Fatal("tampered payload decoded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "payload 1") {
				t.Errorf("error %q does not say %q about payload 1", err, tc.want)
			}
		})
	}
}

// Wrong key: a ring without the encrypting key refuses, naming the key ID it
// would need; a ring holding a different key under a forged ID cannot
// authenticate.
func TestWrongKey(t *testing.T) {
	enc, err := mustNew(t, newKey(t)).Encode(plainPayloads(t, "for someone else"))
	if err != nil {
		t.Fatal(err)
	}
	id := string(enc[0].Metadata[MetadataKeyID])
	c := mustNew(t, newKey(t))
	_, err = c.Decode(enc)
	if err == nil || !strings.Contains(err.Error(), id) || !strings.Contains(err.Error(), "not in the key ring") {
		t.Fatalf("Decode with the wrong key: %v; want an error naming key id %s", err, id)
	}
	forged := proto.Clone(enc[0]).(*commonpb.Payload)
	forged.Metadata[MetadataKeyID] = []byte(c.KeyID())
	if _, err := c.Decode([]*commonpb.Payload{forged}); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("Decode of a forged key id: %v; want authentication failed", err)
	}
}

// Rotation: after a new key is put first, new payloads use it, payloads of
// the old key still decode; once the old key is dropped they no longer do.
func TestRotation(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	before := mustNew(t, oldKey)
	encOld, _ := before.Encode(plainPayloads(t, "old"))
	rotated := mustNew(t, newK, oldKey)
	if rotated.KeyID() == before.KeyID() || rotated.KeyID() != KeyID(newK) {
		t.Fatalf("current key id after rotation %s; want the new key's %s", rotated.KeyID(), KeyID(newK))
	}
	if ids := rotated.KeyIDs(); len(ids) != 2 || ids[1] != before.KeyID() {
		t.Fatalf("KeyIDs = %v", ids)
	}
	encNew, _ := rotated.Encode(plainPayloads(t, "new"))
	if got := string(encNew[0].Metadata[MetadataKeyID]); got != KeyID(newK) {
		t.Errorf("new payload encrypted with %s, want the new key %s", got, KeyID(newK))
	}
	for name, p := range map[string]*commonpb.Payload{"old": encOld[0], "new": encNew[0]} {
		if _, err := rotated.Decode([]*commonpb.Payload{p}); err != nil {
			t.Errorf("rotated ring cannot decode the %s payload: %v", name, err)
		}
	}
	if _, err := before.Decode(encNew); err == nil {
		t.Error("the old ring decoded a payload of the new key")
	}
	if _, err := mustNew(t, newK).Decode(encOld); err == nil {
		t.Error("a ring without the old key decoded an old payload")
	}
}

// Key rings: every accepted spelling of a key, several keys, comments; and
// the refusals, none of which repeats a key.
func TestParse(t *testing.T) {
	k1, k2 := newKey(t), newKey(t)
	for name, text := range map[string]string{
		"hex":              hex.EncodeToString(k1),
		"base64":           base64.StdEncoding.EncodeToString(k1) + "\n",
		"base64 raw url":   base64.RawURLEncoding.EncodeToString(k1),
		"two keys, lines":  "# current\n" + base64.StdEncoding.EncodeToString(k1) + "\n" + hex.EncodeToString(k2) + " # old\n",
		"two keys, commas": base64.StdEncoding.EncodeToString(k1) + ", " + base64.StdEncoding.EncodeToString(k2),
	} {
		c, err := Parse(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if c.KeyID() != KeyID(k1) {
			t.Errorf("%s: current key id %s, want %s", name, c.KeyID(), KeyID(k1))
		}
	}
	b64 := base64.StdEncoding.EncodeToString(k1)
	for text, want := range map[string]string{
		"":                   "no key",
		"# only a comment\n": "no key",
		base64.StdEncoding.EncodeToString(k1[:16]): "key 1: decodes to 16 bytes, want 32",
		"not-a-key!":                      "key 1: neither 64 hex digits nor base64",
		b64 + "\n" + b64:                  "key 2: same key as an earlier one",
		b64 + "\nzz" + b64:                "key 2: neither",
		hex.EncodeToString(k1)[:63] + "g": "key 1: decodes to 48 bytes",
	} {
		_, err := Parse(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%.10q…) = %v; want %q", text, err, want)
			continue
		}
		if strings.Contains(err.Error(), b64) || strings.Contains(err.Error(), hex.EncodeToString(k1)[:20]) {
			t.Errorf("error %q repeats a key", err)
		}
	}
}

// Load reads a ring through a secret reference (file and env) and names the
// reference, never the key, when it cannot.
func TestLoad(t *testing.T) {
	k := newKey(t)
	f := filepath.Join(t.TempDir(), "codec.keys")
	if err := os.WriteFile(f, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := Load("file:" + f); err != nil || c.KeyID() != KeyID(k) {
		t.Fatalf("Load(file:) = %v, %v", c, err)
	}
	t.Setenv("DROVER_CODEC_TEST_KEY", base64.StdEncoding.EncodeToString(k))
	if c, err := Load("env:DROVER_CODEC_TEST_KEY"); err != nil || c.KeyID() != KeyID(k) {
		t.Fatalf("Load(env:) = %v, %v", c, err)
	}
	t.Setenv("DROVER_CODEC_TEST_BAD", "short")
	for ref, want := range map[string]string{
		"env:DROVER_CODEC_TEST_UNSET": "env:DROVER_CODEC_TEST_UNSET: environment variable is not set",
		"env:DROVER_CODEC_TEST_BAD":   "key ring env:DROVER_CODEC_TEST_BAD: key 1:",
		"file:" + f + ".missing":      "no such file",
		hex.EncodeToString(k):         "must be a secret reference",
	} {
		_, err := Load(ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%.12q…) = %v; want %q", ref, err, want)
		}
		if err != nil && strings.Contains(err.Error(), hex.EncodeToString(k)) {
			t.Errorf("error %q contains the key", err)
		}
	}
}

// Keys of the wrong size are refused by New.
func TestNewRefusesBadKeys(t *testing.T) {
	if _, err := New(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "key 1: must be 32 bytes, not 16") {
		t.Errorf("New(16 bytes) = %v", err)
	}
	if _, err := New(newKey(t), nil); err == nil || !strings.Contains(err.Error(), "key 2: must be 32 bytes, not 0") {
		t.Errorf("New(good, nil) = %v", err)
	}
}
