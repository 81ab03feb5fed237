package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bodyOf limits body the way the handlers do.
func bodyOf(body string) io.Reader {
	return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(body)), maxBodyBytes)
}

// requireFieldError asserts err is a *fieldError about field whose problem
// contains problem.
func requireFieldError(t *testing.T, err error, field, problem string) {
	t.Helper()
	var fe *fieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, field, fe.Field)
	assert.Contains(t, fe.Problem, problem)
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantField   string // empty: success
		wantProblem string
	}{
		{name: "valid", body: `{"first_name":"George","last_name":"Franklin","city":"Madison","telephone":"6085551023"}`},
		{name: "trailing whitespace", body: "{\"city\":\"Madison\"}\n\n"},
		{name: "empty", body: "", wantField: "body", wantProblem: "empty"},
		{name: "truncated", body: `{"city":`, wantField: "body", wantProblem: "truncated"},
		{name: "syntax error", body: `{"city" "x"}`, wantField: "body", wantProblem: "not valid JSON"},
		{name: "unknown field", body: `{"city":"x","address":"110 W. Liberty St."}`, wantField: "address", wantProblem: "not a known field"},
		{name: "wrong type", body: `{"telephone":6085551023}`, wantField: "telephone", wantProblem: "must be a string"},
		{name: "array", body: `[1,2]`, wantField: "body", wantProblem: "JSON object"},
		{name: "two objects", body: `{"city":"a"}{"city":"b"}`, wantField: "body", wantProblem: "single JSON object"},
		{name: "oversize", body: `{"city":"` + strings.Repeat("x", maxBodyBytes) + `"}`, wantField: "body", wantProblem: "too large"},
		{name: "oversize after object", body: `{"city":"x"}` + strings.Repeat(" ", maxBodyBytes), wantField: "body", wantProblem: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in OwnerInput
			err := decodeJSON(bodyOf(tt.body), &in)
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}
			requireFieldError(t, err, tt.wantField, tt.wantProblem)
		})
	}
}

func TestOwnerInputValidate(t *testing.T) {
	good := OwnerInput{FirstName: " George ", LastName: "Franklin", City: "Madison", Telephone: "+1 (608) 555-1023"}
	tests := []struct {
		name        string
		edit        func(*OwnerInput)
		wantField   string
		wantProblem string
	}{
		{name: "valid", edit: func(*OwnerInput) {}},
		{name: "unicode at the limit", edit: func(in *OwnerInput) { in.LastName = strings.Repeat("é", maxNameLen) }},
		{name: "missing first_name", edit: func(in *OwnerInput) { in.FirstName = "" }, wantField: "first_name", wantProblem: "required"},
		{name: "blank last_name", edit: func(in *OwnerInput) { in.LastName = "   " }, wantField: "last_name", wantProblem: "required"},
		{name: "missing city", edit: func(in *OwnerInput) { in.City = "" }, wantField: "city", wantProblem: "required"},
		{name: "missing telephone", edit: func(in *OwnerInput) { in.Telephone = "" }, wantField: "telephone", wantProblem: "required"},
		{name: "long last_name", edit: func(in *OwnerInput) { in.LastName = strings.Repeat("é", maxNameLen+1) }, wantField: "last_name", wantProblem: "at most 30"},
		{name: "long city", edit: func(in *OwnerInput) { in.City = strings.Repeat("x", maxCityLen+1) }, wantField: "city", wantProblem: "at most 80"},
		{name: "control character", edit: func(in *OwnerInput) { in.City = "Mad\x00ison" }, wantField: "city", wantProblem: "control"},
		{name: "letters in telephone", edit: func(in *OwnerInput) { in.Telephone = "call me" }, wantField: "telephone", wantProblem: "digits"},
		{name: "telephone without digits", edit: func(in *OwnerInput) { in.Telephone = "+-()" }, wantField: "telephone", wantProblem: "digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.edit(&in)
			got, err := in.validate()
			if tt.wantField == "" {
				require.NoError(t, err)
				assert.Equal(t, "George", got.FirstName, "fields are trimmed")
				return
			}
			requireFieldError(t, err, tt.wantField, tt.wantProblem)
		})
	}
}

func TestPetInputValidate(t *testing.T) {
	today := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		in          PetInput
		wantField   string
		wantProblem string
	}{
		{name: "valid", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2020-09-07"}},
		{name: "born today", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2026-03-15"}},
		{name: "missing name", in: PetInput{Type: "cat", BirthDate: "2020-09-07"}, wantField: "name", wantProblem: "required"},
		{name: "missing type", in: PetInput{Name: "Leo", BirthDate: "2020-09-07"}, wantField: "type", wantProblem: "required"},
		{name: "missing birth_date", in: PetInput{Name: "Leo", Type: "cat"}, wantField: "birth_date", wantProblem: "required"},
		{name: "slashes", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2020/09/07"}, wantField: "birth_date", wantProblem: "YYYY-MM-DD"},
		{name: "with time", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2020-09-07T10:00:00Z"}, wantField: "birth_date", wantProblem: "YYYY-MM-DD"},
		{name: "no such day", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2021-02-29"}, wantField: "birth_date", wantProblem: "YYYY-MM-DD"},
		{name: "before year 1000", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "0999-12-31"}, wantField: "birth_date", wantProblem: "1000-01-01"},
		{name: "future", in: PetInput{Name: "Leo", Type: "cat", BirthDate: "2026-03-16"}, wantField: "birth_date", wantProblem: "future"},
		{name: "long name", in: PetInput{Name: strings.Repeat("x", maxNameLen+1), Type: "cat", BirthDate: "2020-09-07"}, wantField: "name", wantProblem: "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.validate(today)
			if tt.wantField == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.in.BirthDate, got.BirthDate.Format(time.DateOnly))
				return
			}
			requireFieldError(t, err, tt.wantField, tt.wantProblem)
		})
	}
}

func TestVisitInputValidate(t *testing.T) {
	tests := []struct {
		name        string
		in          VisitInput
		wantField   string
		wantProblem string
	}{
		{name: "valid", in: VisitInput{VisitDate: "2026-01-02", Description: "rabies shot"}},
		{name: "missing visit_date", in: VisitInput{Description: "rabies shot"}, wantField: "visit_date", wantProblem: "required"},
		{name: "bad month", in: VisitInput{VisitDate: "2026-13-02", Description: "rabies shot"}, wantField: "visit_date", wantProblem: "YYYY-MM-DD"},
		{name: "missing description", in: VisitInput{VisitDate: "2026-01-02"}, wantField: "description", wantProblem: "required"},
		{name: "long description", in: VisitInput{VisitDate: "2026-01-02", Description: strings.Repeat("x", maxDescriptionLen+1)}, wantField: "description", wantProblem: "at most 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.in.validate()
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}
			requireFieldError(t, err, tt.wantField, tt.wantProblem)
		})
	}
}

func TestParseID(t *testing.T) {
	for _, s := range []string{"", "0", "-1", "abc", "1.5", "99999999999999999999"} {
		_, err := parseID(s)
		requireFieldError(t, err, "id", "positive integer")
	}
	id, err := parseID("42")
	require.NoError(t, err)
	assert.Equal(t, int64(42), id)
}
