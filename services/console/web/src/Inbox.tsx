import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  api, download, isManager, type Agent, type Conversation, type Counts, type LiveEvent, type Page, type PushedCounts, type Session, type Team,
} from "./api";
import { isTyping } from "./App";
import { ConversationView } from "./ConversationView";
import { ContactCard } from "./ContactCard";
import { StartConversation } from "./StartConversation";
import { CHANNEL_ICONS, customerLabel, since } from "./format";
import { useKeydown } from "./useKeydown";
import { type LiveEvents, useNewEvents } from "./useNewEvents";
import { useNow } from "./useNow";

interface Tab {
  id: string;
  label: string;
  count: keyof Counts;
  query: (login: string) => Record<string, string | boolean>;
}

const TABS: Tab[] = [
  { id: "mine", label: "Mine", count: "mine", query: (login) => ({ status: "assigned", assignee: login }) },
  { id: "queued", label: "Queued", count: "queued", query: () => ({ status: "queued" }) },
  { id: "assigned", label: "All assigned", count: "assigned", query: () => ({ status: "assigned" }) },
  { id: "bot", label: "Bot", count: "bot", query: () => ({ status: "bot" }) },
  { id: "snoozed", label: "Snoozed", count: "snoozed", query: () => ({ status: "snoozed" }) },
  { id: "closed", label: "Closed", count: "closed", query: () => ({ status: "closed" }) },
  { id: "archived", label: "Archived", count: "archived", query: () => ({ archived: true }) },
];

interface Filters {
  channel_type: string;
  channel_id: string;
  brand: string;
  team: string;
  assignee: string;
  label: string;
  unanswered: boolean;
  q: string;
}

const NO_FILTERS: Filters = { channel_type: "", channel_id: "", brand: "", team: "", assignee: "", label: "", unanswered: false, q: "" };
const SEEN_KEY = "parley.seen";
const PAGE_SIZE = 50;
const LARGEST_PAGE = 200; // the router's

