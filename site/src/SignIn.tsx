// Sign-in with an operator API token. The token is checked against the hub (GET /v1/agents) before
// it is kept, so a wrong one is refused here with the hub's own problem detail.
import { createSignal, Show, type JSX } from "solid-js";
import { asProblem, describe, type Hub, type Problem } from "./api";

/** SignIn asks for a token; onToken gets it once the hub accepted it. */
export function SignIn(props: { hub: Hub; hubURL: string; refusal: Problem | null; onToken(t: string): void }): JSX.Element {
  const [token, setToken] = createSignal("");
  const [error, setError] = createSignal<string | null>(null);
  const [busy, setBusy] = createSignal(false);
  const shown = () => error() ?? (props.refusal ? describe(props.refusal) : null);

  async function submit(e: SubmitEvent) {
    e.preventDefault();
    const t = token().trim();
    if (!t) {
      setError("Enter an API token (pulse token create, or .run/admin.token for make run).");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // The sign-in probe sends the candidate itself: the session has no token yet.
      const { response, error: problem } = await props.hub.GET("/v1/agents", {
        headers: { Authorization: `Bearer ${t}` },
      });
      if (response.ok) {
        props.onToken(t);
      } else {
        setError(describe(problem ?? (await asProblem(response))));
      }
    } catch (err) {
      setError(`The hub at ${props.hubURL} did not answer: ${describe(err)}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="mx-auto mt-16 max-w-md px-4">
      <h1 class="mb-2 text-2xl font-semibold">Sign in to Pulse</h1>
      <p class="mb-6 text-sm text-muted">
        Hub: <code>{props.hubURL}</code>. The token stays in this tab only.
      </p>
      <form class="space-y-4 rounded-lg border border-border bg-surface p-6" onSubmit={submit}>
        <div>
          <label for="token" class="mb-1 block text-sm font-medium">
            API token
          </label>
          <input
            id="token"
            name="token"
            type="password"
            autocomplete="off"
            class="w-full rounded border border-border bg-bg px-3 py-2 text-text"
            value={token()}
            onInput={(e) => setToken(e.currentTarget.value)}
            aria-describedby={shown() ? "signin-error" : undefined}
          />
        </div>
        <Show when={shown()}>
          <p id="signin-error" role="alert" class="rounded border border-danger bg-danger-bg px-3 py-2 text-sm text-danger">
            {shown()}
          </p>
        </Show>
        <button
          type="submit"
          disabled={busy()}
          class="rounded bg-accent px-4 py-2 font-medium text-accent-text disabled:opacity-60"
        >
          {busy() ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
