// The hub's public API, typed from the committed OpenAPI document (openapi/ts/pulse-api.d.ts, the one
// source of truth, checked against openapi.yaml by openapi/ts/check.sh) and called through openapi-fetch.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "../../openapi/ts/pulse-api";
import { ProblemError, problemLine } from "../../openapi/ts/commands";

export { ProblemError };

/** Problem is an RFC 9457 problem detail, the body of every refusal. */
export type Problem = components["schemas"]["ErrorModel"];
/** Agent is one row of the fleet. */
export type Agent = components["schemas"]["AgentView"];
/** Hub is a typed client of the hub API. */
export type Hub = Client<paths>;

/**
 * describe words a problem (or anything thrown) as one line for a person. Throw problems as a
 * ProblemError: Solid turns a thrown non-Error into "Unknown error".
 */
export function describe(err: unknown): string {
  if (err && typeof err === "object" && ("detail" in err || "title" in err)) {
    return problemLine(err as Problem);
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/** asProblem reads a response body as a problem, or makes one from its status when it is not one. */
export async function asProblem(resp: Response): Promise<Problem> {
  try {
    const body: unknown = await resp.clone().json();
    if (body && typeof body === "object") return body as Problem;
  } catch {
    // Not JSON (a proxy's page): fall through.
  }
  return { status: resp.status, title: resp.statusText || `HTTP ${resp.status}` };
}

/**
 * newHub makes a client that sends token() as a bearer token on every request and calls
 * onUnauthorized with the hub's problem when it answers 401, so the page can send the person back
 * to sign-in with the hub's reason.
 */
export function newHub(baseUrl: string, token: () => string | null, onUnauthorized: (p: Problem) => void): Hub {
  const client = createClient<paths>({ baseUrl });
  const auth: Middleware = {
    onRequest({ request }) {
      const t = token();
      if (t) request.headers.set("Authorization", `Bearer ${t}`);
      return request;
    },
    async onResponse({ response }) {
      if (response.status === 401) onUnauthorized(await asProblem(response));
      return response;
    },
  };
  client.use(auth);
  return client;
}
