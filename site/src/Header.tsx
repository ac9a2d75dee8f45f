// The header: the navigation by task (collapsed behind a Menu button at phone width), the command
// palette's button, the theme toggle and sign-out.
import { createSignal, For, Show, type Accessor, type JSX } from "solid-js";
import { section, type Route } from "./router";
import type { Theme } from "./theme";

const pages = [
  { key: "fleet", label: "Fleet", href: "#/fleet" },
  { key: "commands", label: "Commands", href: "#/commands" },
  { key: "approvals", label: "Approvals", href: "#/approvals" },
  { key: "workflows", label: "Workflows", href: "#/workflows" },
  { key: "executions", label: "Executions", href: "#/executions" },
  { key: "plans", label: "Plans", href: "#/plans" },
  { key: "alerts", label: "Alerts", href: "#/alerts" },
  { key: "audit", label: "Audit", href: "#/audit" },
] as const;

const button = "rounded border border-border px-3 py-1 text-sm";

/** Header is the top bar; the navigation shows only when signed in. */
export function Header(props: {
  signedIn: boolean;
  /** Signed in by a forward-auth proxy: there is no token to forget. */
  forwarded: boolean;
  route: Accessor<Route>;
  theme: Theme;
  onToggleTheme(): void;
  onSignOut(): void;
  onPalette(): void;
  onShortcuts(): void;
}): JSX.Element {
  const [open, setOpen] = createSignal(false);
  return (
    <header class="border-b border-border bg-surface">
      <div class="mx-auto flex max-w-7xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3">
        <span class="text-lg font-bold">Pulse</span>
        <Show when={props.signedIn}>
          <button
            type="button"
            class={button + " sm:hidden"}
            aria-expanded={open()}
            aria-controls="main-nav"
            onClick={() => setOpen(!open())}
          >
            Menu
          </button>
          <nav id="main-nav" aria-label="Main" class={(open() ? "flex" : "hidden") + " order-last w-full sm:order-none sm:flex sm:w-auto"}>
            <ul class="flex flex-col gap-1 sm:flex-row sm:gap-4">
              <For each={pages}>
                {(p) => (
                  <li>
                    <a
                      href={p.href}
                      aria-current={section(props.route()) === p.key ? "page" : undefined}
                      class="block rounded px-2 py-1 font-medium underline-offset-4 hover:underline aria-[current=page]:bg-surface-2 aria-[current=page]:underline"
                      onClick={() => setOpen(false)}
                    >
                      {p.label}
                    </a>
                  </li>
                )}
              </For>
            </ul>
          </nav>
        </Show>
        <div class="ml-auto flex items-center gap-2">
          <Show when={props.signedIn}>
            <button type="button" class={button} aria-keyshortcuts="Control+K Meta+K" onClick={() => props.onPalette()}>
              Go to… <kbd class="hidden font-mono text-xs text-muted sm:inline">Ctrl K</kbd>
            </button>
            <button type="button" class={button} aria-keyshortcuts="?" aria-label="Keyboard shortcuts" title="Keyboard shortcuts (?)" onClick={() => props.onShortcuts()}>
              ?
            </button>
          </Show>
          <button
            type="button"
            class={button}
            aria-label={props.theme === "dark" ? "Switch to light theme" : "Switch to dark theme"}
            onClick={() => props.onToggleTheme()}
          >
            {props.theme === "dark" ? "Light" : "Dark"}
          </button>
          <Show when={props.signedIn && !props.forwarded}>
            <button type="button" class={button} onClick={() => props.onSignOut()}>
              Sign out
            </button>
          </Show>
          <Show when={props.forwarded}>
            <span class="text-sm text-muted">Signed in through your proxy</span>
          </Show>
        </div>
      </div>
    </header>
  );
}
