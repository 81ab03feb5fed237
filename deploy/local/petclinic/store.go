package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Error classes returned (wrapped) by Store methods. Handlers map them onto
// HTTP statuses with errors.Is.
var (
	// ErrNotFound: the addressed row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrReadOnly: the database refused a write because read_only is on.
	ErrReadOnly = errors.New("database is read-only")
	// ErrUnavailable: the database could not be reached or the connection broke.
	ErrUnavailable = errors.New("database unavailable")
)

// MariaDB / MySQL server error numbers that classify recognises.
const (
	erConCount            = 1040 // ER_CON_COUNT_ERROR: too many connections
	erServerShutdown      = 1053 // ER_SERVER_SHUTDOWN
	erNoSuchTable         = 1146 // ER_NO_SUCH_TABLE: the schema has not arrived yet
	erOptionPreventsStmt  = 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only
	erReadOnlyTransaction = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	erConnectionKilled    = 1927 // ER_CONNECTION_KILLED (MariaDB)
)

const (
	// healthTimeout bounds one health probe.
	healthTimeout = 2 * time.Second
	// maxOwnersPerPage caps GET /api/owners.
	maxOwnersPerPage = 100
	// likeEscape is the LIKE escape character (see escapeLike).
	likeEscape = '!'
	// dateLayout is the wire and SQL format of DATE values.
	dateLayout = time.DateOnly

	ownerColumns         = "id, first_name, last_name, city, telephone, created_at"
	petColumns           = "id, owner_id, name, type, birth_date, created_at"
	visitColumns         = "id, pet_id, visit_date, description, created_at"
	selectGlobalReadOnly = "SELECT @@global.read_only"
)

// notFoundError names the kind and id of a missing row; it matches ErrNotFound.
type notFoundError struct {
	kind string
	id   int64
}

// Error names the missing entity and id.
func (e *notFoundError) Error() string { return fmt.Sprintf("%s %d not found", e.kind, e.id) }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

