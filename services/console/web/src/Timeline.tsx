import { useLayoutEffect, useRef, useState } from "react";
import type { Entry, MediaRef } from "./api";
import { activityText, clock, senderLogin } from "./format";
import { MediaPreview } from "./MediaPreview";

const TICKS: Record<string, [string, string]> = {
  queued: ["◷", "queued"], accepted: ["◷", "queued"], sent: ["✓", "sent"], delivered: ["✓✓", "delivered"],
  read: ["✓✓", "read"], failed: ["!", "failed"], refused: ["!", "refused"],
};

// Activity the timeline already shows in place: a message's delivery status is its ticks.
const QUIET_CHANGES = new Set(["message_status", "message_appended", "note_added"]);

/** Every dict with a media_id inside an entry's `media`, however the router nests it. */
export function mediaOf(value: unknown): MediaRef[] {
  if (Array.isArray(value)) return value.flatMap(mediaOf);
  if (value && typeof value === "object") {
    if ("media_id" in value) return [value as MediaRef];
    return Object.values(value).flatMap(mediaOf);
  }
  return [];
}

function failure(entry: Entry): string {
  const error = entry.error;
  const text = error ? [error.title, error.detail ?? error.message, error.code].filter(Boolean).join(": ") : "";
  return text || entry.reason || "failed";
}

function Ticks({ entry }: { entry: Entry }) {
  const status = entry.status ?? "queued";
  const [mark, word] = TICKS[status] ?? ["·", status];
  const when = entry.statuses?.[status];
  const detail = status === "failed" || status === "refused" ? `${word}: ${failure(entry)}` : `${word}${when ? " " + clock(when) : ""}`;
  return (
    <span className={`ticks ticks-${status}`} title={detail} data-status={status} tabIndex={0} aria-label={`Delivery: ${detail}`}>
      {mark}
      {(status === "failed" || status === "refused") && <span className="fail-reason"> {failure(entry)}</span>}
    </span>
  );
}

function MessageBody({ entry }: { entry: Entry }) {
  const content = entry.content;
  if (content?.kind === "template") {
    const variables = Object.entries(content.variables ?? {}).map(([k, v]) => `{{${k}}} = ${v}`).join(", ");
    return (
      <div className="template">
        <span className="tag">Template</span> <strong>{content.name}</strong> <span className="muted">({content.language})</span>
        {entry.text && <p className="text">{entry.text}</p>}
        {variables && <p className="muted">{variables}</p>}
      </div>
    );
  }
  const text = entry.text ?? content?.text ?? content?.caption ?? null;
  const html = entry.parts?.find((part) => part.html)?.html;
  return (
    <>
      {text && <p className="text">{text}</p>}
      {html && <FormattedMail html={html} />}
    </>
  );
}

// Nothing in it may load or run: ingest sanitised the HTML (nh3); the frame is sandboxed (no scripts, no
// origin) and its policy refuses every fetch, so a sanitiser miss still cannot track or reach the console.
const MAIL_POLICY = `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`;

function FormattedMail({ html }: { html: string }) {
  return (
    <details className="formatted-mail">
      <summary>Formatted mail</summary>
      <iframe title="Formatted mail (sanitised)" sandbox="" referrerPolicy="no-referrer" srcDoc={MAIL_POLICY + html} />
    </details>
  );
}

/** What the customer changed after sending: an edit or a deletion (earlier versions kept), a reaction. */
function Revisions({ entry }: { entry: Entry }) {
  const reactions = Object.values(entry.reactions ?? {}).filter((reaction) => reaction.emoji);
  const earlier = entry.revisions ?? [];
  return (
    <>
      {entry.deleted && <span className="tag deleted">Deleted by the customer</span>}
      {entry.edited && !entry.deleted && <span className="tag edited">Edited</span>}
      {earlier.length > 0 && (
        <details className="revisions">
          <summary>{earlier.length === 1 ? "Earlier version" : `${earlier.length} earlier versions`}</summary>
          <ol>{earlier.map((revision) => (
            <li key={revision.until}><span className="text">{revision.text || "(no text)"}</span> <time dateTime={revision.until}>until {clock(revision.until)}</time></li>
          ))}</ol>
        </details>
      )}
      {reactions.map((reaction) => <span key={reaction.at} className="reaction" role="img" aria-label={`Reaction ${reaction.emoji}`}>{reaction.emoji}</span>)}
    </>
  );
}

