// The signed-in person's API token. It lives in memory and in sessionStorage (so a reload of the tab
// keeps it, closing the tab forgets it); never in localStorage, never in a URL.
import { createSignal, type Accessor } from "solid-js";
import type { Problem } from "./api";

const KEY = "pulse.token";

/** Session is the token and why the person was last sent back to sign-in. */
export interface Session {
  token: Accessor<string | null>;
  /** Signed in without a token: a forward-auth proxy in front of the hub vouches for the person. */
  forwarded: Accessor<boolean>;
  signedIn(): boolean;
  /** forward records that the hub answered without a token (through the proxy). */
  forward(): void;
  /** The hub's problem that ended the last session (a 401), shown on the sign-in page. */
  refusal: Accessor<Problem | null>;
  signIn(token: string): void;
  signOut(refusal?: Problem): void;
}

function stored(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null; // storage disabled: memory only
  }
}

/** createSession makes the session of this tab. */
export function createSession(): Session {
  const [token, setToken] = createSignal<string | null>(stored());
  const [refusal, setRefusal] = createSignal<Problem | null>(null);
  const [forwarded, setForwarded] = createSignal(false);
  return {
    token,
    forwarded,
    signedIn: () => token() !== null || forwarded(),
    forward() {
      setRefusal(null);
      setForwarded(true);
    },
    refusal,
    signIn(t) {
      setRefusal(null);
      setToken(t);
      try {
        sessionStorage.setItem(KEY, t);
      } catch {
        // memory only
      }
    },
    signOut(p) {
      setRefusal(p ?? null);
      setForwarded(false);
      setToken(null);
      try {
        sessionStorage.removeItem(KEY);
      } catch {
        // memory only
      }
    },
  };
}
