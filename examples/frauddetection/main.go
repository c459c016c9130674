// Command frauddetection raises alerts on suspicious card transactions with
// keyed state and event-time timers, after Flink's fraud detection
// tutorial: per account, a small transaction (under 1.00) immediately
// followed, within one minute, by a large one (over 500.00) is what a thief
// testing a stolen card before emptying it looks like.
//
// A KeyedProcessFunction keeps, per account, the last transaction if it was
// small (a ValueState) and registers an event-time timer a minute later that
// forgets it, so accounts that go quiet hold no state; the next transaction
// deletes the timer instead when it comes first. Run it with
//
//	go run ./examples/frauddetection
package main

import (
	"context"
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/strom-dev/strom"
	"github.com/strom-dev/strom/state"
)

type Transaction struct {
	Account string
	Amount  float64
	TS      int64 // event time, epoch ms
}

type Alert struct {
	Account      string
	Small, Large Transaction
}

const (
	smallAmount = 1.00
	largeAmount = 500.00
	within      = time.Minute
)

var (
	smallDesc = state.ValueDescriptor[Transaction]{Name: "small-transaction"}
	timerDesc = state.ValueDescriptor[int64]{Name: "timer"}
)

// detector is the KeyedProcessFunction. KeyedProcess creates one per
// subtask; its state handles read and write the current account's state.
type detector struct {
	small state.ValueState[Transaction] // the account's last transaction, if small
	timer state.ValueState[int64]       // when small is forgotten
}

// KeyedProcess finds Open and OnTimer by type assertion when the job runs;
// these assertions turn a mistyped signature into a compile error instead
// of a method that is silently never called.
var (
	_ strom.KeyedOpener[string, Alert]  = (*detector)(nil)
	_ strom.TimerHandler[string, Alert] = (*detector)(nil)
)

// Open implements strom.KeyedOpener.
func (d *detector) Open(ctx *strom.KeyedContext[string, Alert]) (err error) {
	if d.small, err = state.GetValue(ctx, smallDesc); err != nil {
		return err
	}
	d.timer, err = state.GetValue(ctx, timerDesc)
	return err
}

func (d *detector) ProcessElement(ctx *strom.KeyedContext[string, Alert], t Transaction) error {
	if prev, ok := d.small.Value(); ok {
		// The timestamps decide, not the timer: an event-time timer fires
		// once the watermark passes it, which can be after the account's
		// next transactions have arrived. The timer frees the state.
		if t.Amount > largeAmount && t.TS-prev.TS <= within.Milliseconds() {
			ctx.Collect(Alert{Account: ctx.Key(), Small: prev, Large: t})
		}
		d.forget(ctx)
	}
	if t.Amount < smallAmount {
		d.small.Update(t)
		at := t.TS + within.Milliseconds()
		ctx.RegisterEventTimeTimer(at)
		d.timer.Update(at)
	}
	return nil
}

// OnTimer implements strom.TimerHandler: a minute passed after a small
// transaction with nothing else on the account.
func (d *detector) OnTimer(ctx *strom.KeyedContext[string, Alert], ts int64) error {
	d.small.Clear()
	d.timer.Clear()
	return nil
}

func (d *detector) forget(ctx *strom.KeyedContext[string, Alert]) {
	if at, ok := d.timer.Value(); ok {
		ctx.DeleteEventTimeTimer(at)
	}
	d.small.Clear()
	d.timer.Clear()
}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	at := func(min, sec int) int64 { return int64(min*60+sec) * 1000 }
	transactions := strom.FromSlice(env, []Transaction{
		{"alice", 12.30, at(0, 0)},
		{"bob", 0.10, at(0, 5)},
		{"alice", 0.50, at(0, 10)},
		{"carol", 0.99, at(0, 20)},
		{"carol", 45.00, at(0, 30)},  // not large: carol's small one is forgotten
		{"alice", 750.00, at(0, 40)}, // 30s after a small one: alert
		{"carol", 620.00, at(0, 50)}, // large, but after a medium one
		{"dave", 0.01, at(1, 0)},
		{"dave", 600.00, at(1, 20)}, // 20s after a small one: alert
		{"bob", 900.00, at(1, 30)},  // 85s after bob's small one: too late
		{"dave", 0.20, at(1, 45)},
		{"dave", 1000.00, at(3, 0)}, // 75s after: too late
		{"erin", 0.75, at(3, 10)},
		{"erin", 501.00, at(3, 50)}, // 40s after: alert
		{"frank", 0.05, at(4, 0)},   // forgotten by the timer at the end of input
	}).Parallelism(1)
	// One source subtask keeps each account's transactions in order (the
	// detector compares each with the one before); the detector itself runs
	// in parallel, partitioned by account.
	timed := strom.AssignTimestamps(transactions,
		strom.Monotonous[Transaction]().WithTimestamps(func(t Transaction) int64 { return t.TS })).Parallelism(1)
	alerts := strom.KeyedProcess(strom.KeyBy(timed, func(t Transaction) string { return t.Account }),
		func() strom.KeyedProcessFunction[string, Transaction, Alert] { return &detector{} })
	out := strom.Collect(alerts)

	if _, err := env.Execute(context.Background(), "fraud detection"); err != nil {
		log.Fatal(err)
	}

	all := out.Values()
	sort.Slice(all, func(i, j int) bool {
		if all[i].Account != all[j].Account {
			return all[i].Account < all[j].Account
		}
		return all[i].Large.TS < all[j].Large.TS
	})
	for _, a := range all {
		fmt.Printf("ALERT %s: %.2f at %v, then %.2f at %v\n",
			a.Account, a.Small.Amount, ms(a.Small.TS), a.Large.Amount, ms(a.Large.TS))
	}
}

func ms(t int64) time.Duration { return time.Duration(t) * time.Millisecond }
