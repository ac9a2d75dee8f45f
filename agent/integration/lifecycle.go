package integration

import (
	"context"
	"fmt"
	"runtime/debug"
)

// Starter is implemented by integrations that must act once, when the agent starts running and before
// it reconciles anything. The self-update integration needs it: a binary just swapped in finds its
// marker there and either waits to be confirmed or, past its deadline, puts the previous binary back.
// It is an interface of this package (not a call the kernel makes by name) so the kernel still knows
// no integration.
type Starter interface {
	Start(ctx context.Context)
}

// HeartbeatListener is implemented by integrations that need to know the hub has heard from this
// agent: the first heartbeat the hub accepted after a start proves the running binary reaches the
// hub, signs correctly and reports its version, which is what commits a self-update.
type HeartbeatListener interface {
	HeartbeatAccepted(ctx context.Context)
}

// Start calls every enabled Starter, in id order; a panic is logged and stops nothing else.
func (s *Set) Start(ctx context.Context) {
	for _, inst := range s.running {
		if st, ok := inst.(Starter); ok {
			s.safely("Start", func() { st.Start(ctx) })
		}
	}
}

// HeartbeatAccepted calls every enabled HeartbeatListener, in id order.
func (s *Set) HeartbeatAccepted(ctx context.Context) {
	for _, inst := range s.running {
		if hl, ok := inst.(HeartbeatListener); ok {
			s.safely("HeartbeatAccepted", func() { hl.HeartbeatAccepted(ctx) })
		}
	}
}

func (s *Set) safely(step string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("integration panic", "step", step, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	fn()
}
