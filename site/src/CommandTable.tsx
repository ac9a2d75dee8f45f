// A table of commands (newest first), each linking to its page: used by the Commands page and an
// agent's recent commands.
import { For, type JSX } from "solid-js";
import type { components } from "../../openapi/ts/pulse-api";
import { ago } from "./format";
import { Badge } from "./Badge";
import { href } from "./router";

export type CommandSummary = components["schemas"]["CommandSummary"];

function counts(c: CommandSummary): string {
  return Object.entries(c.counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, n]) => `${n} ${s.replace(/_/g, " ")}`)
    .join(", ");
}

/** CommandTable lists commands; caption names the table for screen readers. */
export function CommandTable(props: { commands: CommandSummary[]; caption: string; empty: string; now: number }): JSX.Element {
  return (
    <div class="overflow-x-auto rounded-lg border border-border bg-surface">
      <table class="w-full text-left text-sm">
        <caption class="sr-only">{props.caption}</caption>
        <thead class="bg-surface-2">
          <tr>
            <th scope="col" class="px-3 py-2">Command</th>
            <th scope="col" class="px-3 py-2">State</th>
            <th scope="col" class="px-3 py-2">Targets</th>
            <th scope="col" class="px-3 py-2">Issued</th>
            <th scope="col" class="px-3 py-2">By</th>
          </tr>
        </thead>
        <tbody>
          <For
            each={props.commands}
            fallback={
              <tr>
                <td colSpan={5} class="px-3 py-6 text-center text-muted">
                  {props.empty}
                </td>
              </tr>
            }
          >
            {(c) => (
              <tr class="border-t border-border" data-command={c.id}>
                <td class="px-3 py-2">
                  <a class="font-medium text-accent underline-offset-4 hover:underline" href={href({ page: "command", id: c.id })}>
                    {c.command}
                  </a>
                  <div class="font-mono text-xs text-muted">{c.id}</div>
                </td>
                <td class="px-3 py-2">
                  <Badge state={c.state} />
                </td>
                <td class="px-3 py-2">
                  <div class="font-mono text-xs">{(c.targetExprs ?? []).join(" ")}</div>
                  <div class="text-xs text-muted">{counts(c)}</div>
                </td>
                <td class="px-3 py-2">
                  <time datetime={c.createdAt} title={c.createdAt}>
                    {ago(c.createdAt, props.now)}
                  </time>
                </td>
                <td class="px-3 py-2 font-mono text-xs">{c.issuer}</td>
              </tr>
            )}
          </For>
        </tbody>
      </table>
    </div>
  );
}
