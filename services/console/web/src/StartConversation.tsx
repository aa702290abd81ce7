import { useEffect, useRef, useState } from "react";
import { api, ApiError, type Template, type WriteFirstChannel } from "./api";
import { TemplatePicker } from "./TemplatePicker";

/** Write first to a new client by phone. WhatsApp: the phone is the address and only an approved template may
 * open the conversation. Telegram and Viber let a bot write only to someone who started it: outbound finds the
 * contact with this phone on that bot and sends a text, or says why not (customer_not_on_channel). The
 * conversation appears in the inbox once the message has left. */
export function StartConversation({ onClose, onStarted }: { onClose: () => void; onStarted: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [channels, setChannels] = useState<WriteFirstChannel[]>([]);
  const [channel, setChannel] = useState("");
  const [phone, setPhone] = useState("");
  const [text, setText] = useState("");
  const [problem, setProblem] = useState("");
  useEffect(() => { dialog.current?.showModal(); }, []);
  useEffect(() => {
    Promise.all([api<WriteFirstChannel[]>("/v1/channels"), api<Template[]>("/v1/templates")])
      .then(([all, templates]) => {
        const approved = new Set(templates.filter((t) => t.status === "approved").map((t) => t.channel_id));
        // WhatsApp numbers with an approved template first (nothing else can open there), then the bots.
        const usable = [...all.filter((c) => c.write_first === "template" && approved.has(c.id)),
                        ...all.filter((c) => c.write_first === "known_customer")];
        setChannels(usable);
        setChannel((current) => current || usable[0]?.id || "");
      })
      .catch(() => setProblem("Channels could not be loaded."));
  }, []);
  const chosen = channels.find((c) => c.id === channel);

  function number(): string | null {
    const typed = phone.replace(/[\s-]/g, "");
    if (/^\+?\d{7,15}$/.test(typed)) return typed;
    setProblem("Enter the phone number with its country code.");
    return null;
  }

  async function post(content: Record<string, unknown>) {
    const to = number();
    if (to === null) return;
    try {
      await api("/v1/messages", { method: "POST", json: { channel_id: channel, recipient: { phone: to }, content } });
      onStarted();
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "not sent");
    }
  }

  async function sendTemplate(template: Template, variables: Record<string, string>) {
    await post({ kind: "template", name: template.name, language: template.language, variables });
  }

  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="start-title">
      <h2 id="start-title">New conversation</h2>
      <label>Channel
        <select value={channel} onChange={(e) => { setChannel(e.target.value); setProblem(""); }}>
          {channels.map((c) => <option key={c.id} value={c.id}>{c.id} ({c.type})</option>)}
        </select>
      </label>
      <label>Phone (with country code)
        <input type="tel" value={phone} onChange={(e) => setPhone(e.target.value)} placeholder="+44 7700 900123" />
      </label>
      {problem && <p role="alert" className="error">{problem}</p>}
      {chosen?.write_first === "template" && <TemplatePicker channelId={channel} required={false} onSend={sendTemplate} onCancel={() => dialog.current?.close()} />}
      {chosen?.write_first === "known_customer" && (
        <form aria-label="Message" onSubmit={(e) => { e.preventDefault(); if (text.trim()) void post({ kind: "text", text }); }}>
          <p className="hint">Reaches the contact with this phone who has written to this {chosen.type} bot.</p>
          <label>Message
            <textarea value={text} onChange={(e) => setText(e.target.value)} maxLength={4096} required />
          </label>
          <button type="submit">Send</button>
          <button type="button" onClick={() => dialog.current?.close()}>Cancel</button>
        </form>
      )}
    </dialog>
  );
}
