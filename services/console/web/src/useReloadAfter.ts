import { useEffect, useRef } from "react";

/** Calls `load` once `delayMs` after a live event, coalescing the events that arrive meanwhile into that one call. */
export function useReloadAfter(lastEvent: unknown, load: () => Promise<void>, delayMs: number): void {
  const pending = useRef<number | null>(null);
  useEffect(() => {
    if (!lastEvent || pending.current !== null) return;
    pending.current = window.setTimeout(() => { pending.current = null; void load(); }, delayMs);
  }, [lastEvent, load, delayMs]);
  useEffect(() => () => { if (pending.current !== null) window.clearTimeout(pending.current); }, []);
}
