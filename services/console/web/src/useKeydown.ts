import { useEffect, useLayoutEffect, useRef } from "react";

/** Calls `onKey` for every key pressed on the page, always the latest `onKey` rendered: the listener is added once and
 * the handler swapped in during the commit that renders it, so a key pressed the moment a button appears acts on what
 * that button shows. (Re-adding the listener in an effect left a gap after each render in which the previous handler,
 * with the previous state, answered: a "t" pressed as Take appeared was ignored as if the conversation were still
 * the agent's.) */
export function useKeydown(onKey: (event: KeyboardEvent) => void): void {
  const latest = useRef(onKey);
  useLayoutEffect(() => { latest.current = onKey; });
  useEffect(() => {
    const listener = (event: KeyboardEvent) => latest.current(event);
    window.addEventListener("keydown", listener);
    return () => window.removeEventListener("keydown", listener);
  }, []);
}
