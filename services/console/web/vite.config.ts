import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The console service serves the build from its package (parley_console/web_dist), so the image and an
// editable install both carry it; it is build output and never committed.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../parley_console/web_dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});
