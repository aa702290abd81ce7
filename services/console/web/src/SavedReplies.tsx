import { useEffect, useState } from "react";
import { api } from "./api";

interface SavedReply {
  id: string;
  name: string;
  text: string;
}

/** The tenant's saved replies for this channel type; the outbound service fills their {{field}} placeholders. */
export function SavedReplies({ channelType, onSend }: { channelType: string; onSend: (id: string) => Promise<void> }) {
  const [replies, setReplies] = useState<SavedReply[]>([]);
  const [chosen, setChosen] = useState("");
  useEffect(() => {
    api<SavedReply[]>("/v1/saved-replies", { query: { channel_type: channelType } }).then(setReplies).catch(() => setReplies([]));
  }, [channelType]);
  if (!replies.length) return null;
  const reply = replies.find((r) => r.id === chosen);
  return (
    <div className="saved-replies">
      <label>Saved reply
        <select value={chosen} onChange={(e) => setChosen(e.target.value)}>
          <option value="">choose…</option>
          {replies.map((r) => <option key={r.id} value={r.id}>{r.name}</option>)}
        </select>
      </label>
      {reply && (
        <>
          <p className="preview">{reply.text}</p>
          <button type="button" className="primary" onClick={() => void onSend(reply.id).then(() => setChosen(""))}>Send saved reply</button>
        </>
      )}
    </div>
  );
}
