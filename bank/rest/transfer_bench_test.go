package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/settle-dev/settle/bank/bankhttp"
	"github.com/settle-dev/settle/pipeline"
)

// benchRequest is a PAYOUT as the executor sends it.
var benchRequest = pipeline.TransferRequest{
	Key: "settle-s123456-a1", From: "BENCH-COLLECTION", To: "OWN00012345", ToHolder: "Customer 12345",
	Amount: pipeline.Money{Amount: 1_748_500, Currency: "KRW"}, Memo: "settle 20577 PAYOUT",
}

const benchAnswer = `{"id":"tr_8841","status":"succeeded","idempotency_key":"settle-s123456-a1",` + benchAnswerRest

const benchAnswerRest = `"from_account":"BENCH-COLLECTION","to_account":"OWN00012345","amount":1748500,"currency":"KRW",` +
	`"created_at":"2026-11-25T00:30:00Z","memo":"settle 20577 PAYOUT"}`

// BenchmarkEncodeTransfer is the request body the adapter builds.
func BenchmarkEncodeTransfer(b *testing.B) {
	r := benchRequest
	b.ReportAllocs()
	for b.Loop() {
		if err := checkTransfer(r); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(transferBody{FromAccount: r.From, ToAccount: r.To, ToHolderName: r.ToHolder,
			Amount: r.Amount.Amount, Currency: r.Amount.Currency, Memo: r.Memo}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTransfer is the adapter reading a bank's success answer.
func BenchmarkDecodeTransfer(b *testing.B) {
	a := bankhttp.Answer{Status: http.StatusCreated, ContentType: "application/json; charset=utf-8", Body: []byte(benchAnswer), Now: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		r, err := decodeTransfer(a, benchRequest.Key)
		if err != nil || r.State != pipeline.TransferSucceeded {
			b.Fatalf("%+v, %v", r, err)
		}
	}
}

// BenchmarkTransferRoundTrip is the whole adapter over loopback HTTP
// against a server that answers at once: encode, send, read, decode.
func BenchmarkTransferRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"tr_8841","status":"succeeded","idempotency_key":` +
			strconv.Quote(r.Header.Get("Idempotency-Key")) + `,` + benchAnswerRest))
	}))
	b.Cleanup(srv.Close)
	c, err := New(Config{Name: "bench", BaseURL: srv.URL, Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := benchRequest
			req.Key = "settle-s123456-a" + strconv.FormatInt(n.Add(1), 10)
			if _, err := c.Transfer(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
