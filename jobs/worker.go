package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/settle-dev/settle/pipeline"
)

// WorkerConfig tunes the worker server.
type WorkerConfig struct {
	Concurrency int
	// ShutdownTimeout is how long running steps get to finish on shutdown;
	// it must exceed the bank timeout so that no bank call is cut short by
	// a shutdown in normal operation.
	ShutdownTimeout time.Duration
}

// queuePriorities are the queues a worker serves, in strict priority: a
// free worker takes a task from the first queue that holds one. Poll
// shards go first (they are few, and they find the money); then the steps
// of settlements under way, so that those finish before new ones start;
// then new settlements; the daily reconciliation takes what is left, so it
// never slows a payday down.
var queuePriorities = map[string]int{QueuePoll: 4, QueueSteps: 3, QueueSettlements: 2, QueueReconcile: 1}

// NewWorker returns an Asynq server that runs step and resolve tasks
// through the executor and poll shard tasks through the poller. Start it
// with Start and stop it with Shutdown.
func NewWorker(redis asynq.RedisConnOpt, exec *pipeline.Executor, poller *Poller, cfg WorkerConfig, logger *slog.Logger) (*asynq.Server, *asynq.ServeMux) {
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:     cfg.Concurrency,
		Queues:          queuePriorities,
		StrictPriority:  true,
		ShutdownTimeout: cfg.ShutdownTimeout,
		// An idle server looks for new tasks this often (Asynq's default is
		// 1s). A settlement's steps are chained task after task, so this
		// interval is paid once per step whenever the queue runs dry.
		TaskCheckInterval: 20 * time.Millisecond,
		// Scheduled tasks (a resolve waiting for its step's lease to end, a
		// step waiting for its backoff) are made pending this often after
		// they are due (Asynq's default is 5s).
		DelayedTaskCheckInterval: 200 * time.Millisecond,
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		Logger:                   asynqLogger{logger},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if isFailure(err) {
				logger.ErrorContext(ctx, "task failed", "task", t.Type(), "err", err)
			}
		}),
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeStep, func(ctx context.Context, t *asynq.Task) error {
		id, err := ParseStepPayload(t.Payload())
		if err != nil {
			return err
		}
		return exec.Run(ctx, id)
	})
	mux.HandleFunc(TypeResolve, func(ctx context.Context, t *asynq.Task) error {
		id, err := ParseStepPayload(t.Payload())
		if err != nil {
			return err
		}
		return exec.Resolve(ctx, id)
	})
	mux.HandleFunc(TypePollShard, func(ctx context.Context, t *asynq.Task) error {
		s, err := ParsePollShardPayload(t.Payload())
		if err != nil {
			return err
		}
		poller.RunShardOnce(ctx, s)
		return nil
	})
	return srv, mux
}

// retryDelay honours the delay a step asked for. Other errors (the database
// went away mid-step) retry soon, 1s doubling to a minute: the step's row
// decides what a redelivery does, so an early one costs one query.
func retryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var later *pipeline.RetryLaterError
	if errors.As(err, &later) {
		return max(later.After, 10*time.Millisecond)
	}
	return min(time.Second<<min(n, 6), time.Minute)
}

// isFailure: a step waiting for its turn or its backoff is not a failure.
func isFailure(err error) bool {
	var later *pipeline.RetryLaterError
	return !errors.As(err, &later)
}

// asynqLogger routes Asynq's own log lines to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(sprint(args), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(sprint(args), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(sprint(args), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(sprint(args), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(sprint(args), "component", "asynq") }

func sprint(args []any) string {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	return fmt.Sprint(args...)
}
