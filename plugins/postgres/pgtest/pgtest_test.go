package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartQueryStop(t *testing.T) {
	s := Start(t)
	dsn := s.Database(t)
	Exec(t, dsn, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (41), (1)")
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sum int
	if err := conn.QueryRow(context.Background(), "SELECT sum(x) FROM t").Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("%v %d", err, sum)
	}
}
