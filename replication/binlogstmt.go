package replication

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
)

// The BINLOG statement (MariaDB's mariadb-binlog output format) makes the
// target server apply the source's row events itself, through the same code
// as its replica SQL thread: rows are located by primary key (or, without
// one, by the whole before image), every column type is copied exactly as
// the source logged it, and a missing or duplicate row is an error (1032,
// 1062), so divergence still stops the stream. It needs BINLOG REPLAY, which
// the applier has for the origin GTIDs anyway. Compared with rebuilding
// each row change as SQL, the server parses no values and the applier
// renders none: catch-up is several times cheaper in CPU on both sides.

// formatDescription makes the session use the source's binlog format (the
// header layout and checksum of the events that follow). It is executed at
// once, after the rows already gathered: it is not transactional.
func (a *applier) formatDescription(ctx context.Context, raw []byte) error {
	if len(raw) < eventHeaderLen || bytes.Equal(raw[eventHeaderLen:], a.fdeBody()) {
		return nil
	}
	if err := a.sendRows(ctx); err != nil {
		return err
	}
	if err := a.flush(ctx); err != nil {
		return err
	}
	if _, err := a.conn.ExecContext(ctx, string(binlogStatement(raw))); err != nil {
		return classify("binlog format description", err)
	}
	a.fde = raw
	return nil
}

// eventHeaderLen is the size of a v4 binlog event header; the rest of a
// Format_description event describes the format (timestamps in the header
// differ between binlog files of the same server).
const eventHeaderLen = 19

func (a *applier) fdeBody() []byte {
	if len(a.fde) < eventHeaderLen {
		return nil
	}
	return a.fde[eventHeaderLen:]
}

// tableMap remembers a Table_map event for the row events of the current
// statement that refer to its table id. Only the maps of tables whose rows
// are replicated reach the target (tables of skipped schemas need not exist
// there).
func (a *applier) tableMap(tm *replication.TableMapEvent, raw []byte) {
	a.maps[tm.TableID] = raw
}

// rows adds a row event, preceded by the table map it refers to (once per
// statement), to the rows not yet sent. Events of consecutive statements
// and transactions of a group share one BINLOG statement of up to maxBatch
// bytes; a larger statement is split at a row-event boundary, each part
// repeating the table maps it needs. It returns the number of rows changed.
func (a *applier) rows(ctx context.Context, ev *replication.RowsEvent, raw []byte) (int, error) {
	if len(a.fde) == 0 {
		return 0, &Error{Kind: KindConfig, Op: "rows event", Err: fmt.Errorf(
			"row event for %s.%s before any format description event", ev.Table.Schema, ev.Table.Table)}
	}
	if !a.stmtMaps[ev.TableID] {
		m, ok := a.maps[ev.TableID]
		if !ok {
			return 0, &Error{Kind: KindConfig, Op: "rows event", Err: fmt.Errorf(
				"row event for %s.%s (table id %d) without its table map", ev.Table.Schema, ev.Table.Table, ev.TableID)}
		}
		a.stmt = append(a.stmt, m...)
		a.stmtMaps[ev.TableID] = true
	}
	a.stmt = append(a.stmt, raw...)
	n := len(ev.Rows)
	if ev.Type() == replication.EnumRowsEventTypeUpdate {
		n /= 2
	}
	if len(ev.Table.PrimaryKey) == 0 {
		a.noPK[string(ev.Table.Schema)+"."+string(ev.Table.Table)] = true
	}
	a.rowsTotal += uint64(n)
	if ev.Flags&replication.RowsEventStmtEndFlag != 0 {
		// The server closes the statement's tables here: the next
		// statement brings its own table maps.
		clear(a.maps)
		clear(a.stmtMaps)
	}
	if len(a.stmt) >= a.maxBatch || a.perStatement && ev.Flags&replication.RowsEventStmtEndFlag != 0 {
		if err := a.sendRows(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

// sendRows sends the batch (GTID variables and BEGIN) and then the rows not
// yet sent as one BINLOG statement. A BINLOG statement cannot share a
// multi-statement round trip: the server's reply to it leaves the protocol
// out of step.
func (a *applier) sendRows(ctx context.Context) error {
	if len(a.stmt) == 0 {
		return nil
	}
	if err := a.flush(ctx); err != nil {
		return err
	}
	q := binlogStatement(a.stmt)
	a.stmt = a.stmt[:0]
	clear(a.stmtMaps) // a new BINLOG statement needs its table maps again
	if cap(a.stmt) > 4*a.maxBatch {
		a.stmt = nil // do not keep a huge buffer after a huge event
	}
	if _, err := a.conn.ExecContext(ctx, string(q)); err != nil {
		return classifyRows(err)
	}
	return nil
}

// classifyRows names divergence: the server found no row to update or
// delete (1032) or a duplicate key for an insert (1062).
func classifyRows(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1032 || me.Number == 1062) {
		return &Error{Kind: KindSchemaMismatch, Op: "apply rows", Err: fmt.Errorf(
			"%s: source and target have diverged", me.Message)}
	}
	return classify("apply rows", err)
}

// binlogStatement renders raw events as a BINLOG statement.
func binlogStatement(raw []byte) []byte {
	q := make([]byte, 0, len("BINLOG ''")+base64.StdEncoding.EncodedLen(len(raw)))
	q = append(q, "BINLOG '"...)
	q = base64.StdEncoding.AppendEncode(q, raw)
	return append(q, '\'')
}
