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

export function MediaPreview({ media }: { media: MediaRef }) {
  const [info, setInfo] = useState<MediaInfo | null>(null);
  const [problem, setProblem] = useState<string>("");

  useEffect(() => {
    let cancelled = false;
    api<MediaInfo>(`/v1/media/${encodeURIComponent(media.media_id)}`)
      .then((found) => { if (!cancelled) setInfo(found); })
      .catch((error) => { if (!cancelled) setProblem(error instanceof ApiError && error.status === 410 ? "expired" : "unavailable"); });
    return () => { cancelled = true; };
  }, [media.media_id]);

  const name = info?.file_name ?? media.file_name ?? "attachment";
  if (problem === "expired") return <div className="attachment expired">Attachment expired: {name}</div>;
  if (problem) return <div className="attachment failed">Attachment unavailable: {name}</div>;
  if (!info) return <div className="attachment pending">Attachment loading…</div>;
  if (info.state === "pending") return <div className="attachment pending">Attachment downloading: {name}</div>;
  if (info.state === "failed") return <div className="attachment failed">Attachment failed: {info.failure_reason ?? info.reason ?? "unknown reason"}</div>;
  const link = sameOrigin(info.download_url);
  const thumb = sameOrigin(info.thumbnail_url) ?? (info.mime_type?.startsWith("image/") ? link : undefined);
  return (
    <div className="attachment">
      {thumb && <img src={thumb} alt={`Image ${name}`} loading="lazy" />}
      {link && <a href={link} target="_blank" rel="noreferrer noopener">{name}{info.size_bytes ? ` (${Math.ceil(info.size_bytes / 1024)} KB)` : ""}</a>}
    </div>
  );
}