function loadSeen(): Record<string, string> {
  try {
    return JSON.parse(sessionStorage.getItem(SEEN_KEY) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

/** A short tone for a new offer (browsers allow it once the page has had a click, e.g. the presence menu). */
function chime(): void {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
    tone.onended = () => void audio.close();
  } catch {
    // no audio output: the visible offer and its countdown remain
  }
}

/** A tab's count as the stream pushed it, "–" before the first push. */
function shown(pushed: PushedCounts | null, key: string): string {
  const value = pushed?.counts[key];
  return value === undefined ? "–" : String(value);
}

export function Inbox({ session, liveEvents, counts }: { session: Session; liveEvents: LiveEvents; counts: PushedCounts | null }) {
  // An agent starts on their own conversations; a supervisor without the agent role on the queue.
  const [tab, setTab] = useState(() => (session.roles.includes("agent") ? "mine" : "queued"));
  const [cardShown, setCardShown] = useState(false); // narrow screens: the card as a drawer
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [search, setSearch] = useState("");
  const [items, setItems] = useState<Conversation[]>([]);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const [opened, setOpened] = useState<Conversation | null>(null);
  const openId = opened?.id ?? null;
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [seen, setSeen] = useState<Record<string, string>>(loadSeen);
  const [agents, setAgents] = useState<Agent[]>([]);
  const [teams, setTeams] = useState<Team[]>([]);
  const [showFilters, setShowFilters] = useState(false);
  const [announce, setAnnounce] = useState("");
  const [starting, setStarting] = useState(false);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const searchBox = useRef<HTMLInputElement>(null);
  const now = useNow(1000);
  const current = TABS.find((t) => t.id === tab)!;

  const query = useMemo(() => ({
    ...current.query(session.login),
    ...Object.fromEntries(Object.entries(filters).filter(([key, value]) => value && !(key === "q" && String(value).length < 2))),
    limit: PAGE_SIZE,
  }), [current, filters, session.login]);

  // A page asked for another tab or filter that answers after the switch is dropped (it would fill the list
  // with the wrong conversations). Reloads of the current query overlap (one per burst of live events) and may
  // answer out of order: one asked before the answer shown is dropped too, or a slow earlier read would put back
  // a list without the conversation that just arrived, and no later event would bring it back. Answers are not
  // held back for the latest request, so a list under constant live changes still follows them.
  const currentQuery = useRef(query);
  currentQuery.current = query;
  const reloadsAsked = useRef(0);
  const reloadShown = useRef(0);
  // A reload asks for as many as the list shows, so the pages Load more added stay (up to the router's largest
  // page) instead of going back to the first one at every live change.
  const depth = useRef(PAGE_SIZE);
  const reload = useCallback(async () => {
    const asked = ++reloadsAsked.current;
    try {
      const page = await api<Page<Conversation>>("/v1/conversations", { query: { ...query, limit: depth.current } });
      if (query !== currentQuery.current || asked <= reloadShown.current) return;
      reloadShown.current = asked;
      setItems(page.items);
      setNextCursor(page.next_cursor);
      setError("");
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : "the inbox could not be loaded");
    } finally {
      setLoading(false);
    }
  }, [query]);

  useEffect(() => { depth.current = PAGE_SIZE; setLoading(true); void reload(); }, [reload]);

  // Agents and teams (filters, transfer) once the first page is shown: asked together with it they made the
  // router and its database serve three calls before the one the first screen waits for.
  const directoryAsked = useRef(false);
  useEffect(() => {
    if (loading || directoryAsked.current) return;
    directoryAsked.current = true;
    void api<{ items: Agent[] }>("/v1/agents").then((r) => setAgents(r.items)).catch(() => undefined);
    void api<{ items: Team[] }>("/v1/teams").then((r) => setTeams(r.items)).catch(() => undefined);
  }, [loading]);

  // Live: any change the caller may see (or a reset of the stream) refreshes the list, coalesced; the tab counts
  // come pushed on the stream itself. The coalesced reload is the one for the list shown when it runs: a tab or
  // filter changed while it waited would otherwise get the previous list's reload (dropped as stale), and the
  // changes coalesced into it would never reach the new list.
  const latestReload = useRef(reload);
  latestReload.current = reload;
  const pending = useRef<number | null>(null);
  const onEvent = useCallback((event: LiveEvent) => {
    const change = event.data;
    if (change.change === "message_appended" && change.entry?.kind === "inbound" && change.conversation_id !== openId) {
      setAnnounce(`New message from a customer on ${change.channel_id}`);
    }
    if (change.change === "offered" && change.assignee?.kind === "agent" && change.assignee.id === session.login) {
      setAnnounce("A conversation is offered to you");
      chime();
    }
    if (pending.current !== null) return;
    pending.current = window.setTimeout(() => { pending.current = null; void latestReload.current(); }, 250);
  }, [openId, session.login]);
  useNewEvents(liveEvents, onEvent);

  useEffect(() => {
    const timer = window.setTimeout(() => setFilters((f) => (f.q === search.trim() ? f : { ...f, q: search.trim() })), 300);
    return () => window.clearTimeout(timer);
  }, [search]);

  const open = useCallback((conversation: Conversation | undefined) => {
    if (!conversation) return;
    setOpened(conversation);
    setCardShown(false);
  }, []);

  // A reload shows the open conversation's newer state. The open one is read as it is when the update applies,
  // not as it was when this list rendered: a key or click handled in between (j pressed as a live reload
  // re-rendered the list) opened another, which must stay open.
  useEffect(() => {
    setOpened((current) => (current && items.find((c) => c.id === current.id)) ?? current);
  }, [items]);

  // What is open is read: its latest activity is marked seen, on opening and on every newer state of it.
  useEffect(() => {
    if (!opened) return;
    setSeen((previous) => {
      if (previous[opened.id] === opened.last_activity_at) return previous;
      const next = { ...previous, [opened.id]: opened.last_activity_at };
      sessionStorage.setItem(SEEN_KEY, JSON.stringify(next));
      return next;
    });
  }, [opened]);

  useKeydown((event: KeyboardEvent) => {
    if (isTyping(event) || document.querySelector("dialog[open]")) return;
    const index = items.findIndex((c) => c.id === openId);
    if (event.key === "j") { open(items[Math.min(items.length - 1, index + 1)]); event.preventDefault(); }
    if (event.key === "k") { open(items[Math.max(0, index - 1)]); event.preventDefault(); }
    if (event.key === "/") { searchBox.current?.focus(); event.preventDefault(); }
  });

  useEffect(() => {
    document.querySelector<HTMLElement>(`[data-conversation="${openId}"]`)?.scrollIntoView({ block: "nearest" });
  }, [openId]);

  async function more() {
    if (!nextCursor) return;
    try {
      const page = await api<Page<Conversation>>("/v1/conversations", { query: { ...query, cursor: nextCursor } });
      if (query !== currentQuery.current) return;
      setItems((shown) => [...shown, ...page.items.filter((c) => !shown.some((s) => s.id === c.id))]);
      setNextCursor(page.next_cursor);
      depth.current = Math.min(LARGEST_PAGE, depth.current + PAGE_SIZE);
      reloadShown.current = reloadsAsked.current; // a reload asked before would take the added page away
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : "the next page could not be loaded");
    }
  }

  async function bulk(action: "close" | "archive") {
    try {
      await api("/v1/conversations/bulk", { method: "POST", json: { ids: [...selected], action } });
      setSelected(new Set());
      void reload();
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : "bulk action failed");
    }
  }

  const unread = (c: Conversation) => c.id !== openId && (!seen[c.id] || Date.parse(seen[c.id]) < Date.parse(c.last_activity_at)) && c.unanswered;
  const teamOptions = teams.map((t) => t.id);
  const channelTypes = Object.keys(CHANNEL_ICONS);
  const channelIds = [...new Set(items.map((c) => c.channel_id))].sort();

  return (
    <main className={`inbox ${openId ? "has-open" : ""} ${cardShown ? "card-shown" : ""}`} id="main">
      <h1 className="sr-only">Inbox</h1>
      <section className="list-pane" aria-label="Conversations">
        <div className="search-row">
          <label htmlFor="search" className="sr-only">Search by phone, name or user id</label>
          <input id="search" ref={searchBox} type="search" placeholder="Search phone, name, user id  ( / )"
                 value={search} onChange={(e) => setSearch(e.target.value)} />
          <button type="button" aria-expanded={showFilters} aria-controls="filters" onClick={() => setShowFilters((v) => !v)}>Filters</button>
        </div>
        {showFilters && (
          <fieldset id="filters" className="filters">
            <legend className="sr-only">Filters</legend>
            <label>Channel
              <select value={filters.channel_type} onChange={(e) => setFilters({ ...filters, channel_type: e.target.value })}>
                <option value="">any</option>
                {channelTypes.map((t) => <option key={t} value={t}>{t}</option>)}
              </select>
            </label>
            <label>Channel id
              <input list="channel-ids" value={filters.channel_id} onChange={(e) => setFilters({ ...filters, channel_id: e.target.value.trim() })} />
              <datalist id="channel-ids">{channelIds.map((id) => <option key={id} value={id} />)}</datalist>
            </label>
            <label>Brand
              <input value={filters.brand} onChange={(e) => setFilters({ ...filters, brand: e.target.value.trim() })} />
            </label>
            <label>Team
              <select value={filters.team} onChange={(e) => setFilters({ ...filters, team: e.target.value })}>
                <option value="">any</option>
                {teamOptions.map((t) => <option key={t} value={t}>{t}</option>)}
              </select>
            </label>
            <label>Assignee
              <select value={filters.assignee} onChange={(e) => setFilters({ ...filters, assignee: e.target.value })}>
                <option value="">any</option>
                {agents.map((a) => <option key={a.login} value={a.login}>{a.login}</option>)}
              </select>
            </label>
            <label>Label
              <input value={filters.label} onChange={(e) => setFilters({ ...filters, label: e.target.value.trim() })} />
            </label>
            <label className="check">
              <input type="checkbox" checked={filters.unanswered} onChange={(e) => setFilters({ ...filters, unanswered: e.target.checked })} />
              Unanswered only
            </label>
            <button type="button" onClick={() => { setFilters(NO_FILTERS); setSearch(""); }}>Clear</button>
          </fieldset>
        )}
        <div role="tablist" aria-label="Inbox tabs" className="tabs">
          {TABS.map((t) => (
            <button key={t.id} type="button" role="tab" id={`tab-${t.id}`} aria-selected={tab === t.id} aria-controls="conversation-list"
                    onClick={() => { setTab(t.id); setSelected(new Set()); }}>
              {t.label} <span className="count">{shown(counts, t.count)}</span>
            </button>
          ))}
        </div>
        {selected.size > 0 && (
          <div className="bulk" role="toolbar" aria-label="Selected conversations">
            <span>{selected.size} selected</span>
            <button type="button" onClick={() => void bulk("close")}>Close</button>
            <button type="button" onClick={() => void bulk("archive")}>Archive</button>
            <button type="button" onClick={() => setSelected(new Set())}>Clear</button>
          </div>
        )}
        <div className="list-tools">
          <button type="button" className="link" onClick={() => setStarting(true)}>New conversation</button>
          <button type="button" className="link" onClick={() => void download("/v1/conversations/export", { ...query, format: "csv", limit: undefined }, "conversations.csv")}>Export CSV</button>
        </div>
        {error && <p role="alert" className="error">{error}</p>}
        <div id="conversation-list" role="tabpanel" aria-labelledby={`tab-${tab}`} className="list">
          {loading && !items.length ? <p className="muted">Loading…</p> : null}
          {!loading && !items.length ? <p className="muted">Nothing here.</p> : null}
          <ul>
            {items.map((c) => (
              <li key={c.id} className={`item ${c.id === openId ? "current" : ""} ${unread(c) ? "unread" : ""}`} data-conversation={c.id}>
                <input type="checkbox" aria-label={`Select ${customerLabel(c)}`} checked={selected.has(c.id)}
                       onChange={(e) => {
                         const next = new Set(selected);
                         if (e.target.checked) next.add(c.id); else next.delete(c.id);
                         setSelected(next);
                       }} />
                <button type="button" className="open" aria-current={c.id === openId ? "true" : undefined} onClick={() => open(c)}>
                  <span className="row1">
                    <span className={`chan chan-${c.channel_type}`} title={c.channel_id}>{CHANNEL_ICONS[c.channel_type] ?? c.channel_type}</span>
                    <span className="name">{customerLabel(c)}</span>
                    {unread(c) && <span className="unread-dot" title="Unread">new</span>}
                    <span className="ago">{since(c.last_activity_at, now)}</span>
                  </span>
                  <span className="row2">
                    <span className={`status status-${c.status}`}>{c.offer_expires_at && c.status === "assigned" ? "offered" : c.status}</span>
                    {c.assignee && <span className="muted">{c.assignee.id}</span>}
                    {c.priority > 0 && <span className="prio" title="priority">P{c.priority}</span>}
                    {c.unanswered && c.waiting_since && c.status !== "closed" && (
                      <span className="wait" title="waiting for an answer">waits {since(c.waiting_since, now)}</span>
                    )}
                    {c.labels.map((l) => <span key={l} className="label">{l}</span>)}
                  </span>
                </button>
              </li>
            ))}
          </ul>
          {nextCursor && <button type="button" className="link more" onClick={() => void more()}>Load more</button>}
        </div>
      </section>
      {opened ? (
        <>
          <ConversationView key={opened.id} conversation={opened} session={session} liveEvents={liveEvents}
                            agents={agents} teams={teams}
                            onChanged={(updated) => { if (updated) setOpened((current) => (current?.id === updated.id ? updated : current)); void reload(); }}
                            onBack={() => { setOpened(null); setCardShown(false); }}
                            onCard={() => setCardShown(true)} />
          <ContactCard key={`card-${opened.id}`} conversation={opened} manager={isManager(session)} onOpen={open}
                       onHide={() => setCardShown(false)} />
        </>
      ) : (
        <section className="empty-pane" aria-label="Conversation"><p className="muted">Pick a conversation (j / k).</p></section>
      )}
      <div className="sr-only" aria-live="polite">{announce}</div>
      {starting && <StartConversation onClose={() => setStarting(false)} onStarted={() => { setStarting(false); void reload(); }} />}
    </main>
  );
}
