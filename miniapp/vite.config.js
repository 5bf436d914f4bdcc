// Build of the Mini App. What a province sets is read here, once, at build time:
//   DIEMTHI_MINIAPP_API    public base URL of the lookup API (empty: the page's own origin)
//   DIEMTHI_MINIAPP_OA_ID  the province's Zalo Official Account id (empty: no Zalo actions)
// Subject and combination names come from the server's own tables, so the app and the API
// never disagree on a name.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import zaloMiniApp from "zmp-vite-plugin";

const tables = new URL("../src/diemthi/data/", import.meta.url);

function rows(name) {
  const [, ...lines] = readFileSync(fileURLToPath(new URL(name, tables)), "utf8")
    .trim()
    .split(/\r?\n/);
  return lines.map((line) => line.split(","));
}

const subjects = Object.fromEntries(rows("subjects.csv").map(([key, name]) => [key, name]));
const combinations = Object.fromEntries(
  rows("combinations.csv").map(([code, keys]) => [code, keys.split("+")]),
);
const api = (process.env.DIEMTHI_MINIAPP_API || "").replace(/\/+$/, "");
const oaId = process.env.DIEMTHI_MINIAPP_OA_ID || "";
if (oaId && !/^\d+$/.test(oaId)) throw new Error(`DIEMTHI_MINIAPP_OA_ID is not an OA id: ${oaId}`);

export default defineConfig({
  plugins: [react(), zaloMiniApp()],
  define: {
    __API__: JSON.stringify(api),
    __OA_ID__: JSON.stringify(oaId),
    __SUBJECTS__: JSON.stringify(subjects),
    __COMBINATIONS__: JSON.stringify(combinations),
  },
  build: { reportCompressedSize: false },
});
