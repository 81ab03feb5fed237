package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// TypesColumns are the columns of a table holding every MariaDB column
// type (with generated columns), shared by replication's
// TestColumnTypesRoundTrip and the shop dataset.
const TypesColumns = `id INT UNSIGNED NOT NULL PRIMARY KEY,
	ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
	mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
	d DECIMAL(30,10), d0 DECIMAL(5,0), f FLOAT, db DOUBLE,
	dt DATE, dtm DATETIME(6), dtm0 DATETIME, ts TIMESTAMP(3) NULL, tm TIME(6), y YEAR,
	c CHAR(10), vc VARCHAR(255), tx TEXT, lt LONGTEXT,
	bn BINARY(8), vb VARBINARY(64), bl BLOB,
	e ENUM('a','b','c'), st SET('x','y','z'), bt BIT(10), b64 BIT(64),
	j JSON, l1 VARCHAR(20) CHARACTER SET latin1,
	g BIGINT AS (i * 2) VIRTUAL, gs VARCHAR(300) AS (CONCAT(vc,'!')) STORED`

// typesDDL is shop.types: TypesColumns and a few more types.
const typesDDL = "CREATE TABLE shop.types (" + TypesColumns + `,
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

// PopulateShop creates schema shop through exec: 212,200 rows in six
// tables covering every column type (generated, invisible, INET6, UUID and
// spatial columns included), a no-PK table, a foreign key, a view, a
// trigger and a procedure.
func PopulateShop(ctx context.Context, exec func(context.Context, ...string) error) error {
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
	return exec(ctx, stmts...)
}

// ShopLoad is a write load on schema shop (PopulateShop): transactions of 1-3 random inserts,
// updates (primary keys too), deletes (cascading) across the tables, at
// most rate per second, until stopped.
type ShopLoad struct {
	hot     bool // write only near the end of each table's key space
	cancel  context.CancelFunc
	done    chan struct{}
	Commits atomic.Int64 // transactions committed
	err     atomic.Value
}

// StartShopLoad starts a load of at most rate transactions per second
// (seed makes it repeatable; hot writes only near the end of each key
// space), stopped when the test ends.
func StartShopLoad(t testing.TB, db *sql.DB, rate int, seed int64, hot bool) *ShopLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &ShopLoad{hot: hot, cancel: cancel, done: make(chan struct{})}
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
	t.Cleanup(l.Stop)
	return l
}

func (l *ShopLoad) txn(ctx context.Context, db *sql.DB, rng *rand.Rand) error {
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
			switch SQLErrNumber(err) {
			case 1062, 1451, 1452, 1213: // a key taken by another write, a deadlock: skip this transaction
				return nil
			}
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	l.Commits.Add(1)
	return nil
}

// Stop ends the load; it may be called again.
func (l *ShopLoad) Stop() {
	l.cancel()
	<-l.done
}

// Check fails the test if a load transaction failed (other than on a
// taken key or a deadlock, which are skipped).
func (l *ShopLoad) Check(t testing.TB) {
	t.Helper()
	if err, _ := l.err.Load().(error); err != nil {
		t.Fatalf("write load: %v", err)
	}
}

// SQLErrNumber is the MariaDB error number of err, or 0.
func SQLErrNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