interface TimelineProps {
  entries: Entry[];
  /** Loads the page before the first entry shown; absent when the first entry is the conversation's first. */
  onEarlier?: () => Promise<void>;
}

export function Timeline({ entries, onEarlier }: TimelineProps) {
  const list = useRef<HTMLOListElement>(null);
  const end = useRef<HTMLLIElement>(null);
  const [loadingEarlier, setLoadingEarlier] = useState(false);
  // Earlier entries go in above what the agent reads: the view keeps its distance from the bottom, so the same
  // messages stay in place; a new last entry scrolls to the end.
  const reading = useRef<{ first: string; fromBottom: number } | null>(null);
  const last = entries.at(-1)?.entry_id;
  const first = entries[0]?.entry_id;
  useLayoutEffect(() => { end.current?.scrollIntoView({ block: "end" }); }, [last]);
  useLayoutEffect(() => {
    const view = list.current;
    const before = reading.current;
    // only when the entries were put in above the one that was first (not when the view started again)
    if (view && before && before.first !== first && entries.some((entry) => entry.entry_id === before.first)) {
      view.scrollTop = view.scrollHeight - before.fromBottom;
      reading.current = null;
    }
  }, [first, entries]);
  const earlier = async () => {
    if (!onEarlier || !list.current || !first) return;
    reading.current = { first, fromBottom: list.current.scrollHeight - list.current.scrollTop };
    setLoadingEarlier(true);
    try {
      await onEarlier();
    } finally {
      setLoadingEarlier(false);
    }
  };
  return (
    <ol ref={list} className="timeline" aria-label="Conversation timeline" tabIndex={0}>
      {onEarlier && (
        <li className="earlier">
          <button type="button" onClick={() => void earlier()} disabled={loadingEarlier}>
            {loadingEarlier ? "Loading earlier messages…" : "Load earlier"}
          </button>
        </li>
      )}
      {entries.filter((entry) => !QUIET_CHANGES.has(entry.change ?? "")).map((entry) => {
        if (entry.kind === "activity") {
          return (
            <li key={entry.entry_id} className="activity">
              <span>{activityText(entry)}</span>
              {entry.comment && <span className="comment">“{entry.comment}”</span>}
              <time dateTime={entry.at}>{clock(entry.at)}</time>
            </li>
          );
        }
        if (entry.kind === "note") {
          return (
            <li key={entry.entry_id} className="note">
              <span className="who">Private note · {entry.author}</span>
              <p className="text">{entry.text}</p>
              <time dateTime={entry.at}>{clock(entry.at)}</time>
            </li>
          );
        }
        const media = mediaOf(entry.media);
        const mediaId = entry.content?.media_id;
        if (mediaId && !media.some((m) => m.media_id === mediaId)) media.push({ media_id: mediaId });
        const login = senderLogin(entry);
        return (
          <li key={entry.entry_id} className={`message ${entry.kind}${entry.deleted ? " deleted" : ""}`} data-entry={entry.entry_id}>
            <span className="who" title={login ? `sent by ${login}` : undefined}>
              {entry.kind === "inbound" ? "Customer" : login ?? "Agent"}
            </span>
            {!entry.deleted && <MessageBody entry={entry} />}
            <Revisions entry={entry} />
            {media.map((m) => <MediaPreview key={m.media_id} media={m} />)}
            <span className="meta">
              <time dateTime={entry.at}>{clock(entry.at)}</time>
              {entry.kind === "outbound" && <Ticks entry={entry} />}
            </span>
          </li>
        );
      })}
      <li ref={end} className="end" aria-hidden="true" />
    </ol>
  );
}
