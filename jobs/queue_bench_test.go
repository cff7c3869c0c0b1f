package jobs_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/settle-dev/settle/internal/testenv"
	"github.com/settle-dev/settle/jobs"
	"github.com/settle-dev/settle/pipeline"
)

func benchQueue(b *testing.B) (*jobs.Queue, *redis.Client) {
	b.Helper()
	r := testenv.StartRedis(b)
	opt, err := jobs.ParseRedisURL(r.URL())
	if err != nil {
		b.Fatal(err)
	}
	q := jobs.NewQueue(opt, time.Minute)
	b.Cleanup(func() { q.Close() })
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	b.Cleanup(func() { rc.Close() })
	return q, rc
}

// usedMemory is Redis's INFO used_memory.
func usedMemory(b *testing.B, rc *redis.Client) int64 {
	b.Helper()
	s, err := rc.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// BenchmarkEnqueueStep enqueues step tasks one after another on a real
// Redis, as the poller and the workers do after each commit; it also
// reports Redis's memory per queued task.
func BenchmarkEnqueueStep(b *testing.B) {
	q, rc := benchQueue(b)
	ctx := context.Background()
	before := usedMemory(b, rc)
	b.ResetTimer()
	for i := range b.N {
		if err := q.EnqueueStep(ctx, pipeline.StepRef{ID: int64(100_000 + i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(usedMemory(b, rc)-before)/float64(b.N), "redis-bytes/task")
}

// BenchmarkEnqueueStepParallel enqueues from parallel goroutines, as many
// workers finishing steps at once do.
func BenchmarkEnqueueStepParallel(b *testing.B) {
	q, _ := benchQueue(b)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := q.EnqueueStep(ctx, pipeline.StepRef{ID: 100_000 + next.Add(1)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
