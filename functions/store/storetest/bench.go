package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/store"
)

// Bench measures the latency of the operations the hub leans on, reporting p50 and p99 in microseconds
// beside Go's mean ns/op, because tail latency is what a long-poll or an execution step feels.
// Run with a fixed count for stable percentiles: go test -bench . -benchtime 200x.
func Bench(b *testing.B, s store.Store) {
	ctx := context.Background()
	body := make([]byte, 1<<10)
	const listN = 1000

	b.Run("put-1KiB", func(b *testing.B) {
		key := fmt.Sprintf("bench/put/%d", time.Now().UnixNano())
		measure(b, func(int) error {
			_, err := store.PutBytes(ctx, s, key, body, store.PutOptions{})
			return err
		})
	})
	b.Run("create-only-put-1KiB", func(b *testing.B) {
		base := fmt.Sprintf("bench/co/%d/", time.Now().UnixNano())
		measure(b, func(i int) error {
			_, err := store.PutBytes(ctx, s, fmt.Sprintf("%s%08d", base, i), body, store.PutOptions{CreateOnly: true})
			return err
		})
	})
	getKey := fmt.Sprintf("bench/get/%d", time.Now().UnixNano())
	info, err := store.PutBytes(ctx, s, getKey, body, store.PutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("get-1KiB", func(b *testing.B) {
		measure(b, func(int) error {
			_, _, err := store.ReadAll(ctx, s, getKey)
			return err
		})
	})
	b.Run("conditional-get-not-modified", func(b *testing.B) {
		measure(b, func(int) error {
			obj, err := s.Get(ctx, getKey, store.GetOptions{IfNoneMatch: info.ETag})
			if errors.Is(err, store.ErrNotModified) {
				return nil
			}
			if err == nil {
				obj.Body.Close() // a store without conditional get: measured all the same
			}
			return err
		})
	})
	listPrefix := fmt.Sprintf("bench/list/%d/", time.Now().UnixNano())
	for i := range listN {
		if _, err := store.PutBytes(ctx, s, fmt.Sprintf("%s%05d.json", listPrefix, i), body[:16], store.PutOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("list-1000", func(b *testing.B) {
		measure(b, func(int) error {
			page, err := s.List(ctx, listPrefix, "", listN)
			if err == nil && len(page.Objects) != listN {
				err = fmt.Errorf("listed %d keys, want %d", len(page.Objects), listN)
			}
			return err
		})
	})
}

// measure times each call of op and reports p50/p99 latency.
func measure(b *testing.B, op func(i int) error) {
	b.Helper()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
