package snapshot_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/drover-sre/drover/activities/snapshot"
	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// The source every test copies from: schema shop, ≥ 200,000 rows in
// several tables covering every column type, a view, a trigger and a
// procedure. Tests run a write load on it while they copy.
var (
	source  *testenv.Server
	secrets string
)

const (
	sourceID     = 70
	schema       = "shop"
	childEnv     = "DROVER_SNAPSHOT_CHILD" // set: this process is a copy to be killed
	weakUser     = "weak"
	weakPassword = "weak-pw"
)

func TestMain(m *testing.M) {
	if in := os.Getenv(childEnv); in != "" {
		os.Exit(child(in))
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	var err error
	if secrets, err = testenv.TempDir("drvsnap"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(secrets)
	if source, err = testenv.StartServer(ctx, "127.0.0.70", sourceID); err != nil {
		return 0, err
	}
	defer source.Close()
	if err := source.MakeSource(ctx); err != nil {
		return 0, err
	}
	if err := populate(ctx, source); err != nil {
		return 0, err
	}
	// An account that sees one table of shop and nothing else.
	if err := source.Exec(ctx, "CREATE USER "+weakUser+"@'%' IDENTIFIED BY '"+weakPassword+"'",
		"GRANT SELECT ON shop.orders TO "+weakUser+"@'%'"); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(secrets, "weak.pw"), []byte(weakPassword+"\n"), 0o600); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// child runs one copy from a JSON CopyInput and exits; the parent kills it.
func child(in string) int {
	var ci snapshot.CopyInput
	if err := json.Unmarshal([]byte(in), &ci); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	_, err := snapshot.Copy(context.Background(), ci, snapshot.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// typesCols are the columns of replication's TestColumnTypesRoundTrip.
const typesDDL = `CREATE TABLE shop.types (
	id INT UNSIGNED NOT NULL PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
	mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
	d DECIMAL(30,10), d0 DECIMAL(5,0), f FLOAT, db DOUBLE,
	dt DATE, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR,
	c CHAR(10), vc VARCHAR(255), tx TEXT, lt LONGTEXT,
	bn BINARY(8), vb VARBINARY(64), bl BLOB,
	e ENUM('a','b','c'), st SET('x','y','z'), bt BIT(10), b64 BIT(64),
	j JSON, l1 VARCHAR(20) CHARACTER SET latin1,
	g BIGINT AS (i * 2) VIRTUAL, gs VARCHAR(300) AS (CONCAT(vc,'!')) STORED,
	inv INT INVISIBLE DEFAULT 7, ip INET6, u UUID, geo POINT
) DEFAULT CHARSET=utf8mb4`

// typesRows are the edge values of TestColumnTypesRoundTrip.
var typesRows = []string{
	`1,-128,0,-32768,0,-8388608,0,-2147483648,0,-9223372036854775808,0,
	-99999999999999999999.9999999999,-99999,-3.40282e38,-1.7976931348623157e308,
	'1000-01-01','1000-01-01 00:00:00.000000','1000-01-01 00:00:00','1970-01-01 00:00:01.000','-838:59:59.000000',1901,
	'','','','',x'0000000000000000',x'',x'','a','',b'0',b'0','{}',''`,
	`2,127,255,32767,65535,8388607,16777215,2147483647,4294967295,9223372036854775807,18446744073709551615,
	99999999999999999999.9999999999,99999,3.40282e38,1.7976931348623157e308,
	'9999-12-31','9999-12-31 23:59:59.999999','9999-12-31 23:59:59','2038-01-19 03:14:07.999','838:59:59.000000',2155,
	'abcdefghij',REPEAT('v',255),REPEAT('t',1000),REPEAT('L',70000),x'FFFFFFFFFFFFFFFF',REPEAT(x'FF',64),REPEAT(x'00FF',3000),
	'c','x,y,z',b'1111111111',b'1111111111111111111111111111111111111111111111111111111111111111',
	'{"a":[1,2,{"b":null}],"c":"d"}','ÿ'`,
	`3,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,
	NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL`,
	`4,-1,1,-1,1,-1,1,-1,1,-1,1,0.0000000001,-1,1.5,0.1,
	'2024-02-29','2024-02-29 12:34:56.123456','2024-02-29 12:34:56','2024-02-29 12:34:56.789','-00:00:00.000001',2024,
	'é😀','héllo wörld 😀 𝄞 中文','emoji 🚀🚀','x',x'00010203FEFF7F80',x'00',x'DEADBEEF00',
	'b','x,z',b'101',b'1000000000000000000000000000000000000000000000000000000000000001',
	'[true,false,null,1.5e3,"😀"]','café'`,
	`5,0,0,0,0,0,0,0,0,0,0,12345.6789012345,0,0.000001,2.718281828459045,
	'2000-01-01','2000-01-01 00:00:00.000001','2000-01-01 00:00:00','2000-01-01 00:00:00.001','00:00:00.5',2000,
	' lead','trail ','','',x'20',x'20',x'20','a','y',b'1',b'1','"s"','x'`,
}

const typesCols = "id,ti,tiu,si,siu,mi,miu,i,iu,bi,biu,d,d0,f,db,dt,dtm,dtm0,ts,tm,y,c,vc,tx,lt,bn,vb,bl,e,st,bt,b64,j,l1"

// populate creates schema shop: 212,200 rows in six tables.
func populate(ctx context.Context, s *testenv.Server) error {
	stmts := []string{
		"CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		typesDDL,
	}
	for _, r := range typesRows {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO shop.types (%s) VALUES (%s)", typesCols, r))
	}
	stmts = append(stmts,
		// 20,000 generated rows of every type, with NULLs, unicode, binary
		// and FLOAT values that 6 significant digits would not round-trip.
		`INSERT INTO shop.types (id,ti,tiu,si,siu,mi,miu,i,iu,bi,biu,d,d0,f,db,dt,dtm,dtm0,ts,tm,y,c,vc,tx,lt,bn,vb,bl,e,st,bt,b64,j,l1,inv,ip,u,geo)
		SELECT seq+10, seq%256-128, seq%256, seq%65536-32768, seq%65536, seq-4000000, seq, seq*7-70000, seq*3, seq*1234567891, seq*9876543210,
			seq/7, seq%99999, seq/3, seq/7e3, '2020-01-01'+INTERVAL seq DAY, '2020-01-01 00:00:00.123456'+INTERVAL seq SECOND,
			'2020-01-01'+INTERVAL seq MINUTE, '2021-01-01 00:00:00.5'+INTERVAL seq SECOND, SEC_TO_TIME(seq-10000), 1901+seq%255,
			IF(seq%13=0, NULL, LEFT(CONCAT('c', seq), 10)), CONCAT('vär ', seq, ' 😀'), REPEAT(CONCAT('t', seq), seq%20),
			IF(seq%500=0, REPEAT('long', 3000), NULL), UNHEX(LPAD(HEX(seq), 16, '0')), UNHEX(HEX(seq*31)), IF(seq%7=0, NULL, RANDOM_BYTES(1+seq%40)),
			ELT(1+seq%3,'a','b','c'), IF(seq%2,'x,z','y'), seq%1024, seq*1000003, JSON_OBJECT('n', seq, 's', CONCAT('é', seq)),
			CONCAT('caf', CHAR(233 USING latin1), seq%10), seq, CONCAT('2001:db8::', HEX(seq)), UUID(), POINT(seq, -seq)
		FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_20000) s`,
		`CREATE TABLE shop.orders (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, customer INT NOT NULL, amount DECIMAL(12,2),
			status ENUM('new','paid','shipped') NOT NULL, note VARCHAR(200), created DATETIME(6) NOT NULL, KEY (customer))`,
		`INSERT INTO shop.orders (customer, amount, status, note, created) SELECT seq%977, seq/100, ELT(1+seq%3,'new','paid','shipped'),
			IF(seq%5=0, NULL, CONCAT('note ', seq)), '2024-01-01'+INTERVAL seq SECOND FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_100000) s`,
		`CREATE TABLE shop.lines (order_id BIGINT NOT NULL, line INT NOT NULL, sku VARCHAR(32) NOT NULL, qty INT NOT NULL,
			PRIMARY KEY (order_id, line), FOREIGN KEY (order_id) REFERENCES shop.orders (id) ON DELETE CASCADE)`,
		`INSERT INTO shop.lines SELECT 1 + seq DIV 7, seq%7, CONCAT('SKU-', seq%313), seq%9+1 FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_60000) s`,
		// A case-insensitive string key whose collation order is not byte order.
		`CREATE TABLE shop.tags (code VARCHAR(40) COLLATE utf8mb4_unicode_ci NOT NULL PRIMARY KEY, label TEXT)`,
		`INSERT INTO shop.tags SELECT CONCAT(ELT(1+seq%4,'a','B','é','Z'), '-', seq), REPEAT('label ', seq%10) FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_25000) s`,
		`CREATE TABLE shop.events_log (at DATETIME, msg VARCHAR(100))`,
		`INSERT INTO shop.events_log SELECT '2024-01-01'+INTERVAL (seq%100) HOUR, CONCAT('event ', seq%50) FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_7000) s`,
		`CREATE TABLE shop.blobs (id INT NOT NULL PRIMARY KEY, data MEDIUMBLOB)`,
		`INSERT INTO shop.blobs SELECT seq, RANDOM_BYTES(1024) FROM (SELECT CAST(seq AS SIGNED) AS seq FROM shop.seq_1_to_200) s`,
		`CREATE VIEW shop.big_orders AS SELECT id, amount FROM shop.orders WHERE amount > 500`,
		`CREATE TRIGGER shop.orders_note BEFORE INSERT ON shop.orders FOR EACH ROW SET NEW.note = IFNULL(NEW.note, 'from trigger')`,
		`CREATE PROCEDURE shop.count_orders(OUT n INT) SELECT COUNT(*) INTO n FROM shop.orders`,
	)
	return s.Exec(ctx, stmts...)
}

// site describes a test server as a recipe site (admin account drover).
func site(name string, s *testenv.Server) recipe.Site {
	return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
		DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
			Password: recipe.SecretRef("file:" + s.PasswordFile), ServerID: s.Config.ServerID, GTIDDomainID: s.Config.DomainID}}
}

// newTarget starts an empty target server (read_only, applier account,
// checkpoint table), stopped when the test ends.
func newTarget(t *testing.T, id uint32) *testenv.Server {
	t.Helper()
	s, err := testenv.StartServer(context.Background(), fmt.Sprintf("127.0.0.%d", id), id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.MakeTarget(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

var a *snapshot.Activities // typed nil: method values name the activities

// activityEnv runs the snapshot activities in the SDK's test environment
// (heartbeats, cancellation, error conversion as in a worker).
func activityEnv() *testsuite.TestActivityEnvironment {
	env := (&testsuite.WorkflowTestSuite{}).NewTestActivityEnvironment()
	env.RegisterActivity(&snapshot.Activities{})
	env.SetTestTimeout(5 * time.Minute)
	return env
}

func copyActivity(t *testing.T, in snapshot.CopyInput) (snapshot.CopyResult, error) {
	t.Helper()
	res, _, err := copyActivityBeats(t, in)
	return res, err
}

// copyActivityBeats also returns the heartbeat details Temporal received
// (the test environment has no heartbeat timeout, so the SDK's 30 s
// heartbeat throttle passes the first one at once and batches the rest).
func copyActivityBeats(t *testing.T, in snapshot.CopyInput) (snapshot.CopyResult, []snapshot.Progress, error) {
	t.Helper()
	var out snapshot.CopyResult
	var beats progressLog
	env := activityEnv()
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p snapshot.Progress
		if details.Get(&p) == nil {
			beats.add(p)
		}
	})
	v, err := env.ExecuteActivity(a.SnapshotCopy, in)
	if err != nil {
		return out, nil, err
	}
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	beats.mu.Lock()
	defer beats.mu.Unlock()
	return out, beats.ps, nil
}

// compareActivity runs SnapshotCompare and checks that it heartbeated.
func compareActivity(t *testing.T, in snapshot.CompareInput) snapshot.CompareResult {
	t.Helper()
	var out snapshot.CompareResult
	var beats progressLog
	env := activityEnv()
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p snapshot.Progress
		if details.Get(&p) == nil {
			beats.add(p)
		}
	})
	v, err := env.ExecuteActivity(a.SnapshotCompare, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	beats.mu.Lock()
	defer beats.mu.Unlock()
	if len(beats.ps) == 0 || !strings.HasPrefix(beats.ps[0].Phase, "compare") {
		t.Errorf("SnapshotCompare did not heartbeat: %+v", beats.ps)
	}
	return out
}

// load is a write load on the source: transactions of 1-3 random inserts,
// updates (primary keys too), deletes (cascading) across the tables, at
// most rate per second, until stopped.
type load struct {
	hot     bool // write only near the end of each table's key space
	cancel  context.CancelFunc
	done    chan struct{}
	commits atomic.Int64
	err     atomic.Value
}

func startLoad(t *testing.T, db *sql.DB, rate int, seed int64, hot bool) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{hot: hot, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		rng := rand.New(rand.NewSource(seed))
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := l.txn(ctx, db, rng); err != nil && ctx.Err() == nil {
				l.err.Store(err)
				return
			}
		}
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *load) txn(ctx context.Context, db *sql.DB, rng *rand.Rand) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for n := 1 + rng.Intn(3); n > 0; n-- {
		id, typeID, tag := 1+rng.Intn(100000), 10+rng.Intn(20000), []string{"a", "B", "é", "Z", "m"}[rng.Intn(5)]
		if l.hot {
			id, typeID, tag = 95001+rng.Intn(5000), 19001+rng.Intn(1010), "zz"
		}
		var q string
		switch rng.Intn(10) {
		case 0:
			q = fmt.Sprintf("INSERT INTO shop.orders (customer, amount, status, created) VALUES (%d, %d.%02d, 'new', NOW(6))", rng.Intn(977), rng.Intn(1000), rng.Intn(100))
		case 1:
			q = fmt.Sprintf("UPDATE shop.orders SET amount = amount + 1, status = 'paid' WHERE id = %d", id)
		case 2:
			q = fmt.Sprintf("DELETE FROM shop.orders WHERE id = %d", id) // cascades to lines
		case 3:
			// Moves a row across chunks (orders above 10,000 have no lines).
			q = fmt.Sprintf("UPDATE shop.orders SET id = id + 10000000 WHERE id = %d", max(id, 10001))
		case 4:
			q = fmt.Sprintf("INSERT INTO shop.lines VALUES (%d, %d, 'SKU-load', 1) ON DUPLICATE KEY UPDATE qty = qty + 1", id, 10+rng.Intn(5))
		case 5:
			q = fmt.Sprintf("UPDATE shop.types SET vc = CONCAT(LEFT(IFNULL(vc, ''), 200), '+é'), f = f * 1.1, bt = bt ^ 1, j = JSON_SET(IFNULL(j, '{}'), '$.w', %d) WHERE id = %d", id, typeID)
		case 6:
			q = fmt.Sprintf("REPLACE INTO shop.tags VALUES ('%s-%d', 'load')", tag, rng.Intn(40000))
		case 7:
			q = fmt.Sprintf("INSERT INTO shop.events_log VALUES (NOW(), 'load %d')", id)
		case 8:
			q = fmt.Sprintf("DELETE FROM shop.tags WHERE code = '%s-%d'", tag, rng.Intn(40000))
		case 9:
			q = fmt.Sprintf("UPDATE shop.blobs SET data = RANDOM_BYTES(%d) WHERE id = %d", 100+rng.Intn(2000), 1+rng.Intn(200))
		}
		if _, err := tx.ExecContext(ctx, q); err != nil {
			switch sqlErrNumber(err) {
			case 1062, 1451, 1452, 1213: // a key taken by another write, a deadlock: skip this transaction
				return nil
			}
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	l.commits.Add(1)
	return nil
}

// stop ends the load; it may be called again.
func (l *load) stop() {
	l.cancel()
	<-l.done
}

func (l *load) check(t *testing.T) {
	t.Helper()
	if err, _ := l.err.Load().(error); err != nil {
		t.Fatalf("write load: %v", err)
	}
}

// stream runs Drover's streamer from source into dst from start (or the
// target's checkpoint), stopped when the test ends.
func stream(t *testing.T, name string, dst *testenv.Server, start string, replicaID uint32) *testenv.Running {
	t.Helper()
	cfg := testenv.StreamConfig(name, source, dst, replicaID)
	cfg.StartPosition = start
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	s, err := replication.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.RunStream(s)
	t.Cleanup(func() { _ = r.Stop(30 * time.Second) })
	return r
}

// caughtUp waits until the stream has applied the source's position.
func caughtUp(t *testing.T, r *testenv.Running) {
	t.Helper()
	want, err := source.Position(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.WaitApplied(context.Background(), want, 50*time.Millisecond, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// seqOf is the sequence number of the source's domain in a position.
func seqOf(t *testing.T, pos string) uint64 {
	t.Helper()
	p, err := replication.ParsePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	return p[sourceID].Seq
}

func scalar[T any](t *testing.T, db *sql.DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// progressLog collects heartbeats.
type progressLog struct {
	mu sync.Mutex
	ps []snapshot.Progress
}

func (p *progressLog) add(x snapshot.Progress) {
	p.mu.Lock()
	p.ps = append(p.ps, x)
	p.mu.Unlock()
}

func sqlErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
