package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pulsehq/pulse/agent/atomicfile"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// The sealed hatch. Commands that run opaque code (integration.Command.RequireHatch, e.g. shell_run)
// run only while it is open, and it is opened only on the host, by `pulse-agent unseal`, which writes
// HatchFile into the state directory. The hub cannot open it: nothing the agent receives writes that
// file. The kernel owns it and knows no integration by name: it hands the integration runner a gate
// that reads the file at every run, reports the hatch in every heartbeat (and at once when it opens or
// closes), and deletes the file whenever the agent starts, so a restart always re-seals.

// HatchFile is the file in the state directory that holds an open hatch.
const HatchFile = "hatch.json"

// MaxHatch is the longest the hatch may be open at a time.
const MaxHatch = time.Hour

// hatchPoll is how often the running agent looks at the hatch file to report a change promptly.
const hatchPoll = time.Second

// maxHatchFile bounds what the agent reads from the hatch file.
const maxHatchFile = 4096

// hatchRecord is the content of HatchFile.
type hatchRecord struct {
	OpenedAt  time.Time `json:"openedAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	By        string    `json:"by"`
}

func hatchPath(stateDir string) string { return filepath.Join(stateDir, HatchFile) }

// OpenHatch opens the hatch in stateDir for d (at most MaxHatch), recording by as the local account
// that opened it. The file is written atomically with mode 0600 and, when the caller is root, given to
// the owner of the state directory so the unprivileged agent can read it. stateDir must exist: a hatch
// for an agent that was never set up there would open nothing.
func OpenHatch(stateDir string, d time.Duration, by string) (wire.HatchStatus, error) {
	if d <= 0 {
		return wire.HatchStatus{}, fmt.Errorf("the hatch must open for a positive duration, not %s", d)
	}
	if d > MaxHatch {
		return wire.HatchStatus{}, fmt.Errorf("the hatch opens for at most %s, not %s", fmtDuration(MaxHatch), fmtDuration(d))
	}
	if by == "" {
		return wire.HatchStatus{}, errors.New("the hatch must record who opened it")
	}
	fi, err := os.Stat(stateDir)
	if err != nil {
		return wire.HatchStatus{}, fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return wire.HatchStatus{}, fmt.Errorf("state directory %s is not a directory", stateDir)
	}
	now := time.Now().UTC()
	rec := hatchRecord{OpenedAt: now, ExpiresAt: now.Add(d), By: by}
	data, err := json.Marshal(rec)
	if err != nil {
		return wire.HatchStatus{}, err
	}
	if err := writeHatch(stateDir, append(data, '\n')); err != nil {
		return wire.HatchStatus{}, err
	}
	return wire.HatchStatus{Open: true, OpenedAt: rec.OpenedAt, ExpiresAt: rec.ExpiresAt, By: rec.By}, nil
}

// writeHatch replaces the hatch file atomically (the agent's one atomic writer): a reader sees the old
// hatch or the new one, never half of one. Written by root (`sudo pulse-agent unseal`), it is given to
// the state directory's owner, the agent's own account, before it appears.
func writeHatch(stateDir string, data []byte) error {
	uid, gid, chown, err := dirOwner(stateDir)
	if err != nil {
		return fmt.Errorf("write %s: %w", hatchPath(stateDir), err)
	}
	return atomicfile.Write(hatchPath(stateDir), data, atomicfile.Options{Perm: 0o600, Owner: chown, UID: uid, GID: gid})
}

// SealHatch closes the hatch in stateDir, reporting whether it had a hatch file at all (open or
// expired).
func SealHatch(stateDir string) (bool, error) {
	err := os.Remove(hatchPath(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("seal the hatch: %w", err)
	}
	return true, atomicfile.SyncDir(stateDir)
}

// ReadHatch reports the hatch in stateDir as of now. It is open only while OpenedAt <= now < ExpiresAt.
// No file is a closed hatch. A file the agent cannot trust (unreadable, not a regular file, writable by
// group or others, malformed, a window longer than MaxHatch, opened in the future) also leaves it
// closed, and the error says why; an expired one is closed and still describes its window.
func ReadHatch(stateDir string, now time.Time) (wire.HatchStatus, error) {
	path := hatchPath(stateDir)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return wire.HatchStatus{}, nil
	}
	if err != nil {
		return wire.HatchStatus{}, fmt.Errorf("hatch file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s is not a regular file; ignored", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s is writable by others (mode %s); ignored", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return wire.HatchStatus{}, fmt.Errorf("hatch file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHatchFile+1))
	if err != nil {
		return wire.HatchStatus{}, fmt.Errorf("hatch file: %w", err)
	}
	if len(data) > maxHatchFile {
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s is larger than %d bytes; ignored", path, maxHatchFile)
	}
	var rec hatchRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s is malformed; ignored: %v", path, err)
	}
	switch {
	case rec.OpenedAt.IsZero() || rec.ExpiresAt.IsZero() || rec.By == "":
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s lacks openedAt, expiresAt or by; ignored", path)
	case !rec.ExpiresAt.After(rec.OpenedAt) || rec.ExpiresAt.Sub(rec.OpenedAt) > MaxHatch:
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s opens a window of %s; at most %s is allowed; ignored",
			path, rec.ExpiresAt.Sub(rec.OpenedAt), fmtDuration(MaxHatch))
	case rec.OpenedAt.After(now):
		return wire.HatchStatus{}, fmt.Errorf("hatch file %s was opened in the future (%s); ignored", path, rec.OpenedAt.Format(time.RFC3339))
	}
	return wire.HatchStatus{
		Open:      now.Before(rec.ExpiresAt),
		OpenedAt:  rec.OpenedAt.UTC(),
		ExpiresAt: rec.ExpiresAt.UTC(),
		By:        rec.By,
	}, nil
}

// fmtDuration prints whole minutes and hours without the noise of "1h0m0s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if d%time.Minute == 0 {
		s = s[:len(s)-2] // "1h0m0s" -> "1h0m", "15m0s" -> "15m"
		if d%time.Hour == 0 {
			s = s[:len(s)-2]
		}
	}
	return s
}

// resealAtStart closes a hatch left by a previous run: an open hatch never survives a restart. It runs
// before the integrations load, with the state directory locked by this agent. Failing to remove the
// file is fatal, since the agent could not otherwise promise that the hatch is sealed.
func (a *Agent) resealAtStart() error {
	had, err := SealHatch(a.st.Dir())
	if err != nil {
		return fmt.Errorf("re-sealing the hatch at start: %w", err)
	}
	if had {
		a.log.Warn("the shell hatch was left open by a previous run; sealed again at start")
	}
	return nil
}

// hatchGate is what the integration runner asks before a command that requires the hatch: nil while
// the hatch is open, integration.ErrSealed otherwise. The file is read at every run, so expiry takes
// effect at once.
func (a *Agent) hatchGate() error {
	if st, _ := ReadHatch(a.st.Dir(), time.Now()); st.Open {
		return nil
	}
	return integration.ErrSealed
}

// hatchStatus is the hatch as reported in a heartbeat.
func (a *Agent) hatchStatus() *wire.HatchStatus {
	st, _ := ReadHatch(a.st.Dir(), time.Now())
	return &st
}

// watchHatch looks at the hatch every hatchPoll and, when it opens, closes or expires, logs it and has
// a heartbeat sent at once, so the hub does not learn of an open hatch up to a heartbeat interval late.
func (a *Agent) watchHatch(ctx context.Context) {
	t := time.NewTicker(hatchPoll)
	defer t.Stop()
	var last wire.HatchStatus
	var lastErr string
	for {
		st, err := ReadHatch(a.st.Dir(), time.Now())
		if errStr := errString(err); errStr != lastErr {
			lastErr = errStr
			if err != nil {
				a.log.Warn("the hatch file cannot be trusted; the hatch stays sealed", "err", err)
			}
		}
		if !sameHatch(st, last) {
			switch {
			case st.Open:
				a.log.Warn("the shell hatch is open: commands behind it run until it expires or is sealed",
					"by", st.By, "openedAt", st.OpenedAt, "expiresAt", st.ExpiresAt)
			case last.Open:
				a.log.Info("the shell hatch is sealed again")
			}
			last = st
			select {
			case a.beatNow <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func sameHatch(x, y wire.HatchStatus) bool {
	return x.Open == y.Open && x.OpenedAt.Equal(y.OpenedAt) && x.ExpiresAt.Equal(y.ExpiresAt) && x.By == y.By
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
