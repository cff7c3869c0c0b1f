package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// ParseRedisURL turns redis://[:password@]host:port/db (or rediss://) into
// Asynq's connection options.
func ParseRedisURL(u string) (asynq.RedisConnOpt, error) {
	opt, err := asynq.ParseRedisURI(u)
	if err != nil {
		return nil, fmt.Errorf("not a Redis URL (%v): use redis://[:password@]host:port/db", err)
	}
	return opt, nil
}

// RedisCheck checks Redis over one client, kept for its owner's lifetime:
// `settle serve` checks at start and on every /readyz with the same one.
type RedisCheck struct{ rc redis.UniversalClient }

// NewRedisCheck returns a check of the Redis opt names; it connects on its
// first Check. Close releases it.
func NewRedisCheck(opt asynq.RedisConnOpt) (*RedisCheck, error) {
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("unsupported Redis connection options %T", opt)
	}
	return &RedisCheck{rc: rc}, nil
}

// Close releases the client.
func (c *RedisCheck) Close() error { return c.rc.Close() }

// Check pings Redis and, when requireNoEviction is set, refuses a
// maxmemory-policy that may evict queue keys: evicted leases leave tasks
// stuck, evicted tasks are lost.
func (c *RedisCheck) Check(ctx context.Context, requireNoEviction bool) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("not reachable (%v): start Redis or fix redis.url / SETTLE_REDIS_URL", err)
	}
	if !requireNoEviction {
		return nil
	}
	res, err := c.rc.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return fmt.Errorf("read maxmemory-policy (%v): allow CONFIG GET, or set redis.check_noeviction: false once you have checked it yourself", err)
	}
	if p := res["maxmemory-policy"]; p != "noeviction" {
		return fmt.Errorf("maxmemory-policy is %q, which may evict queued tasks: run 'redis-cli CONFIG SET maxmemory-policy noeviction' and set it in redis.conf", p)
	}
	return nil
}
