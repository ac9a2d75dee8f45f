package kernel

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// uploadTimeout bounds one upload; a 1 MiB chunk over a slow link needs more than a heartbeat does.
const uploadTimeout = time.Minute

// uploader drains the outbox whenever it grows, retrying with backoff while the hub cannot take it, and
// re-scans now and then in case a wake-up was missed. What a previous run left is drained first.
func (a *Agent) uploader(ctx context.Context) {
	b := backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax}
	for {
		err := a.drain(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			a.uploadHealth.fail("upload", err)
			if !sleep(ctx, b.next()) {
				return
			}
			continue
		}
		b.reset()
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-time.After(time.Minute):
		}
	}
}

// drain uploads waiting items in order and deletes each one after the hub confirmed it (2xx, or 409:
// already stored). It stops at the first failure that may go away, so later items never overtake an
// earlier one (a result never arrives before its last chunk); an item the hub refuses for good (4xx
// other than 401/408/429, including 404 "no such command") is parked so it cannot block the queue.
// Parked items stay on disk for an operator; nothing is deleted without the hub's confirmation.
func (a *Agent) drain(ctx context.Context) error {
	ob := a.st.Outbox()
	names, err := ob.List()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		it, err := ob.Read(name)
		if err != nil {
			a.log.Error("unreadable outbox item moved to outbox/parked", "item", name, "err", err)
			ob.Park(name)
			continue
		}
		_, _, err = a.hub.do(ctx, "upload "+it.Kind, it.Method, a.hub.agentURL(it.Path), it.ContentType, it.Body, uploadTimeout, true, true)
		if err == nil {
			a.uploadHealth.ok()
			if err := ob.Delete(name); err != nil {
				a.log.Warn("removing an uploaded item; it will be uploaded again (harmless)", "item", name, "err", err)
			}
			a.log.Debug("uploaded", "kind", it.Kind, "commandId", it.CommandID, "path", it.Path, "bytes", len(it.Body))
			continue
		}
		if retryable(err) && !hasStatus(err, http.StatusNotFound) {
			return err
		}
		a.log.Error("the hub refused a report for good; moved to outbox/parked", "kind", it.Kind, "commandId", it.CommandID,
			"path", it.Path, "item", name, "err", err)
		if err := ob.Park(name); err != nil {
			return err
		}
	}
	return nil
}

func hasStatus(err error, status int) bool {
	var he *HubError
	return errors.As(err, &he) && he.Status == status
}
