package replication

import (
	"context"
	"crypto/tls"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// Kind classifies a replication failure by what can fix it.
type Kind string

// Failure kinds. Only KindTransient is worth retrying; the others need a
// human (or a re-clone) and must stop the stream.
const (
	// KindBinlogPurged: the source no longer has the binlog needed to resume.
	// Nothing can be skipped safely: the standby must be re-cloned.
	KindBinlogPurged Kind = "BinlogPurged"
	// KindSchemaMismatch: the target cannot take a change as the source made
	// it (missing table or column, row not found, duplicate key): the two
	// databases have diverged.
	KindSchemaMismatch Kind = "SchemaMismatch"
	// KindAuth: credentials or privileges are wrong.
	KindAuth Kind = "Auth"
	// KindConfig: the source or target is configured in a way Drover cannot
	// replicate from (e.g. binlog_row_metadata is not FULL).
	KindConfig Kind = "Config"
	// KindTransient: network cut, server restart, timeouts — retry.
	KindTransient Kind = "Transient"
)

// Error is a classified replication failure naming the operation.
type Error struct {
	Kind Kind
	Op   string
	Err  error
}

// Error names the operation; a purged binlog says that a re-clone is required.
func (e *Error) Error() string {
	if e.Kind == KindBinlogPurged {
		return fmt.Sprintf("%s: binlog needed to resume is no longer on the source: re-clone required: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Err)
}

// Unwrap exposes the underlying driver or network error.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying cannot help.
func (e *Error) Permanent() bool { return e.Kind != KindTransient }

// KindOf returns the kind of a classified error, or KindTransient for an
// unclassified one (an unknown failure is retried, with bounded retries).
func KindOf(err error) Kind {
	var re *Error
	if errors.As(err, &re) {
		return re.Kind
	}
	return KindTransient
}

// classify wraps err with a Kind derived from MySQL error numbers and network
// conditions.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *Error
	if errors.As(err, &re) {
		return err
	}
	return &Error{Kind: kindOf(err), Op: op, Err: err}
}

func kindOf(err error) Kind {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return kindOfNumber(me.Number, me.Message)
	}
	var ge *gomysql.MyError
	if errors.As(err, &ge) {
		return kindOfNumber(ge.Code, ge.Message)
	}
	// A certificate that does not verify, a refused handshake or a server
	// without TLS: retrying cannot help.
	var ve *tls.CertificateVerificationError
	var ae tls.AlertError
	if errors.As(err, &ve) || errors.As(err, &ae) || errors.Is(err, mysql.ErrNoTLS) ||
		strings.Contains(err.Error(), "does not support TLS required") {
		return KindConfig
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne), errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, mysql.ErrInvalidConn), errors.Is(err, context.DeadlineExceeded):
		return KindTransient
	}
	msg := err.Error()
	if strings.Contains(msg, "Could not find GTID state") || strings.Contains(msg, "purged binary logs") {
		return KindBinlogPurged
	}
	return KindTransient
}

func kindOfNumber(n uint16, msg string) Kind {
	switch n {
	case 1236: // ER_MASTER_FATAL_ERROR_READING_BINLOG: GTID not found / purged
		return KindBinlogPurged
	case 1045, 1044, 1142, 1143, 1227, 1370, 1698: // access denied / missing privilege
		return KindAuth
	case 1146, 1054, 1136, 1062, 1366, 1264, 1406, 1292, 1048, 1451, 1452, 1049, 1050, 1051, 1091, 1060, 1061, 1950:
		// missing/duplicate table, column or key; bad value; FK; GTID already applied
		return KindSchemaMismatch
	case 1193, 1231, 1232: // unknown or invalid system variable: wrong server version or settings
		return KindConfig
	case 1040, 1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 1158, 1159, 1160, 1161:
		// too many connections, shutdown, lock wait/deadlock, killed, network
		return KindTransient
	}
	if strings.Contains(msg, "Could not find GTID state") {
		return KindBinlogPurged
	}
	return KindTransient
}
