package replicate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drover-sre/drover/recipe"
	"github.com/drover-sre/drover/replication"
	"github.com/drover-sre/drover/tests/testenv"
)

// Streaming over TLS between two real MariaDB servers that serve TLS and
// whose stream, apply and admin accounts are created REQUIRE SSL: with the
// recipe's db.tls the endpoints StreamBinlog builds carry the TLS
// configuration to the binlog connection, both SQL pools and the
// checkpoint-table setup, and every source transaction arrives; without it
// the source refuses the stream account (Auth), and with a wrong CA the
// stream stops as a Config error saying the certificate did not verify.
func TestStreamFromRequireSSLAccountOverTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pki, err := testenv.NewPKI(dir, "repl", "127.0.0.41", "127.0.0.42")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testenv.NewPKI(dir, "other", "127.0.0.41")
	if err != nil {
		t.Fatal(err)
	}
	src, err := testenv.StartServer(ctx, "127.0.0.41", 41, pki.TLSArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	dst, err := testenv.StartServer(ctx, "127.0.0.42", 42, pki.TLSArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dst.Close)
	if err := src.MakeSource(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dst.MakeTarget(ctx); err != nil {
		t.Fatal(err)
	}
	// Account changes stay local to each server: one session, not logged.
	requireSSL := func(s *testenv.Server, users ...string) {
		t.Helper()
		c, err := s.Root.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		qs := []string{"SET SESSION sql_log_bin=0"}
		for _, u := range users {
			qs = append(qs, "ALTER USER "+u+"@'%' REQUIRE SSL")
		}
		for _, q := range append(qs, "SET SESSION sql_log_bin=1") {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	requireSSL(src, testenv.StreamUser)
	requireSSL(dst, testenv.ApplyUser, dst.AdminUser)
	if err := src.Exec(ctx, "CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, note VARCHAR(32))",
		"INSERT INTO shop.items VALUES (1, 'over tls'), (2, 'still over tls')"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DROVER_REPL_TLS_STREAM_PW", testenv.StreamPassword)
	t.Setenv("DROVER_REPL_TLS_APPLY_PW", testenv.ApplyPassword)
	withTLS := recipe.DBTLS{Mode: recipe.TLSVerifyFull, CA: pki.CA}
	site := func(name string, s *testenv.Server, tls recipe.DBTLS) recipe.Site {
		return recipe.Site{Name: name, Provider: recipe.ProviderLocal, Address: s.Config.Address,
			DB: recipe.Database{Host: s.Config.Address, Port: s.Config.Port, User: s.AdminUser,
				Password: recipe.SecretRef("file:" + s.PasswordFile), TLS: tls,
				Stream: recipe.Account{User: testenv.StreamUser, Password: "env:DROVER_REPL_TLS_STREAM_PW"},
				Apply:  recipe.Account{User: testenv.ApplyUser, Password: "env:DROVER_REPL_TLS_APPLY_PW"}}}
	}
	target := site("west", dst, withTLS)
	// streamer builds the stream as StreamBinlog does, from the recipe sites.
	streamer := func(source recipe.Site) *replication.Streamer {
		t.Helper()
		from, err := endpoint(source, source.DB.StreamAccount())
		if err != nil {
			t.Fatal(err)
		}
		to, err := endpoint(target, target.DB.ApplyAccount())
		if err != nil {
			t.Fatal(err)
		}
		admin, err := endpoint(target, recipe.Account{User: target.DB.User, Password: target.DB.Password})
		if err != nil {
			t.Fatal(err)
		}
		if err := setupTarget(ctx, admin); err != nil {
			t.Fatalf("checkpoint table over TLS as a REQUIRE SSL admin: %v", err)
		}
		stream := StreamName("tlstest", source.Name, target.Name)
		s, err := replication.New(replication.Config{Stream: stream, Source: from, Target: to,
			ReplicaServerID: ReplicaServerID(stream), MaxReconnects: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	for _, tc := range []struct {
		name string
		tls  recipe.DBTLS
		kind replication.Kind
		want string
	}{
		{"no TLS", recipe.DBTLS{}, replication.KindAuth, "Access denied"},
		{"wrong CA", recipe.DBTLS{CA: other.CA}, replication.KindConfig, "certificate signed by unknown authority"},
	} {
		runCtx, stop := context.WithTimeout(ctx, time.Minute)
		err := streamer(site("east", src, tc.tls)).Run(runCtx)
		stop()
		if replication.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run = %v (kind %s); want kind %s saying %q", tc.name, err, replication.KindOf(err), tc.kind, tc.want)
		}
	}

	run := testenv.RunStream(streamer(site("east", src, withTLS)))
	defer func() {
		if err := run.Stop(time.Minute); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	want, err := src.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.WaitApplied(ctx, want, 50*time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := dst.Root.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop.items WHERE note LIKE '%over tls'").Scan(&n); err != nil || n != 2 {
		t.Fatalf("target has %d of 2 rows (%v)", n, err)
	}
}
