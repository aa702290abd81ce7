import { useCallback, useEffect, useRef, useState } from "react";
import { api, ApiError, pictureUrl, type Comment, type Contact, type Conversation, type Page } from "./api";
import { CHANNEL_ICONS, customerLabel, since } from "./format";

// Channels whose customer's name and picture contacts reads from the platform (the webhooks carry none).
const PROFILE_CHANNELS = new Set(["messenger", "instagram"]);
// A card the conversation names that contacts does not show yet is asked for again, for a bounded time.
const CARD_POLL_MS = 1000;
const CARD_POLLS = 30;

interface Props {
  conversation: Conversation;
  manager: boolean;
  onOpen: (conversation: Conversation) => void;
  onHide: () => void; // narrow screens: back to the conversation
}

export function ContactCard({ conversation, manager, onOpen, onHide }: Props) {
  const [contact, setContact] = useState<Contact | null>(null);
  const [comments, setComments] = useState<Comment[]>([]);
  const [others, setOthers] = useState<Conversation[]>([]);
  const [labelSuggestions, setLabelSuggestions] = useState<string[]>([]);
  const [label, setLabel] = useState("");
  const [comment, setComment] = useState("");
  const [fieldNames, setFieldNames] = useState<{ name: string; type: string | null }[]>([]);
  const [fieldName, setFieldName] = useState("");
  const [fieldValue, setFieldValue] = useState("");
  const [phone, setPhone] = useState("");
  const [problem, setProblem] = useState("");

  const [cardPolls, setCardPolls] = useState(0);
  const [cardPending, setCardPending] = useState(false);

  const load = useCallback(async () => {
    try {
      const found = conversation.contact_id
        ? await api<Contact>(`/v1/contacts/${conversation.contact_id}`)
        : (await api<Page<Contact>>("/v1/contacts/search", { query: { user_id: conversation.external_user_id } })).items[0] ?? null;
      setContact(found);
      setCardPending(false);
      if (found) setComments(await api<Comment[]>(`/v1/contacts/${found.id}/comments`));
    } catch (error) {
      // 404: a new customer's card is named on the conversation before contacts has stored it, or before contacts
      // has learnt that this agent may see it (its projection follows the router's events): asked again below.
      if (error instanceof ApiError && error.status === 404) {
        setContact(null);
        setCardPending(true);
        return;
      }
      setProblem(error instanceof Error ? error.message : "the contact could not be loaded");
    }
  }, [conversation.contact_id, conversation.external_user_id]);

  useEffect(() => { setCardPolls(0); }, [conversation.contact_id]);
  useEffect(() => { void load(); }, [load, cardPolls]);
  useEffect(() => {
    if (!cardPending || cardPolls >= CARD_POLLS) return;
    const timer = window.setTimeout(() => setCardPolls((n) => n + 1), CARD_POLL_MS);
    return () => window.clearTimeout(timer);
  }, [cardPending, cardPolls]);

  // The tenant's labels, read when the card opens and again each time the label field is entered: the vocabulary
  // grows while a card is open (a colleague labels another customer), and a read that failed is not the last.
  // Only the latest read shows: one asked before a label was added here would answer without it.
  const labelReads = useRef(0);
  const loadLabelSuggestions = useCallback(() => {
    const read = ++labelReads.current;
    void api<{ name: string }[]>("/v1/contacts/labels")
      .then((items) => { if (read === labelReads.current) setLabelSuggestions(items.map((i) => i.name)); })
      .catch(() => undefined);
  }, []);

  useEffect(() => {
    // The customer's history on every channel by their card; before the router knows the card, by phone or id.
    const page = conversation.contact_id
      ? api<Page<Conversation>>("/v1/conversations/history", { query: { contact_id: conversation.contact_id, limit: 20 } })
      : api<Page<Conversation>>("/v1/conversations", { query: { q: conversation.customer_phone ?? conversation.external_user_id, limit: 20 } });
    void page
      .then((found) => setOthers(found.items.filter((c) => c.id !== conversation.id)))
      .catch(() => setOthers([]));
    loadLabelSuggestions();
    void api<{ name: string; type: string | null }[]>("/v1/contacts/fields").then(setFieldNames).catch(() => undefined);
  }, [conversation.id, conversation.contact_id, conversation.customer_phone, conversation.external_user_id, loadLabelSuggestions]);

  async function change(path: string, json: unknown): Promise<boolean> {
    if (!contact) return false;
    try {
      const updated = await api<Contact>(`/v1/contacts/${contact.id}/${path}`, { method: "POST", json });
      setContact(updated);
      setProblem("");
      return true;
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "not saved");
      return false;
    }
  }

  /** A label added here is the tenant's from now on (contacts remembers it before answering): suggested at once. */
  async function addLabel(added: string) {
    if (await change("labels", { add: [added], remove: [] })) {
      labelReads.current += 1;
      setLabelSuggestions((known) => (known.includes(added) ? known : [...known, added].sort()));
    }
  }

  async function setPhones(phones: string[]) {
    if (!contact) return;
    try {
      setContact(await api<Contact>(`/v1/contacts/${contact.id}`, { method: "PATCH", json: { phones } }));
      setPhone("");
      setProblem("");
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "phones not saved");
    }
  }

  async function setField() {
    if (!contact || !fieldName.trim() || !fieldValue.trim()) return;
    try {
      const updated = await api<Contact>(`/v1/contacts/${contact.id}/fields/${encodeURIComponent(fieldName.trim())}`,
        { method: "PUT", json: { type: fieldNames.find((f) => f.name === fieldName.trim())?.type ?? "text", value: fieldValue.trim() } });
      setContact(updated);
      setFieldName("");
      setFieldValue("");
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "field not saved");
    }
  }

  async function addComment() {
    if (!contact || !comment.trim()) return;
    try {
      await api(`/v1/contacts/${contact.id}/comments`, { method: "POST", json: { text: comment.trim() } });
      setComment("");
      setComments(await api<Comment[]>(`/v1/contacts/${contact.id}/comments`));
    } catch (error) {
      setProblem(error instanceof ApiError ? `${error.message} (${error.code})` : "comment not saved");
    }
  }

  const name = contact?.display_name || contact?.platform_name || customerLabel(conversation);
  const initials = name.split(/\s+/).map((w) => w[0]).join("").slice(0, 2).toUpperCase();
  const picture = usePicture(contact);
  return (
    <aside className="contact-pane" aria-labelledby="contact-title">
      <button type="button" className="card-back" onClick={onHide}>← Back to the conversation</button>
      {picture
        ? <img className="avatar" src={picture} alt={`Picture of ${name}`} />
        : <div className="avatar" aria-hidden="true">{initials}</div>}
      <h2 id="contact-title">{name}</h2>
      {problem && <p role="alert" className="error">{problem}</p>}
      {!contact ? <p className="muted">No contact card yet.</p> : (
        <>
          <dl className="facts">
            {contact.phones.length > 0 && (
              <><dt>Phone</dt><dd>{contact.phones.map((p) => (
                <span key={p} className="phone">{p} <button type="button" className="link" aria-label={`Remove phone ${p}`} onClick={() => void setPhones(contact.phones.filter((x) => x !== p))}>×</button></span>
              ))}</dd></>
            )}
            {contact.emails.length > 0 && <><dt>Email</dt><dd>{contact.emails.join(", ")}</dd></>}
            <dt>Created</dt><dd>{new Date(contact.created_at).toLocaleDateString()}</dd>
            {contact.responsible && <><dt>Responsible</dt><dd>{contact.responsible}</dd></>}
            {Object.entries(contact.custom_fields).map(([k, v]) => <div key={k} className="field"><dt>{k}</dt><dd>{String(v.value)}</dd></div>)}
          </dl>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); if (phone.trim()) void setPhones([...contact.phones, phone.trim()]); }}>
            <label htmlFor="new-phone" className="sr-only">Add a phone</label>
            <input id="new-phone" type="tel" placeholder="Add a phone (+44…)" value={phone} onChange={(e) => setPhone(e.target.value)} />
            <button type="submit">Add phone</button>
          </form>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); void setField(); }}>
            <label htmlFor="field-name" className="sr-only">Custom field</label>
            <input id="field-name" list="field-names" placeholder="Field" value={fieldName} onChange={(e) => setFieldName(e.target.value)} />
            <datalist id="field-names">{fieldNames.map((f) => <option key={f.name} value={f.name} />)}</datalist>
            <label htmlFor="field-value" className="sr-only">Value</label>
            <input id="field-value" placeholder="Value" value={fieldValue} onChange={(e) => setFieldValue(e.target.value)} />
            <button type="submit">Set</button>
          </form>
          <h3>Channels</h3>
          <ul className="identities">
            {contact.identities.map((identity) => (
              <li key={`${identity.channel_id}|${identity.external_user_id}`}>
                <span className={`chan chan-${identity.channel_type}`}>{CHANNEL_ICONS[identity.channel_type] ?? identity.channel_type}</span>
                {" "}{identity.username ?? identity.phone ?? identity.external_user_id}
                {identity.blocked ? (
                  manager && <button type="button" className="link" onClick={() => void change("unblock", { channel_id: identity.channel_id })}>Unblock</button>
                ) : (
                  <button type="button" className="link" onClick={() => void change("block", { channel_id: identity.channel_id })}>Block</button>
                )}
                {identity.blocked && <span className="tag danger">blocked</span>}
                {PROFILE_CHANNELS.has(identity.channel_type) && (
                  <button type="button" className="link" onClick={() => void change("refresh-profile", {})}>Refresh from platform</button>
                )}
              </li>
            ))}
          </ul>
          <h3>Labels</h3>
          <ul className="labels">
            {contact.labels.map((l) => (
              <li key={l} className="label">{l} <button type="button" className="link" aria-label={`Remove label ${l}`} onClick={() => void change("labels", { add: [], remove: [l] })}>×</button></li>
            ))}
          </ul>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); if (label.trim()) { void addLabel(label.trim()); setLabel(""); } }}>
            <label htmlFor="new-label" className="sr-only">Add a label</label>
            <input id="new-label" list="label-suggestions" placeholder="Add a label" value={label} onChange={(e) => setLabel(e.target.value)}
                   onFocus={loadLabelSuggestions} />
            <datalist id="label-suggestions">{labelSuggestions.map((l) => <option key={l} value={l} />)}</datalist>
            <button type="submit">Add</button>
          </form>
          <h3>Comments</h3>
          <ul className="comments">
            {comments.map((c) => <li key={c.id}><strong>{c.author}</strong>: {c.text}</li>)}
          </ul>
          <form className="inline" onSubmit={(e) => { e.preventDefault(); void addComment(); }}>
            <label htmlFor="new-comment" className="sr-only">Add a comment (use @login to mention)</label>
            <input id="new-comment" placeholder="Comment, @mention" value={comment} onChange={(e) => setComment(e.target.value)} />
            <button type="submit">Add</button>
          </form>
        </>
      )}
      <h3>Other conversations</h3>
      {others.length === 0 ? <p className="muted">None.</p> : (
        <ul className="others">
          {others.map((c) => (
            <li key={c.id}><button type="button" className="link" onClick={() => onOpen(c)}>{c.channel_id} · {c.status} · {since(c.last_activity_at, Date.now())} ago</button></li>
          ))}
        </ul>
      )}
    </aside>
  );
}

/** The customer's picture through contacts (it fetches the platform's URL: the browser never contacts the
 * platform, and the page's content policy loads images from its own origin only); null while there is none. */
function usePicture(contact: Contact | null): string | null {
  const [picture, setPicture] = useState<string | null>(null);
  const source = contact?.avatar_url && contact.avatar_from_platform ? `/v1/contacts/${contact.id}/avatar` : null;
  const version = contact?.avatar_url ?? "";
  useEffect(() => {
    setPicture(null);
    if (!source) return;
    let shown: string | null = null;
    let cancelled = false;
    void pictureUrl(source).then((url) => {
      if (cancelled) { if (url) URL.revokeObjectURL(url); return; }
      shown = url;
      setPicture(url);
    }).catch(() => undefined);
    return () => { cancelled = true; if (shown) URL.revokeObjectURL(shown); };
  }, [source, version]);
  return picture;
}
