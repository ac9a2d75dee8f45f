// Server-sent events read with fetch, so the Authorization header goes with them (an EventSource
// cannot send one), resuming after a drop with Last-Event-ID as the hub's streams allow.

/** SSEvent is one dispatched event. */
export interface SSEvent {
  id: string;
  event: string;
  data: string;
}

/**
 * SSEParser turns the text of a stream, in pieces as they arrive, into events (the WHATWG
 * event-stream format: fields up to a blank line, comments start with ':', an event without a name
 * is "message"; a piece may end anywhere, even inside a line or a CRLF).
 */
export class SSEParser {
  private buf = "";
  private id = "";
  private event = "";
  private data: string[] = [];
  private hasData = false;

  /** push feeds text and returns the events it completed. */
  push(text: string): SSEvent[] {
    this.buf += text;
    const out: SSEvent[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone CR at the very end may be the first half of a CRLF: wait for more.
      if (m[0] === "\r" && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  private line(line: string): SSEvent | null {
    if (line === "") {
      if (!this.hasData) {
        this.event = "";
        return null;
      }
      const ev = { id: this.id, event: this.event || "message", data: this.data.join("\n") };
      this.event = "";
      this.data = [];
      this.hasData = false;
      return ev;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
    }
    return null;
  }
}

/** Watch says how a stream is going, for the page to show. */
export type StreamState = "connecting" | "live" | "reconnecting" | "ended";

export interface WatchOptions {
  url: string;
  token: () => string | null;
  onEvent(ev: SSEvent): void;
  onState(s: StreamState): void;
  /** Whether the stream's end means it is over (every target final) or was a drop. */
  finished(): boolean;
  /** A refusal to open the stream (a 404, a 403): no retry. */
  onRefused(resp: Response): void;
  signal: AbortSignal;
  retryMs?: number;
}

/**
 * watch reads the stream until it is finished or signal aborts; after a drop (the connection ends or
 * fails before the stream is finished) it reconnects with the last event id it saw.
 */
export async function watch(o: WatchOptions): Promise<void> {
  let lastId = "";
  o.onState("connecting");
  while (!o.signal.aborted) {
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      const t = o.token();
      if (t) headers["Authorization"] = `Bearer ${t}`;
      if (lastId) headers["Last-Event-ID"] = lastId;
      const resp = await fetch(o.url, { headers, signal: o.signal, cache: "no-store" });
      if (!resp.ok || !resp.body) {
        if (resp.status >= 500) throw new Error(`HTTP ${resp.status}`);
        o.onRefused(resp);
        return;
      }
      o.onState("live");
      const parser = new SSEParser();
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.push(value)) {
          if (ev.id) lastId = ev.id;
          o.onEvent(ev);
        }
      }
      if (o.finished()) {
        o.onState("ended");
        return;
      }
    } catch {
      if (o.signal.aborted) return;
    }
    o.onState("reconnecting");
    await sleep(o.retryMs ?? 1000, o.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}
