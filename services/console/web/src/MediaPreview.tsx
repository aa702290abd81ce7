import { useEffect, useState } from "react";
import { api, ApiError, type MediaRef } from "./api";

interface MediaInfo {
  id: string;
  state: string;
  mime_type?: string | null;
  file_name?: string | null;
  size_bytes?: number | null;
  download_url?: string;
  thumbnail_url?: string;
  failure_reason?: string | null;
  reason?: string | null;
}

/** Signed links point at the media service; the console serves the same path, so keep path and query only. */
function sameOrigin(link: string | undefined): string | undefined {
  if (!link) return undefined;
  const url = new URL(link, window.location.origin);
  return url.pathname + url.search;
}

// A pending attachment is asked for again while it downloads (the first attempt or a retry), and one media does not
// know yet (404), for a bounded time.
const POLL_MS = 2000;
const POLLS = 60;

export function MediaPreview({ media }: { media: MediaRef }) {
  const [info, setInfo] = useState<MediaInfo | null>(null);
  const [problem, setProblem] = useState<string>("");
  const [polls, setPolls] = useState(0);
  const [retryProblem, setRetryProblem] = useState("");
  const [retrying, setRetrying] = useState(false);

  useEffect(() => {
    let cancelled = false;
    api<MediaInfo>(`/v1/media/${encodeURIComponent(media.media_id)}`)
      .then((found) => { if (!cancelled) { setInfo(found); setProblem(""); } })
      .catch((error) => {
        if (cancelled) return;
        // 404: media has not opened the attachment yet, or has not yet learnt that this agent may see the
        // conversation (its projection follows the router's events): the message can reach the screen first.
        const status = error instanceof ApiError ? error.status : 0;
        setProblem(status === 410 ? "expired" : status === 404 ? "unknown" : "unavailable");
      });
    return () => { cancelled = true; };
  }, [media.media_id, media.state, polls]);

  const waiting = info?.state === "pending" || problem === "unknown";
  useEffect(() => {
    if (!waiting || polls >= POLLS) return;
    const timer = window.setTimeout(() => setPolls((n) => n + 1), POLL_MS);
    return () => window.clearTimeout(timer);
  }, [waiting, info, problem, polls]);

  const retry = async () => {
    setRetrying(true);
    try {
      await api(`/v1/media/${encodeURIComponent(media.media_id)}/retry`, { method: "POST" });
      setRetryProblem("");
      setPolls(0);
      setInfo((known) => (known ? { ...known, state: "pending" } : known));
    } catch (error) {
      setRetryProblem(error instanceof Error ? error.message : "not retried");
    } finally {
      setRetrying(false);
    }
  };

  const name = info?.file_name ?? media.file_name ?? "attachment";
  if (problem === "expired") return <div className="attachment expired">Attachment expired: {name}</div>;
  if (problem === "unknown" && polls < POLLS) return <div className="attachment pending">Attachment loading…</div>;
  if (problem) return <div className="attachment failed">Attachment unavailable: {name}</div>;
  if (!info) return <div className="attachment pending">Attachment loading…</div>;
  if (info.state === "pending") return <div className="attachment pending">Attachment downloading: {name}</div>;
  if (info.state === "failed") {
    return (
      <div className="attachment failed">
        Attachment failed: {info.failure_reason ?? info.reason ?? "unknown reason"}{" "}
        <button type="button" onClick={() => void retry()} disabled={retrying}>Retry</button>
        {retryProblem && <span role="alert" className="error"> {retryProblem}</span>}
      </div>
    );
  }
  const link = sameOrigin(info.download_url);
  const thumb = sameOrigin(info.thumbnail_url) ?? (info.mime_type?.startsWith("image/") ? link : undefined);
  return (
    <div className="attachment">
      {thumb && <img src={thumb} alt={`Image ${name}`} loading="lazy" />}
      {link && <a href={link} target="_blank" rel="noreferrer noopener">{name}{info.size_bytes ? ` (${Math.ceil(info.size_bytes / 1024)} KB)` : ""}</a>}
    </div>
  );
}
