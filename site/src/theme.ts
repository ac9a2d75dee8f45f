// Light and dark themes: the system's prefers-color-scheme decides until the person picks one with
// the toggle; the pick sets data-theme on <html>, which the semantic tokens in index.css follow.
// Only this preference is kept in localStorage (nothing secret).
import { createSignal, type Accessor } from "solid-js";

/** Theme is what the page shows. */
export type Theme = "light" | "dark";

const KEY = "pulse.theme";

function systemTheme(): Theme {
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function picked(): Theme | null {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : null;
  } catch {
    return null;
  }
}

/** createTheme returns the theme shown and a toggle that picks the other one. */
export function createTheme(): { theme: Accessor<Theme>; toggle(): void } {
  const first = picked();
  if (first) document.documentElement.dataset["theme"] = first;
  const [theme, setTheme] = createSignal<Theme>(first ?? systemTheme());
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (!document.documentElement.dataset["theme"]) setTheme(systemTheme());
  });
  return {
    theme,
    toggle() {
      const next: Theme = theme() === "dark" ? "light" : "dark";
      document.documentElement.dataset["theme"] = next;
      try {
        localStorage.setItem(KEY, next);
      } catch {
        // not kept: this page only
      }
      setTheme(next);
    },
  };
}