// classify wraps err with ErrReadOnly or ErrUnavailable when the driver error
// says so, keeping the cause for logs; other errors are returned unchanged.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrReadOnly), errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotFound):
		return err
	case isReadOnlyError(err):
		return fmt.Errorf("%w: %w", ErrReadOnly, err)
	case isUnavailableError(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// isReadOnlyError reports whether err is the server refusing a write because
// of read_only.
func isReadOnlyError(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	return me.Number == erOptionPreventsStmt || me.Number == erReadOnlyTransaction
}

// isUnavailableError reports whether err means the database cannot be used
// right now: no connection, a broken connection, a timeout, the server going
// down, or the schema not having arrived yet.
func isUnavailableError(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case erConCount, erServerShutdown, erConnectionKilled, erNoSuchTable:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.As(err, &ne)
}

// Store is the SQL layer of the application. It holds only the pool, so any
// number of Stores may share one *sql.DB.
type Store struct {
	db *sql.DB
}

// NewStore returns a Store using db.
func NewStore(db *sql.DB) *Store { return &Store{db: db} }

// Owner is a row of owners.
type Owner struct {
	ID        int64     `json:"id"`
	FirstName string    `json:"first_name"`
	LastName  string    `json:"last_name"`
	City      string    `json:"city"`
	Telephone string    `json:"telephone"`
	CreatedAt time.Time `json:"created_at"`
}

// OwnerDetails is an owner with all its pets (an empty list, never null).
type OwnerDetails struct {
	Owner
	Pets []Pet `json:"pets"`
}

// Pet is a row of pets; BirthDate is YYYY-MM-DD.
type Pet struct {
	ID        int64     `json:"id"`
	OwnerID   int64     `json:"owner_id"`
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	BirthDate string    `json:"birth_date"`
	CreatedAt time.Time `json:"created_at"`
}

// Visit is a row of visits; VisitDate is YYYY-MM-DD.
type Visit struct {
	ID          int64     `json:"id"`
	PetID       int64     `json:"pet_id"`
	VisitDate   string    `json:"visit_date"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

// DBHealth is the database part of /healthz.
type DBHealth struct {
	// Reachable: SELECT @@global.read_only succeeded within the health timeout.
	Reachable bool `json:"reachable"`
	// Writable: Reachable and read_only is off.
	Writable bool `json:"writable"`
	// Schema: the owners, pets and visits tables all exist.
	Schema bool `json:"schema"`
	// Error is the first error met, empty when there was none.
	Error string `json:"error,omitempty"`
}

// Health probes the database afresh (nothing is cached) within 2 seconds.
func (s *Store) Health(ctx context.Context) DBHealth {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	var ro int64
	if err := s.db.QueryRowContext(ctx, selectGlobalReadOnly).Scan(&ro); err != nil {
		return DBHealth{Error: err.Error()}
	}
	h := DBHealth{Reachable: true, Writable: ro == 0}
	missing, err := s.missingTables(ctx)
	if err != nil {
		h.Error = "schema check: " + err.Error()
		return h
	}
	h.Schema = len(missing) == 0
	return h
}

// readOnly reports whether @@global.read_only is on.
func (s *Store) readOnly(ctx context.Context) (bool, error) {
	var ro int64
	if err := s.db.QueryRowContext(ctx, selectGlobalReadOnly).Scan(&ro); err != nil {
		return false, classify(err)
	}
	return ro != 0, nil
}

// inWriteTx runs fn in a transaction that first checks read_only, so a write
// against a read-only server fails with ErrReadOnly even for a user whose
// privileges would let it through. fn's error is classified and the
// transaction rolled back; otherwise it is committed.
func (s *Store) inWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return classify(err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that made us roll back is the one to report
		}
	}()
	var ro int64
	if err = tx.QueryRowContext(ctx, selectGlobalReadOnly).Scan(&ro); err != nil {
		return classify(err)
	}
	if ro != 0 {
		return ErrReadOnly
	}
	if err = fn(tx); err != nil {
		return classify(err)
	}
	if err = tx.Commit(); err != nil {
		return classify(err)
	}
	return nil
}

// now is the creation timestamp stored in created_at: UTC (the driver's
// location), at the column's microsecond precision.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// escapeLike escapes s for use in LIKE ... ESCAPE '!'. A dedicated escape
// character keeps the query independent of the NO_BACKSLASH_ESCAPES sql_mode.
func escapeLike(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == likeEscape || r == '%' || r == '_' {
			b.WriteRune(likeEscape)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ListOwners returns at most 100 owners ordered by id, restricted to those
// whose last name starts with lastNamePrefix when it is not empty (the
// comparison follows the column collation, i.e. is case-insensitive).
func (s *Store) ListOwners(ctx context.Context, lastNamePrefix string) ([]Owner, error) {
	query := "SELECT " + ownerColumns + " FROM owners"
	var args []any
	if lastNamePrefix != "" {
		query += " WHERE last_name LIKE ? ESCAPE '!'"
		args = append(args, escapeLike(lastNamePrefix)+"%")
	}
	query += " ORDER BY id LIMIT ?"
	args = append(args, maxOwnersPerPage)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list owners: %w", classify(err))
	}
	defer rows.Close()
	owners := []Owner{}
	for rows.Next() {
		var o Owner
		if err := rows.Scan(&o.ID, &o.FirstName, &o.LastName, &o.City, &o.Telephone, &o.CreatedAt); err != nil {
			return nil, fmt.Errorf("list owners: %w", classify(err))
		}
		owners = append(owners, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list owners: %w", classify(err))
	}
	return owners, nil
}

// CreateOwner inserts an owner and returns it with its id.
func (s *Store) CreateOwner(ctx context.Context, in OwnerInput) (Owner, error) {
	o := Owner{FirstName: in.FirstName, LastName: in.LastName, City: in.City, Telephone: in.Telephone, CreatedAt: now()}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"INSERT INTO owners (first_name, last_name, city, telephone, created_at) VALUES (?, ?, ?, ?, ?)",
			o.FirstName, o.LastName, o.City, o.Telephone, o.CreatedAt)
		if err != nil {
			return err
		}
		o.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Owner{}, fmt.Errorf("create owner: %w", err)
	}
	return o, nil
}

// GetOwner returns owner id with its pets ordered by id, or an error matching
// ErrNotFound.
func (s *Store) GetOwner(ctx context.Context, id int64) (OwnerDetails, error) {
	var d OwnerDetails
	err := s.db.QueryRowContext(ctx, "SELECT "+ownerColumns+" FROM owners WHERE id = ?", id).
		Scan(&d.ID, &d.FirstName, &d.LastName, &d.City, &d.Telephone, &d.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return OwnerDetails{}, &notFoundError{kind: "owner", id: id}
	}
	if err != nil {
		return OwnerDetails{}, fmt.Errorf("get owner %d: %w", id, classify(err))
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+petColumns+" FROM pets WHERE owner_id = ? ORDER BY id", id)
	if err != nil {
		return OwnerDetails{}, fmt.Errorf("list pets of owner %d: %w", id, classify(err))
	}
	defer rows.Close()
	d.Pets = []Pet{}
	for rows.Next() {
		p, err := scanPet(rows)
		if err != nil {
			return OwnerDetails{}, fmt.Errorf("list pets of owner %d: %w", id, classify(err))
		}
		d.Pets = append(d.Pets, p)
	}
	if err := rows.Err(); err != nil {
		return OwnerDetails{}, fmt.Errorf("list pets of owner %d: %w", id, classify(err))
	}
	return d, nil
}

// scanner is the Scan method shared by *sql.Row and *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanPet(sc scanner) (Pet, error) {
	var p Pet
	var birth time.Time
	if err := sc.Scan(&p.ID, &p.OwnerID, &p.Name, &p.Type, &birth, &p.CreatedAt); err != nil {
		return Pet{}, err
	}
	p.BirthDate = birth.Format(dateLayout)
	return p, nil
}

// CreatePet checks, in one transaction, that owner ownerID exists (locking it
// against concurrent changes) and inserts the pet. A missing owner gives an
// error matching ErrNotFound.
func (s *Store) CreatePet(ctx context.Context, ownerID int64, in NewPet) (Pet, error) {
	p := Pet{OwnerID: ownerID, Name: in.Name, Type: in.Type, BirthDate: in.BirthDate.Format(dateLayout), CreatedAt: now()}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var found int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM owners WHERE id = ? LOCK IN SHARE MODE", ownerID).Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return &notFoundError{kind: "owner", id: ownerID}
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			"INSERT INTO pets (owner_id, name, type, birth_date, created_at) VALUES (?, ?, ?, ?, ?)",
			ownerID, p.Name, p.Type, p.BirthDate, p.CreatedAt)
		if err != nil {
			return err
		}
		p.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Pet{}, fmt.Errorf("create pet for owner %d: %w", ownerID, err)
	}
	return p, nil
}

// GetPet returns pet id, or an error matching ErrNotFound.
func (s *Store) GetPet(ctx context.Context, id int64) (Pet, error) {
	p, err := scanPet(s.db.QueryRowContext(ctx, "SELECT "+petColumns+" FROM pets WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Pet{}, &notFoundError{kind: "pet", id: id}
	}
	if err != nil {
		return Pet{}, fmt.Errorf("get pet %d: %w", id, classify(err))
	}
	return p, nil
}

// CreateVisit checks, in one transaction, that pet petID exists and inserts
// the visit. A missing pet gives an error matching ErrNotFound.
func (s *Store) CreateVisit(ctx context.Context, petID int64, in NewVisit) (Visit, error) {
	v := Visit{PetID: petID, VisitDate: in.VisitDate.Format(dateLayout), Description: in.Description, CreatedAt: now()}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var found int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM pets WHERE id = ? LOCK IN SHARE MODE", petID).Scan(&found)
		if errors.Is(err, sql.ErrNoRows) {
			return &notFoundError{kind: "pet", id: petID}
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			"INSERT INTO visits (pet_id, visit_date, description, created_at) VALUES (?, ?, ?, ?)",
			petID, v.VisitDate, v.Description, v.CreatedAt)
		if err != nil {
			return err
		}
		v.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Visit{}, fmt.Errorf("create visit for pet %d: %w", petID, err)
	}
	return v, nil
}

// ListVisits returns the visits of pet petID ordered by date then id (an
// empty list when it has none), or an error matching ErrNotFound when the pet
// does not exist.
func (s *Store) ListVisits(ctx context.Context, petID int64) ([]Visit, error) {
	if _, err := s.GetPet(ctx, petID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT "+visitColumns+" FROM visits WHERE pet_id = ? ORDER BY visit_date, id", petID)
	if err != nil {
		return nil, fmt.Errorf("list visits of pet %d: %w", petID, classify(err))
	}
	defer rows.Close()
	visits := []Visit{}
	for rows.Next() {
		var v Visit
		var date time.Time
		if err := rows.Scan(&v.ID, &v.PetID, &date, &v.Description, &v.CreatedAt); err != nil {
			return nil, fmt.Errorf("list visits of pet %d: %w", petID, classify(err))
		}
		v.VisitDate = date.Format(dateLayout)
		visits = append(visits, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list visits of pet %d: %w", petID, classify(err))
	}
	return visits, nil
}
