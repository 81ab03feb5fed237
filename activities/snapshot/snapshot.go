// Package snapshot copies a source site's database into a new site at one
// exact GTID (SnapshotCopy), so that Drover's replication stream can start
// exactly where the copy ends, and compares the two databases at one exact
// GTID while the stream runs (SnapshotCompare). Both run at the target site.
//
// # Consistency
//
// The copy reads the source under START TRANSACTION WITH CONSISTENT
// SNAPSHOT. MariaDB takes that snapshot under the same lock that orders
// commits into the binlog, and exposes the binlog offset that matches it as
// the session status Binlog_snapshot_file / Binlog_snapshot_position (there
// is no binlog_snapshot_gtid_pos in 10.11); BINLOG_GTID_POS(file, offset)
// turns that offset into the exact GTID position of the snapshot. Reading
// @@gtid_binlog_pos after START TRANSACTION is NOT exact: a transaction
// committing in between is counted but not seen (checked on 10.11).
//
// Several reader sessions share one read view only if their snapshots were
// taken with no commit in between. Drover first opens them all at once and
// keeps them if their binlog snapshot offsets agree (no lock at all); else
// it takes them under BACKUP STAGE BLOCK_COMMIT (RELOAD privilege), which
// blocks commits — not running statements, unlike FLUSH TABLES WITH READ
// LOCK, which waits for every running query — for the few milliseconds it
// takes, and reports that duration. Without RELOAD it falls back to one
// reader session (parallel writers still).
//
// Table definitions are read in the snapshot session right after the
// snapshot; the binlog between the snapshot's offset and the end of that
// read is then scanned for DDL (a standalone GTID event): if any, the
// snapshot is discarded and taken again, so every definition is the one at
// the copy's GTID. Data is read with explicit column lists; a DDL that a
// snapshot cannot read across fails the read (ER_TABLE_DEF_CHANGED,
// unknown column) and the copy is retried; an instant ADD COLUMN is not
// read and is later replayed by the stream.
//
// A snapshot session holds a metadata lock on every table it has read until
// the snapshot ends: MariaDB 10.11 does not release them at ROLLBACK TO
// SAVEPOINT (checked; mysqldump's per-table savepoints rely on that). So a
// DDL on a table already read waits until its reader has read everything,
// and queues the application's statements on that table behind it. Each
// reader ends its snapshot as soon as it has no task left, and the
// heartbeat lists source sessions waiting for such a lock (BlockedDDL).
//
// # Loading
//
// Rows are read in primary-key order and cut into chunks (by rows and
// bytes); each chunk is written into the target as multi-row INSERTs in
// one target transaction together with its row in drover.clone_progress
// (its key range (lo, hi], rows, bytes), by a bounded pool of writer
// sessions. Memory is bounded by chunk size × (2 × writers + 1). Every
// target write runs with sql_log_bin=0: the target's binlog and GTID state
// get nothing from the copy, so its own domain gets no errant GTID and the
// stream (Drover's replication.Streamer, which resumes from the target's
// checkpoint or its binlog GTIDs in the source's domains, and else from
// StartPosition) starts at exactly the copy's GTID. With CopyInput.Stream
// set, the copy also writes that position as the stream's checkpoint, so
// the stream starts there even if it is not handed start_position.
//
// # Resume
//
// A copy is identified by its clone id. A retry after a crash cannot reuse
// the old read view (it died with the worker's connections), and rows read
// under two snapshots at different GTIDs are not a consistent database:
// no stream start position fits both (the applier is not idempotent, by
// design). So a retry takes a new snapshot at a new GTID G2 and keeps only
// what it can prove equal at G2. Each task (a key range one reader copies)
// records its chunks as a chain in key order: chunk n+1 starts exactly
// where chunk n ends. For a table whose definition is unchanged, a retry
// checks the chain's chunks up to its first hole: each chunk's key range is
// checksummed (row count and the sum of a 64-bit MD5 prefix per row) on
// the source under the new snapshot and on the target; equal chunks are
// kept, a different one is copied again in place (its range deleted and
// reloaded in one transaction); the rest of the task's range, after the
// last kept chunk, is cleared and copied. A changed table definition means
// the table is copied again. The copy's GTID is G2, and every row of the
// target was either copied or verified under G2's snapshot. Verification
// reads both sides, which is much cheaper than loading.
//
// # Comparison
//
// SnapshotCompare compares every table of the replicated schemas between
// the source and the target at one GTID while writes go on: source
// snapshot sessions at position P (as above), and target snapshot sessions
// whose stream checkpoint — which the applier commits in the same target
// transaction as the rows — reads exactly P. It first tries without any
// lock; when the stream never rests at P (steady writes, grouped commits),
// it blocks source commits with BACKUP STAGE BLOCK_COMMIT only until the
// target has applied P and its snapshots are open (typically a few
// milliseconds), then compares CHECKSUM TABLE on both snapshots with no
// lock held.
package snapshot

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/drover-sre/drover/activities/internal/sitedb"
	"github.com/drover-sre/drover/recipe"
)

