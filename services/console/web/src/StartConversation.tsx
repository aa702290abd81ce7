import { useEffect, useRef, useState } from "react";
import { api, ApiError, type Template } from "./api";
import { TemplatePicker } from "./TemplatePicker";

/** Write first to a new client by phone: on WhatsApp only an approved template may open the conversation. The
 * conversation appears in the inbox once the message has left. */
export function StartConversation({ onClose, onStarted }: { onClose: () => void; onStarted: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [channels, setChannels] = useState<string[]>([]);
  const [channel, setChannel] = useState("");
  const [phone, setPhone] = useState("");
  const [problem, setProblem] = useState("");
  useEffect(() => { dialog.current?.showModal(); }, []);
  useEffect(() => {
    api<Template[]>("/v1/templates")
      .then((templates) => {
        const ids = [...new Set(templates.filter((t) => t.status === "approved").map((t) => t.channel_id))];
        setChannels(ids);
        setChannel((current) => current || ids[0] || "");
      })
      .catch(() => setProblem("Templates could not be loaded."));
  }, []);

  async function send(template: Template, variables: Record<string, string>) {
    if (!/^\+?\d{7,15}$/.test(phone.replace(/[\s-]/g, ""))) { setProblem("Enter the phone number with its country code."); return; }
    try {
      await api("/v1/messages", {
        method: "POST",
        json: { channel_id: channel, recipient: { phone: phone.replace(/[\s-]/g, "") }, content: { kind: "template", name: template.name, language: template.language, variables } },
      });
      onStarted();
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "not sent");
    }
  }

  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="start-title">
      <h2 id="start-title">New conversation</h2>
      <label>Channel
        <select value={channel} onChange={(e) => setChannel(e.target.value)}>
          {channels.map((c) => <option key={c} value={c}>{c}</option>)}
        </select>
      </label>
      <label>Phone (with country code)
        <input type="tel" value={phone} onChange={(e) => setPhone(e.target.value)} placeholder="+44 7700 900123" />
      </label>
      {problem && <p role="alert" className="error">{problem}</p>}
      {channel && <TemplatePicker channelId={channel} required={false} onSend={send} onCancel={() => dialog.current?.close()} />}
    </dialog>
  );
}
