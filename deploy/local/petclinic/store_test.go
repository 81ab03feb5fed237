package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want error // nil: left unclassified
	}{
		{name: "read_only", err: &mysql.MySQLError{Number: 1290, Message: "The MariaDB server is running with the --read-only option"}, want: ErrReadOnly},
		{name: "wrapped read_only", err: fmt.Errorf("insert: %w", &mysql.MySQLError{Number: 1290}), want: ErrReadOnly},
		{name: "read-only transaction", err: &mysql.MySQLError{Number: 1792}, want: ErrReadOnly},
		{name: "bad conn", err: driver.ErrBadConn, want: ErrUnavailable},
		{name: "invalid conn", err: mysql.ErrInvalidConn, want: ErrUnavailable},
		{name: "connection refused", err: dialErr, want: ErrUnavailable},
		{name: "wrapped net error", err: fmt.Errorf("query: %w", dialErr), want: ErrUnavailable},
		{name: "deadline", err: context.DeadlineExceeded, want: ErrUnavailable},
		{name: "conn done", err: sql.ErrConnDone, want: ErrUnavailable},
		{name: "server shutdown", err: &mysql.MySQLError{Number: 1053}, want: ErrUnavailable},
		{name: "too many connections", err: &mysql.MySQLError{Number: 1040}, want: ErrUnavailable},
		{name: "schema not there yet", err: &mysql.MySQLError{Number: 1146}, want: ErrUnavailable},
		{name: "duplicate key", err: &mysql.MySQLError{Number: 1062}},
		{name: "syntax", err: &mysql.MySQLError{Number: 1064}},
		{name: "other", err: errors.New("boom")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			assert.ErrorIs(t, got, tt.err, "the cause is kept")
			for _, class := range []error{ErrReadOnly, ErrUnavailable} {
				assert.Equal(t, class == tt.want, errors.Is(got, class), "errors.Is(%v)", class)
			}
		})
	}
	assert.NoError(t, classify(nil))
	twice := classify(classify(driver.ErrBadConn))
	assert.Equal(t, "database unavailable: driver: bad connection", twice.Error(), "classifying twice wraps once")
}

func TestNotFoundError(t *testing.T) {
	err := fmt.Errorf("get: %w", &notFoundError{kind: "owner", id: 7})
	assert.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "get: owner 7 not found", err.Error())
	assert.Equal(t, err, classify(err))
}

func TestEscapeLike(t *testing.T) {
	tests := map[string]string{
		"":          "",
		"Frank":     "Frank",
		"50%_off!":  "50!%!_off!!",
		`back\lash`: `back\lash`,
		"Müller":    "Müller",
	}
	for in, want := range tests {
		assert.Equal(t, want, escapeLike(in), in)
	}
}

func TestSchemaOrder(t *testing.T) {
	var names []string
	for _, st := range schemaTables() {
		names = append(names, st.name)
		assert.Contains(t, st.ddl, "CREATE TABLE IF NOT EXISTS "+st.name+" (")
		assert.Contains(t, st.ddl, "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
	}
	assert.Equal(t, []string{"owners", "pets", "visits"}, names, "parents before children")
}
