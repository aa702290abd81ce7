import { useCallback, useEffect, useRef, useState } from "react";
import { api, type LiveEvent } from "./api";
import { clock } from "./format";
import { useReloadAfter } from "./useReloadAfter";

interface Mention {
  id: string;
  contact_id: string;
  contact_name: string | null;
  author: string;
  text: string;
  created_at: string;
}

const POLL_MS = 30_000; // contacts pushes nothing: asked again after live changes and every 30 s
const FIRST_ASK_MS = 1_500; // not first-screen material: the inbox's own calls go first

/** Comments that mention the signed-in user (@login), from contacts; a badge counts those newer than the last
 * time the list was opened (kept in this browser). */
export function Mentions({ login, lastEvent }: { login: string; lastEvent: LiveEvent | null }) {
  const seenKey = `parley.mentions.seen.${login}`;
  const [mentions, setMentions] = useState<Mention[]>([]);
  const [seen, setSeen] = useState(() => localStorage.getItem(seenKey) ?? "");
  const [open, setOpen] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);

  const load = useCallback(async () => {
    try {
      setMentions(await api<Mention[]>("/v1/contacts/mentions"));
    } catch {
      // the badge keeps what it had until the next try
    }
  }, []);
  useEffect(() => {
    const first = window.setTimeout(() => void load(), FIRST_ASK_MS);
    const timer = window.setInterval(() => void load(), POLL_MS);
    return () => { window.clearTimeout(first); window.clearInterval(timer); };
  }, [load]);
  useReloadAfter(lastEvent, load, 2000);
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
