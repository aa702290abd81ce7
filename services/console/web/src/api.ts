// The one way the app talks to Parley: same-origin calls to /v1/… (the console passes them to the owning
// service) with the signed-in user's bearer token, and the router's live stream read with fetch (EventSource
// cannot send an Authorization header).

export type Role = "owner" | "manager" | "agent" | "integration";

export interface Session {
  token: string;
  login: string;
  tenant: string;
  roles: Role[];
  expiresAt: number; // ms since epoch
}

const TOKEN_KEY = "parley.token";
/** Fired on the window when an API answers 401: the app goes back to the sign-in page. */
export const SIGNED_OUT = "parley:signed-out";

function decodeClaims(token: string): Record<string, unknown> | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function sessionFromToken(token: string): Session | null {
  const claims = decodeClaims(token);
  if (!claims || typeof claims.sub !== "string" || typeof claims.tenant !== "string") return null;
  const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : 0;
  if (expiresAt <= Date.now()) return null;
  const roles = Array.isArray(claims.roles) ? (claims.roles as Role[]) : [];
  return { token, login: claims.sub, tenant: claims.tenant, roles, expiresAt };
}

/** A sign-in link carries the token in the fragment (#token=…), which the browser never sends to a server. */
export function restoreSession(): Session | null {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = fragment.get("token");
  if (fromLink) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    const session = sessionFromToken(fromLink);
    if (session) sessionStorage.setItem(TOKEN_KEY, fromLink);
    return session;
  }
  const stored = sessionStorage.getItem(TOKEN_KEY);
  return stored ? sessionFromToken(stored) : null;
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(TOKEN_KEY, session.token);
}

export function forgetSession(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export const isManager = (session: Session) => session.roles.includes("owner") || session.roles.includes("manager");

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
  }
}

let currentToken = "";
export function setApiToken(token: string): void {
  currentToken = token;
}

type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function api<T>(path: string, options: { method?: string; json?: unknown; body?: BodyInit; query?: Query } = {}): Promise<T> {
  const headers: Record<string, string> = { Authorization: `Bearer ${currentToken}`, Accept: "application/json" };
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await fetch(withQuery(path, options.query), { method: options.method ?? "GET", headers, body });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  const data = text ? safeJson(text) : null;
  if (response.status === 401) window.dispatchEvent(new Event(SIGNED_OUT)); // expired or revoked: sign in again
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? `http_${response.status}`, error?.message ?? response.statusText, error?.details);
  }
  return data as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** A picture the API serves (with the bearer token, so not an <img src>): an object URL to show, revoked by the
 * caller; null when there is none. */
