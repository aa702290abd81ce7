import type { Conversation, Entry } from "./api";

export function customerLabel(conversation: Conversation): string {
  return conversation.customer_name || conversation.customer_phone || conversation.external_user_id;
}

export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d`;
}

export function since(iso: string | null | undefined, now: number): string {
  return iso ? duration((now - Date.parse(iso)) / 1000) : "";
}

export function clock(iso: string): string {
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export const CHANNEL_ICONS: Record<string, string> = {
  whatsapp: "WA", telegram: "TG", viber: "VB", messenger: "FB", instagram: "IG", email: "@", sandbox: "SB",
};

export function senderLogin(entry: Entry): string | null {
  if (typeof entry.sender === "object" && entry.sender) return entry.sender.login ?? entry.sender.bot_id ?? entry.sender.kind;
  return null;
}

const CHANGE_TEXT: Record<string, string> = {
  opened: "Conversation opened", offered: "Offered", assigned: "Assigned", accepted: "Accepted", declined: "Declined", offer_accepted: "Offer accepted", offer_declined: "Offer declined",
  transferred: "Transferred", closed: "Closed", reopened: "Reopened", snoozed: "Snoozed", archived: "Archived",
  unsnoozed: "Back from snooze", requeued: "Back in the queue", offer_expired: "Offer expired",
  priority_changed: "Priority changed", marked: "Marked", status_changed: "Status changed", blocked: "Customer blocked",
  unblocked: "Customer unblocked", labelled: "Labels changed",
};

export function activityText(entry: Entry): string {
  const base = CHANGE_TEXT[entry.change ?? ""] ?? (entry.change ?? "Activity").replace(/_/g, " ");
  const target = entry.assignee ? ` to ${entry.assignee.kind === "agent" ? "" : entry.assignee.kind + " "}${entry.assignee.id}` : "";
  const who = entry.actor && entry.actor !== "system" ? ` by ${entry.actor}` : "";
  const withTarget = ["offered", "assigned", "transferred"].includes(entry.change ?? "") ? target : "";
  return `${base}${withTarget}${who}`;
}
