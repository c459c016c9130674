// Command join joins orders with their payments on event time with an
// interval join: a payment belongs to an order when it has the order's id
// and comes 0 to 10 minutes after it (both bounds inclusive). An order paid
// in two parts matches twice; a payment too late, or for an unknown order,
// matches nothing.
//
// Finding the orders that were never paid is another job: it needs a
// KeyedCoProcess over both streams with a timer per order.
//
// Run it with
//
//	go run ./examples/join
package main

import (
	"context"
	"fmt"
	"log"
	"sort"
	"time"

	"github.com/strom-dev/strom"
)

type Order struct {
	ID       string
	Customer string
	Amount   float64
	TS       int64 // event time, epoch ms
}

type Payment struct {
	OrderID string
	Method  string
	Amount  float64
	TS      int64 // event time, epoch ms
}

type Paid struct {
	Order   Order
	Payment Payment
}

func main() {
	env := strom.NewEnvironment(strom.Config{Parallelism: 2})

	at := func(min, sec int) int64 { return int64(min*60+sec) * 1000 }
	orders := strom.AssignTimestamps(strom.FromSlice(env, []Order{
		{"o1", "ann", 30.00, at(0, 0)},
		{"o2", "ben", 12.50, at(1, 0)},
		{"o3", "cat", 99.90, at(2, 0)},
		{"o4", "dan", 5.00, at(4, 0)}, // never paid
	}), strom.BoundedOutOfOrderness[Order](time.Minute).WithTimestamps(func(o Order) int64 { return o.TS }))
	payments := strom.AssignTimestamps(strom.FromSlice(env, []Payment{
		{"o1", "card", 30.00, at(3, 0)},
		{"o3", "card", 50.00, at(5, 0)},
		{"o5", "card", 7.00, at(6, 0)},      // no such order
		{"o3", "voucher", 49.90, at(12, 0)}, // exactly 10 minutes after o3: still matches
		{"o2", "paypal", 12.50, at(11, 30)}, // 10m30s after o2: too late
	}), strom.BoundedOutOfOrderness[Payment](time.Minute).WithTimestamps(func(p Payment) int64 { return p.TS }))

	paid := strom.IntervalJoin(
		strom.KeyBy(orders, func(o Order) string { return o.ID }),
		strom.KeyBy(payments, func(p Payment) string { return p.OrderID }),
		0, 10*time.Minute,
		func(o Order, p Payment, out strom.Collector[Paid]) error {
			out.Collect(Paid{o, p})
			return nil
		})
	out := strom.Collect(paid)

	if _, err := env.Execute(context.Background(), "orders ⋈ payments"); err != nil {
		log.Fatal(err)
	}

	all := out.Values()
	sort.Slice(all, func(i, j int) bool {
		if all[i].Order.ID != all[j].Order.ID {
			return all[i].Order.ID < all[j].Order.ID
		}
		return all[i].Payment.TS < all[j].Payment.TS
	})
	for _, m := range all {
		o, p := m.Order, m.Payment
		fmt.Printf("order %s (%s, %.2f at %v) paid %.2f by %s at %v, %v later\n",
			o.ID, o.Customer, o.Amount, ms(o.TS), p.Amount, p.Method, ms(p.TS), ms(p.TS-o.TS))
	}
}

func ms(t int64) time.Duration { return time.Duration(t) * time.Millisecond }
