import { useCallback, useEffect, useRef, useState } from "react";
import { api, type LiveState, type PushedMention } from "./api";
import { clock } from "./format";

interface Mention {
  id: string;
  contact_id: string;
  contact_name: string | null;
  author: string;
  text: string;
  created_at: string;
}

const FIRST_ASK_MS = 1_500; // not first-screen material: the inbox's own calls go first

/** Comments that mention the signed-in user (@login), from contacts; a badge counts those newer than the last
 * time the list was opened (kept in this browser). Read at start, again on each `mention` the router's live stream
 * pushes, and on each (re)connection of the stream (a mention made while it was down was not pushed). */
export function Mentions({ login, lastMention, live }: { login: string; lastMention: PushedMention | null; live: LiveState }) {
  const seenKey = `parley.mentions.seen.${login}`;
  const [mentions, setMentions] = useState<Mention[]>([]);
  const [seen, setSeen] = useState(() => localStorage.getItem(seenKey) ?? "");
  const [open, setOpen] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);

  const load = useCallback(async () => {
    try {
      setMentions(await api<Mention[]>("/v1/contacts/mentions"));
    } catch {
      // the badge keeps what it had until the next push or reconnection
    }
  }, []);
  const connectedBefore = useRef(false);
  useEffect(() => {
    if (live !== "live") return;
    if (!connectedBefore.current) {  // the first connection: after the inbox's first screen
      connectedBefore.current = true;
      const first = window.setTimeout(() => void load(), FIRST_ASK_MS);
      return () => window.clearTimeout(first);
    }
    void load();
  }, [live, load]);
  useEffect(() => { if (lastMention) void load(); }, [lastMention, load]);
  useEffect(() => { if (open) dialog.current?.showModal(); }, [open]);

  const unseen = mentions.filter((m) => m.created_at > seen).length;
  function show() {
    setOpen(true);
    const newest = mentions[0]?.created_at;
    if (newest && newest > seen) {
      localStorage.setItem(seenKey, newest);
      setSeen(newest);
    }
  }

  return (
    <>
      <button type="button" className="mentions-button" onClick={show} aria-label={`Mentions, ${unseen} new`}>
        @ {unseen > 0 && <span className="badge">{unseen}</span>}
      </button>
      {open && (
        <dialog ref={dialog} onClose={() => setOpen(false)} aria-labelledby="mentions-title">
          <h2 id="mentions-title">Mentions</h2>
          {mentions.length === 0 ? <p className="muted">Nobody has mentioned you yet.</p> : (
            <ul className="mentions">
              {mentions.map((m) => (
                <li key={m.id}>
                  <strong>{m.author}</strong> on <strong>{m.contact_name ?? m.contact_id}</strong>{" "}
                  <time dateTime={m.created_at}>{clock(m.created_at)}</time>
                  <p>{m.text}</p>
                </li>
              ))}
            </ul>
          )}
          <button type="button" onClick={() => dialog.current?.close()}>Close</button>
        </dialog>
      )}
    </>
  );
}
