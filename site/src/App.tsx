// The shell of the dashboard: the header with the navigation, the command palette, and once signed
// in the page the hash names (router.ts).
import { createSignal, Match, Show, Switch, type JSX } from "solid-js";
import { newHub } from "./api";
import { probeForwarded, type SiteConfig } from "./config";
import { createSession } from "./session";
import { createTheme } from "./theme";
import { createRoute, type Route } from "./router";
import { Header } from "./Header";
import { onPaletteKey, Palette } from "./Palette";
import { SignIn } from "./SignIn";
import { Fleet } from "./Fleet";
import { AgentPage } from "./AgentPage";
import { CommandsPage } from "./CommandsPage";
import { CommandPage } from "./CommandPage";
import { RunPage } from "./RunPage";
import { AlertsPage } from "./AlertsPage";
import { ApprovalsPage } from "./ApprovalsPage";
import { WorkflowsPage } from "./WorkflowsPage";
import { ExecutionsPage } from "./ExecutionsPage";
import { ExecutionPage } from "./ExecutionPage";
import { PlansPage } from "./PlansPage";
import { PlanPage } from "./PlanPage";
import { AuditPage } from "./AuditPage";
import { onShortcutKeys, ShortcutsHelp } from "./Shortcuts";

function when<P extends Route["page"]>(r: Route, page: P): Extract<Route, { page: P }> | undefined {
  return r.page === page ? (r as Extract<Route, { page: P }>) : undefined;
}

/** App is the whole page for one hub. */
export function App(props: { config: SiteConfig }): JSX.Element {
  const session = createSession();
  const theme = createTheme();
  const hub = newHub(props.config.hub, session.token, (p) => session.signOut(p));
  const route = createRoute();
  if (props.config.auth === "forward" && !session.token()) void probeForwarded(props.config.hub).then((ok) => ok && !session.token() && session.forward());
  const [palette, setPalette] = createSignal(false);
  onPaletteKey(() => {
    if (session.signedIn()) setPalette(true);
  });
  const [keys, setKeys] = createSignal(false);
  onShortcutKeys(() => session.signedIn() && !palette(), () => setKeys(true));

  return (
    <>
      <Header
        signedIn={session.signedIn()}
        forwarded={session.forwarded()}
        route={route}
        theme={theme.theme()}
        onToggleTheme={() => theme.toggle()}
        onSignOut={() => session.signOut()}
        onPalette={() => setPalette(true)}
        onShortcuts={() => setKeys(true)}
      />
      <Show
        when={session.signedIn()}
        fallback={<SignIn hub={hub} hubURL={props.config.hub} refusal={session.refusal()} onToken={(t) => session.signIn(t)} />}
      >
        <Palette hub={hub} open={palette()} onClose={() => setPalette(false)} />
        <ShortcutsHelp open={keys()} onClose={() => setKeys(false)} />
        <Switch
          fallback={
            <main class="mx-auto max-w-7xl px-4 py-6">
              <h1 class="mb-4 text-2xl font-semibold">Not found</h1>
              <p>
                No page here. <a class="text-accent underline" href="#/fleet">Go to the fleet</a>.
              </p>
            </main>
          }
        >
          <Match when={when(route(), "fleet")}>
            <Fleet hub={hub} />
          </Match>
          <Match when={when(route(), "agent")} keyed>
            {(r) => <AgentPage hub={hub} id={r.id} />}
          </Match>
          <Match when={when(route(), "commands")}>
            <CommandsPage hub={hub} />
          </Match>
          <Match when={when(route(), "command")} keyed>
            {(r) => <CommandPage hub={hub} hubURL={props.config.hub} token={session.token} id={r.id} />}
          </Match>
          <Match when={when(route(), "run")} keyed>
            {(r) => <RunPage hub={hub} targets={r.targets} />}
          </Match>
          <Match when={when(route(), "approvals")}>
            <ApprovalsPage hub={hub} />
          </Match>
          <Match when={when(route(), "workflows")}>
            <WorkflowsPage hub={hub} />
          </Match>
          <Match when={when(route(), "executions")}>
            <ExecutionsPage hub={hub} />
          </Match>
          <Match when={when(route(), "execution")} keyed>
            {(r) => <ExecutionPage hub={hub} hubURL={props.config.hub} token={session.token} id={r.id} />}
          </Match>
          <Match when={when(route(), "plans")}>
            <PlansPage hub={hub} />
          </Match>
          <Match when={when(route(), "plan")} keyed>
            {(r) => <PlanPage hub={hub} hubURL={props.config.hub} token={session.token} name={r.name} />}
          </Match>
          <Match when={when(route(), "alerts")}>
            <AlertsPage hub={hub} />
          </Match>
          <Match when={when(route(), "audit")}>
            <AuditPage hub={hub} />
          </Match>
        </Switch>
      </Show>
    </>
  );
}
