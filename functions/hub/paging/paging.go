// Package paging is how the hub's lists are cut into pages: newest first, a cursor that names the last
// item of the previous page, and a limit. Lists are folds of write-once records with no order of their
// own in the store, so every list pages the same way and a cursor means the same thing everywhere.
package paging

import (
	"slices"
	"sort"
	"time"

	"github.com/pulsehq/pulse/functions/hub/domain"
)

// DefaultLimit is a page's size when the caller names none.
const DefaultLimit = 50

// Item is what paging needs of a record: when it happened and its id (the cursor).
type Item interface {
	PageTime() time.Time
	PageID() string
}

// Page sorts items newest first (ties by id), skips past cursor, and keeps those keep accepts
// (converted to R) until limit are kept. next is the cursor of the following page, "" on the last.
// An unknown cursor is an invalid-input error; keep's error ends the page.
func Page[T Item, R any](items []T, cursor string, limit int, keep func(T) (R, bool, error)) (out []R, next string, err error) {
	sort.Slice(items, func(i, j int) bool {
		ti, tj := items[i].PageTime(), items[j].PageTime()
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return items[i].PageID() > items[j].PageID()
	})
	if cursor != "" {
		i := slices.IndexFunc(items, func(t T) bool { return t.PageID() == cursor })
		if i < 0 {
			return nil, "", &domain.Error{Kind: domain.KindInvalid, Field: "cursor", Msg: "unknown cursor " + cursor}
		}
		items = items[i+1:]
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	out = []R{}
	for i, it := range items {
		r, ok, err := keep(it)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			continue
		}
		out = append(out, r)
		if len(out) == limit {
			if i+1 < len(items) {
				next = it.PageID()
			}
			break
		}
	}
	return out, next, nil
}
