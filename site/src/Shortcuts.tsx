// The keyboard shortcuts at work: "g" then a letter goes to a page, "?" opens the list of them in a
// modal dialog (Escape closes it). Keys typed into a field are the field's.
import { createEffect, For, onCleanup, type JSX } from "solid-js";
import { go } from "./router";
import { createSequence, goShortcuts, typing } from "./shortcuts";

function Keys(props: { keys: string }): JSX.Element {
  return (
    <span class="flex gap-1">
      <For each={props.keys.split(" ")}>{(k) => <kbd class="rounded border border-border bg-surface-2 px-1.5 font-mono text-sm">{k}</kbd>}</For>
    </span>
  );
}

/** onShortcutKeys follows the keys on the whole page while enabled() holds. */
export function onShortcutKeys(enabled: () => boolean, help: () => void): void {
  const next = createSequence();
  const key = (e: KeyboardEvent) => {
    if (!enabled() || e.defaultPrevented || typing(e.target as HTMLElement | null, e)) return;
    const a = next(e.key, Date.now());
    if (!a) return;
    if ("go" in a) {
      e.preventDefault();
      document.querySelector<HTMLDialogElement>("dialog[open][data-shortcuts]")?.close();
      go(a.go);
    } else if ("help" in a) {
      e.preventDefault();
      help();
    }
  };
  addEventListener("keydown", key);
  onCleanup(() => removeEventListener("keydown", key));
}

/** ShortcutsHelp is the list of shortcuts; open says whether it shows, onClose hides it. */
export function ShortcutsHelp(props: { open: boolean; onClose(): void }): JSX.Element {
  let dialog: HTMLDialogElement | undefined;
  createEffect(() => {
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    else if (!props.open && dialog.open) dialog.close();
  });
  return (
    <dialog
      ref={dialog}
      data-shortcuts
      aria-labelledby="shortcuts-h"
      class="mx-auto mt-24 w-[min(28rem,calc(100%-2rem))] rounded-lg border border-border bg-surface p-4 text-text backdrop:bg-black/50"
      onClose={() => props.onClose()}
    >
      <h2 id="shortcuts-h" class="mb-3 text-lg font-semibold">
        Keyboard shortcuts
      </h2>
      <dl class="grid grid-cols-[max-content_1fr] items-center gap-x-4 gap-y-2 text-sm" data-testid="shortcuts">
        <dt>
          <Keys keys="Ctrl K" />
        </dt>
        <dd>Go to a page, an agent or a plan by name</dd>
        <For each={goShortcuts}>
          {(s) => (
            <>
              <dt>
                <Keys keys={s.keys} />
              </dt>
              <dd>{s.label}</dd>
            </>
          )}
        </For>
        <dt>
          <Keys keys="?" />
        </dt>
        <dd>This list</dd>
      </dl>
      <form method="dialog" class="mt-4 text-right">
        <button type="submit" class="rounded border border-border px-3 py-1 text-sm">
          Close
        </button>
      </form>
    </dialog>
  );
}
