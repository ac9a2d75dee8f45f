package cli

import (
	"context"
	"fmt"
	"sort"

	api "github.com/pulsehq/pulse/openapi/client"
)

func runDoctor(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "doctor", "[--scan] [--json]", `Lists objects in the bucket that the hub did not write as they are. Every object the hub keeps
carries a MAC made with a key derived from its signing key; one that fails the check (forged or edited
by someone with write access to the bucket) is ignored and never acted on. Without --scan it shows what
the hub answering has refused since it started; --scan also reads every object the hub keeps once.
Exits 1 when anything was refused.`)
	scan := fs.Bool("scan", false, "check every object in the bucket (one read each)")
	asJSON := fs.Bool("json", false, "print JSON")
	c, err := clientCommand(fs, args)
	if err != nil {
		return err
	}
	resp, err := c.api.GetIntegrityWithResponse(ctx, &api.GetIntegrityParams{Scan: scan})
	rep, err := answer(c, resp, err, (*api.GetIntegrityResponse).GetJSON200)
	if err != nil {
		return err
	}
	refused := map[string]string{}
	for _, o := range rep.Objects {
		refused[o.Key] = o.Reason
	}
	for _, o := range rep.ScanRefused {
		refused[o.Key] = o.Reason
	}
	if *asJSON {
		if err := printAnswer(env.Stdout, resp.Body); err != nil {
			return err
		}
	} else {
		if *scan {
			fmt.Fprintf(env.Stdout, "scanned %d objects\n", rep.Scanned)
		}
		if len(refused) == 0 {
			fmt.Fprintln(env.Stdout, "integrity: every object read was written by this hub")
		}
		keys := make([]string, 0, len(refused))
		for k := range refused {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(env.Stdout, "REFUSED %s: %s\n", k, refused[k])
		}
	}
	if !rep.OK {
		return fmt.Errorf("%d objects in the bucket were not written by this hub; they are ignored (see docs/security.md)", len(refused))
	}
	return nil
}
