package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/drover-sre/drover/tests/testenv"
)

// The handlers run against the real MariaDB servers of TestMain, through the
// application account and the application's own connection pool. Tests run
// one after another: several change server-wide state (read_only, the schema,
// the server process).

func decodeBody[T any](t *testing.T, r reply) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(r.body), &v), r.body)
	return v
}

func (a *app) health(t *testing.T) (reply, healthResponse) {
	t.Helper()
	r := a.do(t, "GET", "/healthz", "")
	assert.Equal(t, "no-store", r.header.Get("Cache-Control"))
	h := decodeBody[healthResponse](t, r)
	assert.GreaterOrEqual(t, h.LatencyMS, 0.0)
	return r, h
}

func (a *app) createOwner(t *testing.T, first, last string) Owner {
	t.Helper()
	body := fmt.Sprintf(`{"first_name":%q,"last_name":%q,"city":"Madison","telephone":"6085551023"}`, first, last)
	r := a.do(t, "POST", "/api/owners", body)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	return decodeBody[Owner](t, r)
}

func (a *app) createPet(t *testing.T, ownerID int64, name, birth string) Pet {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"type":"cat","birth_date":%q}`, name, birth)
	r := a.do(t, "POST", fmt.Sprintf("/api/owners/%d/pets", ownerID), body)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	return decodeBody[Pet](t, r)
}

func (a *app) createVisit(t *testing.T, petID int64, date, description string) Visit {
	t.Helper()
	body := fmt.Sprintf(`{"visit_date":%q,"description":%q}`, date, description)
	r := a.do(t, "POST", fmt.Sprintf("/api/pets/%d/visits", petID), body)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	return decodeBody[Visit](t, r)
}

// assertRefused checks a 503 reply with the given error and the retry hint.
func assertRefused(t *testing.T, r reply, want, what string) {
	t.Helper()
	assert.Equal(t, http.StatusServiceUnavailable, r.code, what)
	assert.Equal(t, "2", r.header.Get("Retry-After"), what)
	assert.Equal(t, errorResponse{Error: want}, decodeBody[errorResponse](t, r), what)
}

func TestHealthzOK(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	r, h := a.health(t)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, DBHealth{Reachable: true, Writable: true, Schema: true}, h.DB)
}

// TestHealthzReadOnly also proves that the probe is never cached: the same
// handler follows read_only both ways.
func TestHealthzReadOnly(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	_, h := a.health(t)
	require.Equal(t, "ok", h.Status)

	shared.setReadOnly(t, true)
	r, h := a.health(t)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "read-only", h.Status)
	assert.Equal(t, DBHealth{Reachable: true, Writable: false, Schema: true}, h.DB)

	require.NoError(t, shared.SetReadOnly(t.Context(), false))
	_, h = a.health(t)
	assert.Equal(t, "ok", h.Status)
}

func TestWritesRefusedWhenReadOnly(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	owner := a.createOwner(t, "George", "Franklin")
	pet := a.createPet(t, owner.ID, "Leo", "2020-09-07")
	a.createVisit(t, pet.ID, "2026-01-02", "shots")

	shared.setReadOnly(t, true)
	rows, pos, sent := shared.rows(t), shared.gtidPos(t), shared.traceApp(t)
	posts := []struct{ path, body string }{
		{"/api/owners", `{"first_name":"Betty","last_name":"Davis","city":"Sun Prairie","telephone":"6085551749"}`},
		{fmt.Sprintf("/api/owners/%d/pets", owner.ID), `{"name":"Basil","type":"hamster","birth_date":"2021-08-06"}`},
		{fmt.Sprintf("/api/pets/%d/visits", pet.ID), `{"visit_date":"2026-01-03","description":"check-up"}`},
	}
	for _, p := range posts {
		assertRefused(t, a.do(t, "POST", p.path, p.body), "database is read-only", p.path)
	}
	assert.Equal(t, rows, shared.rows(t), "nothing was written")
	assert.Equal(t, pos, shared.gtidPos(t), "nothing reached the binlog")
	require.NotEmpty(t, sent(), "each POST checked read_only")
	assert.Empty(t, writes(sent()), "no write was even attempted")

	reads := map[string]string{
		"/api/owners":                              `"last_name":"Franklin"`,
		"/api/owners?last_name=Fr":                 `"first_name":"George"`,
		fmt.Sprintf("/api/owners/%d", owner.ID):    `"name":"Leo"`,
		fmt.Sprintf("/api/pets/%d", pet.ID):        `"name":"Leo"`,
		fmt.Sprintf("/api/pets/%d/visits", pet.ID): `"description":"shots"`,
		"/": "George Franklin",
	}
	for path, want := range reads {
		r := a.do(t, "GET", path, "")
		assert.Equal(t, http.StatusOK, r.code, path)
		assert.Contains(t, r.body, want, path)
	}
}

// TestAppAccountIsBoundByReadOnly proves the set-up the read-only tests rely
// on: the application account cannot bypass read_only, and the server's own
// refusal is classified as ErrReadOnly.
func TestAppAccountIsBoundByReadOnly(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	rows, err := a.db.QueryContext(t.Context(), "SHOW GRANTS")
	require.NoError(t, err)
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var g string
		require.NoError(t, rows.Scan(&g))
		grants = append(grants, g)
	}
	require.NoError(t, rows.Err())
	require.Len(t, grants, 2, grants)
	assert.True(t, strings.HasPrefix(grants[0], "GRANT USAGE ON *.* TO `petclinic`@`%`"), grants[0])
	assert.True(t, strings.HasPrefix(grants[1], "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER ON `petclinic`.*"), grants[1])

	shared.setReadOnly(t, true)
	_, err = a.db.ExecContext(t.Context(),
		"INSERT INTO owners (first_name, last_name, city, telephone) VALUES ('a', 'b', 'c', '1')")
	var me *mysql.MySQLError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, uint16(erOptionPreventsStmt), me.Number)
	assert.ErrorIs(t, classify(err), ErrReadOnly)
	assert.Zero(t, shared.rows(t)["owners"])
}

// TestInsertRefusedAsReadOnly covers read_only turning on between the
// transaction's read_only check and its INSERT: the server itself answers the
// INSERT with error 1290 (raised here by a trigger, as the race cannot be timed
// from outside), and the client still gets 503 "database is read-only".
func TestInsertRefusedAsReadOnly(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	shared.exec(t, `CREATE TRIGGER petclinic.owners_refuse BEFORE INSERT ON petclinic.owners FOR EACH ROW
SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1290,
MESSAGE_TEXT = 'The MariaDB server is running with the --read-only option so it cannot execute this statement'`)
	t.Cleanup(func() {
		if _, err := shared.root.ExecContext(context.Background(), "DROP TRIGGER IF EXISTS petclinic.owners_refuse"); err != nil {
			t.Errorf("drop trigger: %v", err)
		}
	})
	r := a.do(t, "POST", "/api/owners", `{"first_name":"George","last_name":"Franklin","city":"Madison","telephone":"6085551023"}`)
	assertRefused(t, r, "database is read-only", "POST /api/owners")
	assert.Contains(t, a.logs.String(), "--read-only option")
	assert.Zero(t, shared.rows(t)["owners"])
}

// TestOtherServerErrorsAreHidden: a real duplicate-key error becomes a 500
// whose body hides the server's message; the log keeps it.
func TestOtherServerErrorsAreHidden(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	shared.exec(t, "ALTER TABLE petclinic.owners ADD UNIQUE KEY owners_telephone_uq (telephone)")
	t.Cleanup(func() {
		if _, err := shared.root.ExecContext(context.Background(), "ALTER TABLE petclinic.owners DROP KEY owners_telephone_uq"); err != nil {
			t.Errorf("drop key: %v", err)
		}
	})
	const body = `{"first_name":"George","last_name":"Franklin","city":"Madison","telephone":"6085550199"}`
	require.Equal(t, http.StatusCreated, a.do(t, "POST", "/api/owners", body).code)
	r := a.do(t, "POST", "/api/owners", body)
	assert.Equal(t, http.StatusInternalServerError, r.code)
	assert.Equal(t, errorResponse{Error: "internal error"}, decodeBody[errorResponse](t, r))
	assert.NotContains(t, r.body, "6085550199")
	assert.Empty(t, r.header.Get("Retry-After"))
	assert.Contains(t, a.logs.String(), "Duplicate entry '6085550199'")
	assert.Equal(t, 1, shared.rows(t)["owners"])
}

func TestOwners(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)

	r := a.do(t, "GET", "/api/owners", "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "[]\n", r.body, "an empty list is an array")

	r = a.do(t, "POST", "/api/owners", `{"first_name":" George ","last_name":"Franklin","city":"Madison","telephone":" 608-555-1023 "}`)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	george := decodeBody[Owner](t, r)
	assert.Equal(t, fmt.Sprintf("/api/owners/%d", george.ID), r.header.Get("Location"))
	assert.Equal(t, Owner{ID: george.ID, FirstName: "George", LastName: "Franklin", City: "Madison",
		Telephone: "608-555-1023", CreatedAt: george.CreatedAt}, george)
	assert.WithinDuration(t, time.Now(), george.CreatedAt, time.Minute)

	var first, tel string
	require.NoError(t, shared.root.QueryRowContext(t.Context(),
		"SELECT first_name, telephone FROM petclinic.owners WHERE id = ?", george.ID).Scan(&first, &tel))
	assert.Equal(t, []string{"George", "608-555-1023"}, []string{first, tel}, "stored trimmed")

	betty := a.createOwner(t, "Betty", "Davis")
	club := a.createOwner(t, "Jean", "50%_Club")
	a.createOwner(t, "Jeff", "50ab") // matches 50%_ only if the wildcards are not escaped

	r = a.do(t, "GET", "/api/owners", "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	all := decodeBody[[]Owner](t, r)
	require.Len(t, all, 4)
	assert.Equal(t, george, all[0], "what was created is what is read back")
	assert.Equal(t, []int64{george.ID, betty.ID, club.ID}, []int64{all[0].ID, all[1].ID, all[2].ID}, "ordered by id")

	filters := map[string][]int64{
		"davis":     {betty.ID},  // the column collation is case-insensitive
		"%20Fra%20": {george.ID}, // trimmed
		"50%25_":    {club.ID},   // % and _ are literal
		"Nobody":    {},
	}
	for query, want := range filters {
		r := a.do(t, "GET", "/api/owners?last_name="+query, "")
		require.Equal(t, http.StatusOK, r.code, r.body)
		ids := []int64{}
		for _, o := range decodeBody[[]Owner](t, r) {
			ids = append(ids, o.ID)
		}
		assert.Equal(t, want, ids, query)
	}

	r = a.do(t, "GET", fmt.Sprintf("/api/owners/%d", george.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Contains(t, r.body, `"pets":[]`, "no pets is an empty array")
	assert.Equal(t, OwnerDetails{Owner: george, Pets: []Pet{}}, decodeBody[OwnerDetails](t, r))

	// The list is capped at 100 owners.
	shared.exec(t, `INSERT INTO petclinic.owners (first_name, last_name, city, telephone)
