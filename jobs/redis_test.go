package jobs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
)

func TestRedisCheckRefusesEviction(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	opt, err := jobs.ParseRedisURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	check, err := jobs.NewRedisCheck(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	ctx := context.Background()
	if err := check.Check(ctx, true); err != nil {
		t.Fatalf("noeviction Redis refused: %v", err)
	}
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer rc.Close()
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err(); err != nil {
		t.Fatal(err)
	}
	err = check.Check(ctx, true)
	if err == nil || !strings.Contains(err.Error(), "noeviction") {
		t.Fatalf("allkeys-lru Redis: err = %v, want a refusal naming noeviction", err)
	}
	if err := check.Check(ctx, false); err != nil {
		t.Fatalf("with the check off: %v", err)
	}
	r.Stop()
	if err := check.Check(ctx, false); err == nil || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("stopped Redis: err = %v, want not reachable", err)
	}
	r.Start() // the same client finds it again
	if err := check.Check(ctx, false); err != nil {
		t.Fatalf("Redis started again: %v", err)
	}
	if _, err := jobs.ParseRedisURL("http://nope"); err == nil {
		t.Fatal("a non-Redis URL was accepted")
	}
}
