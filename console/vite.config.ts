/// <reference types="vitest/config" />
// The console is built into the Python package (app/console/dist), which the API serves at
// `/`: `npm run build` after a change to src/, and commit the result (tests/console checks
// that the committed build is the build of these sources). Relative asset URLs (base './')
// keep it working behind a proxy's path prefix.
//
// `npx vite` serves the sources with live reload against an API on 127.0.0.1:8000
// (`promenade up`), its /graphql proxied over HTTP and websockets.
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: {
    outDir: '../app/console/dist',
    emptyOutDir: true,
    // One script and one stylesheet: no inline code, so the page's CSP can forbid it.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
  },
  server: {
    proxy: { '/graphql': { target: 'http://127.0.0.1:8000', ws: true } },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
