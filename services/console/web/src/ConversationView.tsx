import { useCallback, useEffect, useRef, useState } from "react";
import {
  api, ApiError, type Agent, type Conversation, type Entry, type LiveEvent, type Session, type Team, type Window,
} from "./api";
import { isTyping } from "./App";
import { useKeydown } from "./useKeydown";
import { Composer } from "./Composer";
import { Timeline } from "./Timeline";
import { ActionDialog, type DialogKind } from "./ActionDialog";
import { CHANNEL_ICONS, customerLabel, duration } from "./format";
import { type LiveEvents, useNewEvents } from "./useNewEvents";
import { useNow } from "./useNow";

const ENTRY_RETRIES_MS = [250, 500, 1000, 2000, 4000, 8000];
/** Entries per timeline page: the newest page on opening and on every live event, earlier ones on request. */
const TIMELINE_PAGE = 100;

interface TimelinePage { items: Entry[]; previous_cursor: string | null }
/** The entries shown (the newest page and the earlier pages loaded before it) and the cursor to the page before. */
interface Shown { entries: Entry[]; earlier: string | null }

/** The newest page laid over what is shown: the earlier entries before its first one kept — unless its first one
 * is not shown (more than a page arrived meanwhile, or a message was placed before what is shown): then it starts
 * again from the newest page, as no gap may open between the earlier entries and the newest ones. */
function withNewest(shown: Shown, newest: TimelinePage): Shown {
  const start = newest.items.length ? shown.entries.findIndex((entry) => entry.entry_id === newest.items[0].entry_id) : -1;
  if (newest.previous_cursor === null || start < 0) return { entries: newest.items, earlier: newest.previous_cursor };
  return { entries: [...shown.entries.slice(0, start), ...newest.items], earlier: shown.earlier };
}

interface Props {
  conversation: Conversation;
  session: Session;
  liveEvents: LiveEvents;
  agents: Agent[];
  teams: Team[];
  onChanged: (updated?: Conversation) => void;
  onBack: () => void;
  onCard: () => void;
}

