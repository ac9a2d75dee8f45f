package kernel

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// testModule is an integration that exists only in this package's tests. Its commands leave side
// effects a test can check (a file appended to), produce output of a chosen size, or block until
// cancelled.
type testModule struct{}

const testGroup = "test_kernel"

func init() {
	integration.Register(integration.Module{ID: testGroup, New: func() integration.Integration { return testModule{} }})
}

func (testModule) Configure(map[string]any) error { return nil }
func (testModule) Enabled() bool                  { return true }

func (testModule) Commands() ([]integration.Command, error) {
	pathParam := wire.ParamSpec{Name: "path", Pattern: `/[A-Za-z0-9_./-]+`, MaxBytes: 4096, Required: true}
	touch, err := integration.NewJob(wire.CommandSpec{Name: "test_kernel_touch", Group: testGroup, Params: []wire.ParamSpec{pathParam}},
		func(ctx context.Context, p map[string]string, out io.Writer) error {
			f, err := os.OpenFile(p["path"], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := f.WriteString("ran\n"); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "touched %s\n", p["path"])
			return err
		})
	if err != nil {
		return nil, err
	}
	emit, err := integration.NewJob(wire.CommandSpec{Name: "test_kernel_emit", Group: testGroup,
		Params: []wire.ParamSpec{{Name: "bytes", Pattern: `[0-9]{1,9}`, Required: true}}},
		func(ctx context.Context, p map[string]string, out io.Writer) error {
			n, _ := strconv.Atoi(p["bytes"])
			_, err := out.Write(pattern(n))
			return err
		})
	if err != nil {
		return nil, err
	}
	block, err := integration.NewJob(wire.CommandSpec{Name: "test_kernel_block", Group: testGroup},
		func(ctx context.Context, p map[string]string, out io.Writer) error {
			fmt.Fprintln(out, "started")
			<-ctx.Done()
			return ctx.Err()
		})
	if err != nil {
		return nil, err
	}
	return []integration.Command{touch, emit, block}, nil
}

// pattern is n bytes that differ from chunk to chunk, so reordered or dropped chunks are detected.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/4093)
	}
	return b
}
