// The shell of the dashboard: the header (theme toggle, sign-out) and, once signed in, the fleet.
import { Show, type JSX } from "solid-js";
import { newHub } from "./api";
import type { SiteConfig } from "./config";
import { createSession } from "./session";
import { createTheme } from "./theme";
import { SignIn } from "./SignIn";
import { Fleet } from "./Fleet";

/** App is the whole page for one hub. */
export function App(props: { config: SiteConfig }): JSX.Element {
  const session = createSession();
  const theme = createTheme();
  const hub = newHub(props.config.hub, session.token, (p) => session.signOut(p));

  return (
    <>
      <header class="border-b border-border bg-surface">
        <div class="mx-auto flex max-w-7xl items-center gap-4 px-4 py-3">
          <span class="text-lg font-bold">Pulse</span>
          <Show when={session.token()}>
            <nav aria-label="Main">
              <a href="#/fleet" aria-current="page" class="font-medium underline-offset-4 hover:underline">
                Fleet
              </a>
            </nav>
          </Show>
          <div class="ml-auto flex items-center gap-2">
            <button
              type="button"
              class="rounded border border-border px-3 py-1 text-sm"
              aria-label={theme.theme() === "dark" ? "Switch to light theme" : "Switch to dark theme"}
              onClick={() => theme.toggle()}
            >
              {theme.theme() === "dark" ? "Light" : "Dark"}
            </button>
            <Show when={session.token()}>
              <button type="button" class="rounded border border-border px-3 py-1 text-sm" onClick={() => session.signOut()}>
                Sign out
              </button>
            </Show>
          </div>
        </div>
      </header>
      <Show
        when={session.token()}
        fallback={<SignIn hub={hub} hubURL={props.config.hub} refusal={session.refusal()} onToken={(t) => session.signIn(t)} />}
      >
        <Fleet hub={hub} />
      </Show>
    </>
  );
}
