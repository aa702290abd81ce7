import { useEffect, useRef } from "react";
import dataSource from "emoji-picker-element-data/en/emojibase/data.json?url";

/** emoji-picker-element's picker (search, categories, skin tones, recently used; keyboard and screen-reader
 * friendly), loaded when first opened so the inbox's first screen does not wait for it. Its emoji data is served
 * by the console itself (built into the app's assets): no CDN. */
export function EmojiPicker({ onPick }: { onPick: (emoji: string) => void }) {
  const holder = useRef<HTMLDivElement>(null);
  const pick = useRef(onPick);
  pick.current = onPick;
  useEffect(() => {
    let picker: HTMLElement | null = null;
    let gone = false;
    void import("emoji-picker-element/picker").then(({ default: Picker }) => {
      if (gone || !holder.current) return;
      picker = new Picker({ dataSource, locale: "en" });
      picker.addEventListener("emoji-click", (event) => {
        const unicode = (event as CustomEvent<{ unicode?: string }>).detail.unicode;
        if (unicode) pick.current(unicode);
      });
      holder.current.appendChild(picker);
    });
    return () => { gone = true; picker?.remove(); };
  }, []);
  return <div ref={holder} className="emoji-picker" />;
}
