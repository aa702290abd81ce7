import { useEffect, useRef } from "react";
import type { LiveEvent } from "./api";

/** The live events received lately, each numbered. React renders several state updates at once, so a screen that
 * looked at the last event only could miss one that arrived in the same stream chunk or just before it (an open
 * conversation's new message behind another conversation's change); this keeps them all until they are seen. */
export interface LiveEvents {
  last: number;
  events: (LiveEvent & { seq: number })[];
}

export const NO_EVENTS: LiveEvents = { last: 0, events: [] };
const KEPT = 200;

export function withEvent(previous: LiveEvents, event: LiveEvent): LiveEvents {
  const seq = previous.last + 1;
  return { last: seq, events: [...previous.events.slice(1 - KEPT), { ...event, seq }] };
}

/** Calls `handle` once for every event received since the last call (none of those before the screen showed). */
export function useNewEvents(live: LiveEvents, handle: (event: LiveEvent) => void): void {
  const seen = useRef(live.last);
  useEffect(() => {
    const fresh = live.events.filter((event) => event.seq > seen.current);
    seen.current = live.last;
    fresh.forEach(handle);
  }, [live, handle]);
}