export async function pictureUrl(path: string): Promise<string | null> {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${currentToken}`, Accept: "image/*" } });
  if (!response.ok) return null;
  return URL.createObjectURL(await response.blob());
}

export async function download(path: string, query: Query, filename: string): Promise<void> {
  const response = await fetch(withQuery(path, query), { headers: { Authorization: `Bearer ${currentToken}` } });
  if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, "export failed");
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  URL.revokeObjectURL(url);
}

/** A change to a conversation the caller may see (`event: conversation.<change>`), or `reset`: the screen refetches
 * what it shows — the router could not resume from the last id, or the stream has just started (`followLive`). */
export interface LiveEvent {
  id: string;
  type: string;
  data: ConversationChange;
}

/** Tab counts pushed on the stream (`event: counts`). */
export interface PushedCounts {
  counts: Counts;
}

export type LiveState = "connecting" | "live" | "offline";

/** A comment on a contact mentions the signed-in user (`event: mention`; the text is read from contacts). */
export interface PushedMention {
  contact_id: string;
  comment_id: string;
  author: string;
}

/** Follows /v1/conversations/stream until stopped; reconnects with Last-Event-ID after a drop. */
export function followLive(onEvent: (event: LiveEvent) => void, onCounts: (counts: PushedCounts) => void,
                           onMention: (mention: PushedMention) => void, onState: (state: LiveState) => void): () => void {
  let stopped = false;
  let lastId = "";
  let controller = new AbortController();
  let retry = 1000;

  async function run(): Promise<void> {
    while (!stopped) {
      onState("connecting");
      controller = new AbortController();
      try {
        const headers: Record<string, string> = { Authorization: `Bearer ${currentToken}`, Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch("/v1/conversations/stream", { headers, signal: controller.signal });
        if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
        onState("live");
        retry = 1000;
        // A stream that resumes nothing starts at its first chunk (the router sends it once it follows changes for
        // this screen): a change made after the screen read its lists and before then is on neither, so they are
        // read again then.
        let unresumed = !lastId;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (unresumed) {
            unresumed = false;
            onEvent({ id: "", type: "reset", data: {} as ConversationChange });
          }
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = parseFrame(frame);
            if (event?.type === "counts") {
              onCounts(event.data as unknown as PushedCounts);
            } else if (event?.type === "mention") {
              onMention(event.data as unknown as PushedMention);
            } else if (event) {
              lastId = event.id || lastId;
              onEvent(event);
            }
          }
        }
      } catch {
        if (stopped) return;
      }
      onState("offline");
      await new Promise((resolve) => setTimeout(resolve, retry));
      retry = Math.min(retry * 2, 15000);
    }
  }

  void run();
  return () => {
    stopped = true;
    controller.abort();
  };
}

function parseFrame(frame: string): LiveEvent | null {
  let id = "";
  let type = "message";
  const data: string[] = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { id, type, data: JSON.parse(data.join("\n")) as ConversationChange };
  } catch {
    return null;
  }
}

// ---- shapes of the services' answers (see each service's /openapi.json) ----

export interface Assignee {
  kind: "agent" | "team" | "skill" | "bot";
  id: string;
}

export type Status = "bot" | "queued" | "assigned" | "snoozed" | "closed";

export interface Conversation {
  id: string;
  channel_id: string;
  channel_type: string;
  external_user_id: string;
  status: Status;
  opened_at: string;
  last_activity_at: string;
  assignee: Assignee | null;
  team_id: string | null;
  archived: boolean;
  unanswered: boolean;
  priority: number;
  waiting_since: string | null;
  snoozed_until: string | null;
  offer_expires_at: string | null;
  closed_at: string | null;
  closing_note: string | null;
  blocked: boolean;
  labels: string[];
  customer_name: string | null;
  customer_phone: string | null;
  contact_id?: string | null;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export type Counts = Record<string, number>;

export interface ConversationChange {
  conversation_id: string;
  change: string;
  status: Status;
  assignee: Assignee | null;
  actor: string | null;
  entry_id?: string | null;
  entry?: Entry;
  channel_id: string;
  external_user_id: string;
}

export interface MediaRef {
  media_id: string;
  state?: string;
  mime_type?: string | null;
  file_name?: string | null;
  size_bytes?: number | null;
  reason?: string | null;
}

export interface Entry {
  entry_id: string;
  kind: "inbound" | "outbound" | "note" | "activity";
  at: string;
  text?: string | null;
  parts?: { kind: string; text?: string | null; html?: string | null; media_id?: string | null; mime_type?: string | null; file_name?: string | null }[];
  media?: MediaRef[] | Record<string, MediaRef> | null;
  sender?: string | { kind: string; login: string | null; bot_id: string | null };
  author?: string;
  content?: { kind: string; text?: string; media_id?: string | null; caption?: string | null; name?: string; language?: string; variables?: Record<string, string> };
  status?: string;
  statuses?: Record<string, string>;
  error?: { code?: string; message?: string; title?: string; detail?: string } | null;
  reason?: string | null;
  change?: string;
  actor?: string | null;
  comment?: string | null;
  assignee?: Assignee | null;
  message_id?: string;
  edited?: boolean;
  deleted?: boolean;
  revisions?: { text?: string | null; until: string }[];
  reactions?: Record<string, { emoji: string | null; at: string }>;
}

export interface Window {
  has_window: boolean;
  open: boolean;
  closes_at: string | null;
  remaining_seconds: number | null;
  blocked: boolean;
  allowed: { sender_kind: string; message_kind: string; verdict: string; reason: string }[];
}

/** A channel a conversation can be started on by phone (outbound's GET /v1/channels). */
export interface WriteFirstChannel {
  id: string;
  type: string;
  write_first: "template" | "known_customer";
}

export interface Template {
  name: string;
  language: string;
  category: string;
  status: string;
  header: { format: string; text?: string | null } | null;
  body: string;
  footer: string | null;
  channel_id: string;
  variables: { name?: string; type?: string; options?: string[]; required?: boolean }[];
}

export interface Identity {
  channel_id: string;
  channel_type: string;
  external_user_id: string;
  username: string | null;
  phone: string | null;
  blocked: boolean;
}

export interface Contact {
  id: string;
  display_name: string | null;
  platform_name: string | null;
  avatar_url: string | null;
  avatar_from_platform: boolean; // contacts serves it at /v1/contacts/{id}/avatar
  phones: string[];
  emails: string[];
  identities: Identity[];
  labels: string[];
  custom_fields: Record<string, { type: string; value: string | number | boolean }>;
  created_at: string;
  responsible?: string | null;
}

export interface Comment {
  id: string;
  text: string;
  author: string;
  at?: string;
  created_at?: string;
}

export interface Agent {
  login: string;
  teams: string[];
  presence: string;
  active: Record<string, number>;
  default_capacity: number;
  capacity: Record<string, number>; // per channel type, where it differs from default_capacity
}

/** An agent's load per channel type they hold conversations on: active and their capacity there. */
export function loadOf(agent: Agent): { channel: string; active: number; max: number }[] {
  return Object.entries(agent.active).map(([channel, active]) => ({
    channel, active, max: agent.capacity[channel] ?? agent.default_capacity,
  }));
}

export interface Team {
  id: string;
  name: string | null;
  members: string[];
}

/** `GET /v1/supervisor/period`: seconds as median / p90 over `count` conversations (null when none). */
export interface Spread { count: number; median: number | null; p90: number | null }
export interface Figures { opened: number; closed: number; first_response_seconds: Spread; wait_seconds: Spread }
export interface PeriodFigures {
  since: string;
  until: string;
  total: Figures;
  teams: (Figures & { team_id: string })[];
  agents: (Figures & { login: string })[];
}
