import { forwardRef, useEffect, useRef, useState, type DragEvent, type KeyboardEvent } from "react";
import { TransferTargets } from "./ActionDialog";
import { EmojiPicker } from "./EmojiPicker";
import { api, ApiError, type Agent, type Conversation, type Team, type Template } from "./api";
import { SavedReplies } from "./SavedReplies";
import { TemplatePicker } from "./TemplatePicker";

interface Props {
  conversation: Conversation;
  agents: Agent[];
  teams: Team[];
  mode: "reply" | "note";
  onMode: (mode: "reply" | "note") => void;
  freeFormAllowed: boolean;
  onSent: () => void;
  onError: (message: string) => void;
}

type AfterSend = "" | "close" | "assign_to_me" | "transfer";

export const Composer = forwardRef<HTMLTextAreaElement, Props>(function Composer(
  { conversation, agents, teams, mode, onMode, freeFormAllowed, onSent, onError }, ref,
) {
  const [text, setText] = useState("");
  const [file, setFile] = useState<File | null>(null);
  // A draft's key is kept after an error that may have come after outbound stored the message (a 5xx, no
  // answer), so sending the same draft again is the same message to outbound, never a second one; it goes after a
  // success or a refusal (4xx: outbound stored the refusal under it, and the next try is a new attempt). Any other
  // draft is a new message. Looked up at send time, so no render can hand a send a stale key.
  const unconfirmed = useRef(new Map<string, string>());
  const [sending, setSending] = useState(false);
  const [afterSend, setAfterSend] = useState<AfterSend>("");
  const [transferTo, setTransferTo] = useState("");
  const [transferComment, setTransferComment] = useState("");
  const [picking, setPicking] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [emojiOpen, setEmojiOpen] = useState(false);
  const emojiMenu = useRef<HTMLDetailsElement>(null);
  const closedWindow = mode === "reply" && !freeFormAllowed;

  useEffect(() => { if (closedWindow) setPicking(true); }, [closedWindow]);

  const recipient = { external_user_id: conversation.external_user_id };
  const [targetKind, targetId] = transferTo.split(":");
  const after = afterSend === "transfer"
    ? { after_send: { action: "transfer", target_kind: targetKind, target_id: targetId, comment: transferComment.trim() || null } }
    : afterSend ? { after_send: { action: afterSend } } : {};
  const afterSendReady = afterSend !== "transfer" || Boolean(targetId);

  async function sendDraft(draft: unknown[], content: object): Promise<void> {
    const signature = JSON.stringify([conversation.id, ...draft]);
    const key = unconfirmed.current.get(signature) ?? newDraftKey();
    unconfirmed.current.set(signature, key);
    try {
      await api("/v1/messages", {
        method: "POST",
        json: { channel_id: conversation.channel_id, recipient, content, idempotency_key: key, ...after },
      });
      unconfirmed.current.delete(signature);
    } catch (problem) {
      if (problem instanceof ApiError && problem.status < 500) unconfirmed.current.delete(signature);
      throw problem;
    }
  }

  async function upload(chosen: File): Promise<string> {
    const form = new FormData();
    form.append("file", chosen, chosen.name);
    const stored = await api<{ id: string }>("/v1/media", { method: "POST", body: form, query: { channel_id: conversation.channel_id } });
    return stored.id;
  }

  async function send() {
    if (sending || (!text.trim() && !file) || (mode === "reply" && !afterSendReady)) return;
    setSending(true);
    try {
      if (mode === "note") {
        await api(`/v1/conversations/${conversation.id}/notes`, { method: "POST", json: { text: text.trim() } });
      } else {
        const mediaId = file ? await upload(file) : null;
        const content = text.trim() ? { kind: "text", text: text.trim(), media_id: mediaId } : { kind: "media", media_id: mediaId };
        await sendDraft(["reply", text, file && [file.name, file.size, file.lastModified]], content);
      }
      setText("");
      setFile(null);
      onError("");
      onSent();
    } catch (problem) {
      onError(problem instanceof ApiError ? `${problem.message} (${problem.code})` : "not sent");
    } finally {
      setSending(false);
    }
  }

  async function sendTemplate(template: Template, variables: Record<string, string>) {
    if (!afterSendReady) { onError("Choose who the conversation goes to after the send."); return; }
    const content = { kind: "template", name: template.name, language: template.language, variables };
    try {
      await sendDraft([content], content);
      setPicking(false);
      onError("");
      onSent();
    } catch (problem) {
      onError(problem instanceof ApiError ? `${problem.message} (${problem.code})` : "template not sent");
    }
  }

  async function sendSaved(savedReplyId: string) {
    if (!afterSendReady) { onError("Choose who the conversation goes to after the send."); return; }
    const content = { kind: "saved_reply", saved_reply_id: savedReplyId };
    try {
      await sendDraft([content], content);
      onError("");
      onSent();
    } catch (problem) {
      onError(problem instanceof ApiError ? `${problem.message} (${problem.code})` : "saved reply not sent");
    }
  }

  function onKeyDown(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void send();
    }
    if (event.key === "Escape") (event.target as HTMLTextAreaElement).blur();
  }

  function onDrop(event: DragEvent<HTMLElement>) {
    event.preventDefault();
    setDragging(false);
    const dropped = event.dataTransfer.files[0];
    if (dropped) setFile(dropped);
  }

  return (
    <section className={`composer ${mode} ${dragging ? "dragging" : ""}`} aria-label="Composer"
             onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)} onDrop={onDrop}>
      <div className="composer-modes" role="radiogroup" aria-label="Write a">
        <label><input type="radio" name="mode" checked={mode === "reply"} onChange={() => onMode("reply")} /> Reply</label>
        <label><input type="radio" name="mode" checked={mode === "note"} onChange={() => onMode("note")} /> Private note</label>
        <button type="button" className="link" aria-expanded={picking} onClick={() => setPicking((v) => !v)} disabled={mode === "note"}>Templates</button>
        <label className="after">After send
          <select value={afterSend} onChange={(e) => setAfterSend(e.target.value as AfterSend)} disabled={mode === "note"}>
            <option value="">nothing</option>
            <option value="close">close</option>
            <option value="assign_to_me">assign to me</option>
            <option value="transfer">transfer…</option>
          </select>
        </label>
      </div>
      {afterSend === "transfer" && mode === "reply" && (
        <div className="after-transfer">
          <label>Transfer to
            <select value={transferTo} onChange={(e) => setTransferTo(e.target.value)} required>
              <TransferTargets agents={agents} teams={teams} />
            </select>
          </label>
          <label>Transfer comment
            <input value={transferComment} maxLength={1000} onChange={(e) => setTransferComment(e.target.value)} />
          </label>
        </div>
      )}
      {picking && mode === "reply" && (
        <TemplatePicker channelId={conversation.channel_id} required={closedWindow} onSend={sendTemplate} onCancel={() => setPicking(false)} />
      )}
      {mode === "reply" && !closedWindow && <SavedReplies channelType={conversation.channel_type} onSend={sendSaved} />}
      <div className="composer-row">
        <label htmlFor="composer-text" className="sr-only">{mode === "note" ? "Private note (only your team sees it)" : "Reply to the customer"}</label>
        <textarea id="composer-text" ref={ref} rows={2} value={text} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown}
                  disabled={closedWindow}
                  placeholder={closedWindow ? "The window is closed: send a template" : mode === "note" ? "Private note, never sent to the customer" : "Reply… (Enter sends, Shift+Enter new line)"} />
        <div className="composer-tools">
          <label className="attach" title="Attach a file">
            <span>Attach</span>
            <input type="file" onChange={(e) => setFile(e.target.files?.[0] ?? null)} disabled={mode === "note" || closedWindow} />
          </label>
          <details className="emoji" ref={emojiMenu} onToggle={(e) => setEmojiOpen(e.currentTarget.open)}>
            <summary>Emoji</summary>
            {emojiOpen && <EmojiPicker onPick={(emoji) => {
              setText((t) => t + emoji);
              if (emojiMenu.current) emojiMenu.current.open = false; // picked: the picker closes
            }} />}
          </details>
          <button type="button" className="primary" onClick={() => void send()} disabled={sending || closedWindow || (!text.trim() && !file) || (mode === "reply" && !afterSendReady)}>
            {mode === "note" ? "Add note" : "Send"}
          </button>
        </div>
      </div>
      {file && (
        <p className="file">Attached: {file.name} ({Math.ceil(file.size / 1024)} KB)
          <button type="button" className="link" onClick={() => setFile(null)}>remove</button></p>
      )}
    </section>
  );
});

/** 128 random bits as hex (crypto.getRandomValues works on a plain-HTTP origin too, unlike randomUUID). */
function newDraftKey(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, "0")).join("");
}
