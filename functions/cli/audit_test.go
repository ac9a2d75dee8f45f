package cli_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store/local"
)

// TestLocalActionsAreAudited: what the command line does to a hub's store and key without a hub
// running (pulse init's bootstrap admin token and signing key, pulse key rotate) leaves an audit record
// like any mutation through the API: who ran it, what, and the ids (never the secret).
func TestLocalActionsAreAudited(t *testing.T) {
	dir := t.TempDir()
	data, keyFile := filepath.Join(dir, "data"), filepath.Join(dir, "signing.key")
	t.Setenv("PULSE_STORE", "")
	r := pulse("init", "--store", "file:"+data, "--key-file", keyFile, "--json")
	if r.code != 0 {
		t.Fatalf("init: %d %s", r.code, r.stderr)
	}
	var in struct{ KeyID, AdminToken string }
	json.Unmarshal([]byte(r.stdout), &in)
	r = pulse("key", "rotate", "--key-file", keyFile, "--store", "file:"+data, "--json")
	if r.code != 0 {
		t.Fatalf("key rotate: %d %s", r.code, r.stderr)
	}
	var keys []struct{ KeyID string }
	json.Unmarshal([]byte(r.stdout), &keys)
	// Read as the hub does, with the rotated key set: every record must pass the integrity check.
	st := hubView(t, data, keyFile)
	recs, err := audit.List(context.Background(), st, audit.Query{Since: time.Now().Add(-time.Hour), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	byAction := map[string]audit.Record{}
	for _, rec := range recs {
		byAction[rec.Action] = rec
	}
	for _, tc := range []struct {
		action, key, want string
	}{
		{"create-signing-key", "keyId", in.KeyID},
		{"create-token", "name", "admin"},
		{"rotate-key", "previousKeyId", in.KeyID},
		{"rotate-key", "keyId", keys[0].KeyID},
	} {
		rec, ok := byAction[tc.action]
		switch {
		case !ok:
			t.Errorf("no %s record (have %v)", tc.action, recs)
		case rec.Detail[tc.key] != tc.want:
			t.Errorf("%s: detail %s = %v, want %s", tc.action, tc.key, rec.Detail[tc.key], tc.want)
		case rec.Principal.Via != "cli" || rec.Principal.ID == "" || rec.Outcome != "ok":
			t.Errorf("%s: principal %+v outcome %q", tc.action, rec.Principal, rec.Outcome)
		}
	}
	if tok := byAction["create-token"]; tok.Detail["tokenId"] == nil || len(in.AdminToken) == 0 {
		t.Errorf("create-token names no token id: %+v", tok.Detail)
	}
	b, _ := json.Marshal(recs)
	if in.AdminToken != "" && strings.Contains(string(b), in.AdminToken) {
		t.Error("an audit record holds the admin token's secret")
	}
}

// TestTwoRotationsKeepEveryRecord: the rotation that drops a key first MACs again what that key MACed,
// so after two rotations every record (the bootstrap token, the audit records) still reads.
func TestTwoRotationsKeepEveryRecord(t *testing.T) {
	dir := t.TempDir()
	data, keyFile := filepath.Join(dir, "data"), filepath.Join(dir, "signing.key")
	t.Setenv("PULSE_STORE", "")
	if r := pulse("init", "--store", "file:"+data, "--key-file", keyFile); r.code != 0 {
		t.Fatalf("init: %d %s", r.code, r.stderr)
	}
	if r := pulse("key", "rotate", "--key-file", keyFile, "--store", "file:"+data); r.code != 0 || strings.Contains(r.stderr, "resealed") {
		t.Fatalf("first rotation (nothing to drop): exit %d stderr %q", r.code, r.stderr)
	}
	r := pulse("key", "rotate", "--key-file", keyFile, "--store", "file:"+data)
	if r.code != 0 || !strings.Contains(r.stderr, "resealed ") {
		t.Fatalf("second rotation: exit %d stderr %q, want it to say what it resealed", r.code, r.stderr)
	}
	st := hubView(t, data, keyFile)
	ctx := context.Background()
	checked, bad, err := st.Scan(ctx, signed.Prefixes(), 0)
	if err != nil || checked < 4 || len(bad) != 0 {
		t.Fatalf("after two rotations: %d objects checked, %v refused, %v", checked, bad, err)
	}
	recs, _ := audit.List(ctx, st, audit.Query{Since: time.Now().Add(-time.Hour)})
	if len(recs) != 4 {
		t.Fatalf("%d audit records, want create-signing-key, create-token and two rotate-key", len(recs))
	}
}

// hubView opens the local store at data as the hub sees it: through the integrity check, with the key
// set in keyFile.
func hubView(t *testing.T, data, keyFile string) *signed.Store {
	t.Helper()
	raw, err := local.New(data)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := hubkey.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := signed.Wrap(raw, ks, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
