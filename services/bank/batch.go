package bank

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	bankv1 "github.com/remitpay/remit/gen/remit/bank/v1"
	"github.com/remitpay/remit/internal/logging"
	"github.com/remitpay/remit/internal/rpcerr"
)

// batchParallelism bounds the items of one batch that run at once. Items run
// concurrently so that the ledger can group their writes; the bound keeps a
// full batch from taking every database connection.
const batchParallelism = 64

// PrepareTransactions implements bankv1connect.BankServiceHandler: each item
// goes through exactly what a PrepareTransaction call with that request goes
// through after authorization (protovalidate, then [service.prepare]), and
// gets its own result.
func (s *service) PrepareTransactions(ctx context.Context, req *bankv1.PrepareTransactionsRequest) (*bankv1.PrepareTransactionsResponse, error) {
	items := req.GetItems()
	s.batches.observe("prepare", len(items))
	results := make([]*bankv1.PrepareTransactionsResult, len(items))
	ids := make([]string, len(items))
	var yes, no int
	failed := runBatch(len(items), func(i int) error {
		res, err := validated(items[i], func() (*bankv1.PrepareTransactionResponse, error) {
			ids[i] = normalizeID(items[i].GetTransactionId())
			return s.prepare(ctx, items[i], noFields)
		})
		if err != nil {
			results[i] = &bankv1.PrepareTransactionsResult{Outcome: &bankv1.PrepareTransactionsResult_Error{Error: itemError(err)}}
			return err
		}
		results[i] = &bankv1.PrepareTransactionsResult{Outcome: &bankv1.PrepareTransactionsResult_Response{Response: res}}
		return nil
	})
	for _, r := range results {
		switch r.GetResponse().GetVote() {
		case bankv1.Vote_VOTE_YES:
			yes++
		case bankv1.Vote_VOTE_NO:
			no++
		case bankv1.Vote_VOTE_UNSPECIFIED: // an error
		}
	}
	logging.AddFields(ctx, slog.Int("items", len(items)), transactionIDs(ids), slog.Int("yes", yes), slog.Int("no", no))
	logFailures(ctx, failed)
	return &bankv1.PrepareTransactionsResponse{Results: results}, nil
}

// CommitTransactions implements bankv1connect.BankServiceHandler: each item
// goes through exactly what a CommitTransaction call with that request goes
// through after authorization, and gets its own result.
func (s *service) CommitTransactions(ctx context.Context, req *bankv1.CommitTransactionsRequest) (*bankv1.CommitTransactionsResponse, error) {
	items := req.GetItems()
	s.batches.observe("commit", len(items))
	results := make([]*bankv1.CommitTransactionsResult, len(items))
	ids := make([]string, len(items))
	failed := runBatch(len(items), func(i int) error {
		res, err := validated(items[i], func() (*bankv1.CommitTransactionResponse, error) {
			ids[i] = normalizeID(items[i].GetTransactionId())
			return s.commit(ctx, items[i], noFields)
		})
		if err != nil {
			results[i] = &bankv1.CommitTransactionsResult{Outcome: &bankv1.CommitTransactionsResult_Error{Error: itemError(err)}}
			return err
		}
		results[i] = &bankv1.CommitTransactionsResult{Outcome: &bankv1.CommitTransactionsResult_Response{Response: res}}
		return nil
	})
	logging.AddFields(ctx, slog.Int("items", len(items)), transactionIDs(ids))
	logFailures(ctx, failed)
	return &bankv1.CommitTransactionsResponse{Results: results}, nil
}

// validated runs call if msg passes its protovalidate rules, and otherwise
// fails as the validate interceptor fails the unary RPC: invalid_argument
// with the violations as the message.
func validated[R any](msg proto.Message, call func() (R, error)) (R, error) {
	if err := protovalidate.Validate(msg); err != nil {
		var zero R
		return zero, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return call()
}

// runBatch runs item(0..n-1), at most batchParallelism at a time, and returns
// the errors the items failed with. A panic in an item is re-raised in the
// caller's goroutine once all items are done, so the recover interceptor
// turns it into the RPC's internal error as it would for a unary call (the
// gateway then treats every item as unanswered).
func runBatch(n int, item func(int) error) []error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   []error
		panicked any
	)
	sem := make(chan struct{}, batchParallelism)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			defer func() {
				if r := recover(); r != nil {
					mu.Lock()
					panicked = r
					mu.Unlock()
				}
			}()
			if err := item(i); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if panicked != nil {
		panic(panicked)
	}
	return failed
}

// itemError is err, as the unary RPC would have sent it, in a result.
func itemError(err error) *bankv1.BatchItemError {
	e := &bankv1.BatchItemError{Code: connect.CodeOf(err).String(), Reason: rpcerr.Reason(err), Message: err.Error()}
	if cerr, ok := errors.AsType[*connect.Error](err); ok {
		e.Message = cerr.Message()
	}
	return e
}

// logFailures adds the number of failed items to the batch's log line, and
// the first failure, with its internal cause (which its result does not
// carry), so an operator can see why.
func logFailures(ctx context.Context, failed []error) {
	if len(failed) == 0 {
		return
	}
	attrs := []slog.Attr{slog.Int("failed", len(failed)), slog.String("first_error", failed[0].Error())}
	if cause := rpcerr.Cause(failed[0]); cause != nil {
		attrs = append(attrs, slog.String("first_error_cause", cause.Error()))
	}
	logging.AddFields(ctx, attrs...)
}

// transactionIDs is the log field of a batch's valid items' transaction ids
// (an invalid item is not logged, as an invalid unary call's id is not), so
// that a search for one id finds the batch that carried it.
func transactionIDs(ids []string) slog.Attr {
	valid := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			valid = append(valid, id)
		}
	}
	return slog.Any("transaction_ids", valid)
}