export function ConversationView({ conversation, session, liveEvents, agents, teams, onChanged, onBack, onCard }: Props) {
  const [shown, setShown] = useState<Shown>({ entries: [], earlier: null });
  const [messagingWindow, setMessagingWindow] = useState<Window | null>(null);
  const [error, setError] = useState("");
  const [dialog, setDialog] = useState<DialogKind | null>(null);
  const [mode, setMode] = useState<"reply" | "note">("reply");
  const composer = useRef<HTMLTextAreaElement>(null);
  const now = useNow(1000);
  const c = conversation;
  const mine = c.assignee?.kind === "agent" && c.assignee.id === session.login;
  const offered = mine && c.status === "assigned" && !!c.offer_expires_at;
  const closed = c.status === "closed";

  // Loads overlap (one per live event): only the latest request may set the newest page, or a slower earlier
  // answer would put back a timeline without the newest message.
  const latestLoad = useRef(0);
  const loadTimeline = useCallback(async (): Promise<Entry[] | null> => {
    const load = ++latestLoad.current;
    try {
      const page = await api<TimelinePage>(`/v1/conversations/${c.id}/timeline`, { query: { from: "latest", limit: TIMELINE_PAGE } });
      if (load !== latestLoad.current) return null;
      setShown((before) => withNewest(before, page));
      return page.items;
    } catch (problem) {
      if (load === latestLoad.current) setError(problem instanceof Error ? problem.message : "the timeline could not be loaded");
      return null;
    }
  }, [c.id]);

  const loadEarlier = useCallback(async () => {
    if (shown.earlier === null) return;
    try {
      const page = await api<TimelinePage>(`/v1/conversations/${c.id}/timeline`, { query: { before: shown.earlier, limit: TIMELINE_PAGE } });
      setShown((before) => {
        if (before.earlier !== shown.earlier) return before; // the newest page started again meanwhile
        const ids = new Set(before.entries.map((entry) => entry.entry_id));
        return { entries: [...page.items.filter((entry) => !ids.has(entry.entry_id)), ...before.entries], earlier: page.previous_cursor };
      });
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : "the earlier messages could not be loaded");
    }
  }, [c.id, shown.earlier]);

  // The router announces a message just before it stores it: an entry the pushed event names but the timeline
  // does not have yet is asked for again, a little later each time, until it is there.
  const loadUntilShown = useCallback(async (entryId: string) => {
    for (const waitMs of ENTRY_RETRIES_MS) {
      const items = await loadTimeline();
      if (items?.some((entry) => entry.entry_id === entryId)) return;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    void loadTimeline();
  }, [loadTimeline]);

  const loadWindow = useCallback(async () => {
    try {
      setMessagingWindow(await api<Window>(`/v1/windows/${encodeURIComponent(c.channel_id)}/${encodeURIComponent(c.external_user_id)}`));
    } catch {
      setMessagingWindow(null);
    }
  }, [c.channel_id, c.external_user_id]);

  useEffect(() => { void loadTimeline(); void loadWindow(); }, [loadTimeline, loadWindow]);

  useNewEvents(liveEvents, useCallback((event: LiveEvent) => {
    if (event.type === "reset") {  // what it shows read again: changes may have been missed
      void loadTimeline();
      void loadWindow();
      return;
    }
    if (event.data.conversation_id !== c.id) return;
    const entryId = event.data.entry_id;
    if (entryId && !entryId.startsWith("act:")) void loadUntilShown(entryId);
    else void loadTimeline();
    if (event.data.entry?.kind === "inbound") void loadWindow();
  }, [c.id, loadTimeline, loadUntilShown, loadWindow]));

  const act = useCallback(async (path: string, json?: unknown) => {
    try {
      const updated = await api<Conversation>(`/v1/conversations/${c.id}/${path}`, { method: "POST", json: json ?? {} });
      setError("");
      onChanged(updated);
      void loadTimeline();
      return true;
    } catch (problem) {
      setError(problem instanceof ApiError ? `${problem.message} (${problem.code})` : "the action failed");
      return false;
    }
  }, [c.id, onChanged, loadTimeline]);

  useKeydown((event: KeyboardEvent) => {
    if (isTyping(event) || document.querySelector("dialog[open]")) return;
    const keys: Record<string, () => void> = {
      r: () => { setMode("reply"); composer.current?.focus(); },
      n: () => { setMode("note"); composer.current?.focus(); },
      a: () => { if (offered) void act("accept"); },
      t: () => { if (!mine && !closed) void act("take"); },
      x: () => { if (!closed) setDialog("transfer"); },
      c: () => { if (!closed) setDialog("close"); },
      e: () => { if (!c.archived) void act("archive"); },
    };
    const run = keys[event.key];
    if (run) { run(); event.preventDefault(); }
  });

  const offerLeft = c.offer_expires_at ? (Date.parse(c.offer_expires_at) - now) / 1000 : 0;
  const windowLeft = messagingWindow?.closes_at ? (Date.parse(messagingWindow.closes_at) - now) / 1000 : null;
  const freeFormAllowed = messagingWindow ? messagingWindow.allowed.some((a) => a.sender_kind === "human" && a.message_kind === "free_form" && a.verdict === "allowed") : true;

  return (
    <section className="conversation-pane" aria-labelledby="conversation-title">
      <header className="conv-head">
        <button type="button" className="back" onClick={onBack} aria-label="Back to the list">←</button>
        <div className="conv-title">
          <h2 id="conversation-title">{customerLabel(c)}</h2>
          <p className="muted">
            <span className={`chan chan-${c.channel_type}`}>{CHANNEL_ICONS[c.channel_type] ?? c.channel_type}</span> {c.channel_id}
            {" · "}<span className={`status status-${c.status}`}>{offered ? "offered to you" : c.status}</span>
            {c.assignee && !(c.assignee.kind === "team" && c.assignee.id === c.team_id) && <> · {c.assignee.kind} {c.assignee.id}</>}
            {c.team_id && <> · team {c.team_id}</>}
          </p>
        </div>
        <button type="button" className="card-toggle" onClick={onCard}>Customer card</button>
        <div className="actions" role="toolbar" aria-label="Conversation actions">
          {offered && (
            <>
              <button type="button" className="primary" onClick={() => void act("accept")} title="a">Accept <span className="countdown">{duration(offerLeft)}</span></button>
              <button type="button" onClick={() => void act("decline")}>Decline</button>
            </>
          )}
          {!mine && !closed && <button type="button" onClick={() => void act("take")} title="t">Take</button>}
          {!closed && <button type="button" onClick={() => setDialog("transfer")} title="x">Transfer</button>}
          {!closed && <button type="button" onClick={() => setDialog("snooze")}>Snooze</button>}
          {!closed && <button type="button" onClick={() => setDialog("close")} title="c">Close</button>}
          {closed && <button type="button" onClick={() => void act("reopen")}>Reopen</button>}
          {!c.archived && <button type="button" onClick={() => void act("archive")} title="e">Archive</button>}
          <button type="button" aria-pressed={c.unanswered} onClick={() => void act("mark", { unanswered: !c.unanswered })}>
            {c.unanswered ? "Mark answered" : "Mark unanswered"}
          </button>
          <label className="prio-select">
            <span className="sr-only">Priority</span>
            <select value={c.priority} onChange={(e) => void act("priority", { priority: Number(e.target.value) })}>
              <option value={0}>Normal</option><option value={1}>High</option><option value={2}>Higher</option><option value={3}>Urgent</option>
            </select>
          </label>
        </div>
      </header>
      {messagingWindow && (
        <p className={`window ${messagingWindow.has_window && !messagingWindow.open ? "closed" : "open"}`} role="status">
          {!messagingWindow.has_window ? "No messaging window on this channel: free-form messages may be sent."
            : messagingWindow.open ? `Window open: ${duration(windowLeft ?? 0)} left · free-form messages allowed`
            : "Window closed · only an approved template may be sent"}
          {messagingWindow.blocked && " · customer blocked"}
        </p>
      )}
      {error && <p role="alert" className="error">{error}</p>}
      <Timeline entries={shown.entries} onEarlier={shown.earlier === null ? undefined : loadEarlier} />
      <Composer ref={composer} conversation={c} agents={agents} teams={teams} mode={mode} onMode={setMode} freeFormAllowed={freeFormAllowed && !messagingWindow?.blocked}
                onSent={() => { void loadTimeline(); onChanged(); }} onError={setError} />
      {dialog && (
        <ActionDialog kind={dialog} agents={agents} teams={teams} onClose={() => setDialog(null)}
                      onSubmit={async (path, body) => { if (await act(path, body)) setDialog(null); }} />
      )}
    </section>
  );
}
