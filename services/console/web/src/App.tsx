import { useCallback, useEffect, useRef, useState } from "react";
import {
  api, followLive, forgetSession, isManager, loadOf, restoreSession, saveSession, sessionFromToken, setApiToken, SIGNED_OUT,
  type Agent, type LiveEvent, type LiveState, type PushedCounts, type PushedMention, type Session,
} from "./api";
import { Inbox } from "./Inbox";
import { Mentions } from "./Mentions";
import { Supervisor } from "./Supervisor";
import { Shortcuts } from "./Shortcuts";
import { NO_EVENTS, withEvent, type LiveEvents } from "./useNewEvents";
import { useKeydown } from "./useKeydown";
import { useReloadAfter } from "./useReloadAfter";

type View = "inbox" | "supervisor";
type Presence = "online" | "away" | "offline";
const HEARTBEAT_MS = 20_000;

export function App() {
  const [session, setSession] = useState<Session | null>(() => restoreSession());
  useEffect(() => {
    const signOut = () => { forgetSession(); setSession(null); };
    window.addEventListener(SIGNED_OUT, signOut);
    return () => window.removeEventListener(SIGNED_OUT, signOut);
  }, []);
  if (session) setApiToken(session.token);
  if (!session) return <SignIn onSignedIn={setSession} />;
  return <Console session={session} onSignOut={() => { forgetSession(); setSession(null); }} />;
}

function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState("");
  return (
    <main className="signin">
      <h1>Parley console</h1>
      <p>Open the sign-in link that <code>make run</code> printed, or paste a token.</p>
      <form onSubmit={(event) => {
        event.preventDefault();
        const session = sessionFromToken(token.trim());
        if (!session) { setError("This token is not valid or has expired."); return; }
        saveSession(session);
        setApiToken(session.token);
        onSignedIn(session);
      }}>
        <label htmlFor="token">Access token</label>
        <textarea id="token" rows={4} value={token} onChange={(e) => setToken(e.target.value)} />
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit" className="primary">Sign in</button>
      </form>
    </main>
  );
}

function Console({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const manager = isManager(session);
  const agent = session.roles.includes("agent");
  const [view, setView] = useState<View>("inbox");
  const [presence, setPresence] = useState<Presence>("offline");
  const [presenceError, setPresenceError] = useState("");
  const [live, setLive] = useState<LiveState>("connecting");
  const [liveEvents, setLiveEvents] = useState<LiveEvents>(NO_EVENTS);
  const lastEvent: LiveEvent | null = liveEvents.events[liveEvents.events.length - 1] ?? null;
  const [counts, setCounts] = useState<PushedCounts | null>(null);
  const [help, setHelp] = useState(false);

  const [lastMention, setLastMention] = useState<PushedMention | null>(null);
  useEffect(() => followLive((event) => setLiveEvents((previous) => withEvent(previous, event)), setCounts,
                             setLastMention, setLive), []);

  // Start from the presence the router holds (a reload keeps an agent online), unless they already chose one;
  // the agent's load (active / capacity) follows the live changes.
  const chosen = useRef(false);
  const [me, setMe] = useState<Agent | null>(null);
  const loadMe = useCallback(async () => {
    if (!agent) return;
    try {
      const found = (await api<{ items: Agent[] }>("/v1/agents")).items.find((a) => a.login === session.login) ?? null;
      setMe(found);
      if (found && !chosen.current) setPresence(found.presence as Presence);
    } catch {
      // the load badge waits for the next change
    }
  }, [agent, session.login]);
  useEffect(() => { void loadMe(); }, [loadMe]);
  useReloadAfter(lastEvent, loadMe, 1000);

  const beat = useCallback(async (value: Presence) => {
    try {
      await api("/v1/agents/me/heartbeat", { method: "POST", json: { presence: value } });
      setPresenceError("");
    } catch (error) {
      setPresenceError(error instanceof Error ? error.message : "presence not sent");
    }
  }, []);

  useEffect(() => {
    if (!agent || presence === "offline") return;
    void beat(presence);
    const timer = setInterval(() => void beat(presence), HEARTBEAT_MS);
    return () => clearInterval(timer);
  }, [agent, presence, beat]);

  useKeydown((event: KeyboardEvent) => {
    if (isTyping(event)) return;
    if (event.key === "?") { setHelp(true); event.preventDefault(); }
    if (event.key === "g" && manager) setView((v) => (v === "inbox" ? "supervisor" : "inbox"));
  });

  return (
    <div className="app">
      <header className="topbar">
        <span className="brand" aria-hidden="true">Parley</span>
        <nav aria-label="Sections">
          <button type="button" aria-current={view === "inbox" ? "page" : undefined} onClick={() => setView("inbox")}>Inbox</button>
          {manager && (
            <button type="button" aria-current={view === "supervisor" ? "page" : undefined} onClick={() => setView("supervisor")}>Supervisor</button>
          )}
        </nav>
        <span className={`live live-${live}`} role="status" aria-live="polite">{live === "live" ? "Live" : live === "connecting" ? "Connecting…" : "Reconnecting…"}</span>
        {agent && (
          <label className="presence">
            <span className={`dot dot-${presence}`} aria-hidden="true" />
            <span className="sr-only">My presence</span>
            <select value={presence} onChange={(e) => {
              const value = e.target.value as Presence;
              chosen.current = true;
              setPresence(value);
              if (value === "offline") void beat("offline");
            }}>
              <option value="online">Online</option>
              <option value="away">Away</option>
              <option value="offline">Offline</option>
            </select>
          </label>
        )}
        {me && (
          <span className="my-load" title="My conversations now / my capacity, per channel type">
            <span className="sr-only">My load: </span>
            {loadOf(me).map((l) => `${l.channel} ${l.active}/${l.max}`).join(", ") || `0/${me.default_capacity}`}
          </span>
        )}
        {presenceError && <span className="error" role="alert">{presenceError}</span>}
        <span className="who" title={`tenant ${session.tenant}`}>{session.login} · {session.roles.join(", ")}</span>
        <Mentions login={session.login} lastMention={lastMention} live={live} />
        <button type="button" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts">?</button>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </header>
      {view === "inbox"
        ? <Inbox session={session} liveEvents={liveEvents} counts={counts} />
        : <Supervisor lastEvent={lastEvent} counts={counts} />}
      {help && <Shortcuts onClose={() => setHelp(false)} />}
    </div>
  );
}

export function isTyping(event: KeyboardEvent): boolean {
  const target = event.target as HTMLElement | null;
  if (!target) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || event.ctrlKey || event.metaKey || event.altKey;
}
