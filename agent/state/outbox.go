package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const (
	outboxDir = "outbox"
	parkedDir = "parked"
	itemExt   = ".item"
)

// Item is one request to the hub that must eventually succeed: a running notice, an output chunk, a
// result or a rejection. It is stored as the request itself so the uploader needs no knowledge of what
// it carries, and so a later agent version can still upload what an earlier one queued.
type Item struct {
	// Kind names what the item carries ("running", "output", "result", "rejection"), for logs.
	Kind string `json:"kind"`
	// CommandID is the command the item belongs to, if any, for logs.
	CommandID string `json:"commandId,omitempty"`
	Method    string `json:"method"`
	// Path is relative to the agent's own API prefix (/v1/agents/{id}/), e.g. "results".
	Path        string `json:"path"`
	ContentType string `json:"contentType"`
	Body        []byte `json:"-"`
}

// Outbox is a durable FIFO of Items. Items are uploaded in the order they were put, which gives the
// order the hub relies on for one command: running notice, output chunks in sequence, then the result.
// An item leaves the outbox only when Delete is called after the hub confirmed it.
type Outbox struct {
	dir string
	mu  sync.Mutex
	seq uint64
}

func openOutbox(dir string) (*Outbox, error) {
	ob := &Outbox{dir: dir}
	names, err := ob.List()
	if err != nil {
		return nil, err
	}
	if n := len(names); n > 0 {
		last, _ := strconv.ParseUint(strings.TrimSuffix(names[n-1], itemExt), 10, 64)
		ob.seq = last
	}
	return ob, nil
}

// Put stores it durably and returns its name. Once Put returns, the item survives a crash.
func (o *Outbox) Put(it Item) (string, error) {
	if it.Method == "" || it.Path == "" {
		return "", errors.New("state: outbox item needs a method and a path")
	}
	hdr, err := json.Marshal(it)
	if err != nil {
		return "", fmt.Errorf("state: encode outbox item: %w", err)
	}
	var buf bytes.Buffer
	buf.Grow(len(hdr) + 1 + len(it.Body))
	buf.Write(hdr)
	buf.WriteByte('\n')
	buf.Write(it.Body)

	// The lock covers choosing the sequence number and the rename, so names appear in order.
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	name := fmt.Sprintf("%020d%s", o.seq, itemExt)
	if err := writeFileAtomic(filepath.Join(o.dir, name), buf.Bytes(), true); err != nil {
		return "", fmt.Errorf("state: outbox %s %s: %w", it.Kind, it.Path, err)
	}
	return name, nil
}

// List returns the names of waiting items, oldest first.
func (o *Outbox) List() ([]string, error) {
	ents, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("state: list outbox: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || isTemp(n) || !strings.HasSuffix(n, itemExt) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names) // zero-padded sequence numbers sort in put order
	return names, nil
}

// Read loads one item.
func (o *Outbox) Read(name string) (Item, error) {
	data, err := os.ReadFile(filepath.Join(o.dir, filepath.Base(name)))
	if err != nil {
		return Item{}, fmt.Errorf("state: read outbox item %s: %w", name, err)
	}
	hdr, body, ok := bytes.Cut(data, []byte{'\n'})
	if !ok {
		return Item{}, fmt.Errorf("state: outbox item %s is corrupt: no header line", name)
	}
	var it Item
	if err := json.Unmarshal(hdr, &it); err != nil {
		return Item{}, fmt.Errorf("state: outbox item %s is corrupt: %w", name, err)
	}
	it.Body = body
	return it, nil
}

// Delete removes an item the hub has confirmed. Deleting one that is already gone is not an error.
func (o *Outbox) Delete(name string) error {
	err := os.Remove(filepath.Join(o.dir, filepath.Base(name)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: delete outbox item %s: %w", name, err)
	}
	return nil
}

// Park moves an item the hub refuses for good (or that cannot be read) out of the queue, into
// outbox/parked/, so one bad item cannot block every later report and an operator can still look at it.
func (o *Outbox) Park(name string) error {
	base := filepath.Base(name)
	if err := os.Rename(filepath.Join(o.dir, base), filepath.Join(o.dir, parkedDir, base)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("state: park outbox item %s: %w", name, err)
	}
	return nil
}

// Len is the number of waiting items.
func (o *Outbox) Len() int {
	names, _ := o.List()
	return len(names)
}