// Error types of the non-retryable ApplicationErrors these activities
// return. Anything else (network, restarts, a DDL racing the snapshot) is
// retryable.
const (
	// ErrAuth: credentials or privileges are wrong.
	ErrAuth = sitedb.ErrTypeAuth
	// ErrConfig: bad input (unknown schema, malformed clone id), an
	// unresolvable secret, or a server that cannot be copied from or into
	// as configured (no binary log, max_allowed_packet too small).
	ErrConfig = sitedb.ErrTypeConfig
	// ErrTargetNotEmpty: the target already holds a schema the copy would
	// write, and the input does not allow replacing it.
	ErrTargetNotEmpty = "CloneTargetNotEmpty"
)

// Defaults for zero fields of the inputs.
const (
	// DefaultWorkers is the number of target writer sessions.
	DefaultWorkers = 4
	// DefaultReadSessions is the number of source snapshot sessions: one
	// reader outpaces the writers on the machines measured, needs no lock
	// and no RELOAD privilege.
	DefaultReadSessions = 1
	// DefaultChunkRows and DefaultChunkBytes bound a chunk.
	DefaultChunkRows  = 50_000
	DefaultChunkBytes = 4 << 20
	// DefaultStatementBytes bounds one multi-row INSERT.
	DefaultStatementBytes = 1 << 20
	// DefaultHeartbeat is how often progress is reported.
	DefaultHeartbeat = 2 * time.Second
	// DefaultCompareWait bounds how long SnapshotCompare waits for the
	// target to apply the source's position.
	DefaultCompareWait = 30 * time.Second
)

// Activities are the snapshot activities. They hold no clients: each call
// opens its connections from the sites in its input, with secrets resolved
// here, at the worker. DialTimeout bounds connecting (default 5s).
type Activities struct {
	DialTimeout time.Duration
}

// CopyInput describes one consistent copy. Sites carry secret references
// only. The copy connects to both sites with their admin accounts.
type CopyInput struct {
	// CloneID identifies the copy across retries and crashes. Empty: the
	// workflow ID, run ID and activity ID of the calling activity, which
	// are the same for every retry of it (and differ for a later run that
	// reuses the workflow ID). A workflow that may continue-as-new during
	// a copy should pass its own stable id.
	CloneID string      `json:"clone_id,omitempty"`
	Source  recipe.Site `json:"source"`
	Target  recipe.Site `json:"target"`
	// Schemas to copy; empty: every schema of the source except mysql,
	// information_schema, performance_schema, sys and drover.
	Schemas []string `json:"schemas,omitempty"`
	// Stream, when set, is the replication stream that will continue from
	// the copy (replicate.StreamName): the copy writes its GTID as that
	// stream's checkpoint on the target.
	Stream string `json:"stream,omitempty"`
	// Workers is the number of target writer sessions (default 4).
	Workers int `json:"workers,omitempty"`
	// ReadSessions is the number of source snapshot sessions sharing one
	// read view (default 1). More than one may need RELOAD on the source.
	ReadSessions int `json:"read_sessions,omitempty"`
	// ChunkRows and ChunkBytes bound one chunk (one target transaction and
	// one resumable unit). Defaults 50,000 rows, 4 MiB.
	ChunkRows  int `json:"chunk_rows,omitempty"`
	ChunkBytes int `json:"chunk_bytes,omitempty"`
	// ReplaceExisting allows dropping target schemas that already exist
	// (never the drover schema). Without it such a target is refused.
	ReplaceExisting bool `json:"replace_existing,omitempty"`
}

