// The visualiser's page, served by every member at /ui/ from the bundle the
// build puts in dist/ui/ (index.html, app.js, app.css, ...). The directory is
// found relative to this module, so the page is there however raftkv was
// started (`npx raftkv serve` from anywhere, `npm start`).

import { createReadStream, promises as fs } from 'node:fs';
import type * as http from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/ui/, beside dist/src/ where this module is compiled to. */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

export const UI_NOT_BUILT = 'the visualiser is not built: run npm run build\n';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.wasm': 'application/wasm',
};

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;

/** Routes for httpRoutes: "/ui" redirects to "/ui/", "/ui/" and everything under it come from `dir`. */
export function uiStaticRoutes(dir: string = DEFAULT_UI_DIR): Record<string, Handler> {
  const root = resolve(dir);
  return {
    '/ui': (_req, res) => {
      res.writeHead(302, { location: '/ui/', 'content-type': 'text/plain; charset=utf-8' }).end('see /ui/\n');
    },
    '/ui/': (req, res) => serveFile(root, req, res),
  };
}

function plain(res: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(text);
}

/**
 * The file for a /ui/... path, or undefined when the path is not a plain
 * relative file name inside root (dot segments, an encoded separator
 * climbing out, a NUL byte, a malformed escape).
 */
export function resolveUiPath(root: string, pathname: string): string | undefined {
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.slice('/ui/'.length));
  } catch {
    return undefined;
  }
  if (rel === '') rel = 'index.html';
  if (rel.includes('\0') || rel.split(/[\\/]/).some((seg) => seg === '..' || seg === '.')) return undefined;
  const file = resolve(root, rel);
  return file.startsWith(root + sep) ? file : undefined;
}

async function serveFile(root: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(res, 405, '405 method not allowed\n', { allow: 'GET, HEAD' });
    return;
  }
  const pathname = new URL(req.url ?? '/', 'http://x').pathname;
  const file = resolveUiPath(root, pathname);
  if (file === undefined) {
    plain(res, 400, `400 bad path: ${pathname}\n`);
    return;
  }
  const built = await fs.stat(join(root, 'index.html')).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!built) {
    plain(res, 404, UI_NOT_BUILT);
    return;
  }
  const stat = await fs.stat(file).catch(() => undefined);
  if (stat === undefined || !stat.isFile()) {
    plain(res, 404, `404 not found: ${pathname}\n`);
    return;
  }
  // The bundle's file names carry no content hash: let the browser keep a
  // copy but revalidate it each time (a 304 when unchanged).
  const etag = `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
  const headers: http.OutgoingHttpHeaders = {
    'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
    'cache-control': 'no-cache',
    etag,
    'last-modified': stat.mtime.toUTCString(),
    'x-content-type-options': 'nosniff',
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers).end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': stat.size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((done) => {
    const stream = createReadStream(file);
    stream.once('error', () => {
      res.destroy();
      done();
    });
    stream.once('end', done);
    res.once('close', () => {
      stream.destroy();
      done();
    });
    stream.pipe(res);
  });
}
