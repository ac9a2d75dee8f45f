// Follows one agent's output of a command: asks GET /v1/commands/{id}/output/{agent} from the next
// chunk on until the hub says it is complete, decoding the bytes as UTF-8 across chunk boundaries.
import type { Hub } from "./api";

/** followOutput calls onText with each new piece of output; it returns once complete or aborted. */
export async function followOutput(
  hub: Hub,
  id: string,
  agent: string,
  onText: (s: string) => void,
  signal: AbortSignal,
  everyMs = 700,
): Promise<void> {
  const decoder = new TextDecoder();
  let from = 0;
  while (!signal.aborted) {
    let complete = false;
    try {
      const { data, response } = await hub.GET("/v1/commands/{id}/output/{agent}", {
        params: { path: { id, agent }, query: { from } },
        parseAs: "arrayBuffer",
        signal,
      });
      if (response.ok) {
        // No body at all (nothing stored yet) reads as no bytes.
        const text = data ? decoder.decode(new Uint8Array(data as ArrayBuffer), { stream: true }) : "";
        if (text) onText(text);
        const header = response.headers.get("X-Pulse-Next-Chunk");
        if (header === null) {
          // Without it the same chunks would be asked for again and shown twice (a hub on another
          // origin that does not expose the header to this page).
          onText("\n[the hub did not say where the output continues (X-Pulse-Next-Chunk); reload to see the rest]\n");
          return;
        }
        const next = Number(header);
        if (Number.isFinite(next) && next >= from) from = next;
        complete = response.headers.get("X-Pulse-Complete") === "true";
      } else if (response.status !== 404) {
        onText(`\n[output unavailable: HTTP ${response.status}]\n`);
        return;
      }
    } catch {
      if (signal.aborted) return;
    }
    if (complete) {
      const rest = decoder.decode();
      if (rest) onText(rest);
      return;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
