// The command palette (Ctrl/Cmd+K): type to find a page or an agent by name, arrows to choose,
// Enter to go, Escape to close. A modal <dialog> keeps focus inside while it is open.
import { createEffect, createResource, createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import type { Hub } from "./api";
import { matches, pageEntries, type Entry } from "./palette";
import { go } from "./router";

/** Palette is the dialog; open says whether it shows, onClose hides it. */
export function Palette(props: { hub: Hub; open: boolean; onClose(): void }): JSX.Element {
  let dialog: HTMLDialogElement | undefined;
  let input: HTMLInputElement | undefined;
  const [query, setQuery] = createSignal("");
  const [active, setActive] = createSignal(0);
  const [agents] = createResource(
    () => props.open,
    async (): Promise<Entry[]> => {
      const { data } = await props.hub.GET("/v1/agents", {});
      return (data?.agents ?? []).map((a) => ({ label: a.name, kind: "agent", also: a.id, route: { page: "agent", id: a.id } }));
    },
  );
  // Plans by name too; a person who may not list them just does not see any.
  const [plans] = createResource(
    () => props.open,
    async (): Promise<Entry[]> => {
      const { data } = await props.hub.GET("/v1/plans", {});
      return (data?.plans ?? []).map((p) => ({ label: p.name, kind: "plan", route: { page: "plan", name: p.name } }));
    },
  );
  const found = () => matches([...pageEntries, ...(agents.latest ?? []), ...(plans.latest ?? [])], query());

  createEffect(() => {
    if (!dialog) return;
    if (props.open && !dialog.open) {
      setQuery("");
      setActive(0);
      dialog.showModal();
      input?.focus();
    } else if (!props.open && dialog.open) {
      dialog.close();
    }
  });

  function choose(e: Entry | undefined) {
    if (!e) return;
    props.onClose();
    go(e.route);
  }

  function onKey(e: KeyboardEvent) {
    const n = found().length;
    if (e.key === "ArrowDown") {
      e.preventDefault();
      setActive((i) => (n ? (i + 1) % n : 0));
    } else if (e.key === "ArrowUp") {
      e.preventDefault();
      setActive((i) => (n ? (i - 1 + n) % n : 0));
    } else if (e.key === "Enter") {
      e.preventDefault();
      choose(found()[active()]);
    }
  }

  return (
    <dialog
      ref={dialog}
      aria-label="Go to"
      class="mx-auto mt-24 w-[min(36rem,calc(100%-2rem))] rounded-lg border border-border bg-surface p-0 text-text backdrop:bg-black/50"
      onClose={() => props.onClose()}
    >
      <div class="p-3">
        <label for="palette-input" class="sr-only">
          Go to a page or an agent
        </label>
        <input
          ref={input}
          id="palette-input"
          role="combobox"
          aria-expanded="true"
          aria-controls="palette-list"
          aria-autocomplete="list"
          aria-activedescendant={found().length ? `palette-${active()}` : undefined}
          autocomplete="off"
          placeholder="Go to a page or an agent…"
          class="w-full rounded border border-border bg-bg px-3 py-2 text-text placeholder:text-muted"
          value={query()}
          onInput={(e) => {
            setQuery(e.currentTarget.value);
            setActive(0);
          }}
          onKeyDown={onKey}
        />
      </div>
      <ul id="palette-list" role="listbox" aria-label="Places" class="max-h-80 overflow-y-auto border-t border-border">
        <For each={found()} fallback={<li class="px-4 py-3 text-muted">Nothing matches.</li>}>
          {(e, i) => (
            <li
              id={`palette-${i()}`}
              role="option"
              aria-selected={i() === active()}
              class="flex cursor-pointer justify-between px-4 py-2 aria-selected:bg-surface-2"
              onMouseMove={() => setActive(i())}
              onClick={() => choose(e)}
            >
              <span>{e.label}</span>
              <span class="text-sm text-muted">{e.kind === "agent" ? `agent ${e.also ?? ""}` : e.kind}</span>
            </li>
          )}
        </For>
      </ul>
      <Show when={agents.error}>
        <p class="px-4 py-2 text-sm text-muted">Agents could not be listed.</p>
      </Show>
    </dialog>
  );
}

/** onPaletteKey calls open on Ctrl+K or Cmd+K, anywhere on the page. */
export function onPaletteKey(open: () => void): void {
  const key = (e: KeyboardEvent) => {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
      e.preventDefault();
      open();
    }
  };
  addEventListener("keydown", key);
  onCleanup(() => removeEventListener("keydown", key));
}
