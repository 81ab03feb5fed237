package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// Alert statuses, of a notification and of each alert in it.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Version is the only Alertmanager webhook payload version the handler
// accepts.
const Version = "4"

// Message is the body Alertmanager's webhook receiver POSTs (payload
// version 4). Unknown fields are ignored, as later Alertmanager versions may
// add some.
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Message.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// DecodeMessage parses one JSON object in Alertmanager's webhook format and
// checks what the handler relies on: version "4", a notification status
// and each alert's status firing or resolved. Errors name the field.
func DecodeMessage(body []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, errors.New("malformed JSON: more than one value")
	}
	if m.Version != Version {
		return Message{}, fmt.Errorf("version: %q, want %q (Alertmanager's webhook payload version 4)", clip(m.Version), Version)
	}
	if m.Status != StatusFiring && m.Status != StatusResolved {
		return Message{}, fmt.Errorf("status: %q, want firing or resolved", clip(m.Status))
	}
	var bad []error
	for i, a := range m.Alerts {
		if a.Status != StatusFiring && a.Status != StatusResolved {
			bad = append(bad, fmt.Errorf("alerts[%d].status: %q, want firing or resolved", i, clip(a.Status)))
		}
	}
	return m, errors.Join(bad...)
}

// Name is the alert's alertname label, or "" when it has none.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Key identifies one occurrence of an alert: its fingerprint (or, without
// one, a hash of its labels) and when it started. Repeats of a notification
// carry the same key; the same alert firing again later has another.
func (a Alert) Key() string {
	fp := a.Fingerprint
	if fp == "" {
		h := sha256.New()
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			fmt.Fprintf(h, "%q=%q\n", k, a.Labels[k])
		}
		fp = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return fp + "@" + a.StartsAt.UTC().Format(time.RFC3339Nano)
}

// clip shortens a value from a request for an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return string([]rune(s[:max])) + "…"
}
