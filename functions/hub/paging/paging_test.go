package paging

import (
	"fmt"
	"testing"
	"time"
)

type rec struct {
	id string
	at int
}

func (r rec) PageTime() time.Time { return time.Unix(int64(r.at), 0) }
func (r rec) PageID() string      { return r.id }

func TestPage(t *testing.T) {
	items := func() []rec { return []rec{{"a", 1}, {"c", 3}, {"b", 2}, {"b2", 2}, {"d", 4}} }
	all := func(r rec) (string, bool, error) { return r.id, true, nil }
	odd := func(r rec) (string, bool, error) { return r.id, r.at%2 == 1, nil }
	cases := []struct {
		cursor   string
		limit    int
		keep     func(rec) (string, bool, error)
		want     string
		wantNext string
		wantErr  bool
	}{
		{"", 0, all, "[d c b2 b a]", "", false},
		{"", 2, all, "[d c]", "c", false},
		{"c", 2, all, "[b2 b]", "b", false},
		{"b", 2, all, "[a]", "", false},
		{"", 1, odd, "[c]", "c", false},
		{"c", 5, odd, "[a]", "", false},
		{"zz", 2, all, "", "", true},
		{"", 2, func(rec) (string, bool, error) { return "", false, fmt.Errorf("store down") }, "", "", true},
	}
	for _, c := range cases {
		got, next, err := Page(items(), c.cursor, c.limit, c.keep)
		if c.wantErr {
			if err == nil {
				t.Errorf("cursor %q: no error", c.cursor)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != c.want || next != c.wantNext {
			t.Errorf("cursor %q limit %d: %v next %q err %v; want %s next %q", c.cursor, c.limit, got, next, err, c.want, c.wantNext)
		}
	}
}
