package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints the result for a person: the headline numbers, the
// costs per settlement, the floor ratios and the targets.
func WriteSummary(w io.Writer, r *Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	fmt.Fprintf(tw, "settle bench: %d customers, concurrency %d, bank latency %s ms, rate limit %g/s, %s\n",
		r.Params.Customers, r.Params.Concurrency, r.Params.Latency, r.Params.RateLimit, modeName(r.Params))
	row("settlements", "%s in %.1fs", statusLine(r.Settlements), r.ElapsedSec)
	row("throughput", "%.1f settlements/s, %.1f steps/s (steady middle 80%%: %.1f and %.1f over %.1fs)",
		r.SettlementsPerSec, r.StepsPerSec, r.SteadySettlementsPerSec, r.SteadyStepsPerSec, r.SteadySec)
	row("latency", "detection → settled p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms (steady p99 %.0f ms)",
		r.LatencyP50MS, r.LatencyP95MS, r.LatencyP99MS, r.LatencyMaxMS, r.SteadyLatencyP99MS)
	row("", "credit → settled (the poll's wait included) p50 %.0f ms, p99 %.0f ms", r.DepositLatencyP50MS, r.DepositLatencyP99MS)
	row("detection", "the poll found 99%% of the deposits %.1fs after the engine started", r.DetectionP99MS/1000)
	d := r.Detection
	row("", "%s dialect (%d accounts a balance call): first credit → last detected %.1fs (engine start → last detected %.1fs); credit → detected p50 %.0f ms, p99 %.0f ms",
		r.Dialect, d.AccountsPerCall, d.Sec, d.EngineSec, d.CreditP50MS, d.CreditP99MS)
	row("", "%d balance calls until every deposit was detected (%.2f a deposit), %d over the run", d.BalanceCalls, d.CallsPerDeposit, d.BalanceCallsRun)
	if r.Params.RateLimit > 0 {
		row("", "until then the engine used %.1f%% of the bank's rate limit, polling %.1f%%", 100*d.RateShare, 100*d.PollShare)
	}
	row("bank", "%.2f calls per settlement %v, %d rate limited", r.BankCallsPerSettlement, r.Bank.Calls, r.Bank.RateLimited)
	if p := r.Params; p.ErrorRate > 0 || p.ApplyThenDrop > 0 || p.Processing > 0 {
		row("", "faults: %g HTTP 500, %g applied then dropped, %g processing", p.ErrorRate, p.ApplyThenDrop, p.Processing)
	}
	if r.Params.RateLimit > 0 {
		row("", "%.1f transfers/s through the burst: %.1f%% of the bank's limit", r.TransfersPerSec, 100*r.RateInUse)
	}
	row("postgres", "%.1f round trips, %.1f statements, %.1f transactions, %.2f ms executing + %.2f ms planning per settlement (%s)",
		r.DB.RoundTripsPerSettlement, r.DB.StatementsPerSettlement, r.DB.XactsPerSettlement, r.DB.ExecMSPerSettlement,
		r.DB.PlanMSPerSettlement, r.DB.Method)
	row("", "longest open write transaction %.0fs; at the end steps have %d dead row versions, %d of %d updates HOT",
		r.DB.LongestWriteTxSec, r.DB.Tables["steps_dead"], r.DB.Tables["steps_hot_updates"], r.DB.Tables["steps_updates"])
	row("redis", "%.0f bytes per queued task; %.1f commands (%.1f scripts) per settlement; peak used_memory %s",
		r.RedisBytesPerQueuedTask, r.Redis.CommandsPerSettlement, r.Redis.ScriptsPerSettlement, mb(r.Redis.PeakUsedMemory))
	row("cpu", "%.2f ms engine, %.2f ms postgres backends, %.2f ms redis per settlement",
		1000*r.CPUSecondsPerSettlement, 1000*r.CPU.PostgresPerSettlement, 1000*r.CPU.RedisPerSettlement)
	row("memory", "peak RSS %s (%s)", mb(r.PeakRSSBytes), r.Memory.Scope)
	row("engine log", "%d warnings, %d errors", r.EngineLog.Warnings, r.EngineLog.Errors)
	for _, first := range []string{r.EngineLog.FirstWarning, r.EngineLog.FirstError} {
		if first != "" {
			row("", "first: %s", first)
		}
	}
	if r.VerifyOK {
		row("verify", "ok: every invariant holds and the bank's journal matches the engine's transfers")
	} else {
		row("verify", "FAILED: %d violations, first: %s", len(r.Violations), first(r.Violations))
	}
	if f := r.Floor; f != nil {
		row("floor", "postgres %.0f update tx/s (%.0f with lib/pq parameters), asynq %.0f no-op tasks/s (%.0f enqueued/s)",
			f.PGUpdateTxPerSec, f.PGUpdateTxPerSecParams, f.AsynqNoopTasksPerSec, f.AsynqEnqueuePerSec)
		row("ratios", "steady steps/s = %.3f × postgres update tx/s = %.3f × asynq no-op tasks/s", f.StepsPerPGUpdate, f.StepsPerAsynqTask)
	}
	for _, t := range r.Targets {
		verdict := "not met"
		if t.Met {
			verdict = "met"
		}
		if !t.Applies {
			verdict += " (these parameters are not the target's)"
		}
		row("target", "%s: want %s, got %.1f: %s", t.Name, t.Want, t.Value, verdict)
	}
	return tw.Flush()
}

func modeName(p Params) string {
	if p.Processes > 0 {
		return fmt.Sprintf("%d worker processes", p.Processes)
	}
	return "in-process"
}

func statusLine(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
