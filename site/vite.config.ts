// Builds the dashboard into dist/app, which site/embed.go serves from `pulse serve`. Asset paths are
// relative (base './') so the same build works from any bucket or CDN prefix.
import { defineConfig } from "vite";
import solid from "vite-plugin-solid";
import tailwindcss from "@tailwindcss/vite";

export default defineConfig({
  base: "./",
  plugins: [solid(), tailwindcss()],
  build: {
    outDir: "dist/app",
    emptyOutDir: true,
    assetsDir: "assets",
  },
});