SELECT 'Bulk', CONCAT('Owner', seq), 'Madison', '1' FROM petclinic.seq_1_to_120`)
	r = a.do(t, "GET", "/api/owners", "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Len(t, decodeBody[[]Owner](t, r), maxOwnersPerPage)
}

func TestPetsAndVisits(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	owner := a.createOwner(t, "George", "Franklin")

	r := a.do(t, "POST", fmt.Sprintf("/api/owners/%d/pets", owner.ID), `{"name":" Leo ","type":"cat","birth_date":"2020-09-07"}`)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	leo := decodeBody[Pet](t, r)
	assert.Equal(t, fmt.Sprintf("/api/pets/%d", leo.ID), r.header.Get("Location"))
	assert.Equal(t, Pet{ID: leo.ID, OwnerID: owner.ID, Name: "Leo", Type: "cat", BirthDate: "2020-09-07", CreatedAt: leo.CreatedAt}, leo)
	assert.WithinDuration(t, time.Now(), leo.CreatedAt, time.Minute)

	var ownerID int64
	var name, birth string
	require.NoError(t, shared.root.QueryRowContext(t.Context(),
		"SELECT owner_id, name, CAST(birth_date AS CHAR) FROM petclinic.pets WHERE id = ?", leo.ID).Scan(&ownerID, &name, &birth))
	assert.Equal(t, owner.ID, ownerID)
	assert.Equal(t, "Leo", name)
	assert.Equal(t, "2020-09-07", birth)

	r = a.do(t, "GET", fmt.Sprintf("/api/pets/%d", leo.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, leo, decodeBody[Pet](t, r))

	basil := a.createPet(t, owner.ID, "Basil", "2019-01-01")
	r = a.do(t, "GET", fmt.Sprintf("/api/owners/%d", owner.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, OwnerDetails{Owner: owner, Pets: []Pet{leo, basil}}, decodeBody[OwnerDetails](t, r))

	r = a.do(t, "GET", fmt.Sprintf("/api/pets/%d/visits", leo.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "[]\n", r.body)

	r = a.do(t, "POST", fmt.Sprintf("/api/pets/%d/visits", leo.ID), `{"visit_date":"2026-03-01","description":" rabies shot "}`)
	require.Equal(t, http.StatusCreated, r.code, r.body)
	rabies := decodeBody[Visit](t, r)
	assert.Equal(t, Visit{ID: rabies.ID, PetID: leo.ID, VisitDate: "2026-03-01", Description: "rabies shot", CreatedAt: rabies.CreatedAt}, rabies)
	checkup := a.createVisit(t, leo.ID, "2025-12-24", "check-up")
	sameDay := a.createVisit(t, leo.ID, "2026-03-01", "booster")
	a.createVisit(t, basil.ID, "2025-01-01", "not Leo's")

	r = a.do(t, "GET", fmt.Sprintf("/api/pets/%d/visits", leo.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, []Visit{checkup, rabies, sameDay}, decodeBody[[]Visit](t, r), "by date, then id; only Leo's")
}

// TestCreateLocksParent proves that creating a pet or a visit checks its
// parent with a locking read inside the write transaction: while another
// transaction deletes the parent, the request waits for it and then answers
// 404. (A plain read would see the old row and the INSERT would fail on the
// foreign key with a 500.)
func TestCreateLocksParent(t *testing.T) {
	tests := []struct {
		name, parent, child, body, want string
		withPet                         bool
	}{
		{name: "pet", parent: "owners", child: "pets", body: `{"name":"Leo","type":"cat","birth_date":"2020-09-07"}`, want: "owner %d not found"},
		{name: "visit", parent: "pets", child: "visits", body: `{"visit_date":"2026-01-02","description":"shots"}`, want: "pet %d not found", withPet: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shared.fresh(t)
			a := newApp(t, shared)
			owner := a.createOwner(t, "George", "Franklin")
			parentID, path := owner.ID, fmt.Sprintf("/api/owners/%d/pets", owner.ID)
			if tt.withPet {
				pet := a.createPet(t, owner.ID, "Leo", "2020-09-07")
				parentID, path = pet.ID, fmt.Sprintf("/api/pets/%d/visits", pet.ID)
			}

			tx, err := shared.root.BeginTx(t.Context(), nil)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			_, err = tx.ExecContext(t.Context(), "DELETE FROM petclinic."+tt.parent+" WHERE id = ?", parentID)
			require.NoError(t, err)

			type result struct {
				r   reply
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := a.send(context.Background(), "POST", path, tt.body)
				done <- result{r, err}
			}()
			// A live counter: information_schema.innodb_trx is a cache that
			// is not refreshed while it is read more often than every 100 ms.
			waiting := testenv.WaitFor(10*time.Second, func() bool {
				var n int
				err := shared.root.QueryRowContext(t.Context(), `SELECT variable_value FROM information_schema.global_status
