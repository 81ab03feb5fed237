package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// maxBodyBytes caps every request body.
const maxBodyBytes = 64 << 10

// fieldError is a client error about one named field of the request ("body"
// for the request body as a whole, "id" for the path id).
type fieldError struct {
	Field   string
	Problem string
}

// Error is "field: problem", as returned to the client.
func (e *fieldError) Error() string { return e.Field + ": " + e.Problem }

// OwnerInput is the body of POST /api/owners.
type OwnerInput struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	City      string `json:"city"`
	Telephone string `json:"telephone"`
}

// PetInput is the body of POST /api/owners/{id}/pets.
type PetInput struct {
	Name      string `json:"name"`
	Type      string `json:"type"`
	BirthDate string `json:"birth_date"`
}

// VisitInput is the body of POST /api/pets/{id}/visits.
type VisitInput struct {
	VisitDate   string `json:"visit_date"`
	Description string `json:"description"`
}

// NewPet is a validated PetInput.
type NewPet struct {
	Name      string
	Type      string
	BirthDate time.Time
}

// NewVisit is a validated VisitInput.
type NewVisit struct {
	VisitDate   time.Time
	Description string
}

// decodeJSON decodes exactly one JSON object from body into dst, rejecting
// unknown fields. body should be limited with http.MaxBytesReader. Every error
// is a *fieldError.
func decodeJSON(body io.Reader, dst any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	var extra json.RawMessage
	err := dec.Decode(&extra)
	if errors.Is(err, io.EOF) {
		return nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &fieldError{Field: "body", Problem: "is too large"}
	}
	return &fieldError{Field: "body", Problem: "must hold a single JSON object"}
}

// decodeError turns an encoding/json or body-reading error into a *fieldError.
func decodeError(err error) *fieldError {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &fieldError{Field: "body", Problem: "is too large"}
	case errors.Is(err, io.EOF):
		return &fieldError{Field: "body", Problem: "is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &fieldError{Field: "body", Problem: "is truncated JSON"}
	case errors.As(err, &syntax):
		return &fieldError{Field: "body", Problem: fmt.Sprintf("is not valid JSON (at byte %d)", syntax.Offset)}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &fieldError{Field: "body", Problem: "must be a JSON object"}
		}
		return &fieldError{Field: typ.Field, Problem: "must be a " + typ.Type.String()}
	}
	// encoding/json has no error type for unknown fields: `json: unknown field "x"`.
	if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if name, uerr := strconv.Unquote(rest); uerr == nil {
			return &fieldError{Field: name, Problem: "is not a known field"}
		}
	}
	return &fieldError{Field: "body", Problem: "cannot be read"}
}

// checkText trims *v and checks it is present, at most maxLen characters
// long and free of control characters.
func checkText(field string, v *string, maxLen int) error {
	*v = strings.TrimSpace(*v)
	switch {
	case *v == "":
		return &fieldError{Field: field, Problem: "is required"}
	case utf8.RuneCountInString(*v) > maxLen:
		return &fieldError{Field: field, Problem: fmt.Sprintf("must be at most %d characters", maxLen)}
	case strings.ContainsFunc(*v, unicode.IsControl):
		return &fieldError{Field: field, Problem: "must not contain control characters"}
	}
	return nil
}

// parseDate parses a required YYYY-MM-DD date in the range MariaDB's DATE
// supports.
func parseDate(field, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, &fieldError{Field: field, Problem: "is required"}
	}
	d, err := time.Parse(dateLayout, v)
	if err != nil {
		return time.Time{}, &fieldError{Field: field, Problem: "must be a date in YYYY-MM-DD format"}
	}
	if d.Year() < 1000 {
		return time.Time{}, &fieldError{Field: field, Problem: "must be on or after 1000-01-01"}
	}
	return d, nil
}

// validate trims the fields and checks them against the owners columns.
func (in OwnerInput) validate() (OwnerInput, error) {
	if err := checkText("first_name", &in.FirstName, maxNameLen); err != nil {
		return OwnerInput{}, err
	}
	if err := checkText("last_name", &in.LastName, maxNameLen); err != nil {
		return OwnerInput{}, err
	}
	if err := checkText("city", &in.City, maxCityLen); err != nil {
		return OwnerInput{}, err
	}
	if err := checkText("telephone", &in.Telephone, maxTelephoneLen); err != nil {
		return OwnerInput{}, err
	}
	if strings.ContainsFunc(in.Telephone, func(r rune) bool { return !strings.ContainsRune("0123456789+-(). ", r) }) ||
		!strings.ContainsFunc(in.Telephone, unicode.IsDigit) {
		return OwnerInput{}, &fieldError{Field: "telephone", Problem: "must be digits, optionally with + - ( ) . and spaces"}
	}
	return in, nil
}

// validate checks the fields against the pets columns. A birth date may not
// lie after today (UTC).
func (in PetInput) validate(today time.Time) (NewPet, error) {
	if err := checkText("name", &in.Name, maxNameLen); err != nil {
		return NewPet{}, err
	}
	if err := checkText("type", &in.Type, maxPetTypeLen); err != nil {
		return NewPet{}, err
	}
	birth, err := parseDate("birth_date", in.BirthDate)
	if err != nil {
		return NewPet{}, err
	}
	if birth.After(today) {
		return NewPet{}, &fieldError{Field: "birth_date", Problem: "must not be in the future"}
	}
	return NewPet{Name: in.Name, Type: in.Type, BirthDate: birth}, nil
}

// validate checks the fields against the visits columns.
func (in VisitInput) validate() (NewVisit, error) {
	date, err := parseDate("visit_date", in.VisitDate)
	if err != nil {
		return NewVisit{}, err
	}
	if err := checkText("description", &in.Description, maxDescriptionLen); err != nil {
		return NewVisit{}, err
	}
	return NewVisit{VisitDate: date, Description: in.Description}, nil
}

// parseID parses a positive integer path id.
func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, &fieldError{Field: "id", Problem: "must be a positive integer"}
	}
	return id, nil
}

// checkLastNamePrefix validates the ?last_name= filter of GET /api/owners.
func checkLastNamePrefix(v string) (string, error) {
	v = strings.TrimSpace(v)
	if utf8.RuneCountInString(v) > maxNameLen {
		return "", &fieldError{Field: "last_name", Problem: fmt.Sprintf("must be at most %d characters", maxNameLen)}
	}
	return v, nil
}
