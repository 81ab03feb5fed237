package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// schemaTable is one table of the application schema and the statement that
// creates it.
type schemaTable struct {
	name string
	ddl  string
}

// schemaTables lists the schema in creation order (parents before children,
// for the foreign keys).
func schemaTables() []schemaTable {
	return []schemaTable{
		{name: "owners", ddl: `CREATE TABLE IF NOT EXISTS owners (
  id         BIGINT      NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(30) NOT NULL,
  last_name  VARCHAR(30) NOT NULL,
  city       VARCHAR(80) NOT NULL,
  telephone  VARCHAR(20) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY owners_last_name (last_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`},
		{name: "pets", ddl: `CREATE TABLE IF NOT EXISTS pets (
  id         BIGINT      NOT NULL AUTO_INCREMENT,
  owner_id   BIGINT      NOT NULL,
  name       VARCHAR(30) NOT NULL,
  type       VARCHAR(30) NOT NULL,
  birth_date DATE        NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY pets_owner_id (owner_id),
  CONSTRAINT pets_owner_fk FOREIGN KEY (owner_id) REFERENCES owners (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`},
		{name: "visits", ddl: `CREATE TABLE IF NOT EXISTS visits (
  id          BIGINT       NOT NULL AUTO_INCREMENT,
  pet_id      BIGINT       NOT NULL,
  visit_date  DATE         NOT NULL,
  description VARCHAR(255) NOT NULL,
  created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  KEY visits_pet_id (pet_id),
  CONSTRAINT visits_pet_fk FOREIGN KEY (pet_id) REFERENCES pets (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`},
	}
}

// Column limits of the schema, enforced by request validation (in characters).
const (
	maxNameLen        = 30
	maxCityLen        = 80
	maxTelephoneLen   = 20
	maxPetTypeLen     = 30
	maxDescriptionLen = 255
)

// missingTables returns the schema tables that do not exist in the current
// database, in creation order.
func (s *Store) missingTables(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = DATABASE() AND table_name IN ('owners', 'pets', 'visits')`)
	if err != nil {
		return nil, classify(err)
	}
	defer rows.Close()
	present := make(map[string]bool, 3)
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, classify(err)
		}
		present[strings.ToLower(name)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, classify(err)
	}
	var missing []string
	for _, t := range schemaTables() {
		if !present[t.name] {
			missing = append(missing, t.name)
		}
	}
	return missing, nil
}

// EnsureSchema creates the tables that are missing and returns their names.
// It returns (nil, nil) when the schema is complete and issues no statement
// then, so that it never writes to a database that already has the schema
// (on a replica, even a no-op CREATE TABLE IF NOT EXISTS would be an errant
// transaction in the binlog). When tables are missing but the database is
// read-only it returns ErrReadOnly: the schema will arrive by replication.
func (s *Store) EnsureSchema(ctx context.Context) ([]string, error) {
	missing, err := s.missingTables(ctx)
	if err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	if len(missing) == 0 {
		return nil, nil
	}
	readOnly, err := s.readOnly(ctx)
	if err != nil {
		return nil, fmt.Errorf("check read_only: %w", err)
	}
	if readOnly {
		return nil, fmt.Errorf("create tables %s: %w", strings.Join(missing, ", "), ErrReadOnly)
	}
	var created []string
	for _, t := range schemaTables() {
		if !slices.Contains(missing, t.name) {
			continue
		}
		if _, err := s.db.ExecContext(ctx, t.ddl); err != nil {
			return created, fmt.Errorf("create table %s: %w", t.name, classify(err))
		}
		created = append(created, t.name)
	}
	return created, nil
}

// ensureSchemaLoop calls EnsureSchema every interval until the schema is
// complete or ctx ends. Each attempt is bounded by a timeout. It logs state
// changes only (created, present, waiting for replication, failing), not every
// retry.
func ensureSchemaLoop(ctx context.Context, st *Store, logger *slog.Logger, interval time.Duration) {
	lastProblem := ""
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		created, err := st.EnsureSchema(attemptCtx)
		cancel()
		switch {
		case err == nil && len(created) > 0:
			logger.Info("schema created", "tables", created)
			return
		case err == nil:
			logger.Info("schema present")
			return
		case ctx.Err() != nil:
			return
		case errors.Is(err, ErrReadOnly):
			if lastProblem != "read-only" {
				logger.Info("database is read-only; waiting for the schema to arrive by replication")
				lastProblem = "read-only"
			}
		default:
			if msg := err.Error(); lastProblem != msg {
				logger.Warn("schema not ready; retrying", "error", err, "retry_in", interval.String())
				lastProblem = msg
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