WHERE variable_name = 'INNODB_ROW_LOCK_CURRENT_WAITS'`).Scan(&n)
				return err == nil && n > 0
			})
			require.NoError(t, tx.Commit())
			var res result
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("request did not finish")
			}
			require.True(t, waiting, "the request never waited for the deleting transaction")
			require.NoError(t, res.err)
			assert.Equal(t, http.StatusNotFound, res.r.code, res.r.body)
			assert.Equal(t, errorResponse{Error: fmt.Sprintf(tt.want, parentID)}, decodeBody[errorResponse](t, res.r))
			assert.Zero(t, shared.rows(t)[tt.child])
		})
	}
}

func TestNotFound(t *testing.T) {
	const missing = 1 << 40
	tests := []struct{ method, path, body, want string }{
		{"GET", "/api/owners/%d", "", "owner %d not found"},
		{"GET", "/api/pets/%d", "", "pet %d not found"},
		{"GET", "/api/pets/%d/visits", "", "pet %d not found"},
		{"POST", "/api/owners/%d/pets", `{"name":"Leo","type":"cat","birth_date":"2020-09-07"}`, "owner %d not found"},
		{"POST", "/api/pets/%d/visits", `{"visit_date":"2026-01-02","description":"shots"}`, "pet %d not found"},
	}
	shared.fresh(t)
	a := newApp(t, shared)
	owner := a.createOwner(t, "George", "Franklin")
	a.createVisit(t, a.createPet(t, owner.ID, "Leo", "2020-09-07").ID, "2026-01-01", "shots")
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rows, pos := shared.rows(t), shared.gtidPos(t)
			r := a.do(t, tt.method, fmt.Sprintf(tt.path, missing), tt.body)
			assert.Equal(t, http.StatusNotFound, r.code, r.body)
			assert.Equal(t, errorResponse{Error: fmt.Sprintf(tt.want, missing)}, decodeBody[errorResponse](t, r))
			assert.Equal(t, rows, shared.rows(t), "nothing is written for a missing parent")
			assert.Equal(t, pos, shared.gtidPos(t))
		})
	}
}

// TestBadRequests sends invalid requests to a handler on the real database,
// addressing rows that exist: the request would succeed but for the invalid
// part. Each gets 400 and sends not one statement to the server.
func TestBadRequests(t *testing.T) {
	const owner = `{"first_name":"George","last_name":"Franklin","city":"Madison","telephone":"6085551023"}`
	tests := []struct {
		name, method, path, body, wantField string
	}{
		{"owner empty body", "POST", "/api/owners", "", "body"},
		{"owner not JSON", "POST", "/api/owners", "first_name=George", "body"},
		{"owner two objects", "POST", "/api/owners", owner + owner, "body"},
		{"owner unknown field", "POST", "/api/owners", `{"first_name":"George","address":"x"}`, "address"},
		{"owner missing first_name", "POST", "/api/owners", `{"last_name":"Franklin","city":"Madison","telephone":"6085551023"}`, "first_name"},
		{"owner missing telephone", "POST", "/api/owners", `{"first_name":"George","last_name":"Franklin","city":"Madison"}`, "telephone"},
		{"owner letters in telephone", "POST", "/api/owners", strings.Replace(owner, "6085551023", "608-CALL-1023", 1), "telephone"},
		{"owner number as string field", "POST", "/api/owners", `{"first_name":1}`, "first_name"},
		{"owner oversize", "POST", "/api/owners", `{"city":"` + strings.Repeat("x", 70<<10) + `"}`, "body"},
		{"owner long last_name", "POST", "/api/owners", strings.Replace(owner, "Franklin", strings.Repeat("F", 31), 1), "last_name"},
		{"owners filter too long", "GET", "/api/owners?last_name=" + strings.Repeat("F", 31), "", "last_name"},
		{"owner bad id", "GET", "/api/owners/abc", "", "id"},
		{"owner zero id", "GET", "/api/owners/0", "", "id"},
		{"pet bad owner id", "POST", "/api/owners/-3/pets", `{"name":"Leo","type":"cat","birth_date":"2020-09-07"}`, "id"},
		{"pet bad date", "POST", "/api/owners/{owner}/pets", `{"name":"Leo","type":"cat","birth_date":"07/09/2020"}`, "birth_date"},
		{"pet ancient date", "POST", "/api/owners/{owner}/pets", `{"name":"Leo","type":"cat","birth_date":"0999-12-31"}`, "birth_date"},
		{"pet missing type", "POST", "/api/owners/{owner}/pets", `{"name":"Leo","birth_date":"2020-09-07"}`, "type"},
		{"pet future birth", "POST", "/api/owners/{owner}/pets", `{"name":"Leo","type":"cat","birth_date":"2999-01-01"}`, "birth_date"},
		{"pet unknown field", "POST", "/api/owners/{owner}/pets", `{"name":"Leo","type":"cat","birth_date":"2020-09-07","owner_id":2}`, "owner_id"},
		{"get pet bad id", "GET", "/api/pets/1e3", "", "id"},
		{"visit missing description", "POST", "/api/pets/{pet}/visits", `{"visit_date":"2026-01-02"}`, "description"},
		{"visit control character", "POST", "/api/pets/{pet}/visits", `{"visit_date":"2026-01-02","description":"a\u0007b"}`, "description"},
		{"visit bad date", "POST", "/api/pets/{pet}/visits", `{"visit_date":"2026-02-30","description":"x"}`, "visit_date"},
		{"visits bad id", "GET", "/api/pets/x/visits", "", "id"},
	}
	shared.fresh(t)
	a := newApp(t, shared)
	o := a.createOwner(t, "George", "Franklin")
	p := a.createPet(t, o.ID, "Leo", "2020-09-07")
	ids := strings.NewReplacer("{owner}", strconv.FormatInt(o.ID, 10), "{pet}", strconv.FormatInt(p.ID, 10))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, pos, sent := shared.rows(t), shared.gtidPos(t), shared.traceApp(t)
			r := a.do(t, tt.method, ids.Replace(tt.path), tt.body)
			assert.Equal(t, http.StatusBadRequest, r.code, r.body)
			assert.Equal(t, "application/json; charset=utf-8", r.header.Get("Content-Type"))
			got := decodeBody[errorResponse](t, r)
			assert.Equal(t, tt.wantField, got.Field)
			assert.True(t, strings.HasPrefix(got.Error, tt.wantField+": "), got.Error)
			assert.Empty(t, sent(), "no statement reached the server")
			assert.Equal(t, rows, shared.rows(t), "nothing was written")
			assert.Equal(t, pos, shared.gtidPos(t))
		})
	}

	// The same measurement sees a valid request.
	sent := shared.traceApp(t)
	a.createPet(t, o.ID, "Basil", "2021-08-06")
	assert.Len(t, writes(sent()), 1)
	assert.Equal(t, 2, shared.rows(t)["pets"])
}

func TestIndexEscapesNames(t *testing.T) {
	shared.fresh(t)
	a := newApp(t, shared)
	r := a.do(t, "GET", "/", "")
	require.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.body, "No owners yet.")

	george := a.createOwner(t, "George", "Franklin")
	a.createOwner(t, "<script>alert(1)</script>", "Davis")
	r = a.do(t, "GET", "/", "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, "text/html; charset=utf-8", r.header.Get("Content-Type"))
	assert.Contains(t, r.body, fmt.Sprintf(`<a href="/api/owners/%d">%d</a></td><td>George Franklin</td>`, george.ID, george.ID))
	assert.Contains(t, r.body, "&lt;script&gt;alert(1)&lt;/script&gt; Davis")
	assert.NotContains(t, r.body, "<script>")
}

func TestRouting(t *testing.T) {
	a := newApp(t, shared)
	assert.Equal(t, http.StatusMethodNotAllowed, a.do(t, "DELETE", "/api/owners", "").code)
	assert.Equal(t, http.StatusMethodNotAllowed, a.do(t, "PUT", "/api/pets/1", "").code)
	assert.Equal(t, http.StatusNotFound, a.do(t, "GET", "/nope", "").code)
}

// TestSchemaWaitsForWritableDatabase runs the schema loop on a bare database:
// while it is read-only the loop retries without writing anything (the
// schema must arrive by replication), and it creates the tables once the
// database becomes writable.
func TestSchemaWaitsForWritableDatabase(t *testing.T) {
	spare.up(t)
	a := newApp(t, spare)

	// Part of the schema on a writable database: healthy, but no schema yet.
	spare.exec(t, "DROP TABLE IF EXISTS petclinic.visits, petclinic.pets")
	r, h := a.health(t)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, DBHealth{Reachable: true, Writable: true, Schema: false}, h.DB)
	assertRefused(t, a.do(t, "GET", "/api/pets/1", ""), "database unavailable", "missing table")

	// A bare, read-only database, like a fresh replica.
	spare.exec(t, "DROP TABLE IF EXISTS petclinic.owners")
	spare.setReadOnly(t, true)
	r, h = a.health(t)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "read-only", h.Status)
	assert.Equal(t, DBHealth{Reachable: true, Writable: false, Schema: false}, h.DB)
	require.Empty(t, spare.tables(t))
	pos, sent := spare.gtidPos(t), spare.traceApp(t)

	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ensureSchemaLoop(ctx, NewStore(a.db), slog.New(slog.NewJSONHandler(logs, nil)), 10*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); <-done })

	// Each attempt starts by looking for the tables.
	attempts := func() int {
		n := 0
		for _, stmt := range sent() {
			if strings.Contains(stmt, "information_schema.tables") {
				n++
			}
		}
		return n
	}
	require.True(t, testenv.WaitFor(20*time.Second, func() bool { return attempts() >= 5 }),
		"the schema loop did not retry")
	select {
	case <-done:
		t.Fatal("the schema loop stopped while the database was read-only")
	default:
	}
	assert.Empty(t, writes(sent()), "no DDL attempted while read-only")
	assert.Empty(t, spare.tables(t), "no table created while read-only")
	assert.Equal(t, pos, spare.gtidPos(t), "nothing written to the binlog while read-only")
	assert.Equal(t, 1, strings.Count(logs.String(), "waiting for the schema to arrive by replication"), "logged once")

	require.NoError(t, spare.SetReadOnly(t.Context(), false))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the schema loop did not finish once the database was writable")
	}
	assert.Equal(t, []string{"owners", "pets", "visits"}, spare.tables(t))
	assert.Len(t, writes(sent()), 3, "one CREATE TABLE per table")
	assert.Contains(t, logs.String(), `"msg":"schema created","tables":["owners","pets","visits"]`)
	assert.NotEqual(t, pos, spare.gtidPos(t))
	_, h = a.health(t)
	assert.Equal(t, "ok", h.Status)
	assert.Equal(t, DBHealth{Reachable: true, Writable: true, Schema: true}, h.DB)

	// With the schema complete the loop returns at once without writing, not
	// even a no-op CREATE TABLE IF NOT EXISTS (on a replica that would be an
	// errant transaction).
	pos, sent = spare.gtidPos(t), spare.traceApp(t)
	again, cancelAgain := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancelAgain()
	ensureSchemaLoop(again, NewStore(a.db), slog.New(slog.NewJSONHandler(logs, nil)), 10*time.Millisecond)
	require.NoError(t, again.Err(), "the loop returned only at its deadline")
	assert.Contains(t, logs.String(), `"msg":"schema present"`)
	assert.NotEmpty(t, sent())
	assert.Empty(t, writes(sent()))
	assert.Equal(t, pos, spare.gtidPos(t))
	a.createOwner(t, "George", "Franklin")
}

// TestDatabaseDown crashes the spare server under a running application and
// restarts it: the application reports the outage and recovers by itself.
func TestDatabaseDown(t *testing.T) {
	spare.up(t)
	spare.fresh(t)
	a := newApp(t, spare)
	owner := a.createOwner(t, "George", "Franklin")
	pet := a.createPet(t, owner.ID, "Leo", "2020-09-07") // the pool now holds live connections

	require.NoError(t, spare.Kill(t.Context()))
	t.Cleanup(func() {
		if _, running := spare.Process().PID(); running {
			return
		}
		if _, _, err := spare.Start(context.Background(), time.Minute); err != nil {
			t.Errorf("restart spare: %v", err)
		}
	})

	r, h := a.health(t)
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Equal(t, "down", h.Status)
	assert.False(t, h.DB.Reachable)
	assert.False(t, h.DB.Writable)
	assert.NotEmpty(t, h.DB.Error)
	for _, path := range []string{"/api/owners", fmt.Sprintf("/api/owners/%d", owner.ID),
		fmt.Sprintf("/api/pets/%d", pet.ID), fmt.Sprintf("/api/pets/%d/visits", pet.ID)} {
		assertRefused(t, a.do(t, "GET", path, ""), "database unavailable", path)
	}
	for path, body := range map[string]string{
		"/api/owners": `{"first_name":"Betty","last_name":"Davis","city":"Sun Prairie","telephone":"6085551749"}`,
		fmt.Sprintf("/api/owners/%d/pets", owner.ID): `{"name":"Basil","type":"hamster","birth_date":"2021-08-06"}`,
		fmt.Sprintf("/api/pets/%d/visits", pet.ID):   `{"visit_date":"2026-01-03","description":"check-up"}`,
	} {
		assertRefused(t, a.do(t, "POST", path, body), "database unavailable", path)
	}
	r = a.do(t, "GET", "/", "")
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
	assert.Contains(t, r.body, "Owners are unavailable: database unavailable")
	assert.Contains(t, a.logs.String(), "database refused request")

	// The server comes back read-only; the same handler notices by itself.
	_, _, err := spare.Start(t.Context(), time.Minute)
	require.NoError(t, err)
	status := func() string {
		r, err := a.send(t.Context(), "GET", "/healthz", "")
		if err != nil {
			return err.Error()
		}
		var h healthResponse
		if err := json.Unmarshal([]byte(r.body), &h); err != nil {
			return err.Error()
		}
		return h.Status
	}
	require.True(t, testenv.WaitFor(30*time.Second, func() bool { return status() == "read-only" }), status())
	assertRefused(t, a.do(t, "POST", "/api/owners", `{"first_name":"Betty","last_name":"Davis","city":"Sun Prairie","telephone":"6085551749"}`),
		"database is read-only", "after restart")

	require.NoError(t, spare.SetReadOnly(t.Context(), false))
	require.True(t, testenv.WaitFor(30*time.Second, func() bool { return status() == "ok" }), status())
	r = a.do(t, "GET", fmt.Sprintf("/api/owners/%d", owner.ID), "")
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Equal(t, OwnerDetails{Owner: owner, Pets: []Pet{pet}}, decodeBody[OwnerDetails](t, r), "committed rows survived the crash")
	a.createOwner(t, "Betty", "Davis")
	assert.Equal(t, 2, spare.rows(t)["owners"])
}
