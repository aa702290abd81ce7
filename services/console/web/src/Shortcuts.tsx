import { useEffect, useRef } from "react";

const KEYS: [string, string][] = [
  ["j / k", "next / previous conversation"], ["/", "search"], ["r", "reply"], ["n", "private note"],
  ["a", "accept the offer"], ["t", "take"], ["x", "transfer"], ["c", "close with a note"], ["e", "archive"],
  ["Enter", "send (Shift+Enter: new line)"], ["g", "inbox / supervisor"], ["?", "this help"],
];

export function Shortcuts({ onClose }: { onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => { dialog.current?.showModal(); }, []);
  return (
    <dialog ref={dialog} onClose={onClose} aria-labelledby="shortcuts-title">
      <h2 id="shortcuts-title">Keyboard shortcuts</h2>
      <dl className="shortcuts">
        {KEYS.map(([key, what]) => (<div key={key}><dt><kbd>{key}</kbd></dt><dd>{what}</dd></div>))}
      </dl>
      <button type="button" onClick={() => dialog.current?.close()}>Close</button>
    </dialog>
  );
}
