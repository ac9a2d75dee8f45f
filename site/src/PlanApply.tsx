// Applying a plan from the page (PUT /v1/plans/{name}): a name and a YAML source; a refusal is shown
// at its line and column beside the numbered source, a denial with its rule, and an apply the policy
// holds for approval says so (the proposal is on the plan's page).
import { createEffect, createSignal, on, Show, type JSX } from "solid-js";
import { ProblemError, type Hub, type Problem } from "./api";
import type { components } from "../../openapi/ts/pulse-api";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";
import { SourceProblems } from "./SourceProblems";
import { sourceProblems } from "./workflow";

type Applied = components["schemas"]["PlanApplied"];

const input = "w-full rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

/** appliedText words what an apply did, for the line under the form. */
export function appliedText(a: Applied): string {
  if (a.proposal) {
    const p = a.proposal;
    return `Not applied yet: ${p.approvals.reason || "the policy wants approvals"} (proposal ${p.id}, ${p.approvals.count} approval${p.approvals.count === 1 ? "" : "s"} needed).`;
  }
  if (a.unchanged) return `Plan ${a.name} is unchanged at version ${a.version}.`;
  const sent = (a.agents ?? []).length;
  const waves = a.rollout?.waves?.length ?? 0;
  return waves > 0
    ? `Applied ${a.name} as version ${a.version}: rolling out in ${waves} wave${waves === 1 ? "" : "s"}, the first sent to ${sent} agent${sent === 1 ? "" : "s"}.`
    : `Applied ${a.name} as version ${a.version}: sent to ${sent} agent${sent === 1 ? "" : "s"}.`;
}

/**
 * PlanApply is the form; name fixes the plan's name (its own page), source is what it starts with (and
 * takes again when it changes), onApplied follows a success.
 */
export function PlanApply(props: { hub: Hub; name?: string; source?: string; onApplied?(a: Applied): void }): JSX.Element {
  const [name, setName] = createSignal(props.name ?? "");
  const [source, setSource] = createSignal(props.source ?? "");
  const [refusal, setRefusal] = createSignal<Problem | null>(null);
  const [applied, setApplied] = createSignal<Applied | null>(null);
  const [busy, setBusy] = createSignal(false);
  const problems = () => sourceProblems(refusal());
  // A newer version's source replaces what the form holds (the one just applied, a rollback's).
  createEffect(
    on(
      () => props.source,
      (s) => {
        if (s !== undefined) setSource(s);
      },
      { defer: true },
    ),
  );

  async function apply(e: SubmitEvent) {
    e.preventDefault();
    setRefusal(null);
    setApplied(null);
    const n = (props.name ?? name()).trim();
    if (!n) {
      setRefusal({ status: 422, title: "A name is needed", detail: "Name the plan first." });
      return;
    }
    setBusy(true);
    const { data, error } = await props.hub.PUT("/v1/plans/{name}", { params: { path: { name: n } }, body: { source: source() } });
    setBusy(false);
    if (error) setRefusal(error);
    else if (data) {
      setApplied(data);
      props.onApplied?.(data);
    }
  }

  return (
    <form class="space-y-4 rounded-lg border border-border bg-surface p-6" onSubmit={apply} aria-label="Apply a plan">
      <Show when={props.name === undefined}>
        <div>
          <label for="plan-name" class="mb-1 block text-sm font-medium">
            Name
          </label>
          <input id="plan-name" class={input + " max-w-sm"} value={name()} onInput={(e) => setName(e.currentTarget.value)} autocomplete="off" />
          <p class="mt-1 text-xs text-muted">Lower-case letters, digits and _, starting with a letter.</p>
        </div>
      </Show>
      <div>
        <label for="plan-source" class="mb-1 block text-sm font-medium">
          Source (YAML)
        </label>
        <textarea
          id="plan-source"
          rows={12}
          class={input + " font-mono text-sm"}
          value={source()}
          onInput={(e) => setSource(e.currentTarget.value)}
          aria-invalid={problems().length > 0}
          aria-describedby={problems().length ? "plan-problems" : undefined}
        />
      </div>
      <Show when={refusal()}>
        <ProblemNote error={new ProblemError(refusal()!)} />
      </Show>
      <SourceProblems id="plan-problems" prefix="plan" source={source()} problems={problems()} />
      <p class={"text-sm " + (applied()?.proposal ? "text-warn" : "text-ok")} aria-live="polite" data-testid="plan-applied">
        {applied() ? appliedText(applied()!) : ""}
        <Show when={applied() && props.name === undefined}>
          {" "}
          <a class="text-accent underline" href={href({ page: "plan", name: applied()!.name })}>
            Open {applied()!.name}
          </a>
        </Show>
      </p>
      <button type="submit" disabled={busy()} class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
        Apply
      </button>
    </form>
  );
}