// TableResult is one copied table.
type TableResult struct {
	Table  string `json:"table"` // schema.table
	Rows   uint64 `json:"rows"`
	Bytes  uint64 `json:"bytes"`
	Chunks int    `json:"chunks"`
	// Reused chunks were copied by an earlier attempt and verified equal
	// under this attempt's snapshot.
	Reused int `json:"reused,omitempty"`
	// Whole is set when the table was copied as one chunk, with the reason
	// (no primary key, or a key type that cannot be chunked).
	Whole string `json:"whole,omitempty"`
}

// CopyResult is what a finished copy reports. GTID is the position the
// stream must start from (ReplicationSupervisor's start_position).
type CopyResult struct {
	CloneID string `json:"clone_id"`
	GTID    string `json:"gtid"`
	// BinlogFile and BinlogPos are the snapshot's binlog coordinates on
	// the source.
	BinlogFile string `json:"binlog_file"`
	BinlogPos  uint64 `json:"binlog_pos"`
	// Attempt counts the snapshots taken for this clone id (1 = no resume).
	Attempt int           `json:"attempt"`
	Schemas []string      `json:"schemas"`
	Tables  []TableResult `json:"tables"`
	Rows    uint64        `json:"rows"`
	Bytes   uint64        `json:"bytes"`
	Chunks  int           `json:"chunks"`
	// ReusedChunks were kept from earlier attempts after verification;
	// RecopiedChunks were found different and copied again.
	ReusedChunks   int `json:"reused_chunks"`
	RecopiedChunks int `json:"recopied_chunks"`
	// NoPKTables were copied whole; WholeTables lists every table copied as
	// one chunk (no primary key or an unchunkable key type).
	NoPKTables  []string `json:"no_pk_tables,omitempty"`
	WholeTables []string `json:"whole_tables,omitempty"`
	// NonTransactional tables (not InnoDB) are read without a consistent
	// snapshot: their copy may not match GTID exactly.
	NonTransactional []string `json:"non_transactional,omitempty"`
	Views            int      `json:"views"`
	Triggers         int      `json:"triggers"`
	Routines         int      `json:"routines"`
	// Skipped names objects that are not copied (events), with why.
	Skipped []string `json:"skipped,omitempty"`
	// ReadSessions is how many snapshot sessions read the source, and
	// SnapshotMethod how they got one read view: "single", "agreed" (no
	// lock) or "backup-stage" (commits blocked for WriteHoldMS).
	ReadSessions   int     `json:"read_sessions"`
	SnapshotMethod string  `json:"snapshot_method"`
	WriteHoldMS    float64 `json:"write_hold_ms"`
	// SnapshotRetries counts snapshots discarded because a DDL ran while
	// the definitions were read.
	SnapshotRetries int       `json:"snapshot_retries,omitempty"`
	Warnings        []string  `json:"warnings,omitempty"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	// AlreadyDone is set when this clone id had already finished: nothing
	// was done and the stored result is returned.
	AlreadyDone bool `json:"already_done,omitempty"`
}

// Progress is the heartbeat of both activities, sent every few seconds.
// Phase is snapshot, schema, rows, objects or done for a copy, and
// compare-wait (finding one position on both sides) or compare for a
// comparison.
type Progress struct {
	CloneID     string   `json:"clone_id,omitempty"`
	Attempt     int      `json:"attempt,omitempty"`
	Phase       string   `json:"phase"`
	GTID        string   `json:"gtid,omitempty"`
	TablesDone  int      `json:"tables_done"`
	TablesTotal int      `json:"tables_total"`
	Rows        uint64   `json:"rows"`
	Bytes       uint64   `json:"bytes"`
	RowsTotal   uint64   `json:"rows_estimate"` // from table statistics
	ChunksDone  int      `json:"chunks_done"`
	Reused      int      `json:"chunks_reused"`
	Current     []string `json:"current,omitempty"` // tables being read
	// BlockedDDL lists source sessions waiting for a metadata lock the copy
	// holds (a DDL on a table already read waits until the copy has read
	// everything).
	BlockedDDL []string      `json:"blocked_ddl,omitempty"`
	Elapsed    time.Duration `json:"elapsed"`
}

// Options are what the library entry points need besides their input.
type Options struct {
	DialTimeout time.Duration
	// Progress, when set, receives progress every Heartbeat (default 2s)
	// and at phase changes.
	Progress  func(Progress)
	Heartbeat time.Duration
	// Logger receives decisions (fallbacks, retries); nil discards them.
	Logger Logger
}

// Logger is the logging the copy needs; the SDK's logger and *slog.Logger
// both satisfy it.
type Logger interface {
	Info(msg string, keyvals ...any)
	Warn(msg string, keyvals ...any)
}

// SnapshotCopy copies the source site's database into the target site at
// one exact GTID and returns it (see the package comment). It heartbeats
// Progress, honours cancellation, and resumes after a crash when retried
// with the same clone id. A clone id that already finished returns its
// stored result. Errors: bad input, missing privileges and a non-empty
// target are non-retryable; everything else is retried by the caller.
func (a *Activities) SnapshotCopy(ctx context.Context, in CopyInput) (CopyResult, error) {
	if in.CloneID == "" {
		in.CloneID = defaultCloneID(activity.GetInfo(ctx))
	}
	res, err := Copy(ctx, in, a.options(ctx))
	return res, toTemporal(err)
}

// SnapshotCompare compares the replicated schemas of the source and target
// sites at one GTID (see the package comment and CompareInput). It returns
// a result whose Equal says whether every table matched; a difference is
// not an error. Errors: bad input and privileges are non-retryable; a
// target that does not reach the source's position in time is retryable.
func (a *Activities) SnapshotCompare(ctx context.Context, in CompareInput) (CompareResult, error) {
	res, err := Compare(ctx, in, a.options(ctx))
	return res, toTemporal(err)
}

// defaultCloneID is workflowID/runID/activityID, shortened to a hash when
// longer than a clone id may be.
func defaultCloneID(info activity.Info) string {
	id := info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID + "/" + info.ActivityID
	if len(id) > 191 {
		h := sha1.Sum([]byte(id))
		id = id[:150] + "~" + hex.EncodeToString(h[:])
	}
	return id
}

func (a *Activities) options(ctx context.Context) Options {
	return Options{DialTimeout: a.DialTimeout, Logger: activity.GetLogger(ctx),
		Progress: func(p Progress) { activity.RecordHeartbeat(ctx, p) }}
}

// Error is a classified failure naming the operation and its target.
type Error struct {
	// Type is ErrAuth, ErrConfig, ErrTargetNotEmpty, or "" for a failure a
	// retry may fix.
	Type string
	Msg  string
	Err  error
}

// Error is the message with its cause.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether a retry cannot help.
func (e *Error) Permanent() bool { return e.Type != "" }

// TypeOf returns the Type of a classified error ("" otherwise).
func TypeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Type
	}
	return ""
}

// fail wraps err with msg, classified by what can fix it.
func fail(msg string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Type: e.Type, Msg: msg, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Type: errType(err), Msg: msg, Err: err}
}

func failf(typ, format string, args ...any) error {
	return &Error{Type: typ, Msg: fmt.Sprintf(format, args...)}
}

func errType(err error) string {
	if typ := sitedb.KindOf(err).ErrType(); typ != "" {
		return typ
	}
	if errors.Is(err, mysql.ErrPktTooLarge) {
		return ErrConfig
	}
	switch sitedb.ErrNumber(err) {
	case 1153, 1301: // packet or result bigger than max_allowed_packet
		return ErrConfig
	case 1286, 1289: // unknown storage engine, feature disabled
		return ErrConfig
	case 1381: // binary logging not enabled
		return ErrConfig
	case 1290: // read_only: the account lacks READ_ONLY ADMIN
		return ErrAuth
	}
	return ""
}

// toTemporal turns permanent errors into non-retryable ApplicationErrors.
func toTemporal(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Permanent() {
		return temporal.NewNonRetryableApplicationError(err.Error(), e.Type, err)
	}
	return err
}
