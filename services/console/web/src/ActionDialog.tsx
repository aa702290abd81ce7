import { useEffect, useRef, useState } from "react";
import type { Agent, Team } from "./api";

export type DialogKind = "transfer" | "close" | "snooze";

interface Props {
  kind: DialogKind;
  agents: Agent[];
  teams: Team[];
  onClose: () => void;
  onSubmit: (path: string, body: unknown) => Promise<void>;
}

const TITLES: Record<DialogKind, string> = { transfer: "Transfer the conversation", close: "Close the conversation", snooze: "Snooze the conversation" };
const SNOOZES: [string, number][] = [["1 hour", 3600], ["4 hours", 4 * 3600], ["Tomorrow", 24 * 3600], ["Next week", 7 * 24 * 3600]];

/** The agents and teams a conversation may go to, as options `agent:<login>` / `team:<id>`. */
export function TransferTargets({ agents, teams }: { agents: Agent[]; teams: Team[] }) {
  return (
    <>
      <option value="">choose…</option>
      <optgroup label="Agents">
        {agents.map((a) => <option key={a.login} value={`agent:${a.login}`}>{a.login} ({a.presence})</option>)}
      </optgroup>
      <optgroup label="Teams">
        {teams.map((t) => <option key={t.id} value={`team:${t.id}`}>{t.name ?? t.id}</option>)}
      </optgroup>
    </>
  );
}

export function ActionDialog({ kind, agents, teams, onClose, onSubmit }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [target, setTarget] = useState("");
  const [text, setText] = useState("");
  const [snooze, setSnooze] = useState(SNOOZES[0][1]);
  useEffect(() => { dialog.current?.showModal(); }, []);

  function submit() {
    if (kind === "transfer") {
      const [targetKind, id] = target.split(":");
      if (!id) return;
      void onSubmit("transfer", { kind: targetKind, id, comment: text.trim() || null });
    } else if (kind === "close") {
      void onSubmit("close", { note: text.trim() || null });
    } else {
      void onSubmit("snooze", { until: new Date(Date.now() + snooze * 1000).toISOString() });
    }
  }

  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="action-title">
      <form method="dialog" onSubmit={(e) => { e.preventDefault(); submit(); }}>
        <h2 id="action-title">{TITLES[kind]}</h2>
        {kind === "transfer" && (
          <label>To
            <select required value={target} onChange={(e) => setTarget(e.target.value)}>
              <TransferTargets agents={agents} teams={teams} />
            </select>
          </label>
        )}
        {kind === "snooze" && (
          <label>For
            <select value={snooze} onChange={(e) => setSnooze(Number(e.target.value))}>
              {SNOOZES.map(([label, seconds]) => <option key={label} value={seconds}>{label}</option>)}
            </select>
          </label>
        )}
        {kind !== "snooze" && (
          <label>{kind === "transfer" ? "Comment (shown on the timeline)" : "Closing note"}
            <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} />
          </label>
        )}
        <div className="buttons">
          <button type="submit" className="primary">{kind === "transfer" ? "Transfer" : kind === "close" ? "Close" : "Snooze"}</button>
          <button type="button" onClick={() => dialog.current?.close()}>Cancel</button>
        </div>
      </form>
    </dialog>
  );
}
