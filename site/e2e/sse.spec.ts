// The event-stream reader: the parser, table-driven, and watch() against a local server that drops
// the connection after one event, to see it reconnect with Last-Event-ID and the Authorization header.
import { expect, test } from "@playwright/test";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { SSEParser, watch, type SSEvent, type StreamState } from "../src/sse";

test("the parser reads events however the text is split", () => {
  const stream = ": stream open\n\nid: 7\nevent: agent\ndata: {\"a\":1}\n\nevent: command\ndata: x\ndata: y\r\n\r\ndata:no-space\n\n:comment\nevent: ignored-without-data\n\n";
  const want: SSEvent[] = [
    { id: "7", event: "agent", data: '{"a":1}' },
    { id: "7", event: "command", data: "x\ny" },
    { id: "7", event: "message", data: "no-space" },
  ];
  for (const size of [1, 2, 3, 7, stream.length]) {
    const p = new SSEParser();
    const got: SSEvent[] = [];
    for (let i = 0; i < stream.length; i += size) got.push(...p.push(stream.slice(i, i + size)));
    expect(got, `pieces of ${size}`).toEqual(want);
  }
});

test("watch resumes after a drop with Last-Event-ID, then ends when finished", async () => {
  const seen: { auth: string | undefined; last: string | undefined }[] = [];
  const server = createServer((req, res) => {
    seen.push({ auth: req.headers["authorization"], last: req.headers["last-event-id"] as string | undefined });
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    if (seen.length === 1) {
      res.write("id: e1\nevent: agent\ndata: one\n\n");
      setTimeout(() => res.socket?.destroy(), 50); // the drop
    } else {
      res.end("id: e2\nevent: agent\ndata: two\n\n");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  const events: string[] = [];
  const states: StreamState[] = [];
  try {
    await watch({
      url,
      token: () => "pulse_secret",
      onEvent: (ev) => events.push(ev.data),
      onState: (s) => states.push(s),
      finished: () => events.includes("two"),
      onRefused: () => {
        throw new Error("refused");
      },
      signal: new AbortController().signal,
      retryMs: 10,
    });
  } finally {
    server.close();
  }
  expect(events).toEqual(["one", "two"]);
  expect(seen).toEqual([
    { auth: "Bearer pulse_secret", last: undefined },
    { auth: "Bearer pulse_secret", last: "e1" },
  ]);
  expect(states).toEqual(["connecting", "live", "reconnecting", "live", "ended"]);
});
