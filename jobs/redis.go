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

// CheckRedis pings Redis and, when requireNoEviction is set, refuses a
// maxmemory-policy that may evict queue keys: evicted leases leave tasks
// stuck, evicted tasks are lost.
func CheckRedis(ctx context.Context, opt asynq.RedisConnOpt, requireNoEviction bool) error {
	rc, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return fmt.Errorf("unsupported Redis connection options %T", opt)
	}
	defer rc.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("not reachable (%v): start Redis or fix redis.url / SETTLE_REDIS_URL", err)
	}
	if !requireNoEviction {
		return nil
	}
	res, err := rc.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return fmt.Errorf("read maxmemory-policy (%v): allow CONFIG GET, or set redis.check_noeviction: false once you have checked it yourself", err)
	}
	if p := res["maxmemory-policy"]; p != "noeviction" {
		return fmt.Errorf("maxmemory-policy is %q, which may evict queued tasks: run 'redis-cli CONFIG SET maxmemory-policy noeviction' and set it in redis.conf", p)
	}
	return nil
}
